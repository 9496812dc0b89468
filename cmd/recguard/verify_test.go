package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

// verifyKeyBytes is the chain key of the stores verify is tested on.
var verifyKeyBytes = []byte("cmd verify test chain key, 32 b!")

// verifyStore makes an embedded store in a new directory with its chain
// key in DIR/chain.key: users v0..v{n-1}, three or more receipts each,
// compacted so the data file is one snapshot. It returns the directory.
func verifyStore(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, chainKeyName), verifyKeyBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := memory.Open(ctx, memory.Options{Dir: dir, ChainKey: verifyKeyBytes, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		u := fmt.Sprintf("v%d", i)
		chs := []consent.Change{consent.SetPersonalization(u, false), consent.RefuseChannel(u, "sms"),
			consent.DeclareTag(u, "interest:chess"), consent.RefuseChannel(u, "push")}
		for _, ch := range chs[:3+i%2] {
			if _, err := s.Apply(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// editSnapshot rewrites the user lines of the data file in dir (a
// snapshot), letting edit change each user's receipts, with valid framing:
// what someone who can write the file, but does not hold the chain key,
// can do.
func editSnapshot(t *testing.T, dir string, edit func(user string, rs []json.RawMessage) []json.RawMessage) {
	t.Helper()
	path := filepath.Join(dir, memoryDataFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crc := crc32.MakeTable(crc32.Castagnoli)
	var out []byte
	for _, ln := range bytes.SplitAfter(data, []byte("\n")) {
		if len(ln) == 0 {
			continue
		}
		// <length> <crc32c, 8 hex digits> <JSON payload>\n
		parts := bytes.SplitN(bytes.TrimSuffix(ln, []byte("\n")), []byte(" "), 3)
		if len(parts) != 3 {
			t.Fatalf("unexpected line %q", ln)
		}
		payload := parts[2]
		var l map[string]json.RawMessage
		if err := json.Unmarshal(payload, &l); err != nil {
			t.Fatal(err)
		}
		if string(l["op"]) == `"user"` {
			var rec struct {
				UserID string `json:"user_id"`
			}
			var rs []json.RawMessage
			if err := json.Unmarshal(l["record"], &rec); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(l["receipts"], &rs); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(edit(rec.UserID, rs))
			if err != nil {
				t.Fatal(err)
			}
			l["receipts"] = b
			if payload, err = json.Marshal(l); err != nil {
				t.Fatal(err)
			}
		}
		out = strconv.AppendInt(out, int64(len(payload)), 10)
		out = fmt.Appendf(out, " %08x ", crc32.Checksum(payload, crc))
		out = append(append(out, payload...), '\n')
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// exitCode is the exit status of a finished command (0 for no error, -1
// when it did not run).
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

func decodeVerifyReport(t *testing.T, b []byte) store.VerifyReport {
	t.Helper()
	var rep store.VerifyReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	return rep
}

// TestVerifyCommand runs the binary on a clean store (exit 0), on the
// same store with receipts removed from its data file at the newest end,
// the oldest end and in the middle (exit 1, each reported), in both
// formats, and on errors (exit 2).
func TestVerifyCommand(t *testing.T) {
	dir := verifyStore(t, 12)
	out := filepath.Join(t.TempDir(), "clean.json")
	stdout, stderr, err := runCLI(t, "verify", "--data", dir, "--out", out)
	if exitCode(err) != 0 {
		t.Fatalf("clean store: exit %d (%v)\nstdout:\n%s\nstderr:\n%s", exitCode(err), err, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rep := decodeVerifyReport(t, b)
	if !rep.Verified || rep.Users != 12 || rep.ChainsVerified != 12 || rep.Receipts != 42 {
		t.Errorf("clean store: %s", b)
	}
	if !strings.Contains(stderr, "verify: 12 users, 42 receipts: 12 chains verified, 0 broken; 0 findings") {
		t.Errorf("summary line missing:\n%s", stderr)
	}

	// Remove receipts behind the store's back.
	editSnapshot(t, dir, func(u string, rs []json.RawMessage) []json.RawMessage {
		switch u {
		case "v1":
			return rs[:len(rs)-1]
		case "v2":
			return rs[1:]
		case "v3":
			return append(rs[:1:1], rs[2:]...)
		}
		return rs
	})
	stdout, stderr, err = runCLI(t, "verify", "--data", dir)
	if exitCode(err) != 1 {
		t.Fatalf("truncated chains: exit %d (%v), want 1\nstderr:\n%s", exitCode(err), err, stderr)
	}
	rep = decodeVerifyReport(t, []byte(stdout))
	got := map[string]store.FindingKind{}
	for _, f := range rep.Findings {
		got[f.UserID] = f.Kind
	}
	want := map[string]store.FindingKind{"v1": store.FindingTruncatedNewest, "v2": store.FindingTruncatedOldest, "v3": store.FindingGap}
	if fmt.Sprint(got) != fmt.Sprint(want) || rep.ChainsBroken != 3 || rep.ChainsVerified != 9 || rep.Verified {
		t.Errorf("findings %v, broken %d, verified %d; want %v, 3, 9", got, rep.ChainsBroken, rep.ChainsVerified, want)
	}

	// HTML: self-contained, totals and findings.
	html := filepath.Join(t.TempDir(), "report.html")
	_, stderr, err = runCLI(t, "verify", "--data", dir, "--out", html)
	if exitCode(err) != 1 {
		t.Fatalf("html: exit %d\n%s", exitCode(err), stderr)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<!DOCTYPE html>", "3 findings", "Receipt chains broken</th><td class=\"n\">3<", "<code>v1</code>", "<code>truncated_newest</code>", "<code>gap</code>"} {
		if !bytes.Contains(page, []byte(s)) {
			t.Errorf("the page lacks %q", s)
		}
	}
	for _, s := range []string{"<script", "http://", "https://", "src=", "<link", "@import", "url("} {
		if bytes.Contains(page, []byte(s)) {
			t.Errorf("the page is not self-contained: it has %q", s)
		}
	}

	// The key: from the environment, a wrong one, none.
	if err := os.Remove(filepath.Join(dir, chainKeyName)); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = runCLI(t, "verify", "--data", dir)
	if exitCode(err) != 2 || !strings.Contains(stderr, "chain key") {
		t.Errorf("no key: exit %d, want 2 naming the chain key\n%s", exitCode(err), stderr)
	}
	stdout, stderr, err = runCLIEnv(t, []string{"RECGUARD_CHAIN_KEY=" + hex.EncodeToString(verifyKeyBytes)}, "verify", "--data", dir)
	if exitCode(err) != 1 || decodeVerifyReport(t, []byte(stdout)).ChainsVerified != 9 {
		t.Errorf("key from RECGUARD_CHAIN_KEY: exit %d\n%s", exitCode(err), stderr)
	}
	stdout, stderr, err = runCLI(t, "verify", "--data", dir, "--chain-key", hex.EncodeToString([]byte("another key, also thirty-two b!!")))
	if rep := decodeVerifyReport(t, []byte(stdout)); exitCode(err) != 1 || rep.ChainsVerified != 0 || rep.ChainsBroken != 12 ||
		!strings.Contains(stderr, "hint:") {
		t.Errorf("wrong key: exit %d, %d verified\n%s", exitCode(err), rep.ChainsVerified, stderr)
	}

	// Errors.
	for name, args := range map[string][]string{
		"no store":        {"verify", "--data", filepath.Join(t.TempDir(), "none")},
		"bad format":      {"verify", "--data", dir, "--format", "xml"},
		"bad flag":        {"verify", "--nope"},
		"extra argument":  {"verify", "--data", dir, "extra"},
		"unknown out ext": {"verify", "--data", dir, "--out", "r.txt"},
	} {
		if _, stderr, err := runCLI(t, args...); exitCode(err) != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", name, exitCode(err), stderr)
		}
	}
	if _, stderr, err := runCLI(t, "verify", "--help"); exitCode(err) != 0 || !strings.Contains(stderr, "Exit status: 0 when everything verifies") {
		t.Errorf("--help: exit %d\n%s", exitCode(err), stderr)
	}
}

// TestVerifyProgress: progress lines on a standard error that is not a
// terminal, and the bar drawn on one.
func TestVerifyProgress(t *testing.T) {
	dir := verifyStore(t, 30)
	old := verifyProgressMin
	verifyProgressMin = 0
	defer func() { verifyProgressMin = old }()
	var stdout, stderr bytes.Buffer
	code := verifyCmd(context.Background(), []string{"--data", dir, "--chain-key-file", filepath.Join(dir, chainKeyName), "--format", "json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "verify: 30 of 30 users (100%)") || strings.Contains(stderr.String(), "\r") {
		t.Errorf("progress lines:\n%s", stderr.String())
	}

	var w bytes.Buffer
	now := time.Unix(1000, 0)
	p := &verifyProgress{w: &w, tty: true, now: func() time.Time { return now }, start: now}
	now = now.Add(10 * time.Second)
	p.update(250, 1000)
	p.finish(true)
	s := w.String()
	if !strings.HasPrefix(s, "\rverifying [=======>") || !strings.Contains(s, " 25% 250 of 1000 users, 30s left") || !strings.HasSuffix(s, "\n") {
		t.Errorf("bar %q", s)
	}
}

// TestVerifyCommandRedis verifies a Redis store named by the same store
// flags as the other commands, with the key from the environment.
func TestVerifyCommandRedis(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	ctx := context.Background()
	st, err := rs.New(ctx, c, rs.Options{Prefix: prefix, Init: true, ChainKey: verifyKeyBytes})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		u := fmt.Sprintf("r%d", i)
		for _, ch := range []consent.Change{consent.SetPersonalization(u, false), consent.DeclareTag(u, "interest:chess")} {
			if _, err := st.Apply(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	flags := []string{"verify", "--redis", "redis://" + redistest.Addrs()[0] + "/0", "--prefix", prefix}
	stdout, stderr, err := runCLIEnv(t, []string{"RECGUARD_CHAIN_KEY=" + hex.EncodeToString(verifyKeyBytes)}, flags...)
	if rep := decodeVerifyReport(t, []byte(stdout)); exitCode(err) != 0 || !rep.Verified || rep.Users != 20 || rep.Receipts != 40 {
		t.Errorf("redis: exit %d, report %+v\n%s", exitCode(err), rep, stderr)
	}
	// Without a key there is nothing to verify against.
	if _, stderr, err := runCLI(t, flags...); exitCode(err) != 2 || !strings.Contains(stderr, "chain key") {
		t.Errorf("redis without a key: exit %d\n%s", exitCode(err), stderr)
	}
}
