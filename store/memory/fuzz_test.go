package memory

// Fuzzing the embedded store's decoders: the line framing (parseFrame) and
// the replay of a data file's lines (replay, replayLine). Neither may
// panic, and a file replay accepts must describe a consistent store: every
// user at the number the file gives, listed once, so that readers (an
// index build) find no user in doubt.
//
// Run: go test -run '^$' -fuzz FuzzParseFrame ./store/memory
//      go test -run '^$' -fuzz FuzzReplay ./store/memory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

func FuzzParseFrame(f *testing.F) {
	for _, p := range []string{``, `{}`, `{"op":"apply","n":3}`, "a b\x00c"} {
		f.Add(appendFrame(nil, []byte(p)))
	}
	f.Add([]byte("3 00000000 abc\n"))
	f.Add([]byte("99999999999 ffffffff x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseFrame(b)
		if err != nil {
			return
		}
		// What parses is exactly one framed payload.
		if got, err := parseFrame(appendFrame(nil, p)); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("payload %q does not survive a second framing: %q, %v", p, got, err)
		}
		if len(b) < len(p)+11 || b[len(b)-1] != '\n' {
			t.Fatalf("frame %q of payload %q is too short", b, p)
		}
	})
}

// seedFile writes a small real data file (snapshot, changes, a compaction
// and more changes) and returns its lines' payloads, one per line.
func seedFile(f *testing.F, compact bool) []byte {
	ctx := context.Background()
	dir := f.TempDir()
	s, err := Open(ctx, Options{Dir: dir, Shards: 2, NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	apply := func(ch consent.Change) {
		if _, err := s.Apply(ctx, ch); err != nil {
			f.Fatal(err)
		}
	}
	apply(consent.DeclareTag("alice", "interest:ski"))
	apply(consent.SetPersonalization("bob", false))
	apply(consent.RefuseChannel("carol", "sms"))
	if compact {
		if err := s.Compact(ctx); err != nil {
			f.Fatal(err)
		}
	}
	apply(consent.DeclareTag("alice", "interest:golf"))
	apply(consent.Erase("bob"))
	set, _ := s.Settings(ctx)
	set.Taxonomy["banned"] = tags.Namespace{Prohibited: true}
	if _, _, err := s.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		f.Fatal(err)
	}
	if _, err := s.PurgeExpired(ctx, time.Now().AddDate(10, 0, 0)); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(dataPath(dir))
	if err != nil {
		f.Fatal(err)
	}
	var out []byte
	r := bufio.NewReader(bytes.NewReader(raw))
	for {
		b, err := r.ReadBytes('\n')
		if len(b) == 0 {
			break
		}
		p, perr := parseFrame(b)
		if perr != nil {
			f.Fatalf("seed file: %v", perr)
		}
		out = append(append(out, p...), '\n')
		if err != nil {
			break
		}
	}
	return out
}

// FuzzReplay frames each line of its input (so every line passes its
// checksum: the fuzzer works on what the checksum cannot catch, a file
// written wrongly) and replays the file.
func FuzzReplay(f *testing.F) {
	f.Add(seedFile(f, false))
	f.Add(seedFile(f, true))
	f.Add([]byte(`{"op":"meta","format":1,"shards":1,"snapshot":2}` + "\n" +
		`{"op":"settings","log":0,"settings":{"version":1}}` + "\n" +
		`{"op":"user","log":0,"record":{"user_id":"a","number":1,"version":1}}` + "\n"))
	f.Add([]byte(`{"op":"meta","format":1,"shards":1,"snapshot":2}` + "\n" +
		`{"op":"user","log":0,"record":{"user_id":"a","number":4000000000,"version":1}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Split(data, []byte("\n"))
		if len(lines) > 64 {
			return
		}
		var file []byte
		for _, l := range lines {
			if len(l) == 0 {
				continue
			}
			if tooBig(l) {
				return // see tooBig
			}
			file = appendFrame(file, l)
		}
		path := filepath.Join(t.TempDir(), fileName)
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		opts, _ := Options{NoSync: true}.withDefaults()
		s, _, err := replay(fh, opts)
		if err != nil {
			return
		}
		checkConsistent(t, s)
	})
}

// tooBig reports a meta line with a large shard count, which allocates
// every shard (up to MaxShards): slow for a fuzzer, not a bug. (A snapshot
// user's number is bounded by the snapshot's line count at replay.)
func tooBig(b []byte) bool {
	var l line
	if json.Unmarshal(b, &l) != nil {
		return false
	}
	return l.Shards > 64
}

// checkConsistent checks a replayed store: each listed user has a record
// at the number of its place in the list, in its own shard, listed once,
// and an index built from it finds no user in doubt.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	n := len(s.shards)
	for si, sh := range s.shards {
		seen := map[string]int{}
		for i, id := range sh.ids {
			if j, dup := seen[id]; dup {
				t.Fatalf("shard %d lists user %q at local numbers %d and %d", si, id, j+1, i+1)
			}
			seen[id] = i
			u := sh.users[id]
			if u == nil {
				t.Fatalf("shard %d lists user %q at local number %d with no record", si, id, i+1)
			}
			if want := store.UserNumber(si, i+1, n); u.rec.Number != want || u.rec.UserID != id || store.ShardOf(id, n) != si {
				t.Fatalf("shard %d, local %d: user %q has record of %q with number %d (want %d), shard of the ID %d",
					si, i+1, id, u.rec.UserID, u.rec.Number, want, store.ShardOf(id, n))
			}
		}
		for id, u := range sh.users {
			if _, ok := seen[id]; !ok && u.rec.Version > 0 {
				t.Fatalf("shard %d holds user %q (version %d) whom its list does not name", si, id, u.rec.Version)
			}
		}
	}
	x, err := index.Build(context.Background(), s)
	if err != nil {
		t.Fatalf("index build over a replayed store: %v", err)
	}
	if x.Unknown() != 0 {
		t.Fatalf("index build over a replayed store finds %d users in doubt", x.Unknown())
	}
}
