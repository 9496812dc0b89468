package redis

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// history20 applies a random history of changes to a user with 20 tags and
// returns each effective change's records before and after and receipt.
func history20(tb testing.TB, seed uint64) (prevs, nexts []consent.Record, rcs []*consent.Receipt) {
	tb.Helper()
	set := consent.DefaultSettings()
	set.Version = 1
	r := rand.New(rand.NewPCG(seed, 1))
	u := "delta-user"
	rec := consent.NewRecord(u)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tag := func(i int) tags.Tag { return tags.Tag(fmt.Sprintf("interest:t%02d", i)) }
	var chs []consent.Change
	for i := range 20 {
		chs = append(chs, consent.InferTag(u, tag(i)))
	}
	for range 200 {
		switch r.IntN(8) {
		case 0:
			chs = append(chs, consent.SetPersonalization(u, r.IntN(2) == 0))
		case 1:
			chs = append(chs, consent.RefuseChannel(u, "sms"))
		case 2:
			chs = append(chs, consent.AllowChannel(u, "sms"))
		case 3:
			chs = append(chs, consent.DeleteTag(u, tag(r.IntN(24))))
		case 4:
			chs = append(chs, consent.DeclareTag(u, tag(r.IntN(24))))
		case 5:
			chs = append(chs, consent.InferTag(u, tag(r.IntN(24))))
		case 6:
			chs = append(chs, consent.Restrict(u))
		default:
			chs = append(chs, consent.Unrestrict(u))
		}
	}
	for _, ch := range chs {
		at = at.Add(time.Minute)
		ch.At = at
		if ch.Validate(&set) != nil {
			continue
		}
		next, rc, err := rec.Apply(ch, &set)
		if err != nil || rc == nil {
			continue
		}
		next.Number = 7
		prevs, nexts, rcs = append(prevs, rec), append(nexts, next), append(rcs, rc)
		rec = next
	}
	return prevs, nexts, rcs
}

// Every change's record before is carried as a delta that rebuilds it
// exactly (never the whole record), through the sealed entry.
func TestDeltaRebuildsPrev(t *testing.T) {
	key := newDataKey()
	for seed := range uint64(5) {
		prevs, nexts, rcs := history20(t, seed)
		for i := range nexts {
			es := newEntrySecret(&prevs[i], &nexts[i], rcs[i])
			if es.D == nil || es.Prev != nil {
				t.Fatalf("seed %d change %d (%s): the record before is carried whole, want a delta", seed, i, rcs[i].Op)
			}
			b, _ := json.Marshal(es)
			plain, err := openBlob(key, sealRaw(key, b, entryAD("delta-user", nexts[i].Version)), entryAD("delta-user", nexts[i].Version))
			if err != nil {
				t.Fatal(err)
			}
			var got entrySecret
			if err := json.Unmarshal(plain, &got); err != nil {
				t.Fatal(err)
			}
			rec := got.Record
			rec.Number = 7
			p, ok := got.prev(&rec)
			want := prevs[i]
			want.Number = 7
			if !ok || !reflect.DeepEqual(normal(p), normal(want)) {
				t.Fatalf("seed %d change %d (%s): rebuilt before\n%+v\nwant\n%+v", seed, i, rcs[i].Op, p, want)
			}
		}
	}
}

// TestEntrySize prints the size of a changelog entry's sealed content for a
// user with 20 tags, carrying the record before whole (as before) and as a
// delta, and checks the delta form is at most 60% of the whole one.
func TestEntrySize(t *testing.T) {
	key := newDataKey()
	prevs, nexts, rcs := history20(t, 1)
	var whole, delta int
	for i := 20; i < len(nexts); i++ { // after the 20 tags are in
		ad := entryAD("delta-user", nexts[i].Version)
		old, _ := json.Marshal(struct {
			Record consent.Record `json:"r"`
			Prev   consent.Record `json:"p"`
			Rc     receiptSecret  `json:"c"`
		}{nexts[i], prevs[i], secretOf(rcs[i])})
		nw, _ := json.Marshal(newEntrySecret(&prevs[i], &nexts[i], rcs[i]))
		red, _ := json.Marshal(rcs[i].Redact())
		whole += len(sealBlob(key, old, ad)) + len(red)
		delta += len(sealRaw(key, nw, ad)) + len(red)
	}
	n := len(nexts) - 20
	t.Logf("changelog entry of a user with 20 tags, mean over %d changes: whole record before, base64: %d B; delta, raw: %d B (%.0f%%)", n, whole/n, delta/n, 100*float64(delta)/float64(whole))
	if float64(delta) > 0.6*float64(whole) {
		t.Fatalf("entries with a delta are %d B, with the whole record before %d B: want at most 60%%", delta/n, whole/n)
	}
}
