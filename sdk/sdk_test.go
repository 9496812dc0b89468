package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

// backends are the stores every SDK behaviour test runs on.
var backends = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memory", func(t *testing.T) store.Store {
		s, err := memory.Open(context.Background(), memory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"redis", func(t *testing.T) store.Store { return redisStore(t, redistest.Client(t), "", rs.Options{}) }},
}

// redisStore opens a Store on c under prefix p (a fresh one when empty).
func redisStore(t *testing.T, c goredis.UniversalClient, p string, opts rs.Options) *rs.Store {
	t.Helper()
	if p == "" {
		p = redistest.Prefix(t, c)
	}
	opts.Prefix = p
	opts.Init = true
	s, err := rs.New(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newClient(t *testing.T, st store.Store, cfg sdk.Config) *sdk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := sdk.New(ctx, st, cfg)
	if err != nil {
		t.Fatalf("sdk.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("client not ready: %v", err)
	}
	return c
}

func mustDecide(t *testing.T, c *sdk.Client, user string) consent.Decision {
	t.Helper()
	d, err := c.Decide(context.Background(), user)
	if err != nil {
		t.Fatalf("Decide(%s): %v", user, err)
	}
	return d
}

func mustApply(t *testing.T, c *sdk.Client, ch consent.Change) store.Applied {
	t.Helper()
	a, err := c.Apply(context.Background(), ch)
	if err != nil {
		t.Fatalf("Apply(%s %s): %v", ch.Op, ch.UserID, err)
	}
	return a
}

// eventually polls cond every millisecond until it holds or d passes, and
// returns how long it took.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func TestReadYourWrites(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := newClient(t, b.open(t), sdk.Config{})
			if d := mustDecide(t, c, "alice"); !d.Personalized || d.Reason != consent.ReasonPersonalized {
				t.Fatalf("new user: %+v, want personalized", d)
			}
			mustApply(t, c, consent.DeclareTag("alice", "interest:ski"))
			if d := mustDecide(t, c, "alice"); len(d.Tags) != 1 || d.Tags[0] != "interest:ski" {
				t.Fatalf("after declaring a tag: tags %v, want [interest:ski]", d.Tags)
			}
			mustApply(t, c, consent.SetPersonalization("alice", false))
			d := mustDecide(t, c, "alice")
			if d.Personalized || d.Reason != consent.ReasonOptedOut || len(d.Tags) != 0 {
				t.Fatalf("right after opting out: %+v, want not personalized, personalization_off, no tags", d)
			}
			ok, why, err := c.CanPush(context.Background(), "alice", "push", true)
			if ok || why != consent.ReasonOptedOut || err != nil {
				t.Fatalf("targeted push after opt-out: %t %s %v, want false personalization_off", ok, why, err)
			}
			ok, why, _ = c.CanPush(context.Background(), "alice", "push", false)
			if !ok || why != consent.ReasonAllowed {
				t.Fatalf("untargeted push after opt-out: %t %s, want allowed", ok, why)
			}
			mustApply(t, c, consent.RefuseChannel("alice", "sms"))
			if ok, why, _ := c.CanPush(context.Background(), "alice", "sms", false); ok || why != consent.ReasonChannelRefused {
				t.Fatalf("push on refused channel: %t %s, want false channel_refused", ok, why)
			}
			if ok, why, _ := c.CanPush(context.Background(), "alice", "carrier_pigeon", false); ok || why != consent.ReasonUnknownChannel {
				t.Fatalf("push on unknown channel: %t %s, want false unknown_channel", ok, why)
			}
		})
	}
}

func TestInvalidUserID(t *testing.T) {
	c := newClient(t, backends[0].open(t), sdk.Config{})
	d, err := c.Decide(context.Background(), "bad id")
	if !errors.Is(err, consent.ErrInvalidUserID) || d.Personalized {
		t.Fatalf("Decide(bad id) = %+v, %v; want fail-closed and ErrInvalidUserID", d, err)
	}
	ok, _, err := c.CanPush(context.Background(), "", "sms", false)
	if ok || !errors.Is(err, consent.ErrInvalidUserID) {
		t.Fatalf("CanPush(empty id) = %t, %v; want false, ErrInvalidUserID", ok, err)
	}
}

// A cache hit allocates nothing (the hot path).
func TestDecideHitAllocatesNothing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := newClient(t, b.open(t), sdk.Config{})
			mustApply(t, c, consent.DeclareTag("bob", "interest:golf"))
			ctx := context.Background()
			mustDecide(t, c, "bob")
			if n := testing.AllocsPerRun(1000, func() { c.Decide(ctx, "bob") }); n != 0 {
				t.Errorf("Decide on a hit: %.1f allocs/op, want 0", n)
			}
			if n := testing.AllocsPerRun(1000, func() { c.CanPush(ctx, "bob", "sms", true) }); n != 0 {
				t.Errorf("CanPush on a hit: %.1f allocs/op, want 0", n)
			}
			if n := testing.AllocsPerRun(1000, func() { c.DecidePush(ctx, "bob", "sms", true) }); n != 0 {
				t.Errorf("DecidePush on a hit: %.1f allocs/op, want 0", n)
			}
		})
	}
}

// Changes made through another client (another process) reach this one
// through the changelog; with WaitForAll, once the writer's Apply returns,
// no other live instance ever answers personalized again.
func TestTwoClients(t *testing.T) {
	rc := redistest.Client(t)
	p := redistest.Prefix(t, rc)
	t.Run("converge without waiting", func(t *testing.T) {
		a := newClient(t, redisStore(t, rc, p, rs.Options{}), sdk.Config{})
		b := newClient(t, redisStore(t, rc, p, rs.Options{}), sdk.Config{})
		for i := 0; i < 20; i++ {
			u := fmt.Sprintf("conv%d", i)
			if !mustDecide(t, b, u).Personalized {
				t.Fatalf("%s personalized before the opt-out", u)
			}
			mustApply(t, a, consent.SetPersonalization(u, false))
			eventually(t, 500*time.Millisecond, u+" opt-out reaching B", func() bool { return !mustDecide(t, b, u).Personalized })
		}
		if st := b.Stats(); st.PropagationSamples < 20 || st.PropagationP99 <= 0 {
			t.Fatalf("B's propagation stats: %+v, want >= 20 samples and a p99", st)
		}
	})
	t.Run("wait for all", func(t *testing.T) {
		cfg := sdk.Config{WaitForAll: true, Heartbeat: 100 * time.Millisecond}
		a := newClient(t, redisStore(t, rc, p, rs.Options{}), cfg)
		b := newClient(t, redisStore(t, rc, p, rs.Options{}), cfg)
		var personalizedAfterAck atomic.Int64
		var acked atomic.Bool
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				wasAcked := acked.Load()
				if d := mustDecide(t, b, "wfa"); d.Personalized && wasAcked {
					personalizedAfterAck.Add(1)
				}
			}
		}()
		time.Sleep(20 * time.Millisecond)
		if _, err := a.Apply(context.Background(), consent.SetPersonalization("wfa", false)); err != nil {
			t.Fatalf("Apply with WaitForAll: %v", err)
		}
		acked.Store(true)
		time.Sleep(100 * time.Millisecond)
		close(stop)
		wg.Wait()
		if n := personalizedAfterAck.Load(); n != 0 {
			t.Fatalf("B answered personalized %d times after A's acknowledged opt-out", n)
		}
	})
}

func TestKillSwitchPropagates(t *testing.T) {
	rc := redistest.Client(t)
	p := redistest.Prefix(t, rc)
	st := redisStore(t, rc, p, rs.Options{})
	a := newClient(t, st, sdk.Config{})
	b := newClient(t, redisStore(t, rc, p, rs.Options{}), sdk.Config{})
	mustDecide(t, a, "k1")
	mustDecide(t, b, "k1")
	set, err := st.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set.Suspended, set.SuspendReason = true, "regulator order 2026-17"
	if _, _, err := a.SetSettings(context.Background(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	// The client that set it applies it at once.
	if d := mustDecide(t, a, "k1"); d.Reason != consent.ReasonSuspended {
		t.Fatalf("A right after suspending: %+v, want suspended", d)
	}
	for _, c := range []*sdk.Client{a, b} {
		eventually(t, time.Second, "kill switch", func() bool { return mustDecide(t, c, "k1").Reason == consent.ReasonSuspended })
		if ok, why, _ := c.CanPush(context.Background(), "k2", "push", false); ok || why != consent.ReasonSuspended {
			t.Fatalf("push while suspended: %t %s, want false suspended", ok, why)
		}
	}
	set, _ = st.Settings(context.Background())
	set.Suspended = false
	if _, _, err := st.SetSettings(context.Background(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "lifting the kill switch", func() bool { return mustDecide(t, b, "k1").Personalized })
}

// Stop the Redis under a running client: it fails closed within the lease
// and says why; restart it: the client recovers by itself.
func TestFailClosedWhenRedisStops(t *testing.T) {
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	rc := srv.Client(&goredis.Options{MaxRetries: -1, DialTimeout: 100 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	st := redisStore(t, rc, "rg", rs.Options{})
	lease := 400 * time.Millisecond
	c := newClient(t, st, sdk.Config{Lease: lease})
	mustApply(t, c, consent.DeclareTag("carol", "interest:chess"))
	if d := mustDecide(t, c, "carol"); !d.Personalized {
		t.Fatalf("before the stop: %+v, want personalized", d)
	}
	srv.Stop()
	took := eventually(t, 3*lease, "failing closed", func() bool {
		return mustDecide(t, c, "carol").Reason == consent.ReasonUnverified
	})
	t.Logf("failed closed %v after the stop (lease %v)", took, lease)
	d := mustDecide(t, c, "carol")
	if d.Personalized || len(d.Tags) != 0 {
		t.Fatalf("while Redis is down: %+v, want not personalized, no tags", d)
	}
	if ok, why, _ := c.CanPush(context.Background(), "carol", "push", false); ok || why != consent.ReasonUnverified {
		t.Fatalf("push while Redis is down: %t %s, want false unverified", ok, why)
	}
	if ok, _, _ := c.CanPush(context.Background(), "dave-never-seen", "push", false); ok {
		t.Fatal("push to an uncached user while Redis is down: allowed, want refused")
	}
	if c.Stats().Verified {
		t.Fatal("Stats().Verified = true while Redis is down")
	}
	srv.Start()
	eventually(t, 5*time.Second, "recovering", func() bool { return mustDecide(t, c, "carol").Personalized })
	if !c.Stats().Verified {
		t.Fatal("Stats().Verified = false after recovery")
	}
}

func TestRecommend(t *testing.T) {
	var got []sdk.Exposure
	var mu sync.Mutex
	sink := func(_ context.Context, b []sdk.Exposure) error {
		mu.Lock()
		got = append(got, b...)
		mu.Unlock()
		return nil
	}
	st := backends[0].open(t)
	c := newClient(t, st, sdk.Config{ExposureSink: sink})
	mustApply(t, c, consent.DeclareTag("erin", "interest:ski"))
	mustApply(t, c, consent.GrantSensitive("erin", tags.MedicalHealth, consent.PurposePersonalization))
	mustApply(t, c, consent.InferTag("erin", "medical_health:diabetes"))
	if d := mustDecide(t, c, "erin"); len(d.Tags) != 2 {
		t.Fatalf("with the medical consent: tags %v, want both", d.Tags)
	}
	// A new personalization policy: the old consent no longer counts, so
	// the medical tag must not reach the ranker.
	set, _ := st.Settings(context.Background())
	set.Policies[consent.PurposePersonalization] = 2
	if _, _, err := st.SetSettings(context.Background(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "policy bump reaching the client", func() bool { return len(mustDecide(t, c, "erin").Tags) == 1 })
	var seen sdk.RankRequest
	pers := func(_ context.Context, r sdk.RankRequest) ([]string, error) { seen = r; return []string{"p1"}, nil }
	fall := func(_ context.Context, r sdk.RankRequest) ([]string, error) { seen = r; return []string{"f1"}, nil }
	res, err := c.Recommend(context.Background(), "erin", pers, fall)
	if err != nil || !res.Personalized || res.Items[0] != "p1" || res.Reason != consent.ReasonPersonalized {
		t.Fatalf("Recommend = %+v, %v; want the personalized ranker", res, err)
	}
	if len(seen.Tags) != 1 || seen.Tags[0] != tags.Tag("interest:ski") {
		t.Fatalf("personalized ranker got tags %v, want only [interest:ski] (no sensitive tag without consent)", seen.Tags)
	}
	mustApply(t, c, consent.SetPersonalization("erin", false))
	res, _ = c.Recommend(context.Background(), "erin", pers, fall)
	if res.Personalized || res.Items[0] != "f1" || res.Reason != consent.ReasonOptedOut || len(seen.Tags) != 0 {
		t.Fatalf("after opt-out: %+v (ranker saw %+v); want the fallback with no tags", res, seen)
	}
	eventually(t, time.Second, "exposures reaching the sink", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	mu.Lock()
	if !got[0].Personalized || got[1].Personalized || got[1].Reason != consent.ReasonOptedOut {
		t.Fatalf("exposures %+v, want personalized then fallback with reason", got)
	}
	mu.Unlock()
}
