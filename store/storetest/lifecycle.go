package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

func testSuppression(t *testing.T, newStore newStoreFunc) {
	parallel(t, "a deleted tag stays deleted until the user declares it", newStore, func(t *testing.T, s store.Store) {
		const u = "supp-user"
		check := func(t *testing.T, step string, wantHas bool, wantSrc tags.Source, wantSuppressed bool) {
			t.Helper()
			r := mustGet(t, s, u)
			e, has := r.Tags.Has(tagSki)
			if has != wantHas || has && e.Source != wantSrc || r.Tags.IsSuppressed(tagSki) != wantSuppressed {
				t.Fatalf("after %s: has=%t source=%q suppressed=%t, want has=%t source=%q suppressed=%t (tags %s)",
					step, has, e.Source, r.Tags.IsSuppressed(tagSki), wantHas, wantSrc, wantSuppressed, show(r.Tags))
			}
		}
		rejected := func(t *testing.T, step string, ch consent.Change) {
			t.Helper()
			before := takeSnapshot(t, s, u)
			_, err := s.Apply(t.Context(), ch)
			checkFieldErr(t, step, err, tags.ErrSuppressed)
			checkUnchanged(t, before, takeSnapshot(t, s, u))
		}
		noop := func(t *testing.T, step string, ch consent.Change) {
			t.Helper()
			if a := mustApply(t, s, ch); a.Receipt != nil {
				t.Errorf("%s: got receipt %s, want a no-op", step, show(a.Receipt))
			}
		}

		mustApplyEffective(t, s, consent.InferTag(u, tagSki))
		check(t, "infer", true, tags.Inferred, false)
		mustApplyEffective(t, s, consent.DeleteTag(u, tagSki))
		check(t, "delete", false, "", true)
		rejected(t, "infer after delete", consent.InferTag(u, tagSki))
		rejected(t, "admin infers after delete", consent.InferTag(u, tagSki).By(consent.ActorAdmin, consent.SurfaceAdminConsole))
		noop(t, "delete again", consent.DeleteTag(u, tagSki))
		check(t, "delete again", false, "", true)
		rejected(t, "a plain declaration after delete", consent.DeclareTag(u, tagSki))
		mustApplyEffective(t, s, consent.RedeclareTag(u, tagSki))
		check(t, "user re-declares", true, tags.Declared, false)
		noop(t, "infer after the user declared", consent.InferTag(u, tagSki))
		check(t, "infer after the user declared", true, tags.Declared, false)
		mustApplyEffective(t, s, consent.DeleteTag(u, tagSki))
		check(t, "delete the declared tag", false, "", true)
		rejected(t, "infer after the second delete", consent.InferTag(u, tagSki))

		mustApplyEffective(t, s, consent.DeleteTag(u, tagGolf))
		if r := mustGet(t, s, u); !r.Tags.IsSuppressed(tagGolf) {
			t.Errorf("deleting a tag never had: not suppressed (tags %s)", show(r.Tags))
		}
		rejected(t, "infer a tag deleted before it existed", consent.InferTag(u, tagGolf))
		rs := mustReceipts(t, s, u)
		mustVerify(t, "Receipts", rs)
		if got, want := len(rs), 5; got != want {
			t.Errorf("got %d receipts, want %d (one per effective change)", got, want)
		}
	})
}

func testErase(t *testing.T, newStore newStoreFunc) {
	parallel(t, "erase keeps suppressions and receipts", newStore, func(t *testing.T, s store.Store) {
		const u = "erase-user"
		religionTag := tags.Tag("religion:zen")
		for _, ch := range []consent.Change{
			consent.DeclareTag(u, tagSki),
			consent.InferTag(u, tagGolf),
			consent.DeleteTag(u, tagTennis),
			consent.RefuseChannel(u, "sms"),
			consent.GrantSensitive(u, tags.Religion, consent.PurposePersonalization),
			consent.DeclareTag(u, religionTag),
			consent.SetPersonalization(u, false),
		} {
			mustApplyEffective(t, s, ch)
		}
		before := mustReceipts(t, s, u)
		checkExport(t, s, u)

		a := mustApplyEffective(t, s, consent.Erase(u))
		rec := mustGet(t, s, u)
		checkEqual(t, "Get after Erase", rec, a.Record)
		checkEqual(t, "State after Erase", rec.State, consent.State{Erased: true})
		if len(rec.Tags.Entries) != 0 {
			t.Errorf("tags after Erase = %s, want none", show(rec.Tags.Entries))
		}
		var suppressed []tags.Tag
		for _, p := range rec.Tags.Suppressed {
			suppressed = append(suppressed, p.Tag)
		}
		want := []tags.Tag{tagGolf, tagSki, tagTennis, religionTag}
		slices.Sort(want)
		checkEqual(t, "suppressed tags after Erase", suppressed, want)
		rs := mustReceipts(t, s, u)
		checkEqual(t, "Receipts after Erase", rs, append(before[:len(before):len(before)], *a.Receipt))
		mustVerify(t, "Receipts after Erase", rs)
		checkExport(t, s, u)
		set := mustSettings(t, s)
		if d := consent.Evaluate(rec.State, rec.Tags, &set); d.Personalized || d.Reason != consent.ReasonErased {
			t.Errorf("Evaluate after Erase = %s, want not personalized, reason erased", show(d))
		}

		for _, c := range []struct {
			name string
			ch   consent.Change
		}{
			{"system infers a tag", consent.InferTag(u, "interest:judo")},
			{"system sets minor", consent.SetMinor(u, true)},
			{"admin refuses a channel", consent.RefuseChannel(u, "push").By(consent.ActorAdmin, consent.SurfaceAdminConsole)},
			{"admin deletes a tag", consent.DeleteTag(u, "interest:judo").By(consent.ActorAdmin, consent.SurfaceAdminConsole)},
		} {
			t.Run(c.name, func(t *testing.T) {
				snap := takeSnapshot(t, s, u)
				_, err := s.Apply(t.Context(), c.ch)
				checkFieldErr(t, "Apply("+describe(c.ch)+") on an erased user", err, consent.ErrForbidden)
				checkUnchanged(t, snap, takeSnapshot(t, s, u))
			})
		}
		for _, again := range []consent.Change{consent.Erase(u), consent.Erase(u).By(consent.ActorAdmin, consent.SurfaceAdminConsole)} {
			snap := takeSnapshot(t, s, u)
			if a := mustApply(t, s, again); a.Receipt != nil {
				t.Errorf("%s erasing again: got receipt %s, want a no-op", again.Actor, show(a.Receipt))
			}
			checkUnchanged(t, snap, takeSnapshot(t, s, u))
		}

		back := mustApplyEffective(t, s, consent.RedeclareTag(u, tagSki))
		rec = mustGet(t, s, u)
		checkEqual(t, "Get after the user came back", rec, back.Record)
		if rec.State.Erased || rec.Version != a.Record.Version+1 {
			t.Errorf("after the user's own change: erased=%t version=%d, want false and %d", rec.State.Erased, rec.Version, a.Record.Version+1)
		}
		if e, ok := rec.Tags.Has(tagSki); !ok || e.Source != tags.Declared || rec.Tags.IsSuppressed(tagSki) {
			t.Errorf("after the user declared %s again: tags %s, want it declared and not suppressed", tagSki, show(rec.Tags))
		}
		if !rec.Tags.IsSuppressed(tagGolf) {
			t.Errorf("after the user came back: %s no longer suppressed (tags %s)", tagGolf, show(rec.Tags))
		}
		_, err := s.Apply(t.Context(), consent.InferTag(u, tagGolf))
		checkFieldErr(t, "inferring a tag erased with the user", err, tags.ErrSuppressed)
		mustVerify(t, "Receipts after the user came back", mustReceipts(t, s, u))
		checkExport(t, s, u)
	})
}

// checkExport checks that store.ExportUser shows the record and receipts.
func checkExport(tb testing.TB, s store.Store, userID string) {
	tb.Helper()
	exp, err := store.ExportUser(tb.Context(), s, userID)
	if err != nil {
		tb.Fatalf("ExportUser(%q): %v", userID, err)
	}
	rec, _ := getRecord(tb, s, userID)
	rs := mustReceipts(tb, s, userID)
	if rs == nil {
		rs = []consent.Receipt{}
	}
	checkEqual(tb, "ExportUser", exp, store.Export{Record: rec, Receipts: rs})
}

func testNotFound(t *testing.T, newStore newStoreFunc) {
	parallel(t, "never-seen user", newStore, func(t *testing.T, s store.Store) {
		seed(t, s)
		r, err := s.Get(t.Context(), nobody)
		checkErr(t, "Get of a never-seen user", err, store.ErrNotFound)
		checkEqual(t, "Get of a never-seen user", r, consent.NewRecord(nobody))
		rs, err := s.Receipts(t.Context(), nobody)
		if err != nil || len(rs) != 0 {
			t.Errorf("Receipts of a never-seen user = %s, %v; want none, nil", show(rs), err)
		}
		checkExport(t, s, nobody)
	})
	parallel(t, "invalid user ID", newStore, func(t *testing.T, s store.Store) {
		for _, id := range []string{"", "bad user", "user{1}"} {
			_, err := s.Get(t.Context(), id)
			checkFieldErr(t, "Get("+string(encode(id))+")", err, consent.ErrInvalidUserID)
			if errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%q): error %v wraps store.ErrNotFound, want only consent.ErrInvalidUserID", id, err)
			}
			_, err = s.Receipts(t.Context(), id)
			checkFieldErr(t, "Receipts("+string(encode(id))+")", err, consent.ErrInvalidUserID)
		}
	})
}
