package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

func mustCount(t *testing.T, c *sdk.Client, seg, ch string, targeted bool) uint64 {
	t.Helper()
	a, err := c.Audience(context.Background(), seg, ch, targeted)
	if err != nil {
		t.Fatalf("Audience(%q, %s): %v", seg, ch, err)
	}
	return a.Count()
}

func TestAudience(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			ctx := context.Background()
			// Users before the client starts are found by the initial build.
			for i := 0; i < 30; i++ {
				if _, err := st.Apply(ctx, consent.DeclareTag(fmt.Sprintf("a%d", i), "interest:ski")); err != nil {
					t.Fatal(err)
				}
			}
			c := newClient(t, st, sdk.Config{Audiences: true})
			if n := mustCount(t, c, "interest:ski", "push", true); n != 30 {
				t.Fatalf("count at start = %d, want 30", n)
			}
			// Changes after it follow through the changelog.
			mustApply(t, c, consent.SetPersonalization("a0", false))
			mustApply(t, c, consent.RefuseChannel("a1", "sms"))
			mustApply(t, c, consent.DeleteTag("a2", "interest:ski"))
			eventually(t, time.Second, "opt-out reaching the index", func() bool { return mustCount(t, c, "interest:ski", "push", true) == 28 })
			if n := mustCount(t, c, "interest:ski", "sms", true); n != 27 {
				t.Fatalf("targeted sms audience = %d, want 27 (one opted out, one refused sms, one deleted the tag)", n)
			}
			if n := mustCount(t, c, "*", "push", false); n != 30 {
				t.Fatalf("untargeted push to everyone = %d, want 30 (the opt-out does not block untargeted pushes)", n)
			}
			if n := mustCount(t, c, "*", "push", true); n != 29 {
				t.Fatalf("targeted push to everyone = %d, want 29", n)
			}
			a, err := c.Audience(ctx, "interest:ski & !refused:sms", "push", true)
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			var cur uint32
			for {
				ids, next := a.Page(cur, 10)
				all = append(all, ids...)
				if next == 0 {
					break
				}
				cur = next
			}
			if len(all) != 27 || uint64(len(all)) != a.Count() {
				t.Fatalf("paged %d users (count %d), want 27", len(all), a.Count())
			}
			for _, id := range all {
				if id == "a0" || id == "a1" || id == "a2" {
					t.Fatalf("audience contains %s", id)
				}
			}
			if _, err := c.Audience(ctx, "interest:ski &", "push", true); !errors.Is(err, tags.ErrInvalidSegment) {
				t.Fatalf("bad segment: %v, want ErrInvalidSegment", err)
			}
			if _, err := c.Audience(ctx, "*", "fax", true); !errors.Is(err, index.ErrUnknownChannel) {
				t.Fatalf("unknown channel: %v, want ErrUnknownChannel", err)
			}
			// The kill switch empties every audience at once.
			set := c.Settings()
			set.Suspended = true
			if _, _, err := c.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
				t.Fatal(err)
			}
			if n := mustCount(t, c, "*", "push", false); n != 0 {
				t.Fatalf("audience while suspended = %d, want 0", n)
			}
		})
	}
}

// A second instance starts from the first one's checkpoint and replays
// what came after it.
func TestAudienceCheckpoint(t *testing.T) {
	rc := redistest.Client(t)
	p := redistest.Prefix(t, rc)
	ctx := context.Background()
	a := newClient(t, redisStore(t, rc, p, rs.Options{}), sdk.Config{Audiences: true})
	for i := 0; i < 20; i++ {
		mustApply(t, a, consent.InferTag(fmt.Sprintf("c%d", i), "region:sh"))
	}
	eventually(t, time.Second, "index following", func() bool { return mustCount(t, a, "region:sh", "push", true) == 20 })
	if err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 25; i++ {
		mustApply(t, a, consent.InferTag(fmt.Sprintf("c%d", i), "region:sh"))
	}
	b := newClient(t, redisStore(t, rc, p, rs.Options{}), sdk.Config{Audiences: true})
	if n := mustCount(t, b, "region:sh", "push", true); n != 25 {
		t.Fatalf("instance started from the checkpoint counts %d, want 25", n)
	}
}

// With Redis gone the index cannot be confirmed current: no audience.
func TestAudienceFailsClosed(t *testing.T) {
	srv := redistest.StartServer(t)
	rc := srv.Client(&goredis.Options{MaxRetries: -1, DialTimeout: 100 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	c := newClient(t, redisStore(t, rc, "rg", rs.Options{}), sdk.Config{Audiences: true, Lease: 300 * time.Millisecond})
	mustApply(t, c, consent.DeclareTag("z", "interest:ski"))
	srv.Stop()
	eventually(t, 2*time.Second, "audience refused", func() bool {
		_, err := c.Audience(context.Background(), "interest:ski", "push", true)
		return errors.Is(err, index.ErrUnverified)
	})
}
