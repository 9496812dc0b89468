package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// testKeysAndRights checks the KeyStore and RightsLog abilities when the
// store has them, and skips, with the reason, those it lacks.
func testKeysAndRights(t *testing.T, newStore newStoreFunc) {
	parallel(t, "keys", newStore, func(t *testing.T, s store.Store) {
		ks, ok := s.(store.KeyStore)
		if !ok {
			t.Skip("the store does not implement store.KeyStore")
		}
		testKeys(t, ks)
	})
	parallel(t, "rights", newStore, func(t *testing.T, s store.Store) {
		rl, ok := s.(store.RightsLog)
		if !ok {
			t.Skip("the store does not implement store.RightsLog")
		}
		testRights(t, rl)
	})
	parallel(t, "closed", newStore, func(t *testing.T, s store.Store) {
		ks, hasKeys := s.(store.KeyStore)
		rl, hasRights := s.(store.RightsLog)
		if !hasKeys && !hasRights {
			t.Skip("the store implements neither store.KeyStore nor store.RightsLog")
		}
		ctx := t.Context()
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if hasKeys {
			checkErr(t, "PutKey after Close", ks.PutKey(ctx, apiKey("k1", "admin")), store.ErrClosed)
			_, err := ks.GetKey(ctx, "k1")
			checkErr(t, "GetKey after Close", err, store.ErrClosed)
			_, err = ks.ListKeys(ctx)
			checkErr(t, "ListKeys after Close", err, store.ErrClosed)
		}
		if hasRights {
			r := rightsRequest("access", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			checkErr(t, "LogRightsRequest after Close", rl.LogRightsRequest(ctx, r), store.ErrClosed)
			_, err := rl.RightsRequests(ctx, time.Time{}, time.Now())
			checkErr(t, "RightsRequests after Close", err, store.ErrClosed)
		}
	})
}

// apiKey returns a key with every field set but RevokedAt.
func apiKey(id, role string) store.APIKey {
	return store.APIKey{
		ID:        id,
		Role:      role,
		Hash:      strings.Repeat("ab", 32),
		Name:      "key " + id,
		CreatedAt: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC),
	}
}

func mustListKeys(tb testing.TB, ks store.KeyStore) []store.APIKey {
	tb.Helper()
	list, err := ks.ListKeys(tb.Context())
	if err != nil {
		tb.Fatalf("ListKeys: %v", err)
	}
	return nilIfEmpty(list)
}

func testKeys(t *testing.T, ks store.KeyStore) {
	ctx := t.Context()
	if _, err := ks.GetKey(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetKey of a key never stored: %v, want an error wrapping store.ErrNotFound", err)
	}
	if list := mustListKeys(t, ks); len(list) != 0 {
		t.Fatalf("ListKeys of a new store = %s, want none", show(list))
	}

	// Round trip.
	k1 := apiKey("k1", "admin")
	if err := ks.PutKey(ctx, k1); err != nil {
		t.Fatalf("PutKey(%s): %v", show(k1), err)
	}
	got, err := ks.GetKey(ctx, "k1")
	if err != nil {
		t.Fatalf("GetKey(k1): %v", err)
	}
	checkEqual(t, "GetKey(k1)", got, k1)
	if got.Revoked() {
		t.Errorf("GetKey(k1).Revoked() = true for a key never revoked")
	}

	// Replace: revoke k1 and rename it.
	k1.RevokedAt = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	k1.Name = "revoked"
	if err := ks.PutKey(ctx, k1); err != nil {
		t.Fatalf("PutKey(revoked k1): %v", err)
	}
	got, err = ks.GetKey(ctx, "k1")
	if err != nil {
		t.Fatalf("GetKey(k1) after replacing it: %v", err)
	}
	checkEqual(t, "GetKey(k1) after replacing it", got, k1)
	if !got.Revoked() {
		t.Errorf("GetKey(k1).Revoked() = false after revoking it")
	}

	// Sorted list with the revoked key; the longest valid ID is accepted.
	long := strings.Repeat("z9", 32)
	a0, zz, lk := apiKey("a0", "reader"), apiKey("zz9", "writer"), apiKey(long, "reader")
	for _, k := range []store.APIKey{zz, lk, a0} {
		if err := ks.PutKey(ctx, k); err != nil {
			t.Fatalf("PutKey(%q): %v", k.ID, err)
		}
	}
	want := []store.APIKey{a0, k1, lk, zz}
	checkEqual(t, "ListKeys", mustListKeys(t, ks), want)

	// Invalid keys are rejected and change nothing.
	bad := []store.APIKey{
		apiKey("", "admin"),
		apiKey("UPPER", "admin"),
		apiKey("has-dash", "admin"),
		apiKey("with space", "admin"),
		apiKey("caf\u00e9", "admin"),
		apiKey(strings.Repeat("a", 65), "admin"),
		apiKey("norole", ""),
	}
	for _, k := range bad {
		checkFieldErr(t, fmt.Sprintf("PutKey(id %q, role %q)", k.ID, k.Role), ks.PutKey(ctx, k), consent.ErrInvalidChange)
	}
	checkEqual(t, "ListKeys after invalid PutKeys", mustListKeys(t, ks), want)
	if _, err := ks.GetKey(ctx, "norole"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey(norole) after an invalid PutKey: %v, want an error wrapping store.ErrNotFound", err)
	}
	_, err = ks.GetKey(ctx, "Bad ID")
	checkFieldErr(t, `GetKey("Bad ID")`, err, consent.ErrInvalidChange)
}

// rightsRequest returns a fulfilled request of kind received at rec and
// handled a second later.
func rightsRequest(kind string, rec time.Time) store.RightsRequest {
	return store.RightsRequest{Kind: kind, Received: rec, Handled: rec.Add(time.Second), Outcome: "fulfilled", Status: 200}
}

func mustRights(tb testing.TB, rl store.RightsLog, from, to time.Time) []store.RightsRequest {
	tb.Helper()
	rs, err := rl.RightsRequests(tb.Context(), from, to)
	if err != nil {
		tb.Fatalf("RightsRequests(%v, %v): %v", from, to, err)
	}
	return nilIfEmpty(rs)
}

func testRights(t *testing.T, rl store.RightsLog) {
	ctx := t.Context()
	utc := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, time.UTC) }
	y2025, y2026, y2027, y2028 := utc(2025, 1, 1, 0, 0), utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0), utc(2028, 1, 1, 0, 0)
	if got := mustRights(t, rl, y2025, y2028); len(got) != 0 {
		t.Fatalf("RightsRequests of a new store = %s, want none", show(got))
	}

	lastOf2025 := rightsRequest("access", utc(2025, 12, 31, 23, 59))
	firstOf2026 := rightsRequest("delete", utc(2026, 1, 1, 0, 1))
	june := rightsRequest("portability", utc(2026, 6, 1, 12, 0))
	june.Outcome, june.Status = "failed", 503
	march := rightsRequest("refuse_push", utc(2026, 3, 1, 12, 0)) // logged after june
	march.Outcome, march.Status = "rejected", 400
	// Received in another time zone: its UTC year (2027) decides.
	newYear := rightsRequest("erase", time.Date(2026, 12, 31, 20, 0, 0, 0, time.FixedZone("UTC-4", -4*3600)))
	tie := rightsRequest("withdraw", firstOf2026.Received) // same time, logged later
	for _, r := range []store.RightsRequest{lastOf2025, firstOf2026, june, march, newYear, tie} {
		if err := rl.LogRightsRequest(ctx, r); err != nil {
			t.Fatalf("LogRightsRequest(%s): %v", show(r), err)
		}
	}
	all := []store.RightsRequest{lastOf2025, firstOf2026, tie, march, june, newYear}
	checkEqual(t, "RightsRequests(2025..2028), oldest first", mustRights(t, rl, y2025, y2028), all)
	checkEqual(t, "RightsRequests(2026 only)", mustRights(t, rl, y2026, y2027), []store.RightsRequest{firstOf2026, tie, march, june})
	checkEqual(t, "RightsRequests(2025 only)", mustRights(t, rl, y2025, y2026), []store.RightsRequest{lastOf2025})
	checkEqual(t, "RightsRequests(2027 only)", mustRights(t, rl, y2027, y2028), []store.RightsRequest{newYear})
	// [from, to): from is included, to is not.
	checkEqual(t, "RightsRequests(from lastOf2025, to firstOf2026)",
		mustRights(t, rl, lastOf2025.Received, firstOf2026.Received), []store.RightsRequest{lastOf2025})
	checkEqual(t, "RightsRequests(March only)", mustRights(t, rl, utc(2026, 3, 1, 0, 0), utc(2026, 4, 1, 0, 0)), []store.RightsRequest{march})
	if got := mustRights(t, rl, y2027, y2026); len(got) != 0 {
		t.Errorf("RightsRequests with to before from = %s, want none", show(got))
	}
	if got := mustRights(t, rl, y2026, y2026); len(got) != 0 {
		t.Errorf("RightsRequests of an empty range = %s, want none", show(got))
	}

	// Invalid requests are rejected and log nothing.
	in2026 := utc(2026, 5, 5, 5, 5)
	badKind, badKind2, noKind := rightsRequest("Access", in2026), rightsRequest("refuse-push", in2026), rightsRequest("", in2026)
	badOutcome, noOutcome := rightsRequest("access", in2026), rightsRequest("access", in2026)
	badOutcome.Outcome, noOutcome.Outcome = "ok", ""
	noTime := rightsRequest("access", time.Time{})
	for _, r := range []store.RightsRequest{badKind, badKind2, noKind, badOutcome, noOutcome, noTime} {
		checkFieldErr(t, fmt.Sprintf("LogRightsRequest(kind %q, outcome %q, received %v)", r.Kind, r.Outcome, r.Received), rl.LogRightsRequest(ctx, r), consent.ErrInvalidChange)
	}
	checkEqual(t, "RightsRequests after invalid requests", mustRights(t, rl, time.Time{}, utc(9999, 1, 1, 0, 0)), all)
}
