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

// Markers of the erased user's personal content: no byte string of the
// store may hold one after the erasure.
var erasureMarkers = []string{
	"diabetesqz",         // a sensitive tag's value
	"skiqz",              // a plain tag's value
	"golfqz",             // a deleted (suppressed) tag's value
	"reason-marker-qz",   // a change's free-text reason
	"ref-marker-qz",      // a change's evidence reference
	"event-marker-qz",    // an outcome event's content
	"medical_health:dia", // the category with the tag
}

// eraseSetup gives user u sensitive consent, tags, a deleted tag, a refused
// channel and outcome events, all carrying markers.
func eraseSetup(t *testing.T, s store.Store, u string) {
	t.Helper()
	mustUpdateSettings(t, s, func(set *consent.Settings) { set.Policies["medical_treatment"] = 1 })
	for _, ch := range []consent.Change{
		consent.GrantSensitive(u, tags.MedicalHealth, "medical_treatment").Because("reason-marker-qz"),
		consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePersonalization),
		consent.DeclareTag(u, "medical_health:diabetesqz"),
		consent.DeclareTag(u, "interest:skiqz"),
		consent.InferTag(u, "interest:golfqz"),
		consent.DeleteTag(u, "interest:golfqz"),
		consent.RefuseChannel(u, "sms"),
		consent.SetMinor(u, true),
		consent.GuardianConsent(u, "ref-marker-qz"),
	} {
		mustApplyEffective(t, s, ch)
	}
	if ol, ok := s.(store.OutcomeLog); ok {
		ev := []byte(fmt.Sprintf(`{"user":%q,"item":"event-marker-qz","price":9.5}`, u))
		if err := ol.AppendOutcomes(t.Context(), []string{u, u}, [][]byte{ev, ev}); err != nil {
			t.Fatalf("AppendOutcomes: %v", err)
		}
	}
}

// everything returns every byte string the store gives back about anything
// through its interfaces, plus its raw content when the run has WithRaw.
func everything(t *testing.T, s store.Store, users ...string) []byte {
	t.Helper()
	ctx := context.Background()
	var b bytes.Buffer
	for _, u := range users {
		r, _ := s.Get(ctx, u)
		b.Write(encode(r))
		rs, err := s.Receipts(ctx, u)
		if err != nil {
			t.Fatalf("Receipts(%q): %v", u, err)
		}
		b.Write(encode(rs))
		exp, err := store.ExportUser(ctx, s, u)
		if err != nil {
			t.Fatalf("ExportUser(%q): %v", u, err)
		}
		b.Write(encode(exp))
	}
	for log := 0; log < s.Shards(); log++ {
		evs, err := s.ReadChangelog(ctx, log, "", 1000, 0)
		if err != nil && !errors.Is(err, store.ErrTrimmed) {
			t.Fatalf("ReadChangelog(%d): %v", log, err)
		}
		b.Write(encode(evs))
	}
	if ol, ok := s.(store.OutcomeLog); ok {
		if err := ol.ReadOutcomes(ctx, func(e []byte) error { b.Write(e); return nil }); err != nil {
			t.Fatalf("ReadOutcomes: %v", err)
		}
	}
	if raw, ok := raws.Load(s); ok {
		b.Write(raw.(func(testing.TB, store.Store) []byte)(t, s))
	}
	return b.Bytes()
}

func testErasure(t *testing.T, newStore newStoreFunc) {
	parallel(t, "nothing personal is left anywhere", newStore, func(t *testing.T, s store.Store) {
		const u, other = "erasure-user", "erasure-bystander"
		eraseSetup(t, s, u)
		mustApplyEffective(t, s, consent.DeclareTag(other, "interest:chess"))
		// The markers are there before: the scan can see them.
		all := everything(t, s, u, other)
		for _, m := range []string{"diabetesqz", "skiqz", "event-marker-qz"} {
			if !bytes.Contains(all, []byte(m)) {
				t.Fatalf("suite bug: %q not found before the erasure", m)
			}
		}
		before := mustReceipts(t, s, u)

		a := mustApplyEffective(t, s, consent.Erase(u).By(consent.ActorAdmin, consent.SurfaceAdminConsole).Because("reason-marker-qz"))
		if ol, ok := s.(store.OutcomeLog); ok {
			// Events that arrive after the erasure are not stored.
			late := []byte(fmt.Sprintf(`{"user":%q,"item":"event-marker-qz"}`, u))
			if err := ol.AppendOutcomes(t.Context(), []string{u}, [][]byte{late}); err != nil {
				t.Fatalf("AppendOutcomes after erase: %v", err)
			}
		}
		if c, ok := s.(interface{ Compact(context.Context) error }); ok {
			if err := c.Compact(t.Context()); err != nil {
				t.Fatalf("Compact: %v", err)
			}
		}
		all = everything(t, s, u, other)
		for _, m := range erasureMarkers {
			if i := bytes.Index(all, []byte(m)); i >= 0 {
				lo, hi := max(i-120, 0), min(i+120, len(all))
				t.Errorf("after Erase the store still holds %q: ...%q...", m, all[lo:hi])
			}
		}
		if !bytes.Contains(all, []byte("interest:chess")) {
			t.Errorf("the bystander's tag is gone too")
		}

		rec := mustGet(t, s, u)
		checkEqual(t, "State after Erase", rec.State, consent.State{Erased: true})
		checkEqual(t, "Tags after Erase", rec.Tags, tags.Set{})
		rs := mustReceipts(t, s, u)
		if len(rs) != len(before)+1 {
			t.Fatalf("%d receipts after Erase, want %d (all kept, redacted)", len(rs), len(before)+1)
		}
		for i, r := range rs {
			if !r.Redacted || r.Subject != "" || r.Old != "" || r.New != "" || r.Reason != "" || r.Ref != "" || r.Purpose != "" {
				t.Errorf("receipt %d after Erase = %s, want redacted", i, show(r))
			}
			if r.Hash != append(before, *a.Receipt)[i].Hash {
				t.Errorf("receipt %d changed its hash on redaction", i)
			}
		}
		mustVerifyUser(t, s, u, time.Now())
		checkExport(t, s, u)
		exp, _ := store.ExportUser(t.Context(), s, u)
		if exp.Erasure == nil || exp.Erasure.By != consent.ActorAdmin || !exp.Erasure.ErasedAt.Equal(a.Receipt.At) || exp.Erasure.ReceiptID != a.Receipt.ID || len(exp.Receipts) != 0 {
			t.Errorf("export after Erase = %s, want the certificate (admin, at the erase receipt's time) and no receipts", show(exp))
		}

		// The changelog: earlier entries are shredded, the erase entry is
		// the tombstone with no previous record.
		shard := store.ShardOf(u, s.Shards())
		evs, err := s.ReadChangelog(t.Context(), shard, "", 1000, 0)
		if err != nil {
			t.Fatalf("ReadChangelog: %v", err)
		}
		var mine []store.Event
		for _, ev := range evs {
			if ev.Record != nil && ev.Record.UserID == u {
				mine = append(mine, ev)
			}
		}
		if len(mine) != len(before)+1 {
			t.Fatalf("%d changelog entries of the user, want %d", len(mine), len(before)+1)
		}
		for i, ev := range mine[:len(mine)-1] {
			if !ev.Shredded || ev.Prev != nil || ev.Record.Version != uint64(i+1) || !ev.Receipt.Redacted || ev.Record.LastHash != ev.Receipt.Hash {
				t.Errorf("entry %d after Erase = %s, want shredded with version %d, no prev, a redacted receipt", i, show(ev), i+1)
			}
		}
		last := mine[len(mine)-1]
		if last.Shredded || last.Prev != nil || last.Record == nil || !last.Record.State.Erased || last.Record.Version != a.Record.Version {
			t.Errorf("erase entry = %s, want the tombstone, no prev", show(last))
		}

		// The tombstone refuses pipeline writes; narrowing changes nothing.
		snap := takeSnapshot(t, s, u)
		_, err = s.Apply(t.Context(), consent.InferTag(u, "interest:skiqz"))
		checkFieldErr(t, "InferTag on an erased user", err, consent.ErrForbidden)
		for _, ch := range []consent.Change{consent.SetMinor(u, true), consent.RefuseChannel(u, "push").By(consent.ActorAdmin, consent.SurfaceAdminConsole), consent.Erase(u)} {
			if a := mustApply(t, s, ch); a.Receipt != nil {
				t.Errorf("%s on an erased user: receipt %s, want a no-op", ch.Op, show(a.Receipt))
			}
		}
		checkUnchanged(t, snap, takeSnapshot(t, s, u))

		// The user may come back, from nothing.
		back := mustApplyEffective(t, s, consent.DeclareTag(u, "interest:chess"))
		if back.Record.State.Erased || len(back.Record.Tags.Entries) != 1 || back.Record.Version != a.Record.Version+1 {
			t.Errorf("after the user came back: %s", show(back.Record))
		}
		mustVerifyUser(t, s, u, time.Now())
		if exp, _ := store.ExportUser(t.Context(), s, u); exp.Erasure != nil || len(exp.Receipts) != len(before)+2 {
			t.Errorf("export after coming back: %s, want no certificate and every receipt", show(exp))
		}
	})
}

func testRestrict(t *testing.T, newStore newStoreFunc) {
	parallel(t, "storage only", newStore, func(t *testing.T, s store.Store) {
		const u = "restrict-user"
		mustApplyEffective(t, s, consent.DeclareTag(u, "interest:ski"))
		a := mustApplyEffective(t, s, consent.Restrict(u))
		if !a.Record.State.Restricted || a.Receipt.Op != consent.OpRestrict {
			t.Fatalf("Restrict: %s", show(a))
		}
		set := mustSettings(t, s)
		if d := consent.Evaluate(a.Record.State, a.Record.Tags, &set); d.Personalized || d.Reason != consent.ReasonRestricted {
			t.Errorf("Evaluate while restricted = %s", show(d))
		}
		_, err := s.Apply(t.Context(), consent.InferTag(u, "interest:golf"))
		checkFieldErr(t, "InferTag while restricted", err, consent.ErrInferenceRefused)
		if ol, ok := s.(store.OutcomeLog); ok {
			ev := []byte(`{"user":"restrict-user","item":"while-restricted"}`)
			if err := ol.AppendOutcomes(t.Context(), []string{u}, [][]byte{ev}); err != nil {
				t.Fatal(err)
			}
			n := 0
			if err := ol.ReadOutcomes(t.Context(), func(e []byte) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("ReadOutcomes while restricted gave %d events, want none", n)
			}
		}
		checkExport(t, s, u)
		if exp, _ := store.ExportUser(t.Context(), s, u); len(exp.Receipts) != 2 || exp.Erasure != nil {
			t.Errorf("export while restricted = %s, want the record and both receipts", show(exp))
		}
		lift := mustApplyEffective(t, s, consent.Unrestrict(u))
		if lift.Record.State.Restricted {
			t.Errorf("Unrestrict left the user restricted")
		}
		mustVerifyUser(t, s, u, time.Now())
	})
	parallel(t, "correct a tag", newStore, func(t *testing.T, s store.Store) {
		const u = "correct-user"
		mustApplyEffective(t, s, consent.InferTag(u, "region:sh"))
		a := mustApplyEffective(t, s, consent.CorrectTag(u, "region:sh", "region:bj"))
		if _, ok := a.Record.Tags.Has("region:bj"); !ok || !a.Record.Tags.IsSuppressed("region:sh") || len(mustReceipts(t, s, u)) != 2 {
			t.Errorf("after CorrectTag: %s, want region:bj declared, region:sh suppressed, one receipt more", show(a.Record))
		}
		_, err := s.Apply(t.Context(), consent.InferTag(u, "region:sh"))
		checkFieldErr(t, "inferring the corrected tag again", err, tags.ErrSuppressed)
	})
}

func testTruncation(t *testing.T, newStore newStoreFunc) {
	parallel(t, "anchors survive and verify", newStore, func(t *testing.T, s store.Store) {
		const u = "trunc-user"
		const year = 365 * 24 * time.Hour
		now := time.Now().UTC().Truncate(time.Second)
		for i, ch := range []consent.Change{
			consent.SetPersonalization(u, false), consent.RefuseChannel(u, "sms"),
			consent.SetPersonalization(u, true), consent.AllowChannel(u, "sms"),
		} {
			mustApplyEffective(t, s, at(ch, now.Add(-4*year+time.Duration(i)*time.Minute)))
		}
		if _, err := s.PurgeExpired(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		rec := mustGet(t, s, u)
		if len(mustReceipts(t, s, u)) != 0 || rec.Purged.Seq != 4 || rec.Purged.Hash != rec.LastHash {
			t.Fatalf("after purging every receipt: record %s", show(rec))
		}
		mustVerifyUser(t, s, u, now)
		// The anchor only holds past the retention: the same record read
		// as of a time before it ended does not verify.
		set := mustSettings(t, s)
		if err := consent.VerifyChain(nil, consent.HeadOf(rec, &set, now.Add(-2*year)), ChainKey); err == nil {
			t.Errorf("an anchor younger than the retention verifies")
		}
	})
}
