package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

func testRequestCounts(t *testing.T, newStore newStoreFunc) {
	parallel(t, "counts per user and class in the window; erasure drops them", newStore, func(t *testing.T, s store.Store) {
		rc, ok := s.(store.RequestCounter)
		if !ok {
			t.Skip("store has no RequestCounter ability")
		}
		const u, other = "counted-user", "counted-other"
		day := 24 * time.Hour
		t0 := time.Now().UTC().Truncate(time.Second)
		count := func(user, class string, at time.Time) int {
			t.Helper()
			n, err := rc.CountRequest(t.Context(), user, class, at, 30*day)
			if err != nil {
				t.Fatalf("CountRequest(%s, %s): %v", user, class, err)
			}
			return n
		}
		for i := 1; i <= 3; i++ {
			if n := count(u, "copy", t0.Add(time.Duration(i)*day)); n != i {
				t.Errorf("copy request %d counted %d", i, n)
			}
		}
		if n := count(u, "access", t0.Add(3*day)); n != 1 {
			t.Errorf("another class counted %d, want 1", n)
		}
		if n := count(other, "copy", t0.Add(3*day)); n != 1 {
			t.Errorf("another user counted %d, want 1", n)
		}
		// Just over 30 days after the first: it left the window.
		if n := count(u, "copy", t0.Add(31*day+time.Hour)); n != 3 {
			t.Errorf("after the first left the window: %d, want 3", n)
		}
		for _, c := range []struct{ user, class string }{{"", "copy"}, {"bad user", "copy"}, {u, ""}, {u, "Copy"}, {u, "a b"}} {
			if _, err := rc.CountRequest(t.Context(), c.user, c.class, t0, day); !errors.Is(err, consent.ErrInvalidUserID) && !errors.Is(err, consent.ErrInvalidChange) {
				t.Errorf("CountRequest(%q, %q) = %v, want a validation error", c.user, c.class, err)
			}
		}
		mustApplyEffective(t, s, consent.DeclareTag(u, tagSki))
		mustApplyEffective(t, s, consent.Erase(u))
		if n := count(u, "copy", t0.Add(33*day)); n != 1 {
			t.Errorf("after erasure the count is %d, want 1 (the erased user's counts dropped)", n)
		}
		if n := count(other, "copy", t0.Add(4*day)); n != 2 {
			t.Errorf("the other user's count after the erasure: %d, want 2", n)
		}
	})
}
