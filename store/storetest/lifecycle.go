package storetest

import (
	"errors"
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
	if rec.State.Erased {
		set := mustSettings(tb, s)
		checkEqual(tb, "ExportUser of an erased user", exp, store.Export{Record: rec, Receipts: []consent.Receipt{}, Erasure: store.Certify(rec, rs, set.RetentionOrDefault())})
		return
	}
	want := store.Export{Record: rec, Receipts: rs}
	if l, ok := s.(store.Ledger); ok {
		led, err := l.UserLedger(tb.Context(), userID)
		if err != nil {
			tb.Fatalf("UserLedger(%q): %v", userID, err)
		}
		if len(led) > 0 {
			want.Ledger = led
		}
	}
	checkEqual(tb, "ExportUser", exp, want)
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
