package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
)

func TestFingerprintReader(t *testing.T) {
	data := strings.Repeat(`{"user":"u1","item":"x"}`+"\n", 1000)
	f := NewFingerprintReader(strings.NewReader(data), "events", "events.jsonl")
	if _, err := io.Copy(io.Discard, f); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(data))
	in := f.Input()
	if in.SHA256 != hex.EncodeToString(sum[:]) || in.Bytes != int64(len(data)) || in.Kind != "events" || in.Name != "events.jsonl" {
		t.Errorf("fingerprint %+v", in)
	}
	if Version() == "" {
		t.Error("no version")
	}
}
