package index

// Partial state without a store: records and changelog events that cannot
// be trusted, and checkpoints whose tables disagree with their bitmaps. None
// may crash the index, and none may put a user whose record is in doubt
// into an audience.

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

const testShards = 4

// idOf returns a user ID of shard s, distinct for each k.
func idOf(s, k int) string {
	for i := 0; ; i++ {
		id := "s" + strconv.Itoa(s) + "k" + strconv.Itoa(k) + "i" + strconv.Itoa(i)
		if store.ShardOf(id, testShards) == s {
			return id
		}
	}
}

// user is a record of the local-th user of shard s, with tag interest:ski
// and the opt-out when off.
func user(s, local int, ver uint64, off bool) *consent.Record {
	return &consent.Record{UserID: idOf(s, local), Number: store.UserNumber(s, local, testShards), Version: ver,
		State: consent.State{PersonalizationOff: off},
		Tags:  tags.Set{Entries: []tags.Entry{{Tag: "interest:ski", Source: tags.Declared}}}}
}

// everyone returns the IDs of the audience "all users" on push (untargeted)
// and of "interest:ski" (targeted), sorted.
func everyone(t *testing.T, x *Index) (all, ski []string) {
	t.Helper()
	page := func(seg string, targeted bool) []string {
		a, err := x.Audience(tags.MustParseSegment(seg), "push", targeted)
		if err != nil {
			t.Fatal(err)
		}
		ids, next := a.Page(0, 1<<20)
		if next != 0 || uint64(len(ids)) != a.Count() {
			t.Fatalf("audience %s: page of %d (next %d), count %d", seg, len(ids), next, a.Count())
		}
		return ids
	}
	return page("!erased", false), page("interest:ski", true)
}

func has(ids []string, id string) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

// logCapture collects what slog logs while fn runs (the tests of this file
// do not run in parallel).
func logCapture(t *testing.T, fn func()) string {
	t.Helper()
	var mu sync.Mutex
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil)))
	defer slog.SetDefault(old)
	fn()
	mu.Lock()
	defer mu.Unlock()
	return buf.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A healthy index of three users per shard, everyone with interest:ski.
func healthy(t *testing.T) *Index {
	t.Helper()
	x := New(testShards, consent.DefaultSettings())
	for s := 0; s < testShards; s++ {
		for l := 1; l <= 3; l++ {
			x.Load(user(s, l, 1, false))
		}
	}
	if all, ski := everyone(t, x); len(all) != 3*testShards || len(ski) != 3*testShards || x.Unknown() != 0 {
		t.Fatalf("healthy index: %d users, %d with the tag, %d unknown", len(all), len(ski), x.Unknown())
	}
	return x
}

// Records that cannot be trusted, loaded or applied: no panic, the user is
// in no audience and counted unknown, every other user stays, and the next
// event with the user's whole record brings them back.
func TestUntrustedRecords(t *testing.T) {
	victim := func() *consent.Record { return user(1, 2, 2, false) } // an existing user
	other := user(1, 3, 1, false)                                    // another user of the shard
	cases := []struct {
		name string
		rec  func() *consent.Record
		// By Load and by Apply: users unknown afterwards, and existing
		// users left out of the audiences (the victim first).
		unknown [2]uint64
		gone    [2]int
	}{
		{"number 0", func() *consent.Record { r := victim(); r.Number = 0; return r }, [2]uint64{1, 1}, [2]int{1, 1}},
		{"number out of range", func() *consent.Record { r := victim(); r.Number = 4_000_000_001; return r }, [2]uint64{1, 1}, [2]int{1, 1}},
		// Loaded, the number's owner is in doubt too; in shard 1's log,
		// a number of shard 2 says nothing about shard 2.
		{"number of another shard", func() *consent.Record { r := victim(); r.Number = store.UserNumber(2, 2, testShards); return r }, [2]uint64{2, 1}, [2]int{2, 1}},
		{"number held by another user", func() *consent.Record { r := victim(); r.Number = other.Number; return r }, [2]uint64{2, 2}, [2]int{2, 2}},
		{"version 0", func() *consent.Record { r := victim(); r.Version = 0; return r }, [2]uint64{1, 1}, [2]int{1, 1}},
		{"invalid ID", func() *consent.Record { r := victim(); r.UserID = "no spaces"; return r }, [2]uint64{1, 1}, [2]int{1, 1}},
		{"new user with an absurd number", func() *consent.Record {
			return &consent.Record{UserID: idOf(1, 99), Number: store.UserNumber(1, maxGap+10, testShards), Version: 1}
		}, [2]uint64{1, 1}, [2]int{0, 0}},
		{"new user without a number", func() *consent.Record { return &consent.Record{UserID: idOf(1, 98), Version: 1} }, [2]uint64{1, 1}, [2]int{0, 0}},
	}
	for _, c := range cases {
		for v, via := range []string{"Load", "Apply"} {
			t.Run(c.name+"/"+via, func(t *testing.T) {
				x := healthy(t)
				rec := c.rec()
				out := logCapture(t, func() {
					for i := range 3 { // logged once however often it is seen
						if via == "Load" {
							x.Load(rec)
						} else {
							x.Apply(store.Event{Log: 1, Pos: store.Position("1-" + strconv.Itoa(i+1)), Record: rec, Prev: victim()})
						}
					}
				})
				all, ski := everyone(t, x)
				if has(all, rec.UserID) || has(ski, rec.UserID) {
					t.Fatalf("an untrusted record's user is in an audience: %v", all)
				}
				if c.gone[v] > 0 && (has(all, victim().UserID) || has(ski, victim().UserID)) {
					t.Fatalf("the user whose record is in doubt is in an audience: %v", all)
				}
				if want := 3*testShards - c.gone[v]; len(all) != want || len(ski) != want {
					t.Fatalf("%d users in all, %d with the tag; want %d", len(all), len(ski), want)
				}
				if got := x.Unknown(); got != c.unknown[v] {
					t.Fatalf("Unknown() = %d, want %d", got, c.unknown[v])
				}
				if s := x.Stats(); s.Unknown != c.unknown[v] {
					t.Fatalf("Stats().Unknown = %d, want %d", s.Unknown, c.unknown[v])
				}
				if n := strings.Count(out, "level=WARN"); uint64(n) != c.unknown[v] {
					t.Fatalf("logged %d warnings for %d unknown users (want one each):\n%s", n, c.unknown[v], out)
				}
				if strings.Contains(out, "interest:ski") {
					t.Fatalf("the log holds record content:\n%s", out)
				}
				// The next event with the user's whole record brings them
				// back, with exactly that record's facts.
				good := victim()
				good.Version = 3
				good.State.PersonalizationOff = true
				x.Apply(store.Event{Log: 1, Pos: "9-1", Record: good, Prev: victim()})
				all, ski = everyone(t, x)
				if !has(all, good.UserID) || has(ski, good.UserID) {
					t.Fatalf("after a good event: in all %t, in the targeted ski audience %t; want true, false (opted out)", has(all, good.UserID), has(ski, good.UserID))
				}
			})
		}
	}
}

// Changelog entries that name no readable record.
func TestUntrustedEvents(t *testing.T) {
	t.Run("no record, prev names the user", func(t *testing.T) {
		x := healthy(t)
		v := user(2, 1, 1, false)
		x.Apply(store.Event{Log: 2, Pos: "5-1", Prev: v})
		all, _ := everyone(t, x)
		if has(all, v.UserID) || x.Unknown() != 1 || x.NeedsRebuild() {
			t.Fatalf("in audience %t, unknown %d, needs rebuild %t; want false, 1, false", has(all, v.UserID), x.Unknown(), x.NeedsRebuild())
		}
	})
	t.Run("no record, receipt names the user", func(t *testing.T) {
		x := healthy(t)
		v := user(2, 3, 1, false)
		x.Apply(store.Event{Log: 2, Pos: "5-1", Receipt: consent.Receipt{UserID: v.UserID}})
		all, _ := everyone(t, x)
		if has(all, v.UserID) || x.Unknown() != 1 {
			t.Fatalf("in audience %t, unknown %d; want false, 1", has(all, v.UserID), x.Unknown())
		}
	})
	t.Run("names no user: the shard is unknown", func(t *testing.T) {
		x := healthy(t)
		x.Apply(store.Event{Log: 3, Pos: "5-1"})
		all, _ := everyone(t, x)
		for l := 1; l <= 3; l++ {
			if has(all, idOf(3, l)) {
				t.Fatalf("user %d of the damaged shard is in an audience", l)
			}
		}
		if len(all) != 3*(testShards-1) || x.Unknown() != 3 || !x.NeedsRebuild() {
			t.Fatalf("%d users left, %d unknown, needs rebuild %t; want %d, 3, true", len(all), x.Unknown(), x.NeedsRebuild(), 3*(testShards-1))
		}
		if _, err := x.MarshalBinary(); err != ErrNeedsRebuild {
			t.Fatalf("MarshalBinary of an index that needs a rebuild: %v", err)
		}
	})
	t.Run("settings entry without settings", func(t *testing.T) {
		x := healthy(t)
		x.Apply(store.Event{Log: store.SettingsLog, Pos: "5-1"})
		if _, err := x.Audience(tags.MustParseSegment("interest:ski"), "push", true); err == nil || !x.NeedsRebuild() {
			t.Fatalf("audience after an unreadable settings entry: %v; want ErrUnverified", err)
		}
	})
	t.Run("duplicate numbers in a batch", func(t *testing.T) {
		x := healthy(t)
		a, b := user(0, 4, 1, false), user(0, 5, 1, false)
		b.Number = a.Number
		x.Apply(store.Event{Log: 0, Pos: "5-1", Record: a, Prev: &consent.Record{UserID: a.UserID, Number: a.Number}},
			store.Event{Log: 0, Pos: "5-2", Record: b, Prev: &consent.Record{UserID: b.UserID, Number: b.Number}})
		all, _ := everyone(t, x)
		if has(all, a.UserID) || has(all, b.UserID) || x.Unknown() != 1 {
			t.Fatalf("two users on one number: in audience %t %t, unknown %d; want false false 1", has(all, a.UserID), has(all, b.UserID), x.Unknown())
		}
	})
	t.Run("prev missing: facts replaced, not added to", func(t *testing.T) {
		x := healthy(t)
		r := user(1, 1, 2, false)
		r.Tags = tags.Set{} // the tag was deleted
		x.Apply(store.Event{Log: 1, Pos: "5-1", Record: r})
		_, ski := everyone(t, x)
		if has(ski, r.UserID) || x.Unknown() != 0 {
			t.Fatalf("a tag the record no longer holds still selects the user (unknown %d)", x.Unknown())
		}
	})
	t.Run("event for a log the index does not have", func(t *testing.T) {
		x := healthy(t)
		x.Apply(store.Event{Log: 99, Pos: "5-1", Record: user(1, 1, 2, true)}, store.Event{Log: -7, Pos: "5-1"})
		if all, _ := everyone(t, x); len(all) != 3*testShards {
			t.Fatal("an event of no log changed the index")
		}
	})
	t.Run("MarkUnknown", func(t *testing.T) {
		x := healthy(t)
		v := idOf(2, 2)
		x.MarkUnknown(v)
		x.MarkUnknown(v)
		x.MarkUnknown("nobody")
		x.MarkUnknown("")
		all, _ := everyone(t, x)
		if has(all, v) || x.Unknown() != 1 {
			t.Fatalf("after MarkUnknown: in audience %t, unknown %d", has(all, v), x.Unknown())
		}
	})
}

// encodeV1 turns a checkpoint into the checksum-less first format, so
// tests can hand Unmarshal bodies it would otherwise reject by checksum.
func encodeV1(data []byte) []byte {
	body := data[len(checkpointMagic) : len(data)-crc32.Size]
	return append([]byte(checkpointMagicV1), body...)
}

// encodeV2 is the reverse: a v1 body with the magic and checksum of today.
func encodeV2(v1 []byte) []byte {
	out := append([]byte(checkpointMagic), v1[len(checkpointMagicV1):]...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
}

// Checkpoints whose user table disagrees with their bitmaps: users in doubt
// are unknown after the load, number 0 is dropped, nothing crashes.
func TestCheckpointDisagreements(t *testing.T) {
	build := func(mut func(x *Index)) []byte {
		x := healthy(t)
		mut(x)
		data, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	cases := []struct {
		name    string
		mut     func(x *Index)
		unknown uint64
		users   int // left in the audiences
	}{
		{"number 0 in bitmaps", func(x *Index) {
			for _, b := range x.bm {
				b.Add(0)
			}
		}, 0, 12},
		{"numbers beyond the table", func(x *Index) {
			x.bm[factAll].Add(store.UserNumber(1, 50, testShards))
			x.bm["t:interest:ski"].Add(store.UserNumber(1, 50, testShards))
			x.bm["t:interest:ski"].Add(4_000_000_000)
		}, 2, 12},
		{"a hole in the table", func(x *Index) { x.setSlot(2, 2, "") }, 1, 11},
		{"an invalid ID", func(x *Index) { x.setSlot(2, 1, "bad id!") }, 1, 11},
		{"an ID of another shard", func(x *Index) { x.setSlot(2, 3, idOf(3, 1)) }, 1, 11},
		{"facts outside all", func(x *Index) {
			n := store.UserNumber(0, 1, testShards)
			x.bm[factAll].Remove(n)
		}, 1, 11},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := build(c.mut)
			y, err := Unmarshal(data)
			if err != nil {
				t.Fatal(err)
			}
			if y.Unknown() != c.unknown {
				t.Fatalf("Unknown() = %d, want %d", y.Unknown(), c.unknown)
			}
			all, ski := everyone(t, y)
			if len(all) != c.users || len(ski) != c.users {
				t.Fatalf("%d users in all, %d with the tag; want %d", len(all), len(ski), c.users)
			}
			for _, id := range all {
				if id == "" || consent.ValidUserID(id) != nil {
					t.Fatalf("audience pages %q", id)
				}
			}
			// What was loaded survives a second round trip.
			again, err := y.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			z, err := Unmarshal(again)
			if err != nil || !z.Equal(y) || z.Unknown() != y.Unknown() {
				t.Fatalf("second round trip: %v, equal %t, unknown %d vs %d", err, err == nil && z.Equal(y), z.Unknown(), y.Unknown())
			}
		})
	}
	t.Run("checksum", func(t *testing.T) {
		data := build(func(*Index) {})
		for i := len(checkpointMagic); i < len(data); i += 7 {
			bad := bytes.Clone(data)
			bad[i] ^= 0x20
			if _, err := Unmarshal(bad); err == nil {
				t.Fatalf("a flipped byte at %d of %d was not noticed", i, len(data))
			}
		}
		if y, err := Unmarshal(encodeV1(data)); err != nil || !y.Equal(healthy(t)) {
			t.Fatalf("a checkpoint of the first format: %v", err)
		}
	})
	t.Run("bad header", func(t *testing.T) {
		x := healthy(t)
		x.pos[0] = "not-a-position"
		data, _ := x.MarshalBinary()
		if _, err := Unmarshal(data); err == nil {
			t.Fatal("a checkpoint with a malformed position loaded")
		}
	})
}

// An index restored from a checkpoint keeps its unknown users unknown: the
// next diff event of such a user replaces their facts instead of patching
// facts the index does not have.
func TestUnknownSurvivesCheckpoint(t *testing.T) {
	x := healthy(t)
	v := user(0, 2, 1, false)
	x.Apply(store.Event{Log: 0, Pos: "5-1", Prev: v}) // unreadable record: unknown
	data, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if y.Unknown() != 1 {
		t.Fatalf("Unknown() after reload = %d, want 1", y.Unknown())
	}
	next := user(0, 2, 3, true) // opted out, still has the tag
	prev := user(0, 2, 2, false)
	prev.Tags = tags.Set{}
	y.Apply(store.Event{Log: 0, Pos: "6-1", Record: next, Prev: prev})
	all, ski := everyone(t, y)
	if !has(all, v.UserID) || has(ski, v.UserID) || y.Unknown() != 0 {
		t.Fatalf("after a good event: in all %t, in the targeted audience %t, unknown %d; want true false 0", has(all, v.UserID), has(ski, v.UserID), y.Unknown())
	}
}

// Fuzz: Unmarshal never panics, and whatever it accepts can be queried,
// paged, applied to and serialized again.
func FuzzUnmarshal(f *testing.F) {
	x := New(testShards, consent.DefaultSettings())
	for s := 0; s < testShards; s++ {
		for l := 1; l <= 3; l++ {
			r := user(s, l, 1, l == 2)
			r.State.RefusedChannels = []string{"sms"}
			x.Load(r)
		}
	}
	x.MarkUnknown(idOf(1, 1))
	data, _ := x.MarshalBinary()
	f.Add(data)
	f.Add(encodeV1(data))
	empty, _ := New(1, consent.DefaultSettings()).MarshalBinary()
	f.Add(empty)
	f.Add(encodeV1(empty))
	f.Fuzz(func(t *testing.T, data []byte) {
		try := func(data []byte) {
			y, err := Unmarshal(data)
			if err != nil {
				return
			}
			for _, seg := range []string{"!erased", "interest:ski & !refused:sms", "minor | consent:guardian", "sensitive:medical_health"} {
				if a, err := y.Audience(tags.MustParseSegment(seg), "push", true); err == nil {
					a.Page(0, 100)
					a.Page(5, 3)
				}
			}
			y.Apply(store.Event{Log: 0, Pos: "99999999999999-1", Record: user(0, 1, 9, true), Prev: user(0, 1, 8, false)})
			y.UserID(1)
			y.UserID(^uint32(0))
			y.Stats()
			if _, err := y.MarshalBinary(); err != nil && err != ErrNeedsRebuild {
				t.Fatal(err)
			}
		}
		try(data)
		// The same body under the checksum, so the fuzzer reaches the
		// decoder through both formats.
		if bytes.HasPrefix(data, []byte(checkpointMagicV1)) {
			try(encodeV2(data))
		}
	})
}

// CatchUp rebuilds an index whose shard count is not the store's instead
// of failing.
func TestCatchUpShardMismatchRebuilds(t *testing.T) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{Shards: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Apply(ctx, consent.DeclareTag("alice", "interest:ski")); err != nil {
		t.Fatal(err)
	}
	got, rebuilt, err := CatchUp(ctx, st, healthy(t))
	if err != nil || !rebuilt {
		t.Fatalf("CatchUp with %d vs 3 shards: rebuilt %t, %v", testShards, rebuilt, err)
	}
	if all, _ := everyone(t, got); len(all) != 1 || all[0] != "alice" {
		t.Fatalf("rebuilt audience %v, want [alice]", all)
	}
}
