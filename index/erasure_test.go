package index

// Erasure (Art. 24), shredded changelog entries and restriction of
// processing (Art. 23): none of those users is in any audience, an erased
// user's ID is nowhere in the index or its checkpoints, and a user's own
// later change brings them back with exactly that record's facts.

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// richUser is a record of the local-th user of shard s with more facts
// than user gives: two tags, a refused channel, a sensitive consent for
// push and the opt-out when off.
func richUser(s, local int, ver uint64, off bool) *consent.Record {
	r := user(s, local, ver, off)
	r.State.RefusedChannels = []string{"email"}
	r.State.Sensitive = []consent.SensitiveConsent{{Category: tags.MedicalHealth, Grant: consent.Grant{Granted: true, Purpose: consent.PurposePush, PolicyVersion: 1}}}
	r.Tags.Entries = append(r.Tags.Entries, tags.Entry{Tag: "medical_health:diabetes", Source: tags.Declared})
	slices.SortFunc(r.Tags.Entries, func(a, b tags.Entry) int { return strings.Compare(string(a.Tag), string(b.Tag)) })
	return r
}

// tombstone is the record an erasure leaves of r: the store's tombstone.
func tombstone(r *consent.Record, ver uint64) *consent.Record {
	return &consent.Record{UserID: r.UserID, Number: r.Number, Version: ver, State: consent.State{Erased: true}, LastHash: "h" + strconv.FormatUint(ver, 10)}
}

// shred is what a Shredded entry holds of a change to r at version ver.
func shred(r *consent.Record, ver uint64) *consent.Record {
	return &consent.Record{UserID: r.UserID, Number: r.Number, Version: ver, LastHash: "h" + strconv.FormatUint(ver, 10)}
}

func restricted(r *consent.Record, ver uint64, on bool) *consent.Record {
	c := *r
	c.Version = ver
	c.State.Restricted = on
	return &c
}

// factsOf returns the facts the index holds for number num, sorted
// (unknown users have "?unknown").
func factsOf(x *Index, num uint32) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for k, b := range x.bm {
		if b.Contains(num) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// audienceCases are segments, channels and targeting that between them
// reach every user the index holds, by every kind of fact.
var audienceCases = []struct {
	seg, channel string
	targeted     bool
}{
	{"*", "push", false},
	{"*", "sms", true},
	{"!erased", "email", false},
	{"interest:ski", "push", true},
	{"!interest:ski", "push", false},
	{"medical_health:diabetes | sensitive:medical_health", "push", true},
	{"consent:personalization_off | !consent:personalization_off", "sms", false},
	{"refused:email | !refused:email", "push", false},
	{"erased", "push", false},
	{"minor | !minor", "push", false},
}

// inSome reports which of audienceCases has id in its audience.
func inSome(t *testing.T, x *Index, id string) []string {
	t.Helper()
	var in []string
	for _, c := range audienceCases {
		a, err := x.Audience(tags.MustParseSegment(c.seg), c.channel, c.targeted)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := a.Page(0, 1<<20)
		if has(ids, id) {
			in = append(in, c.seg+"/"+c.channel)
		}
	}
	return in
}

func TestErasureShredAndRestriction(t *testing.T) {
	const s, local = 2, 2
	v := func(ver uint64) *consent.Record { return richUser(s, local, ver, false) }
	id, num := v(1).UserID, v(1).Number
	type step struct {
		rec, prev *consent.Record
		shredded  bool
	}
	cases := []struct {
		name  string
		steps []step
		// After the steps: whether the user is in any audience, whether
		// the index keeps their ID, their facts and the unknown count.
		inAudience bool
		keepsID    bool
		facts      []string
		unknown    uint64
	}{
		{"erase, no prev", []step{{rec: tombstone(v(1), 2)}}, false, false, []string{factAll, factErased}, 0},
		{"erase, prev given", []step{{rec: tombstone(v(1), 2), prev: v(1)}}, false, false, []string{factAll, factErased}, 0},
		{"erase of an unknown user", []step{{prev: v(1)}, {rec: tombstone(v(1), 3)}}, false, false, []string{factAll, factErased}, 0},
		{"erase twice", []step{{rec: tombstone(v(1), 2)}, {rec: tombstone(v(1), 2)}}, false, false, []string{factAll, factErased}, 0},
		{"shredded", []step{{rec: shred(v(1), 2), shredded: true}}, false, false, []string{factUnknown}, 1},
		{"shredded twice", []step{{rec: shred(v(1), 2), shredded: true}, {rec: shred(v(1), 3), shredded: true}}, false, false, []string{factUnknown}, 1},
		{"shredded then erased", []step{{rec: shred(v(1), 2), shredded: true}, {rec: shred(v(1), 3), shredded: true}, {rec: tombstone(v(1), 4)}}, false, false, []string{factAll, factErased}, 0},
		{"erased then back, no prev", []step{{rec: tombstone(v(1), 2)}, {rec: v(3)}}, true, true, Facts(v(3)), 0},
		{"erased then back, prev the tombstone", []step{{rec: tombstone(v(1), 2)}, {rec: v(3), prev: tombstone(v(1), 2)}}, true, true, Facts(v(3)), 0},
		{"back with other facts", []step{{rec: tombstone(v(1), 2)}, {rec: user(s, local, 3, true), prev: tombstone(v(1), 2)}}, true, true, []string{factAll, factOff, "t:interest:ski"}, 0},
		{"restricted", []step{{rec: restricted(v(1), 2, true), prev: v(1)}}, false, true, []string{factAll, factRestricted}, 0},
		{"restricted, no prev", []step{{rec: restricted(v(1), 2, true)}}, false, true, []string{factAll, factRestricted}, 0},
		{"restricted, then a change while restricted", []step{{rec: restricted(v(1), 2, true), prev: v(1)}, {rec: restricted(user(s, local, 3, true), 3, true), prev: restricted(v(1), 2, true)}}, false, true, []string{factAll, factRestricted}, 0},
		{"restricted then lifted", []step{{rec: restricted(v(1), 2, true), prev: v(1)}, {rec: restricted(v(1), 3, false), prev: restricted(v(1), 2, true)}}, true, true, Facts(v(1)), 0},
		{"restricted then erased", []step{{rec: restricted(v(1), 2, true), prev: v(1)}, {rec: tombstone(v(1), 3)}}, false, false, []string{factAll, factErased}, 0},
		{"erased then restricted by the user", []step{{rec: tombstone(v(1), 2)}, {rec: restricted(&consent.Record{UserID: id, Number: num}, 3, true), prev: tombstone(v(1), 2)}}, false, true, []string{factAll, factRestricted}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := New(testShards, consent.DefaultSettings())
			for sh := 0; sh < testShards; sh++ {
				for l := 1; l <= 3; l++ {
					x.Load(richUser(sh, l, 1, false))
				}
			}
			if in := inSome(t, x, id); len(in) == 0 {
				t.Fatal("the user is in no audience to start with")
			}
			out := logCapture(t, func() {
				for i, st := range c.steps {
					ev := store.Event{Log: s, Pos: store.Position("7-" + strconv.Itoa(i+1)), Record: st.rec, Prev: st.prev, Shredded: st.shredded}
					if st.rec == nil {
						ev.Receipt.UserID = id // an unreadable entry
					}
					x.Apply(ev)
				}
			})
			if in := inSome(t, x, id); len(in) > 0 != c.inAudience {
				t.Fatalf("in audiences %v; want in some: %t", in, c.inAudience)
			}
			if got := x.UserID(num) == id; got != c.keepsID {
				t.Fatalf("index keeps the ID: %t, want %t", got, c.keepsID)
			}
			if got := factsOf(x, num); !slices.Equal(got, c.facts) {
				t.Fatalf("facts %v, want %v", got, c.facts)
			}
			if x.Unknown() != c.unknown {
				t.Fatalf("Unknown() = %d, want %d", x.Unknown(), c.unknown)
			}
			// Nobody else moved.
			all, ski := everyone(t, x)
			wantAll := 3*testShards - 1
			if c.inAudience {
				wantAll++
			}
			if len(all) != wantAll || len(ski) < wantAll-1 {
				t.Fatalf("%d users in all, %d with the tag; want %d", len(all), len(ski), wantAll)
			}
			// Shredded entries and erasures are no fault: no warning, and
			// nothing logged names the user or their data.
			if c.name != "erase of an unknown user" && strings.Contains(out, "level=WARN") {
				t.Fatalf("logged a warning:\n%s", out)
			}
			if strings.Contains(out, id) || strings.Contains(out, "ski") || strings.Contains(out, "diabetes") {
				t.Fatalf("the log names the user or their data:\n%s", out)
			}
			// The same index from the records (a rebuild) and through a
			// checkpoint.
			data, err := x.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			y, err := Unmarshal(data)
			if err != nil || !y.Equal(x) || y.Unknown() != x.Unknown() {
				t.Fatalf("through a checkpoint: %v, equal %t, unknown %d vs %d", err, err == nil && y.Equal(x), y.Unknown(), x.Unknown())
			}
			if !c.keepsID && bytes.Contains(data, []byte(id)) {
				t.Fatal("the checkpoint holds the ID of an erased user")
			}
			if c.unknown == 0 {
				last := c.steps[len(c.steps)-1].rec
				z := New(testShards, consent.DefaultSettings())
				for sh := 0; sh < testShards; sh++ {
					for l := 1; l <= 3; l++ {
						if sh == s && l == local {
							z.Load(last)
						} else {
							z.Load(richUser(sh, l, 1, false))
						}
					}
				}
				if !z.Equal(x) {
					t.Fatal("the index differs from one loaded from the records")
				}
			}
		})
	}
}

// A user who restricted processing is in no audience whatever the
// settings: every channel, targeted or not, with the policies moved and a
// namespace prohibited or not.
func TestRestrictedSettingsIndependent(t *testing.T) {
	for _, edit := range []func(*consent.Settings){
		func(*consent.Settings) {},
		func(s *consent.Settings) { s.Policies[consent.PurposePush]++ },
		func(s *consent.Settings) {
			s.KeepOnBump = []string{consent.PurposePush}
			s.Policies[consent.PurposePush]++
		},
		func(s *consent.Settings) { s.Taxonomy["interest"] = tags.Namespace{Prohibited: true} },
	} {
		set := consent.DefaultSettings()
		edit(&set)
		x := New(testShards, set)
		r := restricted(richUser(1, 1, 1, false), 2, true)
		x.Load(r)
		x.Load(user(1, 2, 1, false))
		if in := inSome(t, x, r.UserID); len(in) > 0 {
			t.Fatalf("a restricted user is in audiences %v", in)
		}
		for _, ch := range set.Channels {
			for _, targeted := range []bool{false, true} {
				if n, err := x.Count(tags.MustParseSegment("*"), ch, targeted); err != nil || n != 1 {
					t.Fatalf("everyone on %s (targeted %t): %d, %v; want 1 (the other user)", ch, targeted, n, err)
				}
			}
		}
	}
}

// After an erasure, the checkpoint holds neither the user's ID nor
// anything that ties their number to their data: no tag, channel or
// consent of theirs, not even as the name of a fact nobody else has.
func TestCheckpointAfterErasure(t *testing.T) {
	const secretID = "zq-erased-user-7"
	const secretTag = "interest:zqunique"
	sh := store.ShardOf(secretID, testShards)
	local := 4
	num := store.UserNumber(sh, local, testShards)
	victim := &consent.Record{UserID: secretID, Number: num, Version: 3,
		State: consent.State{RefusedChannels: []string{"sms"}, Minor: true,
			Guardian: &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: 1, ByGuardian: true}},
		Tags: tags.Set{Entries: []tags.Entry{{Tag: secretTag, Source: tags.Declared}, {Tag: "interest:ski", Source: tags.Inferred}}}}
	for _, via := range []string{"erase event", "shredded entries, then the erase event", "build from the tombstone"} {
		t.Run(via, func(t *testing.T) {
			x := healthy(t)
			x.Load(victim)
			if n, _ := x.Count(tags.MustParseSegment(secretTag), "push", false); n != 1 {
				t.Fatalf("the victim's tag selects %d users, want 1", n)
			}
			switch via {
			case "erase event":
				x.Apply(store.Event{Log: sh, Pos: "8-1", Record: tombstone(victim, 4)})
			case "shredded entries, then the erase event":
				x.Apply(store.Event{Log: sh, Pos: "8-1", Record: shred(victim, 2), Shredded: true},
					store.Event{Log: sh, Pos: "8-2", Record: shred(victim, 3), Shredded: true})
				// Between the two, a checkpoint holds no ID either.
				data, err := x.MarshalBinary()
				if err != nil || bytes.Contains(data, []byte(secretID)) {
					t.Fatalf("checkpoint between shredded entries and the erasure: %v, holds the ID: %t", err, err == nil && bytes.Contains(data, []byte(secretID)))
				}
				x.Apply(store.Event{Log: sh, Pos: "8-3", Record: tombstone(victim, 4)})
			case "build from the tombstone":
				x = healthy(t)
				x.Load(tombstone(victim, 4))
			}
			data, err := x.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{secretID, "zqunique", "r:sms", "g:1", factMinor} {
				if bytes.Contains(data, []byte(secret)) {
					t.Errorf("the checkpoint holds %q", secret)
				}
			}
			y, err := Unmarshal(data)
			if err != nil {
				t.Fatal(err)
			}
			if y.UserID(num) != "" || y.Unknown() != 0 {
				t.Fatalf("after the load: ID %q under the number, %d unknown; want none, 0", y.UserID(num), y.Unknown())
			}
			if got := factsOf(y, num); !slices.Equal(got, []string{factAll, factErased}) {
				t.Fatalf("the erased number's facts: %v, want only all and erased", got)
			}
			// The user comes back with a change of their own.
			back := &consent.Record{UserID: secretID, Number: num, Version: 5, Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:golf", Source: tags.Declared}}}}
			y.Apply(store.Event{Log: sh, Pos: "9-1", Record: back, Prev: tombstone(victim, 4)})
			if y.UserID(num) != secretID || !slices.Equal(factsOf(y, num), Facts(back)) {
				t.Fatalf("after coming back: ID %q, facts %v; want %s, %v", y.UserID(num), factsOf(y, num), secretID, Facts(back))
			}
		})
	}
}

// withMagic re-seals a checkpoint body under another version's magic.
func withMagic(data []byte, magic string) []byte {
	body := data[len(checkpointMagic) : len(data)-crc32.Size]
	out := append([]byte(magic), body...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
}

// A checkpoint of version 2 or 1 still kept erased users' IDs: the load
// drops them, so the next checkpoint does not carry them on, and the user
// is neither unknown nor in any audience.
func TestOldCheckpointForgetsErasedIDs(t *testing.T) {
	x := healthy(t)
	v := user(3, 2, 1, false)
	x.Apply(store.Event{Log: 3, Pos: "5-1", Record: tombstone(v, 2)})
	// What an index of version 2 saved: the erased user's ID in the table.
	x.mu.Lock()
	x.setSlot(3, 2, v.UserID)
	x.mu.Unlock()
	data, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range [][]byte{withMagic(data, checkpointMagicV2), encodeV1(data)} {
		y, err := Unmarshal(old)
		if err != nil {
			t.Fatal(err)
		}
		if y.UserID(v.Number) != "" || y.Unknown() != 0 {
			t.Fatalf("loaded: ID %q kept, %d unknown; want none, 0", y.UserID(v.Number), y.Unknown())
		}
		if in := inSome(t, y, v.UserID); len(in) > 0 {
			t.Fatalf("the erased user is in %v", in)
		}
		again, err := y.MarshalBinary()
		if err != nil || bytes.Contains(again, []byte(v.UserID)) || !bytes.HasPrefix(again, []byte(checkpointMagic)) {
			t.Fatalf("saved again: %v; holds the ID %t", err, bytes.Contains(again, []byte(v.UserID)))
		}
	}
	// A hole whose number holds more than an erased user's facts is damage:
	// that number is unknown.
	x = healthy(t)
	x.mu.Lock()
	n := store.UserNumber(3, 2, testShards)
	x.bm[factErased] = x.newBitmap(factErased)
	x.bm[factErased].Add(n)
	x.setSlot(3, 2, "")
	x.mu.Unlock()
	data, _ = x.MarshalBinary()
	y, err := Unmarshal(data)
	if err != nil || y.Unknown() != 1 || len(factsOf(y, n)) != 1 {
		t.Fatalf("a hole with a tag: %v, unknown %d, facts %v; want 1 unknown", err, y.Unknown(), factsOf(y, n))
	}
}

// Erasure and coming back write a slot of the number -> ID table that a
// frozen audience reads without the lock: the table is copied first (this
// fails under go test -race without it), and the frozen audience keeps
// what it was given.
func TestRacePageVsErase(t *testing.T) {
	x := New(1, consent.DefaultSettings())
	rec := func(v uint64) *consent.Record {
		return &consent.Record{UserID: "u1", Number: 1, Version: v, Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:a"}}}}
	}
	x.Load(rec(1))
	a, _ := x.Audience(tags.MustParseSegment("interest:a"), "sms", true)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 2; i < 1000; i += 2 {
			x.Apply(store.Event{Log: 0, Pos: store.Position("1-" + strconv.Itoa(i)), Record: tombstone(rec(1), uint64(i))},
				store.Event{Log: 0, Pos: store.Position("1-" + strconv.Itoa(i+1)), Record: rec(uint64(i + 1)), Prev: tombstone(rec(1), uint64(i))})
			if i%50 == 0 {
				x.Audience(tags.MustParseSegment("interest:a"), "sms", true)
			}
		}
	}()
	for range 1000 {
		if ids, _ := a.Page(0, 10); len(ids) != 1 || ids[0] != "u1" {
			t.Errorf("the frozen audience pages %v, want [u1]", ids)
			break
		}
	}
	wg.Wait()
}

// Through a store's changelog (whatever shape it gives erase entries and
// the entries before them: Prev nil, Shredded): erased and restricted
// users leave every audience, the erased one's ID every checkpoint, and
// the index equals a rebuild from the records.
func TestStoreErasureAndRestriction(t *testing.T) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{Shards: testShards})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	apply := func(chs ...consent.Change) {
		t.Helper()
		for _, ch := range chs {
			if _, err := st.Apply(ctx, ch); err != nil {
				t.Fatalf("%s %s: %v", ch.Op, ch.UserID, err)
			}
		}
	}
	users := []string{"ann", "bob-erased-later", "cat-restricted", "dan"}
	for _, u := range users {
		apply(consent.DeclareTag(u, "interest:ski"), consent.DeclareTag(u, tags.Tag("interest:x"+u)))
	}
	x, err := Build(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	apply(consent.RefuseChannel("bob-erased-later", "sms"), consent.Erase("bob-erased-later"), consent.Restrict("cat-restricted"))
	follow := func() {
		t.Helper()
		y, rebuilt, err := CatchUp(ctx, st, x)
		if err != nil || rebuilt {
			t.Fatalf("CatchUp: rebuilt %t, %v", rebuilt, err)
		}
		x = y
	}
	follow()
	ski := func() []string {
		a, err := x.Audience(tags.MustParseSegment("interest:ski | !interest:ski"), "push", false)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := a.Page(0, 100)
		slices.Sort(ids)
		return ids
	}
	if got := ski(); !slices.Equal(got, []string{"ann", "dan"}) {
		t.Fatalf("audience %v, want [ann dan]", got)
	}
	data, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"bob-erased-later", "interest:xbob"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the checkpoint holds %q", secret)
		}
	}
	if !bytes.Contains(data, []byte("cat-restricted")) {
		t.Error("the checkpoint lost a restricted user's ID (their data is kept, only not processed)")
	}
	if bytes.Contains(data, []byte("interest:xcat")) {
		t.Error("the checkpoint holds a restricted user's tag")
	}
	rebuilt, err := Build(ctx, st)
	if err != nil || !rebuilt.Equal(x) {
		t.Fatalf("the index differs from a rebuild (%v)", err)
	}
	// Lifting the restriction and the erased user's own change bring both
	// back.
	apply(consent.Unrestrict("cat-restricted"), consent.DeclareTag("bob-erased-later", "interest:golf"))
	follow()
	if got := ski(); !slices.Equal(got, users) {
		t.Fatalf("audience %v, want %v", got, users)
	}
	if n, _ := x.Count(tags.MustParseSegment("interest:xcat-restricted"), "push", true); n != 1 {
		t.Fatalf("the unrestricted user's tag selects %d, want 1", n)
	}
	if n, _ := x.Count(tags.MustParseSegment("interest:xbob-erased-later | interest:ski"), "sms", true); n != 3 {
		t.Fatalf("the erased user's old tag or refusal still counts: %d, want 3", n)
	}
	if x.Unknown() != 0 {
		t.Fatalf("Unknown() = %d after catching up", x.Unknown())
	}
}
