package redis

// Fuzzing the Redis store's decoders of what it reads back: a user's record
// hash (decodeRecord: fields v, d, n) and a changelog stream entry
// (decodeMessage: fields r, p, n, c, s). A key edited or damaged behind the
// store's back may hold anything. The decoders must never panic; what they
// accept must keep their promises (a record of the user asked for, at the
// version its key says, with a number when the hash has one); and the
// readers downstream (the consent rules, the audience index) must not panic
// on it either.
//
// Run: go test -run '^$' -fuzz FuzzDecodeRecord ./store/redis
//      go test -run '^$' -fuzz FuzzDecodeMessage ./store/redis

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// fuzzRecords returns real records (and the receipts of their last
// change) of one user, as the store writes them.
func fuzzRecords(tb testing.TB) (recs []consent.Record, rcs []consent.Receipt) {
	set := consent.DefaultSettings().Normalize()
	set.Version = 1
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	rec := consent.NewRecord("alice")
	for i, ch := range []consent.Change{
		consent.DeclareTag("alice", "interest:ski"),
		consent.InferTag("alice", "region:sh"),
		consent.RefuseChannel("alice", "sms"),
		consent.SetPersonalization("alice", false),
		consent.SetMinor("alice", true),
		consent.SetGuardian("alice", true),
		consent.GrantSensitive("alice", tags.MedicalHealth, consent.PurposePersonalization),
		consent.DeleteTag("alice", "interest:ski"),
		consent.Erase("alice"),
	} {
		ch.At = at.Add(time.Duration(i) * time.Minute)
		next, rc, err := rec.Apply(ch, &set)
		if err != nil {
			continue // a change the rules refuse here is fine
		}
		next.Number = 3
		recs, rcs = append(recs, next), append(rcs, *rc)
		rec = next
	}
	if len(recs) < 5 {
		tb.Fatalf("only %d seed records", len(recs))
	}
	return recs, rcs
}

// vals builds an HMGET reply: a nil value for a field the hash lacks.
func vals(v, d, n string, mask uint8, three bool) []any {
	out := []any{v, d}
	if three {
		out = append(out, n)
	}
	for i := range out {
		if mask&(1<<i) != 0 {
			out[i] = nil
		}
	}
	return out
}

func FuzzDecodeRecord(f *testing.F) {
	recs, _ := fuzzRecords(f)
	for _, r := range recs {
		d, _ := json.Marshal(r)
		f.Add("alice", strconv.FormatUint(r.Version, 10), string(d), "3", uint8(0), true)
	}
	d, _ := json.Marshal(recs[0])
	f.Add("alice", "1", string(d), "0", uint8(0), true)           // number 0
	f.Add("alice", "1", string(d), "", uint8(4), true)            // no number field
	f.Add("alice", "2", string(d), "3", uint8(0), true)           // version mismatch
	f.Add("bob", "1", string(d), "3", uint8(0), true)             // another user's record
	f.Add("alice", "1", "{\"user_id\":\x00", "3", uint8(0), true) // garbage
	f.Add("alice", "1", "null", "3", uint8(0), true)
	f.Add("alice", "", string(d), "3", uint8(1), true) // no version field
	f.Add("alice", "1", string(d), "3", uint8(0), false)
	f.Add("alice", "1", string(d), "4294967296", uint8(0), true)
	f.Fuzz(func(t *testing.T, userID, v, d, n string, mask uint8, three bool) {
		in := vals(v, d, n, mask, three)
		rec, ver, err := decodeRecord(userID, in)
		if err != nil {
			var ce *store.CorruptError
			if !errors.As(err, &ce) || len(ce.UserIDs) != 1 || ce.UserIDs[0] != userID {
				t.Fatalf("error %v is not a *store.CorruptError naming %q", err, userID)
			}
			return
		}
		vs, _ := in[0].(string)
		if vs == "" {
			// No version field: a user never seen.
			if rec.UserID != userID || rec.Version != 0 || rec.Number != 0 || ver != "0" {
				t.Fatalf("no version field: got %+v, version %q; want consent.NewRecord(%q)", rec, ver, userID)
			}
		} else {
			want, perr := strconv.ParseUint(vs, 10, 64)
			if perr != nil || rec.Version != want || want == 0 || rec.UserID != userID || ver != vs {
				t.Fatalf("accepted version field %q as record %q version %d (returned %q)", vs, rec.UserID, rec.Version, ver)
			}
			if three && rec.Number == 0 {
				t.Fatalf("accepted a record with user number 0 (n field %v)", in[2])
			}
		}
		readers(t, &rec)
	})
}

// readers runs what reads a decoded record: the consent rules, a change on
// top of it, and the audience index. None may panic.
func readers(t *testing.T, rec *consent.Record) {
	t.Helper()
	set := consent.DefaultSettings().Normalize()
	set.Version = 1
	consent.Evaluate(rec.State, rec.Tags, &set)
	consent.UsableTags(rec.State, rec.Tags, &set)
	for _, ch := range []consent.Change{
		consent.SetPersonalization(rec.UserID, true),
		consent.DeleteTag(rec.UserID, "interest:ski"),
		consent.InferTag(rec.UserID, "interest:golf"),
		consent.Erase(rec.UserID),
	} {
		if ch.Validate(&set) == nil {
			rec.Apply(ch, &set)
		}
	}
	index.Facts(rec)
	x := index.New(4, set)
	x.Load(rec)
	x.Apply(store.Event{Log: store.ShardOf(rec.UserID, 4), Pos: "1-1", Record: rec, Prev: rec})
	for _, seg := range []string{"!erased", "interest:ski", "sensitive:medical_health | consent:guardian"} {
		if a, err := x.Audience(tags.MustParseSegment(seg), "push", true); err == nil {
			a.Page(0, 10)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	recs, rcs := fuzzRecords(f)
	for i := 1; i < len(recs); i++ {
		r, _ := json.Marshal(recs[i])
		p, _ := json.Marshal(recs[i-1])
		c, _ := json.Marshal(rcs[i])
		f.Add(0, "1700000000000-"+strconv.Itoa(i), string(r), string(p), "3", string(c), "", uint8(0b10000))
	}
	set := consent.DefaultSettings().Normalize()
	set.Version = 2
	s, _ := json.Marshal(set)
	c, _ := json.Marshal(rcs[0])
	f.Add(store.SettingsLog, "1700000000000-1", "", "", "", string(c), string(s), uint8(0b00111))
	f.Add(0, "1-1", "null", "null", "x", "{", "[", uint8(0))
	f.Add(0, "not-an-id", "", "", "", "", "", uint8(0b11111))
	f.Fuzz(func(t *testing.T, log int, id, r, p, n, c, s string, absent uint8) {
		if log < store.SettingsLog || log >= 4 {
			log = 0
		}
		m := goredis.XMessage{ID: id, Values: map[string]any{}}
		for i, kv := range []struct{ k, v string }{{"r", r}, {"p", p}, {"n", n}, {"c", c}, {"s", s}} {
			if absent&(1<<i) == 0 {
				m.Values[kv.k] = kv.v
			}
		}
		ev, _, err := decodeMessage(log, m)
		if err != nil {
			return
		}
		if ev.Log != log || ev.Pos != store.Position(id) {
			t.Fatalf("event of log %d at %q, want log %d at %q", ev.Log, ev.Pos, log, id)
		}
		if _, ok := m.Values["r"]; ok != (ev.Record != nil) {
			t.Fatalf("record field present %t, event record %v", ok, ev.Record)
		}
		if ev.Record != nil {
			if want, _ := strconv.ParseUint(n, 10, 32); m.Values["n"] != nil && uint64(ev.Record.Number) != want {
				t.Fatalf("record number %d, n field %q", ev.Record.Number, n)
			}
			readers(t, ev.Record)
		}
		if ev.Prev != nil {
			readers(t, ev.Prev)
		}
		x := index.New(4, consent.DefaultSettings())
		x.Apply(ev)
		if ev.Settings != nil {
			// Followers install the settings of the settings log as they
			// come: decisions and audiences under them must not panic.
			rec := recs[len(recs)-3]
			consent.Evaluate(rec.State, rec.Tags, ev.Settings)
			consent.UsableTags(rec.State, rec.Tags, ev.Settings)
			y := index.New(4, *ev.Settings)
			y.Load(&rec)
			if a, err := y.Audience(tags.MustParseSegment("interest:ski | sensitive:medical_health"), "push", true); err == nil {
				a.Page(0, 10)
			}
		}
	})
}
