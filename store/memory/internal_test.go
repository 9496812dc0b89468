package memory

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

func TestFrame(t *testing.T) {
	for _, p := range []string{`{}`, `{"op":"apply","x":"a b\\n c"}`, string(bytes.Repeat([]byte("x"), 3000))} {
		b := appendFrame(nil, []byte(p))
		got, err := parseFrame(b)
		if err != nil || string(got) != p {
			t.Errorf("parseFrame(appendFrame(%.20q)) = %.20q, %v", p, got, err)
		}
		for i := range len(b) - 1 {
			if _, err := parseFrame(b[:i]); err == nil {
				t.Fatalf("parseFrame accepted %q cut at %d", b, i)
			}
		}
		for i := range b {
			c := bytes.Clone(b)
			c[i] ^= 0x04
			if _, err := parseFrame(c); err == nil && i < len(b)-1 {
				// Flipping bit 2 can turn one digit into another in the
				// length; the checksum or the length check catches it.
				t.Fatalf("parseFrame accepted %q with byte %d flipped", c, i)
			}
		}
	}
}

// TestWriteFailure breaks the file under an open store and checks that a
// failed write changes nothing, that the store then refuses writes, and
// that reopening finds the state before the failure.
func TestWriteFailure(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a0, err := s.Apply(ctx, consent.SetPersonalization("fail", false))
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := s.Tail(ctx, a0.Shard)

	// Replace the file with a read-only handle: every write fails.
	ro, err := os.Open(s.aof.path)
	if err != nil {
		t.Fatal(err)
	}
	s.aof.mu.Lock()
	rw := s.aof.f
	s.aof.f = ro
	s.aof.mu.Unlock()
	rw.Close()

	_, err = s.Apply(ctx, consent.RefuseChannel("fail", "sms"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Apply on a broken file: %v, want ErrUnavailable", err)
	}
	if r, _ := s.Get(ctx, "fail"); !reflect.DeepEqual(r, a0.Record) {
		t.Errorf("record after a failed write changed: %+v", r)
	}
	if rs, _ := s.Receipts(ctx, "fail"); len(rs) != 1 {
		t.Errorf("%d receipts after a failed write, want 1", len(rs))
	}
	if got, _ := s.Tail(ctx, a0.Shard); got != tail {
		t.Errorf("Tail after a failed write = %q, want %q", got, tail)
	}
	// Sticky: later writes fail too, even of other shards and settings.
	if _, err := s.Apply(ctx, consent.SetPersonalization("other-user", false)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Apply after a failed write: %v, want ErrUnavailable", err)
	}
	set, _ := s.Settings(ctx)
	if _, _, err := s.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("SetSettings after a failed write: %v, want ErrUnavailable", err)
	}
	if got, _ := s.Settings(ctx); got.Version != set.Version {
		t.Errorf("settings version after a failed write = %d, want %d", got.Version, set.Version)
	}
	if _, err := s.PurgeExpired(ctx, time.Now().Add(10*365*24*time.Hour)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("PurgeExpired after a failed write: %v, want ErrUnavailable", err)
	}
	if rs, _ := s.Receipts(ctx, "fail"); len(rs) != 1 {
		t.Errorf("%d receipts after a failed purge, want 1", len(rs))
	}
	if err := s.Compact(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Compact after a failed write: %v, want ErrUnavailable", err)
	}
	s.Close()

	s, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatalf("reopening after a failed write: %v", err)
	}
	defer s.Close()
	if r, _ := s.Get(ctx, "fail"); !reflect.DeepEqual(r, a0.Record) {
		t.Errorf("record after reopening = %+v, want %+v", r, a0.Record)
	}
	if _, err := s.Apply(ctx, consent.RefuseChannel("fail", "sms")); err != nil {
		t.Errorf("Apply after reopening: %v", err)
	}
}
