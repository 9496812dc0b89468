package memory_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

const year = 365 * 24 * time.Hour

// dataFile is the append-only file in dir (see the package documentation).
func dataFile(dir string) string { return filepath.Join(dir, "recguard.aof") }

// openDir opens the store in dir; the caller closes it.
func openDir(tb testing.TB, dir string, opts memory.Options) *memory.Store {
	tb.Helper()
	opts.Dir = dir
	s, err := memory.Open(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func mustClose(tb testing.TB, s *memory.Store) {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

func mustApply(tb testing.TB, s store.Store, ch consent.Change) store.Applied {
	tb.Helper()
	a, err := s.Apply(tb.Context(), ch)
	if err != nil {
		tb.Fatalf("Apply(%+v): %v", ch, err)
	}
	if a.Receipt == nil {
		tb.Fatalf("Apply(%+v): no-op, want an effective change", ch)
	}
	return a
}

func at(ch consent.Change, t time.Time) consent.Change {
	ch.At = t
	return ch
}

func fileLines(tb testing.TB, path string) int {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// usersInShard returns n user IDs of the given shard.
func usersInShard(prefix string, shard, shards, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if store.ShardOf(id, shards) == shard {
			out = append(out, id)
		}
	}
	return out
}

var workloadUsers = []string{"u1", "u2", "u3", "u4", "u5", "u6", "never-seen"}

// workload applies a mix of every kind of durable operation: changes with
// and without explicit times, settings changes, an erase and a purge.
func workload(tb testing.TB, s store.Store) {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	old := now.Add(-4 * year)
	for _, ch := range []consent.Change{
		at(consent.SetPersonalization("u1", false), old),
		at(consent.RefuseChannel("u1", "sms"), old.Add(time.Minute)),
		consent.SetPersonalization("u1", true),
		consent.DeclareTag("u2", "interest:ski"),
		consent.InferTag("u2", "interest:golf"),
		consent.DeleteTag("u2", "interest:golf"),
		consent.GrantSensitive("u3", tags.Religion, consent.PurposePersonalization),
		consent.DeclareTag("u3", "religion:zen"),
		consent.SetMinor("u4", true),
		consent.SetGuardian("u4", true),
		consent.DeclareTag("u5", "interest:chess"),
		consent.Erase("u5"),
	} {
		mustApply(tb, s, ch)
	}
	set, err := s.Settings(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	set.Channels = append(set.Channels, "wechat")
	if _, _, err := s.SetSettings(tb.Context(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		tb.Fatal(err)
	}
	mustApply(tb, s, consent.RefuseChannel("u6", "wechat"))
	if n, err := s.PurgeExpired(tb.Context(), now); err != nil || n != 2 {
		tb.Fatalf("PurgeExpired = %d, %v; want 2, nil", n, err)
	}
}

// state is everything a store shows about the given users and its logs.
type state struct {
	Records          map[string]consent.Record
	Found            map[string]bool
	Receipts         map[string][]consent.Receipt
	Settings         consent.Settings
	SettingsReceipts []consent.Receipt
	Logs             map[int][]store.Event
	Tails            map[int]store.Position
}

func capture(tb testing.TB, s store.Store, users ...string) state {
	tb.Helper()
	ctx := tb.Context()
	st := state{
		Records:  map[string]consent.Record{},
		Found:    map[string]bool{},
		Receipts: map[string][]consent.Receipt{},
		Logs:     map[int][]store.Event{},
		Tails:    map[int]store.Position{},
	}
	for _, u := range users {
		r, err := s.Get(ctx, u)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			tb.Fatalf("Get(%q): %v", u, err)
		}
		st.Records[u], st.Found[u] = r, err == nil
		rs, err := s.Receipts(ctx, u)
		if err != nil {
			tb.Fatalf("Receipts(%q): %v", u, err)
		}
		st.Receipts[u] = rs
	}
	var err error
	if st.Settings, err = s.Settings(ctx); err != nil {
		tb.Fatal(err)
	}
	if st.SettingsReceipts, err = s.SettingsReceipts(ctx); err != nil {
		tb.Fatal(err)
	}
	for log := -1; log < s.Shards(); log++ {
		evs, err := s.ReadChangelog(ctx, log, "", 1<<20, 0)
		if errors.Is(err, store.ErrTrimmed) {
			tail, _ := s.Tail(ctx, log)
			evs = []store.Event{{Log: log, Pos: "trimmed", Receipt: consent.Receipt{ID: string(tail)}}}
		} else if err != nil {
			tb.Fatalf("ReadChangelog(%d): %v", log, err)
		}
		st.Logs[log] = evs
		if st.Tails[log], err = s.Tail(ctx, log); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

// checkSame fails unless got and want are deeply equal.
func checkSame(tb testing.TB, what string, got, want state) {
	tb.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := json.MarshalIndent(got, "", " ")
	w, _ := json.MarshalIndent(want, "", " ")
	gl, wl := bytes.Split(g, []byte("\n")), bytes.Split(w, []byte("\n"))
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var a, b []byte
		if i < len(gl) {
			a = gl[i]
		}
		if i < len(wl) {
			b = wl[i]
		}
		if !bytes.Equal(a, b) {
			tb.Fatalf("%s: state differs at line %d of its JSON\n got: %s\nwant: %s", what, i+1, a, b)
		}
	}
	tb.Fatalf("%s: states differ but encode the same:\n got: %+v\nwant: %+v", what, got, want)
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{Shards: 4})
	workload(t, s)
	before := capture(t, s, workloadUsers...)
	mustClose(t, s)

	s = openDir(t, dir, memory.Options{})
	defer s.Close()
	if s.Shards() != 4 {
		t.Errorf("Shards after reopening = %d, want 4 (kept in the data)", s.Shards())
	}
	checkSame(t, "after reopening", capture(t, s, workloadUsers...), before)

	// New positions and receipts continue where they left off.
	a := mustApply(t, s, consent.DeclareTag("u1", "interest:ski"))
	if a.Pos.Compare(before.Tails[a.Shard]) <= 0 {
		t.Errorf("position after reopening %q is not after the old tail %q", a.Pos, before.Tails[a.Shard])
	}
	rs := before.Receipts["u1"]
	if last := rs[len(rs)-1]; a.Receipt.Seq != last.Seq+1 || a.Receipt.PrevHash != last.Hash {
		t.Errorf("receipt after reopening: seq %d prev %q, want %d chained to %q", a.Receipt.Seq, a.Receipt.PrevHash, last.Seq+1, last.Hash)
	}
	set, rc, err := s.SetSettings(t.Context(), before.Settings, consent.ActorAdmin, consent.SurfaceAdminConsole)
	if err != nil {
		t.Fatal(err)
	}
	prev := before.SettingsReceipts[len(before.SettingsReceipts)-1]
	if set.Version != before.Settings.Version+1 || rc.Seq != prev.Seq+1 || rc.PrevHash != prev.Hash {
		t.Errorf("settings after reopening: version %d, receipt seq %d prev %q; want %d, %d, %q",
			set.Version, rc.Seq, rc.PrevHash, before.Settings.Version+1, prev.Seq+1, prev.Hash)
	}
	set = mustSettings(t, s)
	for _, u := range workloadUsers[:6] {
		rs, _ := s.Receipts(t.Context(), u)
		rec, _ := s.Get(t.Context(), u)
		if err := consent.VerifyChain(rs, consent.HeadOf(rec, &set, time.Now()), nil); err != nil {
			t.Errorf("receipts of %s after reopening: %v", u, err)
		}
	}
}

func TestOpenShardCount(t *testing.T) {
	dir := t.TempDir()
	mustClose(t, openDir(t, dir, memory.Options{Shards: 4}))
	_, err := memory.Open(t.Context(), memory.Options{Dir: dir, Shards: 8})
	if !errors.Is(err, memory.ErrInvalidOptions) {
		t.Errorf("reopening 4 shards with Shards 8: %v, want ErrInvalidOptions", err)
	}
	s := openDir(t, dir, memory.Options{Shards: 4})
	mustClose(t, s)
	if s := mustOpen(t, memory.Options{}); s.Shards() != store.DefaultShards {
		t.Errorf("Shards of a new store = %d, want %d", s.Shards(), store.DefaultShards)
	}
	for _, o := range []memory.Options{{Shards: -1}, {Shards: memory.MaxShards + 1}, {ChangelogMaxLen: -1}} {
		if _, err := memory.Open(t.Context(), o); !errors.Is(err, memory.ErrInvalidOptions) {
			t.Errorf("Open(%+v): %v, want ErrInvalidOptions", o, err)
		}
	}
}

func TestDirectoryLock(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{})
	if _, err := memory.Open(t.Context(), memory.Options{Dir: dir}); !errors.Is(err, memory.ErrLocked) {
		t.Errorf("second Open of a directory in use: %v, want ErrLocked", err)
	}
	mustClose(t, s)
	mustClose(t, openDir(t, dir, memory.Options{}))
}

// lastChange is the change twoVersions writes last.
var lastChange = at(consent.DeclareTag("u6", "interest:ski"), time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))

// twoVersions writes a workload, then one more change, and returns the file
// before and after that change and the states they hold.
func twoVersions(t *testing.T) (before, after []byte, stBefore, stAfter state) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{})
	workload(t, s)
	stBefore = capture(t, s, workloadUsers...)
	mustClose(t, s)
	before, err := os.ReadFile(dataFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir, memory.Options{})
	mustApply(t, s, lastChange)
	stAfter = capture(t, s, workloadUsers...)
	mustClose(t, s)
	if after, err = os.ReadFile(dataFile(dir)); err != nil {
		t.Fatal(err)
	}
	if len(after) <= len(before) || !bytes.Equal(after[:len(before)], before) || after[len(after)-1] != '\n' {
		t.Fatalf("the file did not grow by one line: %d bytes -> %d", len(before), len(after))
	}
	return before, after, stBefore, stAfter
}

// withoutHashes returns copies of rs without their chain heads.
func withoutHashes(rs map[string]consent.Record) map[string]consent.Record {
	out := make(map[string]consent.Record, len(rs))
	for id, r := range rs {
		r.LastHash, r.HeadMAC = "", ""
		out[id] = r
	}
	return out
}

// openBytes opens a store on a directory whose file holds data.
func openBytes(t *testing.T, data []byte) (*memory.Store, string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(dataFile(dir), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := memory.Open(t.Context(), memory.Options{Dir: dir})
	return s, dir, err
}

func TestTornLastLineIsDiscarded(t *testing.T) {
	before, after, stBefore, stAfter := twoVersions(t)
	last := after[len(before):]

	cuts := []int{1, 2, 5, 11, 12, 13, len(last) / 2, len(last) - 2, len(last) - 1}
	for i := 0; i < len(last); i += max(1, len(last)/40) {
		cuts = append(cuts, i)
	}
	damaged := map[string][]byte{}
	for _, c := range cuts {
		damaged[fmt.Sprintf("cut after %d of %d bytes", c, len(last))] = after[:len(before)+c]
	}
	flipped := bytes.Clone(after)
	flipped[len(before)+len(last)/2] ^= 0x20
	damaged["a flipped bit in the last line"] = flipped
	damaged["zeros after the last good line"] = append(bytes.Clone(before), make([]byte, 512)...)
	damaged["garbage after the last good line"] = append(bytes.Clone(before), "12 deadbeef {\"op\":"...)
	longer := bytes.Clone(before)
	longer = append(longer, bytes.Replace(last, []byte(`"op":"apply"`), []byte(`"op":"apply" `), 1)...)
	damaged["a last line longer than its frame"] = longer

	for name, data := range damaged {
		t.Run(name, func(t *testing.T) {
			s, dir, err := openBytes(t, data)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			checkSame(t, "after discarding the torn line", capture(t, s, workloadUsers...), stBefore)
			if got := fileSize(t, dataFile(dir)); got != int64(len(before)) {
				t.Errorf("file size after Open = %d, want %d (truncated to the last good line)", got, len(before))
			}
			// The store keeps working, and the next Open finds a clean file.
			mustApply(t, s, lastChange)
			mustClose(t, s)
			s = openDir(t, dir, memory.Options{})
			defer s.Close()
			got := capture(t, s, workloadUsers...)
			// The rewritten receipt has a salt of its own, so a hash of
			// its own: the records are the same but for that.
			if !reflect.DeepEqual(withoutHashes(got.Records), withoutHashes(stAfter.Records)) {
				t.Errorf("records after rewriting the lost change differ")
			}
		})
	}

	t.Run("the whole line", func(t *testing.T) {
		s, _, err := openBytes(t, after)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkSame(t, "with the complete line", capture(t, s, workloadUsers...), stAfter)
	})
	t.Run("an empty file", func(t *testing.T) {
		s, _, err := openBytes(t, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if set := mustSettings(t, s); set.Version != 1 {
			t.Errorf("an empty file opened with settings version %d, want a new store", set.Version)
		}
	})
}

func TestCorruptionInTheMiddleIsAnError(t *testing.T) {
	before, after, _, _ := twoVersions(t)
	lines := bytes.SplitAfter(after, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty string after the last "\n"
	mid := len(lines) / 2
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	rest := func(from int) []byte { return join(lines[from:]...) }
	head := func(to int) []byte { return join(lines[:to]...) }

	flipped := bytes.Clone(lines[mid])
	flipped[len(flipped)/2] ^= 0x01
	cases := map[string][]byte{
		"a flipped bit":                join(head(mid), flipped, rest(mid+1)),
		"a torn line followed by more": join(head(mid), lines[mid][:len(lines[mid])/2], rest(mid+1)),
		"a missing line":               join(head(mid), rest(mid+1)),
		"a repeated line":              join(head(mid+1), lines[mid], rest(mid+1)),
		"a repeated last line":         join(after, lines[len(lines)-1]),
		"lines out of order":           join(head(len(lines)-2), lines[len(lines)-1], lines[len(lines)-2]),
		"no meta line":                 rest(1),
		"garbage then a good line":     join(before, []byte("garbage\n"), lines[len(lines)-1]),
		// Snapshots are written whole and renamed into place: a cut one
		// was damaged after the fact.
		"only a torn first line":  lines[0][:7],
		"a cut snapshot":          head(1),
		"a torn snapshot line":    join(head(1), lines[1][:20]),
		"a snapshot line missing": join(head(2), rest(3)),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			s, dir, err := openBytes(t, data)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded, want an error wrapping ErrCorrupt")
			}
			if !errors.Is(err, memory.ErrCorrupt) {
				t.Errorf("Open: %v, want an error wrapping ErrCorrupt", err)
			}
			if got, err := os.ReadFile(dataFile(dir)); err != nil || !bytes.Equal(got, data) {
				t.Errorf("Open changed the corrupt file (err %v)", err)
			}
			// The directory lock was released.
			if _, err2 := memory.Open(t.Context(), memory.Options{Dir: dir}); errors.Is(err2, memory.ErrLocked) {
				t.Errorf("second Open after a failed Open: %v", err2)
			}
		})
	}
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{ChangelogMaxLen: 5, CompactMinBytes: -1})
	workload(t, s)
	u := usersInShard("churn", 0, s.Shards(), 1)[0]
	for i := range 100 {
		ch := consent.SetPersonalization(u, i%2 == 1)
		mustApply(t, s, ch)
	}
	users := append([]string{u}, workloadUsers...)
	want := capture(t, s, users...)
	size, lines := fileSize(t, dataFile(dir)), fileLines(t, dataFile(dir))

	if err := s.Compact(t.Context()); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	// meta, settings, 6 users and the churner, the kept settings event, 5
	// kept events of shard 0, 5 or fewer of other shards, trim horizons.
	if got := fileSize(t, dataFile(dir)); got >= size {
		t.Errorf("file size after Compact = %d, want under %d", got, size)
	}
	if got, max := fileLines(t, dataFile(dir)), 2+7+1+5*s.Shards()+s.Shards(); got > max || got >= lines {
		t.Errorf("file lines after Compact = %d, want at most %d (from %d)", got, max, lines)
	}
	checkSame(t, "after Compact", capture(t, s, users...), want)
	if _, err := os.Stat(filepath.Join(dir, "recguard.aof.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left after Compact: %v", err)
	}
	a := mustApply(t, s, consent.RefuseChannel(u, "sms"))
	want = capture(t, s, users...)
	mustClose(t, s)

	s = openDir(t, dir, memory.Options{ChangelogMaxLen: 5})
	defer s.Close()
	checkSame(t, "after Compact and reopening", capture(t, s, users...), want)
	b := mustApply(t, s, consent.AllowChannel(u, "sms"))
	if b.Pos.Compare(a.Pos) <= 0 || b.Receipt.PrevHash != a.Receipt.Hash {
		t.Errorf("change after Compact and reopening: pos %q prev %q, want after %q chained to %q", b.Pos, b.Receipt.PrevHash, a.Pos, a.Receipt.Hash)
	}
	if _, err := s.ReadChangelog(t.Context(), 0, "", 10, 0); !errors.Is(err, store.ErrTrimmed) {
		t.Errorf("reading a trimmed log from the start after Compact and reopening: %v, want ErrTrimmed", err)
	}

	// The snapshot's lines are counted: one missing is corruption.
	mustClose(t, s)
	data, err := os.ReadFile(dataFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	lines = bytes.Count(data, []byte("\n"))
	for _, drop := range []int{2, 5, lines - 2} {
		ls := bytes.SplitAfter(data, []byte("\n"))
		if s, _, err := openBytes(t, bytes.Join(append(ls[:drop:drop], ls[drop+1:]...), nil)); !errors.Is(err, memory.ErrCorrupt) {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open of a compacted file without its line %d: %v, want ErrCorrupt", drop+1, err)
		}
	}

	if err := mustOpen(t, memory.Options{}).Compact(t.Context()); err != nil {
		t.Errorf("Compact without a data directory: %v", err)
	}
}

func TestCompactWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{Shards: 4})
	const writers, changes = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			u := fmt.Sprintf("writer-%d", w)
			for i := range changes {
				if _, err := s.Apply(context.Background(), consent.SetPersonalization(u, i%2 == 1)); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := s.Compact(context.Background()); err != nil {
				t.Errorf("Compact: %v", err)
			}
		}
	})
	wg.Wait()
	var users []string
	for w := range writers {
		users = append(users, fmt.Sprintf("writer-%d", w))
	}
	want := capture(t, s, users...)
	for _, u := range users {
		if got := want.Records[u].Version; got != changes {
			t.Errorf("%s: version %d, want %d", u, got, changes)
		}
	}
	mustClose(t, s)
	s = openDir(t, dir, memory.Options{})
	defer s.Close()
	checkSame(t, "after compacting while writing and reopening", capture(t, s, users...), want)
}

func TestCompactOnOpen(t *testing.T) {
	dir := t.TempDir()
	opts := memory.Options{ChangelogMaxLen: 2, CompactMinBytes: 1}
	s := openDir(t, dir, opts)
	for i := range 50 {
		mustApply(t, s, consent.SetPersonalization("churn", i%2 == 1))
	}
	want := capture(t, s, "churn")
	mustClose(t, s)
	size := fileSize(t, dataFile(dir))

	s = openDir(t, dir, memory.Options{CompactMinBytes: -1})
	mustClose(t, s)
	if got := fileSize(t, dataFile(dir)); got != size {
		t.Errorf("file size after Open with CompactMinBytes -1 = %d, want %d unchanged", got, size)
	}
	s = openDir(t, dir, opts)
	defer s.Close()
	// meta, settings, the user, 2 kept events, the trim horizon.
	if got := fileLines(t, dataFile(dir)); got != 6 || fileSize(t, dataFile(dir)) >= size {
		t.Errorf("file after Open has %d lines, %d bytes; want it compacted to 6 lines from %d bytes", got, fileSize(t, dataFile(dir)), size)
	}
	checkSame(t, "after compaction on Open", capture(t, s, "churn"), want)
}

func TestTrimming(t *testing.T) {
	for _, reopen := range []string{"", "reopen", "compact and reopen"} {
		t.Run("after "+reopen, func(t *testing.T) {
			dir := t.TempDir()
			opts := memory.Options{ChangelogMaxLen: 3, Shards: 2}
			s := openDir(t, dir, opts)
			u := usersInShard("trim", 1, 2, 1)[0]
			var applied []store.Applied
			for i := range 5 {
				applied = append(applied, mustApply(t, s, consent.SetPersonalization(u, i%2 == 1)))
			}
			for range 4 {
				set, _ := s.Settings(t.Context())
				set.ReaskCooldown += time.Hour
				if _, _, err := s.SetSettings(t.Context(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
					t.Fatal(err)
				}
			}
			switch reopen {
			case "compact and reopen":
				if err := s.Compact(t.Context()); err != nil {
					t.Fatal(err)
				}
				fallthrough
			case "reopen":
				mustClose(t, s)
				s = openDir(t, dir, opts)
			}
			defer s.Close()
			ctx := t.Context()
			for _, after := range []store.Position{"", applied[0].Pos, "1-0"} {
				if _, err := s.ReadChangelog(ctx, 1, after, 10, 0); !errors.Is(err, store.ErrTrimmed) {
					t.Errorf("ReadChangelog after %q (trimmed): %v, want ErrTrimmed", after, err)
				}
			}
			if _, err := s.ReadChangelog(ctx, 1, applied[0].Pos, 10, time.Second); !errors.Is(err, store.ErrTrimmed) {
				t.Errorf("blocking ReadChangelog from a trimmed position: %v, want ErrTrimmed", err)
			}
			evs, err := s.ReadChangelog(ctx, 1, applied[1].Pos, 10, 0)
			if err != nil || len(evs) != 3 || evs[0].Pos != applied[2].Pos {
				t.Errorf("ReadChangelog after the newest trimmed entry = %d events, %v; want the 3 kept", len(evs), err)
			}
			if tail, _ := s.Tail(ctx, 1); tail != applied[4].Pos {
				t.Errorf("Tail = %q, want %q", tail, applied[4].Pos)
			}
			if _, err := s.ReadChangelog(ctx, store.SettingsLog, "", 10, 0); !errors.Is(err, store.ErrTrimmed) {
				t.Errorf("ReadChangelog(SettingsLog) from the start after 4 changes kept 3: %v, want ErrTrimmed", err)
			}
			if evs, err := s.ReadChangelog(ctx, 0, "", 10, 0); err != nil || len(evs) != 0 {
				t.Errorf("ReadChangelog of a log never written = %d events, %v; want none, nil", len(evs), err)
			}
			// A reader at the tail that falls behind by more than the
			// log keeps is told so.
			tail := applied[4].Pos
			for i := range 4 {
				mustApply(t, s, consent.SetPersonalization(u, i%2 == 0))
			}
			if _, err := s.ReadChangelog(ctx, 1, tail, 10, 0); !errors.Is(err, store.ErrTrimmed) {
				t.Errorf("ReadChangelog after an entry 4 writes ago (3 kept): %v, want ErrTrimmed", err)
			}
		})
	}
}

func TestBlockingRead(t *testing.T) {
	s := mustOpen(t, memory.Options{Dir: t.TempDir(), Shards: 1})
	ctx := t.Context()

	t.Run("wakes on a write", func(t *testing.T) {
		tail, _ := s.Tail(ctx, 0)
		go func() {
			time.Sleep(50 * time.Millisecond)
			mustApply(t, s, consent.RefuseChannel("blocker", "sms"))
		}()
		start := time.Now()
		evs, err := s.ReadChangelog(ctx, 0, tail, 10, 10*time.Second)
		if err != nil || len(evs) != 1 || evs[0].Record.UserID != "blocker" {
			t.Fatalf("blocking read = %d events, %v; want the new one", len(evs), err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("blocking read took %v", d)
		}
	})
	t.Run("times out empty", func(t *testing.T) {
		tail, _ := s.Tail(ctx, 0)
		start := time.Now()
		evs, err := s.ReadChangelog(ctx, 0, tail, 10, 100*time.Millisecond)
		if err != nil || evs == nil || len(evs) != 0 {
			t.Errorf("timed-out read = %#v, %v; want an empty slice, nil", evs, err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("timed-out read returned after %v, before its block", d)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		tail, _ := s.Tail(ctx, 0)
		if _, err := s.ReadChangelog(c, 0, tail, 10, 10*time.Second); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled read: %v, want context.Canceled", err)
		}
		if _, err := s.Apply(c, consent.RefuseChannel("blocker", "push")); !errors.Is(err, context.Canceled) {
			t.Errorf("Apply with a cancelled context: %v, want context.Canceled", err)
		}
	})
	t.Run("woken by Close", func(t *testing.T) {
		s := mustOpen(t, memory.Options{})
		time.AfterFunc(50*time.Millisecond, func() { s.Close() })
		if _, err := s.ReadChangelog(ctx, store.SettingsLog, "", 10, 10*time.Second); !errors.Is(err, store.ErrClosed) {
			// The settings log of a new store is empty: the read blocks.
			t.Errorf("read blocked when the store closed: %v, want ErrClosed", err)
		}
	})
}

func TestReturnedValuesAreCopies(t *testing.T) {
	s := mustOpen(t, memory.Options{})
	ctx := t.Context()
	mustApply(t, s, consent.RefuseChannel("copy", "sms"))
	mustApply(t, s, consent.DeclareTag("copy", "interest:ski"))
	mustApply(t, s, consent.SetMinor("copy", true))
	a := mustApply(t, s, consent.SetGuardian("copy", true))
	want := capture(t, s, "copy")

	scribble := func(r *consent.Record) {
		r.State.RefusedChannels[0] = "scribbled"
		r.Tags.Entries[0].Tag = "scribbled:x"
		r.State.Guardian.PolicyVersion = 99
	}
	scribble(&a.Record)
	a.Receipt.Hash = "scribbled"
	r, _ := s.Get(ctx, "copy")
	scribble(&r)
	rs, _ := s.Receipts(ctx, "copy")
	rs[0].Hash = "scribbled"
	evs, _ := s.ReadChangelog(ctx, store.ShardOf("copy", s.Shards()), "", 10, 0)
	scribble(evs[len(evs)-1].Record)
	evs[0].Receipt.Hash = "scribbled"
	set, _ := s.Settings(ctx)
	set.Channels[0] = "scribbled"
	set.Policies["push"] = 99
	set.Taxonomy["health"] = tags.Namespace{Prohibited: true}

	checkSame(t, "after modifying returned values", capture(t, s, "copy"), want)
}

func TestPositionsUseTheWallClock(t *testing.T) {
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	s := mustOpen(t, memory.Options{Dir: t.TempDir(), Now: func() time.Time { return past }, ChangelogMaxLen: 1000})
	start := time.Now().UnixMilli()
	var last store.Position
	for i := range 200 {
		a := mustApply(t, s, consent.SetPersonalization("clock", i%2 == 1))
		if !a.Receipt.At.Equal(past) {
			t.Fatalf("receipt At = %v, want the injected clock's %v", a.Receipt.At, past)
		}
		if a.Pos.Compare(last) <= 0 {
			t.Fatalf("position %q is not after %q", a.Pos, last)
		}
		if ms, _ := a.Pos.Parts(); int64(ms) < start || int64(ms) > time.Now().UnixMilli() {
			t.Fatalf("position %q is not the wall-clock time", a.Pos)
		}
		last = a.Pos
	}
	_, rc, err := s.SetSettings(t.Context(), mustSettings(t, s), consent.ActorAdmin, consent.SurfaceAdminConsole)
	if err != nil || !rc.At.Equal(past) {
		t.Errorf("settings receipt At = %v (%v), want %v", rc.At, err, past)
	}
}

func mustSettings(tb testing.TB, s store.Store) consent.Settings {
	tb.Helper()
	set, err := s.Settings(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

func TestBadInputWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{})
	defer s.Close()
	mustApply(t, s, consent.DeleteTag("bad", "interest:ski"))
	size := fileSize(t, dataFile(dir))
	for _, ch := range []consent.Change{
		consent.RefuseChannel("bad", "pigeon"),              // unknown channel
		consent.InferTag("bad", "interest:ski"),             // suppressed
		consent.DeleteTag("bad", "interest:ski"),            // no-op
		consent.SetPersonalization("bad user", false),       // invalid ID
		consent.GrantSensitive("bad", tags.Religion, "Bad"), // invalid purpose
	} {
		if a, err := s.Apply(t.Context(), ch); err == nil && a.Receipt != nil {
			t.Errorf("Apply(%+v) wrote a receipt", ch)
		}
	}
	set := mustSettings(t, s)
	set.Version = 7
	if _, _, err := s.SetSettings(t.Context(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SetSettings on a stale version: %v", err)
	}
	if _, _, err := s.SetSettings(t.Context(), mustSettings(t, s), "robot", consent.SurfaceAdminConsole); !errors.Is(err, consent.ErrInvalidChange) {
		t.Errorf("SetSettings by an unknown actor: %v, want ErrInvalidChange", err)
	}
	if n, err := s.PurgeExpired(t.Context(), time.Now()); n != 0 || err != nil {
		t.Errorf("PurgeExpired with nothing expired = %d, %v", n, err)
	}
	if got := fileSize(t, dataFile(dir)); got != size {
		t.Errorf("file grew from %d to %d bytes on rejected or no-op operations", size, got)
	}
}

func TestNoSync(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{NoSync: true})
	workload(t, s)
	want := capture(t, s, workloadUsers...)
	mustClose(t, s)
	s = openDir(t, dir, memory.Options{})
	defer s.Close()
	checkSame(t, "NoSync store after reopening", capture(t, s, workloadUsers...), want)
}
