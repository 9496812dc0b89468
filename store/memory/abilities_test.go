package memory_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

func testKey(id string) store.APIKey {
	return store.APIKey{ID: id, Role: "admin", Hash: "00ff", Name: "key " + id, CreatedAt: time.Date(2026, 2, 3, 4, 5, 6, 7, time.UTC)}
}

func testRights(kind string, rec time.Time) store.RightsRequest {
	return store.RightsRequest{Kind: kind, Received: rec, Handled: rec.Add(time.Millisecond), Outcome: "fulfilled", Status: 200}
}

func mustPutKey(tb testing.TB, s *memory.Store, k store.APIKey) {
	tb.Helper()
	if err := s.PutKey(tb.Context(), k); err != nil {
		tb.Fatalf("PutKey(%q): %v", k.ID, err)
	}
}

func mustLogRights(tb testing.TB, s *memory.Store, r store.RightsRequest) {
	tb.Helper()
	if err := s.LogRightsRequest(tb.Context(), r); err != nil {
		tb.Fatalf("LogRightsRequest(%+v): %v", r, err)
	}
}

// allRights returns every rights request of s.
func allRights(tb testing.TB, s *memory.Store) []store.RightsRequest {
	tb.Helper()
	rs, err := s.RightsRequests(tb.Context(), time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		tb.Fatalf("RightsRequests: %v", err)
	}
	return rs
}

func listKeys(tb testing.TB, s *memory.Store) []store.APIKey {
	tb.Helper()
	ks, err := s.ListKeys(tb.Context())
	if err != nil {
		tb.Fatalf("ListKeys: %v", err)
	}
	return ks
}

func checkJSON(tb testing.TB, what string, got, want any) {
	tb.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		tb.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func rightsFile(dir string) string { return filepath.Join(dir, "rights.jsonl") }

func appendFile(tb testing.TB, path, data string) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func TestKeysAndRightsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	s := openDir(t, dir, memory.Options{})
	a, b := testKey("a1"), testKey("b2")
	b.RevokedAt = day
	mustPutKey(t, s, b)
	mustPutKey(t, s, a)
	a.Role = "reader" // replaced
	mustPutKey(t, s, a)
	r1, r2 := testRights("access", day), testRights("delete", day.Add(-time.Hour))
	r2.Outcome, r2.Status = "rejected", 400
	mustLogRights(t, s, r1)
	mustLogRights(t, s, r2)
	wantKeys := []store.APIKey{a, b}
	wantRights := []store.RightsRequest{r2, r1}
	mustClose(t, s)

	s = openDir(t, dir, memory.Options{})
	checkJSON(t, "keys after reopening", listKeys(t, s), wantKeys)
	checkJSON(t, "rights after reopening", allRights(t, s), wantRights)
	got, err := s.GetKey(t.Context(), "b2")
	if err != nil || !got.Revoked() {
		t.Errorf("GetKey(b2) after reopening = %+v, %v; want the revoked key", got, err)
	}
	// Writes after a reopen append to what was there.
	c := testKey("c3")
	mustPutKey(t, s, c)
	r3 := testRights("portability", day.Add(time.Hour))
	mustLogRights(t, s, r3)
	mustClose(t, s)

	s = openDir(t, dir, memory.Options{})
	defer s.Close()
	checkJSON(t, "keys after the second reopening", listKeys(t, s), append(wantKeys, c))
	checkJSON(t, "rights after the second reopening", allRights(t, s), append(wantRights, r3))
	if _, err := os.Stat(filepath.Join(dir, "keys.json.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("keys.json.tmp left behind: %v", err)
	}
}

func TestRightsTornLastLineDropped(t *testing.T) {
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	for name, torn := range map[string]string{
		"no end of line":     `{"kind":"access","rece`,
		"broken JSON at end": "{\"kind\":\"acc\x00\x00\n",
		"complete JSON, no end of line": func() string {
			b, _ := json.Marshal(testRights("access", day))
			return string(b)
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openDir(t, dir, memory.Options{})
			r1, r2 := testRights("access", day), testRights("erase", day.Add(time.Minute))
			mustLogRights(t, s, r1)
			mustLogRights(t, s, r2)
			mustClose(t, s)
			size := fileSize(t, rightsFile(dir))
			appendFile(t, rightsFile(dir), torn)

			s = openDir(t, dir, memory.Options{})
			checkJSON(t, "rights after a torn last line", allRights(t, s), []store.RightsRequest{r1, r2})
			if got := fileSize(t, rightsFile(dir)); got != size {
				t.Errorf("rights.jsonl is %d bytes after Open, want it truncated to %d", got, size)
			}
			r3 := testRights("copy", day.Add(2*time.Minute))
			mustLogRights(t, s, r3)
			mustClose(t, s)

			s = openDir(t, dir, memory.Options{})
			defer s.Close()
			checkJSON(t, "rights after appending past the torn line", allRights(t, s), []store.RightsRequest{r1, r2, r3})
		})
	}
}

func TestAbilitiesCorruptFiles(t *testing.T) {
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	good, _ := json.Marshal(testRights("access", day))
	invalid, _ := json.Marshal(testRights("Not-A-Kind", day))
	for name, tc := range map[string]struct{ file, data string }{
		"keys.json not JSON":           {"keys.json", `[{"id":"a1"`},
		"keys.json empty":              {"keys.json", ``},
		"keys.json invalid key":        {"keys.json", `[{"id":"BAD","role":"admin"}]`},
		"keys.json duplicate key":      {"keys.json", `[{"id":"a1","role":"admin"},{"id":"a1","role":"reader"}]`},
		"rights.jsonl corrupt middle":  {"rights.jsonl", string(good) + "\ngarbage\n" + string(good) + "\n"},
		"rights.jsonl invalid request": {"rights.jsonl", string(invalid) + "\n" + string(good) + "\n"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openDir(t, dir, memory.Options{})
			mustClose(t, s)
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := memory.Open(t.Context(), memory.Options{Dir: dir})
			if err == nil {
				s.Close()
				t.Fatalf("Open with %s: nil error, want one wrapping ErrCorrupt", name)
			}
			if !errors.Is(err, memory.ErrCorrupt) {
				t.Fatalf("Open with %s: %v, want an error wrapping ErrCorrupt", name, err)
			}
			// The failed Open released the directory and left the file.
			if b, _ := os.ReadFile(filepath.Join(dir, tc.file)); string(b) != tc.data {
				t.Errorf("Open changed the corrupt %s", tc.file)
			}
			os.Remove(filepath.Join(dir, tc.file))
			mustClose(t, openDir(t, dir, memory.Options{}))
		})
	}
}

func TestAbilitiesWithoutDir(t *testing.T) {
	s := mustOpen(t, memory.Options{})
	mustPutKey(t, s, testKey("k1"))
	mustLogRights(t, s, testRights("access", time.Now()))
	if n := len(listKeys(t, s)); n != 1 {
		t.Fatalf("ListKeys: %d keys, want 1", n)
	}
	if n := len(allRights(t, s)); n != 1 {
		t.Fatalf("RightsRequests: %d, want 1", n)
	}
}

func TestAbilitiesConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{})
	const workers, each = 8, 10
	day := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.PutKey(t.Context(), testKey(fmt.Sprintf("w%dk%d", w, i))); err != nil {
					t.Error(err)
				}
				if err := s.LogRightsRequest(t.Context(), testRights("access", day.Add(time.Duration(w*each+i)*time.Second))); err != nil {
					t.Error(err)
				}
				if _, err := s.ListKeys(t.Context()); err != nil {
					t.Error(err)
				}
				if _, err := s.RightsRequests(t.Context(), day, day.AddDate(0, 0, 1)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	mustClose(t, s)
	s = openDir(t, dir, memory.Options{})
	defer s.Close()
	if n := len(listKeys(t, s)); n != workers*each {
		t.Errorf("ListKeys after reopening: %d keys, want %d", n, workers*each)
	}
	rs := allRights(t, s)
	if len(rs) != workers*each {
		t.Fatalf("RightsRequests after reopening: %d, want %d", len(rs), workers*each)
	}
	for i := 1; i < len(rs); i++ {
		if !rs[i-1].Received.Before(rs[i].Received) {
			t.Fatalf("RightsRequests not sorted at %d: %v then %v", i, rs[i-1].Received, rs[i].Received)
		}
	}
}
