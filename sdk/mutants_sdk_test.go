package sdk_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// countingStore counts the user records read from the store. Embedding the
// interface hides the optional ones (batch reads, one read over every log),
// so every record read goes through Get.
type countingStore struct {
	store.Store
	gets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, userID string) (consent.Record, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, userID)
}

// Art. 51: the kill switch is checked before the cache and the store. While
// the service is suspended every answer is "suspended" and no user is read:
// not a cached one (whose view predates the switch), not one never seen
// (which would otherwise be a miss and a store read). Found by mutation
// testing (mutants/mutants.txt, sdk-view-kill-switch): with the check gone,
// Evaluate still says suspended, so only the reads show it.
func TestKillSwitchReadsNoUser(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := &countingStore{Store: b.open(t)}
			c := newClient(t, st, sdk.Config{Logger: quiet})
			ctx := context.Background()
			mustApply(t, c, consent.DeclareTag("lee", tags.MustParse("interest:ski")))
			if d := mustDecide(t, c, "lee"); !d.Personalized {
				t.Fatalf("before: %+v", d)
			}
			set := c.Settings()
			set.Suspended, set.SuspendReason = true, "regulator order"
			if _, _, err := c.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
				t.Fatal(err)
			}
			gets, misses := st.gets.Load(), c.Stats().Misses
			for _, u := range []string{"lee", "never-seen-1", "never-seen-2"} {
				if d := mustDecide(t, c, u); d.Personalized || d.Reason != consent.ReasonSuspended {
					t.Errorf("Decide(%s) while suspended: %+v, want suspended", u, d)
				}
				if ok, why, err := c.CanPush(ctx, u, "push", false); err != nil || ok || why != consent.ReasonSuspended {
					t.Errorf("CanPush(%s) while suspended: %t %s %v, want false suspended", u, ok, why, err)
				}
			}
			if n := st.gets.Load() - gets; n != 0 {
				t.Errorf("%d user records read while suspended; the kill switch answers before the store", n)
			}
			if n := c.Stats().Misses - misses; n != 0 {
				t.Errorf("%d cache misses while suspended; the kill switch answers before the cache", n)
			}
		})
	}
}
