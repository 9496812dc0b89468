package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// testWrites checks that changelog events carry the records before and
// after each change exactly (a user with 20 tags and every kind of change),
// and that a store.BatchApplier gives the results of applying one change
// after another.
func testWrites(t *testing.T, newStore newStoreFunc) {
	parallel(t, "events carry the records before and after exactly", newStore, func(t *testing.T, s store.Store) {
		u := "writes-prev"
		var want []store.Applied
		for _, ch := range writeHistory(u, 1) {
			a, err := s.Apply(context.Background(), ch)
			if err == nil && a.Receipt != nil {
				want = append(want, a)
			}
		}
		checkEvents(t, s, u, want)
	})
	parallel(t, "a batch gives the results of one change after another", newStore, func(t *testing.T, s store.Store) {
		b, ok := s.(store.BatchApplier)
		if !ok {
			t.Skip("the store has no BatchApplier")
		}
		ctx := context.Background()
		// Three users' histories interleaved, with changes that fail
		// (suppressed, unknown channel) and no-ops among them.
		users := []string{"batch-a", "batch-b", "batch-c"}
		var chs []consent.Change
		hist := make([][]consent.Change, len(users))
		for i, u := range users {
			hist[i] = writeHistory(u, uint64(i+2))
		}
		for k := 0; ; k++ {
			more := false
			for i := range users {
				if k < len(hist[i]) {
					chs = append(chs, hist[i][k])
					more = true
				}
			}
			if !more {
				break
			}
		}
		chs = append(chs, consent.RefuseChannel("batch-a", "no-such-channel"), consent.Change{UserID: "", Op: consent.OpSetPersonalization})
		// The reference: the same changes one after another on a twin.
		ref := newStore(t)
		applied, errs := b.ApplyBatch(ctx, chs)
		if len(applied) != len(chs) || len(errs) != len(chs) {
			t.Fatalf("ApplyBatch: %d results and %d errors for %d changes", len(applied), len(errs), len(chs))
		}
		for i, ch := range chs {
			a, err := ref.Apply(ctx, ch)
			if (err == nil) != (errs[i] == nil) || err != nil && !sameSentinel(err, errs[i]) {
				t.Fatalf("change %d (%s %s): batch err %v, one by one %v", i, ch.UserID, ch.Op, errs[i], err)
			}
			if err != nil {
				continue
			}
			got := applied[i]
			if (a.Receipt == nil) != (got.Receipt == nil) {
				t.Fatalf("change %d (%s %s): batch receipt %v, one by one %v", i, ch.UserID, ch.Op, got.Receipt != nil, a.Receipt != nil)
			}
			if !equal(content(got.Record), content(a.Record)) || got.Record.Version != a.Record.Version {
				t.Fatalf("change %d (%s %s): batch record %s, one by one %s", i, ch.UserID, ch.Op, show(got.Record), show(a.Record))
			}
			if got.Receipt != nil && (got.Receipt.Seq != a.Receipt.Seq || got.Receipt.Op != a.Receipt.Op || got.Receipt.Old != a.Receipt.Old || got.Receipt.New != a.Receipt.New) {
				t.Fatalf("change %d: batch receipt %s, one by one %s", i, show(got.Receipt), show(a.Receipt))
			}
			if got.Receipt != nil && (got.Pos.IsZero() || got.Shard != store.ShardOf(ch.UserID, s.Shards())) {
				t.Fatalf("change %d: batch position %q shard %d", i, got.Pos, got.Shard)
			}
		}
		for _, u := range users {
			var want []store.Applied
			for i, a := range applied {
				if chs[i].UserID == u && errs[i] == nil && a.Receipt != nil {
					want = append(want, a)
				}
			}
			checkEvents(t, s, u, want)
			rs, err := s.Receipts(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			rec, _ := s.Get(ctx, u)
			set, _ := s.Settings(ctx)
			if err := consent.VerifyChain(rs, consent.HeadOf(rec, &set, time.Now()), ChainKey); err != nil {
				t.Fatalf("%s: receipts written by a batch do not verify: %v", u, err)
			}
			checkEqual(t, u+"'s record after the batch", rec, want[len(want)-1].Record)
		}
		// A batch of no-ops writes nothing.
		mustApply(t, s, consent.RefuseChannel("batch-a", "sms"))
		tail, _ := s.Tail(ctx, store.ShardOf("batch-a", s.Shards()))
		again, errs := b.ApplyBatch(ctx, []consent.Change{consent.RefuseChannel("batch-a", "sms"), consent.RefuseChannel("batch-a", "sms")})
		if errs[0] != nil || again[0].Receipt != nil || errs[1] != nil || again[1].Receipt != nil {
			t.Fatalf("no-ops in a batch: receipts %v %v errs %v", again[0].Receipt, again[1].Receipt, errs)
		}
		if t2, _ := s.Tail(ctx, store.ShardOf("batch-a", s.Shards())); t2 != tail {
			t.Fatalf("a batch of no-ops moved the changelog from %s to %s", tail, t2)
		}
	})
}

// content is a record without what a store assigns or keys per write.
func content(r consent.Record) consent.Record {
	r.Number, r.LastHash, r.HeadMAC, r.Purged = 0, "", "", consent.Anchor{}
	return r
}

func sameSentinel(a, b error) bool {
	for _, s := range []error{consent.ErrInvalidUserID, consent.ErrUnknownChannel, tags.ErrSuppressed, tags.ErrInvalidTag, consent.ErrConsentRequired, consent.ErrForbidden, consent.ErrInvalidChange, store.ErrUnavailable} {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return true
}

// checkEvents checks that u's changelog events are want's changes, in
// order, each with its record after and the record before it (the
// previous change's record; the empty record first) equal as encoded.
func checkEvents(tb testing.TB, s store.Store, u string, want []store.Applied) {
	tb.Helper()
	evs := eventsOf(mustReadAll(tb, s, store.ShardOf(u, s.Shards())), u)
	if len(evs) != len(want) {
		tb.Fatalf("%s: %d events, want %d", u, len(evs), len(want))
	}
	prev := consent.NewRecord(u)
	for i, ev := range evs {
		if ev.Record == nil || ev.Prev == nil {
			tb.Fatalf("%s event %d: record %v prev %v", u, i, ev.Record != nil, ev.Prev != nil)
		}
		checkEqual(tb, fmt.Sprintf("%s event %d's Record", u, i), *ev.Record, want[i].Record)
		p := prev
		if i > 0 {
			p.Number = want[i].Record.Number
		}
		if i == 0 {
			p.Number = ev.Prev.Number
		}
		checkEqual(tb, fmt.Sprintf("%s event %d's Prev", u, i), *ev.Prev, p)
		prev = want[i].Record
	}
}

// writeHistory is a random history of changes to user u with 20 tags and
// every kind of change (a suppressed inference and no-ops among them).
func writeHistory(u string, seed uint64) []consent.Change {
	r := rand.New(rand.NewPCG(seed, 7))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []consent.Change
	add := func(ch consent.Change) {
		at = at.Add(time.Duration(1+r.IntN(90)) * time.Minute)
		ch.At = at
		out = append(out, ch)
	}
	tag := func(i int) tags.Tag { return tags.Tag(fmt.Sprintf("interest:t%02d", i)) }
	for i := range 20 {
		if i%3 == 0 {
			add(consent.DeclareTag(u, tag(i)))
		} else {
			add(consent.InferTag(u, tag(i)))
		}
	}
	for range 40 {
		switch r.IntN(11) {
		case 0:
			add(consent.SetPersonalization(u, r.IntN(2) == 0))
		case 1:
			add(consent.RefuseChannel(u, "sms"))
		case 2:
			add(consent.AllowChannel(u, "sms"))
		case 3:
			add(consent.DeleteTag(u, tag(r.IntN(20))))
		case 4:
			add(consent.InferTag(u, tag(r.IntN(24)))) // maybe suppressed
		case 5:
			add(consent.RedeclareTag(u, tag(r.IntN(20))))
		case 6:
			add(consent.CorrectTag(u, tag(r.IntN(20)), tag(20+r.IntN(4))))
		case 7:
			add(consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePersonalization))
		case 8:
			add(consent.WithdrawSensitive(u, tags.MedicalHealth))
		case 9:
			add(consent.Restrict(u))
		default:
			add(consent.Unrestrict(u))
		}
	}
	return out
}
