package sdk

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// The compact view must give back exactly the record it was made from (its
// decode feeds ShouldAsk, a settings change's re-evaluation and the
// history checks) and exactly the decision the record evaluates to.

// randRecord returns a record with every field exercised: nil and empty
// lists, zero and odd times (before 1970, year 1 and 9999, milliseconds,
// nanoseconds; and, with odd, other zones and monotonic readings, which a
// view keeps whole), hashes that are and are not lower-case hex, long
// strings the interner does not number, a guardian and an anchor or not.
func randRecord(r *rand.Rand, odd bool) consent.Record {
	pick := func(ss ...string) string { return ss[r.IntN(len(ss))] }
	str := func() string {
		switch r.IntN(8) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("x", 100+r.IntN(200)) // past maxInternLen
		case 2:
			return fmt.Sprintf("s%d\x00é", r.IntN(1e6))
		}
		return pick("push", "sms", "email", "interest:cats", "region:r01", "declared", "inferred", "ads")
	}
	hash := func() string {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		switch r.IntN(6) {
		case 0:
			return ""
		case 1:
			return strings.ToUpper(hex.EncodeToString(b))
		case 2:
			return hex.EncodeToString(b[:r.IntN(32)])
		case 3:
			return "not hex" + hex.EncodeToString(b)[7:]
		}
		return hex.EncodeToString(b)
	}
	tm := func() time.Time {
		switch r.IntN(12) {
		case 0:
			return time.Time{}
		case 1:
			return time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)
		case 2:
			return time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
		case 3:
			return time.Unix(-r.Int64N(1e10), r.Int64N(1e9)).UTC()
		case 4:
			return time.UnixMilli(r.Int64N(4e12)).UTC()
		case 5:
			return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC()
		case 6:
			if odd {
				return time.Date(2026, 3, 4, 5, 6, 7, 8, time.FixedZone("", 8*3600))
			}
		case 7:
			if odd {
				return time.Now() // a monotonic reading, Local
			}
		case 8:
			if odd {
				return time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) // year 0
			}
		}
		return time.Unix(1_767_000_000+r.Int64N(1e8), 0).UTC()
	}
	grant := func() consent.Grant {
		return consent.Grant{Granted: r.IntN(2) == 0, Purpose: str(), PolicyVersion: r.IntN(200) - 100, ByGuardian: r.IntN(2) == 0, At: tm()}
	}
	n := func() (int, bool) { // a length, and whether the list is nil
		switch r.IntN(4) {
		case 0:
			return 0, true
		case 1:
			return 0, false
		}
		return 1 + r.IntN(6), false
	}
	rec := consent.Record{UserID: fmt.Sprintf("user-%d", r.IntN(1e9)), Number: r.Uint32(), Version: r.Uint64(),
		LastHash: hash(), UpdatedAt: tm(), HeadMAC: hash()}
	s := &rec.State
	s.PersonalizationOff, s.Minor, s.Restricted, s.Erased = r.IntN(2) == 0, r.IntN(2) == 0, r.IntN(5) == 0, r.IntN(5) == 0
	if k, isNil := n(); !isNil {
		s.RefusedChannels = make([]string, k)
		for i := range k {
			s.RefusedChannels[i] = str()
		}
	}
	if k, isNil := n(); !isNil {
		s.Sensitive = make([]consent.SensitiveConsent, k)
		for i := range k {
			s.Sensitive[i] = consent.SensitiveConsent{Category: tags.Category(pick("religion", "biometrics", "whereabouts", "")), Grant: grant()}
		}
	}
	if r.IntN(2) == 0 {
		g := grant()
		s.Guardian = &g
	}
	if k, isNil := n(); !isNil {
		s.Refusals = make([]consent.Refusal, k)
		for i := range k {
			s.Refusals[i] = consent.Refusal{Kind: consent.Kind(pick("personalization", "guardian", "channel:sms", str())), At: tm()}
		}
	}
	if k, isNil := n(); !isNil {
		rec.Tags.Entries = make([]tags.Entry, k)
		for i := range k {
			rec.Tags.Entries[i] = tags.Entry{Tag: tags.Tag(str()), Source: tags.Source(pick("declared", "inferred", str())), At: tm()}
		}
	}
	if k, isNil := n(); !isNil {
		rec.Tags.Suppressed = make([]tags.Suppression, k)
		for i := range k {
			rec.Tags.Suppressed[i] = tags.Suppression{Tag: tags.Tag(str()), At: tm()}
		}
	}
	switch r.IntN(3) {
	case 0:
		rec.Purged = consent.Anchor{Seq: r.Uint64(), Hash: hash(), At: tm(), MAC: hash()}
	case 1:
		rec.Purged = consent.Anchor{At: tm()} // zero but for the time
	}
	return rec
}

// legacyViewOf is what the cache held before views were compact: the
// record (tags dropped under restriction) and its decision.
func legacyViewOf(rec consent.Record, sv *settingsView) (consent.Record, consent.Decision) {
	if rec.State.Restricted {
		rec.Tags = tags.Set{}
	}
	d := consent.Evaluate(rec.State, rec.Tags, &sv.set)
	d.RecordVersion, d.SettingsVersion = rec.Version, sv.set.Version
	return rec, d
}

func checkRoundTrip(t *testing.T, in *interner, rec consent.Record, sv *settingsView, pos store.Position) *view {
	t.Helper()
	wantRec, wantDec := legacyViewOf(rec, sv)
	v := newView(in, xxhash.Sum64String(rec.UserID), rec, pos, sv)
	got := v.record(in)
	if !reflect.DeepEqual(got, wantRec) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(wantRec)
		t.Fatalf("record round trip:\n got %s\nwant %s\n got %#v\nwant %#v", gj, wj, got, wantRec)
	}
	if st := v.state(in); !reflect.DeepEqual(st, wantRec.State) {
		t.Fatalf("state:\n got %#v\nwant %#v", st, wantRec.State)
	}
	if got.ContentDigest() != wantRec.ContentDigest() {
		t.Fatal("content digest differs after the round trip")
	}
	if d := v.decision(); !reflect.DeepEqual(d, wantDec) {
		t.Fatalf("decision:\n got %#v\nwant %#v", d, wantDec)
	}
	if v.userID() != rec.UserID || v.pos() != pos || v.version != rec.Version || v.erased != rec.State.Erased ||
		v.lastHash() != rec.LastHash || v.gen != uint32(sv.gen) {
		t.Fatalf("view fields: id %q pos %q version %d erased %v hash %q gen %d", v.userID(), v.pos(), v.version, v.erased, v.lastHash(), v.gen)
	}
	return v
}

func pick(r *rand.Rand, ss ...string) string { return ss[r.IntN(len(ss))] }

func viewSettings(t *testing.T, r *rand.Rand) *settingsView {
	set := consent.DefaultSettings()
	set.Version = r.Uint64N(1000)
	if r.IntN(2) == 0 {
		set.Channels = append(set.Channels, "ads")
	}
	return newSettingsView(set, r.Uint64())
}

func TestViewRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 5))
	in := newInterner()
	compact, full := 0, 0
	for i := range 20_000 {
		odd := i%4 == 0
		pos := store.Position("")
		switch r.IntN(4) {
		case 0:
			pos = store.Position(fmt.Sprintf("%d-%d", r.Int64N(2e12), r.IntN(100)))
		case 1:
			pos = store.Position(pick(r, "0-0", "0-1", "007-1", "1-01", "-1", "1-", "1", "18446744073709551615-18446744073709551615",
				"18446744073709551616-0", "1767000000000-3x", "123"))
		}
		v := checkRoundTrip(t, &in, randRecord(r, odd), viewSettings(t, r), pos)
		if v.full != nil {
			full++
			if !odd {
				t.Fatalf("a record with only UTC times was kept whole: %+v", *v.full)
			}
		} else {
			compact++
		}
	}
	t.Logf("%d records encoded, %d kept whole", compact, full)
	if compact == 0 || full == 0 {
		t.Fatal("both kinds of view must be exercised")
	}
}

// TestViewRoundTripApplied round-trips records made by the rule engine
// (consent.Record.ApplyKeyed) from random valid changes, with nanosecond
// times, through JSON as a store gives them.
func TestViewRoundTripApplied(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 6))
	set := consent.DefaultSettings()
	set.Version = 3
	sv := newSettingsView(set, 7)
	in := newInterner()
	key := consent.ChainKey("view round trip chain key!!!!!!!")
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	applied, seen := 0, [8]bool{}
	for u := range 300 {
		id := fmt.Sprintf("u%04d", u)
		rec := consent.NewRecord(id)
		for j := range 30 {
			var ch consent.Change
			switch r.IntN(16) {
			case 0:
				ch = consent.InferTag(id, tags.Tag(fmt.Sprintf("interest:i%d", r.IntN(20))))
			case 1:
				ch = consent.DeclareTag(id, tags.Tag(fmt.Sprintf("region:r%d", r.IntN(20)))).By(consent.ActorUser, consent.SurfaceAPI)
			case 2:
				ch = consent.DeleteTag(id, tags.Tag(fmt.Sprintf("interest:i%d", r.IntN(20)))).By(consent.ActorUser, consent.SurfaceAPI)
			case 3:
				ch = consent.RefuseChannel(id, []string{"sms", "email", "push"}[r.IntN(3)]).By(consent.ActorUser, consent.SurfaceAPI)
			case 4:
				ch = consent.SetPersonalization(id, r.IntN(2) == 0).By(consent.ActorUser, consent.SurfaceAPI)
			case 5:
				ch = consent.AllowChannel(id, []string{"sms", "email", "push"}[r.IntN(3)]).By(consent.ActorUser, consent.SurfaceAPI)
			case 6:
				ch = consent.GrantSensitive(id, tags.Religion, consent.PurposePersonalization).By(consent.ActorUser, consent.SurfaceAPI)
			case 7:
				ch = consent.WithdrawSensitive(id, tags.Religion).By(consent.ActorUser, consent.SurfaceAPI)
			case 8:
				ch = consent.SetMinor(id, r.IntN(2) == 0).By(consent.ActorUser, consent.SurfaceAPI)
			case 9:
				ch = consent.SetGuardian(id, r.IntN(2) == 0).By(consent.ActorGuardian, consent.SurfaceAPI)
			case 10:
				ch = consent.Restrict(id).By(consent.ActorUser, consent.SurfaceAPI)
			case 11:
				ch = consent.Unrestrict(id).By(consent.ActorUser, consent.SurfaceAPI)
			case 12:
				if r.IntN(4) == 0 {
					ch = consent.Erase(id).By(consent.ActorUser, consent.SurfaceAPI)
					break
				}
				fallthrough
			default:
				ch = consent.InferTag(id, tags.Tag(fmt.Sprintf("device:d%d", r.IntN(5))))
			}
			ch.At = at.Add(time.Duration(u*1000+j) * 1_000_003 * time.Microsecond)
			if err := ch.Validate(&set); err != nil {
				continue
			}
			next, _, err := rec.ApplyKeyed(ch, &set, key)
			if err != nil {
				continue
			}
			rec = next
			applied++
			seen[0] = seen[0] || len(rec.Tags.Entries) > 0
			seen[1] = seen[1] || len(rec.Tags.Suppressed) > 0
			seen[2] = seen[2] || len(rec.State.Refusals) > 0
			seen[3] = seen[3] || len(rec.State.Sensitive) > 0
			seen[4] = seen[4] || rec.State.Guardian != nil
			seen[5] = seen[5] || rec.State.Erased
			seen[6] = seen[6] || rec.State.Restricted
			seen[7] = seen[7] || len(rec.State.RefusedChannels) > 0
			b, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			var read consent.Record
			if err := json.Unmarshal(b, &read); err != nil {
				t.Fatal(err)
			}
			if v := checkRoundTrip(t, &in, read, sv, ""); v.full != nil {
				t.Fatalf("a record from the store was kept whole: %+v", read)
			}
		}
	}
	t.Logf("%d changes applied; seen (tags, suppressions, refusals, sensitive, guardian, erased, restricted, refused channels): %v", applied, seen)
	for i, ok := range seen {
		if !ok {
			t.Errorf("no record had feature %d", i)
		}
	}
}

// TestViewRoundTripInternerFull: past the interner's bounds strings are
// written out in the view, and nothing changes.
func TestViewRoundTripInternerFull(t *testing.T) {
	in := newInterner()
	for i := range maxInterned {
		in.idLocked(fmt.Sprintf("filler-%d", i))
	}
	for i := range maxInterned {
		in.tagLists[fmt.Sprint(i)] = nil
		in.decs[fmt.Sprint(i)] = nil
	}
	r := rand.New(rand.NewPCG(16, 7))
	for range 2000 {
		checkRoundTrip(t, &in, randRecord(r, false), viewSettings(t, r), "")
	}
	if len(in.strs) != maxInterned || len(in.tagLists) != maxInterned || len(in.decs) != maxInterned {
		t.Fatalf("the interner grew past its bounds: %d strings, %d tag lists, %d decisions", len(in.strs), len(in.tagLists), len(in.decs))
	}
}

// TestViewShares: users with equal strings and decisions share them.
func TestViewShares(t *testing.T) {
	in := newInterner()
	set := consent.DefaultSettings()
	sv := newSettingsView(set, 1)
	mk := func(id string) *view {
		rec := consent.NewRecord(id)
		rec.Version = 2
		rec.Tags.Entries = []tags.Entry{{Tag: tags.Tag("interest:" + strings.Repeat("c", 5)), Source: tags.Inferred, At: time.Unix(1_767_000_000, 0).UTC()}}
		rec.State.RefusedChannels = []string{"sms"}
		return newView(&in, xxhash.Sum64String(id), rec, "", sv)
	}
	a, b := mk("a"), mk("b")
	if a.dec != b.dec || &a.dtags[0] != &b.dtags[0] {
		t.Fatal("equal decisions are not shared")
	}
	ra, rb := a.record(&in), b.record(&in)
	if !reflect.DeepEqual(ra.Tags, rb.Tags) || len(ra.Tags.Entries) != 1 ||
		strings.Clone(string(ra.Tags.Entries[0].Tag)) != "interest:ccccc" {
		t.Fatalf("records: %+v %+v", ra, rb)
	}
}

func TestViewDecisionDoesNotAllocate(t *testing.T) {
	in := newInterner()
	r := rand.New(rand.NewPCG(16, 8))
	v := newView(&in, 1, randRecord(r, false), "1-1", viewSettings(t, r))
	var sink consent.Decision
	if n := testing.AllocsPerRun(1000, func() {
		sink = v.decision()
		_ = v.userID()
	}); n != 0 {
		t.Fatalf("decision allocates %v times", n)
	}
	_ = sink
}

// BenchmarkView: what a view costs off the hot path, against the old
// view's costs (an Evaluate and a copy; reading the record was free):
// making one (a miss, a changelog event, a settings change's refresh) and
// decoding its record (the refresh, ShouldAsk's state, history checks).
func BenchmarkView(b *testing.B) {
	set := consent.DefaultSettings()
	set.Version = 1
	sv := newSettingsView(set, 1)
	var rec consent.Record
	if err := json.Unmarshal(memTemplates(b, &set, true)[6], &rec); err != nil {
		b.Fatal(err)
	}
	in := newInterner()
	v := newView(&in, 1, rec, "1767000000000-0", sv)
	b.Run("evaluate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			legacyViewOf(rec, sv)
		}
	})
	b.Run("newView", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			newView(&in, 1, rec, "1767000000000-0", sv)
		}
	})
	b.Run("record", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.record(&in)
		}
	})
	b.Run("state", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.state(&in)
		}
	})
}
