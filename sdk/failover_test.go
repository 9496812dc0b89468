package sdk_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
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

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// restartable starts a Redis of the test's own (RDB snapshots on SAVE only,
// no AOF) with a client that fails fast while it is down.
func restartable(t *testing.T) (*redistest.Server, *goredis.Client) {
	srv := redistest.StartServer(t, "--appendonly", "no")
	rc := srv.Client(&goredis.Options{MaxRetries: -1, DialTimeout: 100 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	return srv, rc
}

func restart(t *testing.T, srv *redistest.Server, rc *goredis.Client) {
	t.Helper()
	srv.Stop()
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for rc.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis did not come back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The store goes back in time under a running client (a failover to a
// replica that missed the last changes looks the same as this restore of
// an older snapshot): the client had cached a version the store no longer
// has, and the user's next opt-out, made through another process, gets the
// same version number. It must not be ignored.
func TestOptOutAfterRegressionIsHonoured(t *testing.T) {
	for _, via := range []string{"other process", "this client", "other process, two changes lost"} {
		t.Run(via, func(t *testing.T) {
			srv, rc := restartable(t)
			st := redisStore(t, rc, "rg", rs.Options{Shards: 2, Logger: quiet})
			writer := redisStore(t, rc, "rg", rs.Options{Logger: quiet}) // another process
			lease := 400 * time.Millisecond
			c := newClient(t, st, sdk.Config{Lease: lease, Logger: quiet})
			ctx := context.Background()
			if _, err := writer.Apply(ctx, consent.DeclareTag("ann", tags.MustParse("interest:ski"))); err != nil {
				t.Fatal(err)
			}
			if err := rc.Save(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := writer.Apply(ctx, consent.DeclareTag("ann", tags.MustParse("interest:golf"))); err != nil {
				t.Fatal(err)
			}
			want := 2
			if via == "other process, two changes lost" {
				// This client's own write, likely not yet followed.
				mustApply(t, c, consent.DeclareTag("ann", tags.MustParse("interest:chess")))
				want = 3
			}
			eventually(t, 2*time.Second, "the client sees the newest version", func() bool {
				d := mustDecide(t, c, "ann")
				return d.Personalized && len(d.Tags) == want
			})
			restart(t, srv, rc) // back to version 1
			var a store.Applied
			var err error
			if via == "this client" {
				a, err = c.Apply(ctx, consent.SetPersonalization("ann", false))
			} else {
				a, err = writer.Apply(ctx, consent.SetPersonalization("ann", false))
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Record.Version != 2 {
				t.Fatalf("the opt-out got version %d; the test wants it at or under the lost versions", a.Record.Version)
			}
			if via == "this client" {
				if d := mustDecide(t, c, "ann"); d.Personalized {
					t.Fatalf("right after the client's own opt-out: %+v, want not personalized", d)
				}
			}
			took := eventually(t, lease+2*time.Second, "the opt-out is honoured", func() bool {
				d := mustDecide(t, c, "ann")
				return d.Reason == consent.ReasonOptedOut
			})
			t.Logf("opt-out honoured %v after it was acknowledged", took)
			if c.Stats().Regressions == 0 {
				t.Error("Stats().Regressions = 0 after the store went back in time")
			}
			// And it stays honoured.
			for range 50 {
				if d := mustDecide(t, c, "ann"); d.Personalized {
					t.Fatalf("personalized again after the opt-out: %+v", d)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// A quiet store that went back in time (no write since) is also caught,
// even when the follower had not yet read the lost write (the client made
// it and saw it acknowledged): the shard's views are dropped and re-read.
func TestQuietRegressionDropsViews(t *testing.T) {
	for _, via := range []string{"own write", "followed write"} {
		t.Run(via, func(t *testing.T) {
			srv, rc := restartable(t)
			st := redisStore(t, rc, "rg", rs.Options{Shards: 1, Logger: quiet})
			writer := redisStore(t, rc, "rg", rs.Options{Logger: quiet})
			lease := 400 * time.Millisecond
			c := newClient(t, st, sdk.Config{Lease: lease, Logger: quiet})
			ctx := context.Background()
			mustApply(t, c, consent.SetPersonalization("bea", false))
			if err := rc.Save(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if via == "own write" {
				mustApply(t, c, consent.SetPersonalization("bea", true))
			} else if _, err := writer.Apply(ctx, consent.SetPersonalization("bea", true)); err != nil {
				t.Fatal(err)
			}
			eventually(t, 2*time.Second, "personalized before the restore", func() bool { return mustDecide(t, c, "bea").Personalized })
			restart(t, srv, rc) // bea is opted out again in the store
			eventually(t, lease+2*time.Second, "the restored opt-out is served", func() bool {
				return mustDecide(t, c, "bea").Reason == consent.ReasonOptedOut
			})
			if c.Stats().Regressions == 0 {
				t.Error("Stats().Regressions = 0")
			}
		})
	}
}

// A Redis restarted without persistence under a running client comes back
// empty: the client fails closed with reason data_loss within the lease
// (never personalized as if every user were new), refuses writes, says so
// in Stats, and keeps failing closed.
func TestDataLossFailsClosed(t *testing.T) {
	srv, rc := restartable(t)
	st := redisStore(t, rc, "rg", rs.Options{Logger: quiet})
	lease := 400 * time.Millisecond
	c := newClient(t, st, sdk.Config{Lease: lease, Logger: quiet})
	ctx := context.Background()
	mustApply(t, c, consent.SetPersonalization("cy", false))
	mustApply(t, c, consent.DeclareTag("dot", tags.MustParse("interest:ski")))
	restart(t, srv, rc)
	took := eventually(t, lease+time.Second, "failing closed with data_loss", func() bool {
		return mustDecide(t, c, "cy").Reason == consent.ReasonDataLoss
	})
	t.Logf("data_loss %v after the restart (lease %v)", took, lease)
	for _, u := range []string{"cy", "dot", "never-seen"} {
		d := mustDecide(t, c, u)
		if d.Personalized || d.Reason != consent.ReasonDataLoss {
			t.Errorf("Decide(%s) after the data loss: %+v, want not personalized, data_loss", u, d)
		}
		if ok, why, _ := c.CanPush(ctx, u, "sms", false); ok || why != consent.ReasonDataLoss {
			t.Errorf("CanPush(%s): %t %s, want false data_loss", u, ok, why)
		}
	}
	if _, err := c.Apply(ctx, consent.SetPersonalization("cy", true)); !errors.Is(err, store.ErrDataLoss) {
		t.Errorf("Apply after the data loss: err = %v, want store.ErrDataLoss", err)
	}
	s := c.Stats()
	if !s.DataLoss || s.Verified {
		t.Errorf("Stats after the data loss: DataLoss %t Verified %t; want true, false", s.DataLoss, s.Verified)
	}
	time.Sleep(3 * lease)
	if d := mustDecide(t, c, "dot"); d.Personalized {
		t.Fatalf("later: %+v, want still failing closed", d)
	}
}

// A record missing or corrupt in the store makes that user unknown (fail
// closed, data_loss); everyone else is served as before.
func TestCorruptRecordFailsClosedForThatUserOnly(t *testing.T) {
	rc := redistest.Client(t)
	p := redistest.Prefix(t, rc)
	st := redisStore(t, rc, p, rs.Options{Logger: quiet})
	c := newClient(t, st, sdk.Config{Logger: quiet, CacheSize: 64})
	writer := redisStore(t, rc, p, rs.Options{Logger: quiet})
	ctx := context.Background()
	for i := range 10 {
		if _, err := writer.Apply(ctx, consent.DeclareTag("u"+strconv.Itoa(i), tags.MustParse("interest:ski"))); err != nil {
			t.Fatal(err)
		}
	}
	key := func(u string) string { return p + ":{" + strconv.Itoa(store.ShardOf(u, st.Shards())) + "}:u:" + u }
	rc.HSet(ctx, key("u3"), "d", "\x00garbage")
	rc.Del(ctx, key("u7"))
	for i := range 10 {
		u := "u" + strconv.Itoa(i)
		d := mustDecide(t, c, u)
		switch u {
		case "u3", "u7":
			if d.Personalized || d.Reason != consent.ReasonDataLoss {
				t.Errorf("Decide(%s) with its record damaged: %+v, want data_loss", u, d)
			}
		default:
			if !d.Personalized {
				t.Errorf("Decide(%s): %+v, want personalized", u, d)
			}
		}
	}
	if got := c.Stats().CorruptRecords; got < 2 {
		t.Errorf("Stats().CorruptRecords = %d, want >= 2", got)
	}
	if !c.Stats().Verified {
		t.Error("a damaged record made the whole client unverified")
	}
}

// cfgDown is a store whose settings changelog cannot be read (the Redis
// node holding the settings is down) while the shards answer. Embedding the
// interface hides the store's multi-log reader: one follower per log.
type cfgDown struct {
	store.Store
	down atomic.Bool
}

func (s *cfgDown) ReadChangelog(ctx context.Context, log int, after store.Position, count int, block time.Duration) ([]store.Event, error) {
	if log == store.SettingsLog && s.down.Load() {
		time.Sleep(10 * time.Millisecond)
		return nil, store.ErrUnavailable
	}
	return s.Store.ReadChangelog(ctx, log, after, count, block)
}

// Losing the node that holds the settings does not stop decisions for users
// on other nodes for SettingsLease; past it, answers fail closed.
func TestSettingsLeaseOutlivesShardLease(t *testing.T) {
	ms, err := memory.Open(context.Background(), memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	st := &cfgDown{Store: ms}
	lease, settingsLease := 200*time.Millisecond, 1500*time.Millisecond
	c := newClient(t, st, sdk.Config{Lease: lease, SettingsLease: settingsLease, Logger: quiet})
	mustApply(t, c, consent.DeclareTag("eve", tags.MustParse("interest:ski")))
	mustApply(t, c, consent.SetPersonalization("fay", false))
	st.down.Store(true)
	down := time.Now()
	time.Sleep(3 * lease)
	if d := mustDecide(t, c, "eve"); !d.Personalized {
		t.Fatalf("%v after the settings node went down (shard lease %v): %+v, want decisions to go on", time.Since(down), lease, d)
	}
	if d := mustDecide(t, c, "fay"); d.Reason != consent.ReasonOptedOut {
		t.Fatalf("opted-out user while the settings node is down: %+v", d)
	}
	took := eventually(t, settingsLease+time.Second, "failing closed past the settings lease", func() bool {
		return mustDecide(t, c, "eve").Reason == consent.ReasonUnverified
	})
	// The lease runs from the last confirmation, at most one poll before
	// the node went down.
	if since := time.Since(down); since < settingsLease-lease {
		t.Fatalf("failed closed %v after the settings node went down, well before the settings lease %v", since, settingsLease)
	}
	t.Logf("failed closed %v after the settings lease", took)
	st.down.Store(false)
	eventually(t, 2*time.Second, "recovering", func() bool { return mustDecide(t, c, "eve").Personalized })
}
