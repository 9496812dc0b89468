package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// ledgerOf returns s's Ledger ability, or skips the test.
func ledgerOf(t *testing.T, s store.Store) store.Ledger {
	t.Helper()
	l, ok := s.(store.Ledger)
	if !ok {
		t.Skip("store has no Ledger ability")
	}
	return l
}

func scanAll(t *testing.T, l store.Ledger) []store.LedgerEntry {
	t.Helper()
	var out []store.LedgerEntry
	if err := l.ScanLedger(t.Context(), time.Time{}, time.Time{}, func(e store.LedgerEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("ScanLedger: %v", err)
	}
	return out
}

func exposure(u string, at time.Time, i int) store.LedgerEntry {
	var id consent.DecisionID
	id[0], id[15] = byte(i), byte(i>>8)
	return store.LedgerEntry{Kind: store.LedgerExposure, UserID: u, At: at, DecisionID: id, RecordVersion: uint64(i), SettingsVersion: 3,
		Reason: consent.ReasonPersonalized, Mode: store.ModePersonalized, Decided: true, DecidedAt: at.Add(-time.Millisecond), Surface: "sdk", Items: 10}
}

func push(u string, at time.Time) store.LedgerEntry {
	return store.LedgerEntry{Kind: store.LedgerPush, UserID: u, At: at, Reason: consent.ReasonAllowed, Mode: store.ModeAllowed,
		Channel: "sms", Targeted: true, Campaign: "spring-sale", Surface: "http", Tags: []tags.Tag{"interest:ski", "health:diabetes"}}
}

func provision(at time.Time, n int) store.LedgerEntry {
	return store.LedgerEntry{Kind: store.LedgerProvision, At: at, Recipient: "push-vendor", Purpose: "marketing",
		Segment: "interest:ski & !refused:sms", Channel: "sms", Targeted: true, Count: n}
}

// strip clears what the store sets, for comparing entries.
func strip(es []store.LedgerEntry) []store.LedgerEntry {
	out := make([]store.LedgerEntry, len(es))
	for i, e := range es {
		e.Logged = time.Time{}
		e.At, e.DecidedAt = e.At.UTC(), e.DecidedAt.UTC()
		out[i] = e
	}
	return out
}

// testLedger checks the Ledger ability when the store has it.
func testLedger(t *testing.T, newStore newStoreFunc) {
	parallel(t, "append, scan in order, per user", newStore, func(t *testing.T, s store.Store) {
		l := ledgerOf(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		if got := scanAll(t, l); len(got) != 0 {
			t.Fatalf("a new store's ledger has %d entries", len(got))
		}
		var want []store.LedgerEntry
		for i := 0; i < 30; i++ {
			want = append(want, exposure(fmt.Sprintf("led%d", i%5), now.Add(time.Duration(i)*time.Millisecond), i))
		}
		contra := exposure("led2", now, 99)
		contra.Contradicted, contra.Reason = true, consent.ReasonOptedOut
		want = append(want, push("led1", now), provision(now, 1234), contra)
		// Two appends: the second is received after the first.
		if err := l.AppendLedger(t.Context(), want[:20]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
		if err := l.AppendLedger(t.Context(), want[20:]); err != nil {
			t.Fatal(err)
		}
		got := scanAll(t, l)
		if len(got) != len(want) {
			t.Fatalf("scanned %d entries, appended %d", len(got), len(want))
		}
		for i := 1; i < len(got); i++ {
			if got[i].Logged.Before(got[i-1].Logged) {
				t.Fatalf("entry %d received %v, before entry %d (%v): not in order", i, got[i].Logged, i-1, got[i-1].Logged)
			}
		}
		for i := 0; i < 20; i++ {
			if !got[i].Logged.Before(got[len(got)-1].Logged) && !got[i].Logged.Equal(got[0].Logged) {
				t.Fatalf("first batch's entry %d not before the second batch", i)
			}
		}
		// Same entries, whatever the merge order across shards.
		key := func(e store.LedgerEntry) string { return string(encode(e)) }
		have := map[string]int{}
		for _, e := range strip(got) {
			have[key(e)]++
		}
		for _, e := range strip(want) {
			if have[key(e)] == 0 {
				t.Fatalf("entry %s not read back; read %s", show(e), show(strip(got)))
			}
			have[key(e)]--
		}
		mine, err := l.UserLedger(t.Context(), "led1")
		if err != nil {
			t.Fatal(err)
		}
		var wantMine []store.LedgerEntry
		for _, e := range want {
			if e.UserID == "led1" {
				wantMine = append(wantMine, e)
			}
		}
		checkEqual(t, "UserLedger(led1)", strip(mine), strip(wantMine))
		if none, err := l.UserLedger(t.Context(), "never-seen"); err != nil || len(none) != 0 {
			t.Errorf("UserLedger of a user never seen = %v, %v", none, err)
		}
		// A time range: nothing received before now-1h ... now-1m.
		n := 0
		if err := l.ScanLedger(t.Context(), now.Add(-time.Hour), now.Add(-time.Minute), func(store.LedgerEntry) error { n++; return nil }); err != nil || n != 0 {
			t.Errorf("ScanLedger over the past hour: %d entries, %v", n, err)
		}
		stop := errors.New("stop")
		n = 0
		if err := l.ScanLedger(t.Context(), time.Time{}, time.Time{}, func(store.LedgerEntry) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Errorf("ScanLedger with a failing fn: %v after %d, want stop after 1", err, n)
		}
	})
	parallel(t, "bad entries change nothing", newStore, func(t *testing.T, s store.Store) {
		l := ledgerOf(t, s)
		now := time.Now()
		good := exposure("ok-user", now, 1)
		bad := []store.LedgerEntry{
			{Kind: 0, UserID: "u", At: now},
			{Kind: store.LedgerExposure, UserID: "bad id", At: now},
			{Kind: store.LedgerExposure, UserID: "u"},
			{Kind: store.LedgerPush, UserID: "u", At: now},                                  // no channel
			{Kind: store.LedgerPush, UserID: "u", At: now, Channel: "SMS!"},                 // bad channel
			{Kind: store.LedgerPush, UserID: "u", At: now, Channel: "sms", Campaign: "a b"}, // bad campaign
			{Kind: store.LedgerExposure, UserID: "u", At: now, Mode: "sometimes"},
			{Kind: store.LedgerExposure, UserID: "u", At: now, Items: -1},
			{Kind: store.LedgerProvision, UserID: "u", At: now, Recipient: "r", Purpose: "p", Segment: "*"},
			{Kind: store.LedgerProvision, At: now, Purpose: "p", Segment: "*"},
			{Kind: store.LedgerProvision, At: now, Recipient: "r", Purpose: "p"},
			{Kind: store.LedgerPush, UserID: "u", At: now, Channel: "sms", Tags: []tags.Tag{"Not A Tag"}},
			{Kind: store.LedgerExposure, UserID: "u", At: now, Tags: make([]tags.Tag, store.MaxLedgerTags+1)},
			{Kind: store.LedgerPush, UserID: "u", At: now, Channel: "sms", Contradicted: true}, // only exposures contradict
			{Kind: store.LedgerProvision, At: now, Recipient: "r", Purpose: "p", Segment: "*", Tags: []tags.Tag{"interest:ski"}},
		}
		for i, b := range bad {
			if err := l.AppendLedger(t.Context(), []store.LedgerEntry{good, b}); !errors.Is(err, consent.ErrInvalidChange) && !errors.Is(err, consent.ErrInvalidUserID) {
				t.Errorf("bad entry %d %s: %v, want an invalid-input error", i, show(b), err)
			}
		}
		if got := scanAll(t, l); len(got) != 0 {
			t.Errorf("after rejected appends the ledger holds %d entries", len(got))
		}
		if err := l.AddLedgerDrops(t.Context(), 0, 1); err == nil {
			t.Errorf("AddLedgerDrops of kind 0: nil error")
		}
		for _, k := range []store.LedgerKind{store.LedgerExposure, store.LedgerExposure, store.LedgerPush} {
			if err := l.AddLedgerDrops(t.Context(), k, 5); err != nil {
				t.Fatal(err)
			}
		}
		d, err := l.LedgerDrops(t.Context())
		if err != nil || d[store.LedgerExposure] != 10 || d[store.LedgerPush] != 5 || d[store.LedgerProvision] != 0 {
			t.Errorf("LedgerDrops = %v, %v; want exposure 10, push 5", d, err)
		}
	})
	parallel(t, "retention keeps provisions three years", newStore, func(t *testing.T, s store.Store) {
		l := ledgerOf(t, s)
		now := time.Now().UTC()
		if err := l.AppendLedger(t.Context(), []store.LedgerEntry{exposure("ret-user", now, 1), push("ret-user", now), provision(now, 7)}); err != nil {
			t.Fatal(err)
		}
		// Past the ledger retention (180 days by default, shorter than any
		// store's), not past three years: only the provision stays.
		if _, err := s.PurgeExpired(t.Context(), now.Add(store.DefaultLedgerRetention+24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		got := scanAll(t, l)
		if len(got) != 1 || got[0].Kind != store.LedgerProvision || got[0].Count != 7 {
			t.Fatalf("after the ledger retention: %s, want only the provision", show(got))
		}
		// Just short of three years: still there.
		if _, err := s.PurgeExpired(t.Context(), now.Add(store.ProvisionRetention-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := scanAll(t, l); len(got) != 1 {
			t.Fatalf("a provision younger than 3 years was purged: %s", show(got))
		}
		if _, err := s.PurgeExpired(t.Context(), now.Add(store.ProvisionRetention+24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := scanAll(t, l); len(got) != 0 {
			t.Fatalf("a provision older than 3 years was kept: %s", show(got))
		}
	})
	parallel(t, "erase forgets the user", newStore, func(t *testing.T, s store.Store) {
		l := ledgerOf(t, s)
		// Two users with the same history, one with ledger entries: after
		// both are erased, the raw store names them equally often (the
		// ledger holds nothing that names the user).
		const a, b = "ledgererase-aaa", "ledgererase-bbb"
		now := time.Now().UTC()
		for _, u := range []string{a, b} {
			mustApplyEffective(t, s, consent.DeclareTag(u, "interest:ski"))
		}
		if err := l.AppendLedger(t.Context(), []store.LedgerEntry{exposure(a, now, 1), push(a, now), exposure("ledger-bystander", now, 2)}); err != nil {
			t.Fatal(err)
		}
		raw, hasRaw := raws.Load(s)
		count := func(u string) int {
			if !hasRaw {
				return 0
			}
			return bytes.Count(raw.(func(testing.TB, store.Store) []byte)(t, s), []byte(u))
		}
		if hasRaw && count(a) <= count(b) {
			t.Fatalf("suite bug: the raw store does not name %s more often than %s before the erasure", a, b)
		}
		for _, u := range []string{a, b} {
			mustApplyEffective(t, s, consent.Erase(u))
		}
		// Entries that arrive after the erasure name no one either.
		if err := l.AppendLedger(t.Context(), []store.LedgerEntry{push(a, now)}); err != nil {
			t.Fatal(err)
		}
		got := scanAll(t, l)
		if len(got) != 4 {
			t.Fatalf("after the erasure %d entries, want 4 (kept, naming no one)", len(got))
		}
		for _, e := range got {
			if e.UserID == a {
				t.Errorf("an entry still names the erased user: %s", show(e))
			}
		}
		if mine, err := l.UserLedger(t.Context(), a); err != nil || len(mine) != 0 {
			t.Errorf("UserLedger of the erased user = %s, %v", show(mine), err)
		}
		if by, err := l.UserLedger(t.Context(), "ledger-bystander"); err != nil || len(by) != 1 {
			t.Errorf("the bystander's entries: %s, %v", show(by), err)
		}
		if hasRaw {
			if ca, cb := count(a), count(b); ca != cb {
				t.Errorf("after the erasure the raw store names %s %d times, %s %d times: the ledger still names the user", a, ca, b, cb)
			}
		}
		if exp, err := store.ExportUser(context.Background(), s, a); err != nil || len(exp.Ledger) != 0 {
			t.Errorf("export after the erasure: %s, %v", show(exp), err)
		}
	})
	parallel(t, "a user's entries are in their export", newStore, func(t *testing.T, s store.Store) {
		l := ledgerOf(t, s)
		const u = "ledger-export"
		now := time.Now().UTC()
		mustApplyEffective(t, s, consent.DeclareTag(u, "interest:ski"))
		if err := l.AppendLedger(t.Context(), []store.LedgerEntry{exposure(u, now, 1), push(u, now)}); err != nil {
			t.Fatal(err)
		}
		checkExport(t, s, u)
		exp, err := store.ExportUser(t.Context(), s, u)
		if err != nil || len(exp.Ledger) != 2 || exp.Ledger[0].Kind != store.LedgerExposure || exp.Ledger[1].Channel != "sms" {
			t.Errorf("export: %s, %v; want the exposure and the push", show(exp.Ledger), err)
		}
	})
}
