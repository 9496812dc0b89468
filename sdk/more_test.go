package sdk_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
)

// gated wraps a real Redis store: while the gate is shut, changelog reads
// wait (as if the follower were stalled), and batch reads are counted.
type gated struct {
	*rs.Store
	mu       sync.RWMutex // held for writing while the gate is shut
	batches  atomic.Int64
	ids      sync.Map // user ID -> *atomic.Int64 reads
	readLogs atomic.Int64
}

func (g *gated) shut() { g.mu.Lock() }
func (g *gated) open() { g.mu.Unlock() }

func (g *gated) ReadLogs(ctx context.Context, logs []int, after []store.Position, count int, block time.Duration) ([]store.Event, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	g.readLogs.Add(1)
	return g.Store.ReadLogs(ctx, logs, after, count, block)
}

func (g *gated) GetMany(ctx context.Context, ids []string) ([]consent.Record, error) {
	g.batches.Add(1)
	for _, id := range ids {
		n, _ := g.ids.LoadOrStore(id, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	return g.Store.GetMany(ctx, ids)
}

func (g *gated) reads(id string) int64 {
	n, ok := g.ids.Load(id)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// When the changelog is trimmed past a stalled follower, the client drops
// the shard's cached views and reads them again: it never keeps a view it
// can no longer prove current.
func TestTrimmedChangelogForcesRebuild(t *testing.T) {
	rc := redistest.Client(t)
	p := redistest.Prefix(t, rc)
	g := &gated{Store: redisStore(t, rc, p, rs.Options{Shards: 1, ChangelogMaxLen: 10})}
	writer := redisStore(t, rc, p, rs.Options{ChangelogMaxLen: 10})
	c := newClient(t, g, sdk.Config{Lease: 10 * time.Second, PollBlock: 100 * time.Millisecond})
	if !mustDecide(t, c, "x").Personalized {
		t.Fatal("x not personalized at start")
	}
	g.shut()
	time.Sleep(300 * time.Millisecond) // let the current read finish
	ctx := context.Background()
	if _, err := writer.Apply(ctx, consent.SetPersonalization("x", false)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		if _, err := writer.Apply(ctx, consent.SetPersonalization(fmt.Sprintf("filler%d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	g.open()
	eventually(t, 15*time.Second, "rebuild after trimming", func() bool { return c.Stats().Rebuilds >= 1 })
	// Right after the rebuild the log is unverified until the next read
	// confirms it; then x is read again. Never personalized meanwhile.
	eventually(t, 15*time.Second, "x re-read after the rebuild", func() bool {
		d := mustDecide(t, c, "x")
		if d.Personalized {
			t.Fatalf("x answered personalized after its opt-out was trimmed from the log: %+v", d)
		}
		return d.Reason == consent.ReasonOptedOut
	})
}

// Concurrent misses for different users go to the store in few batches;
// concurrent misses for one user are one read.
func TestMissesAreBatchedAndCollapsed(t *testing.T) {
	rc := redistest.Client(t)
	g := &gated{Store: redisStore(t, rc, "", rs.Options{})}
	c := newClient(t, g, sdk.Config{})
	const callers = 256
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			if _, err := c.Decide(context.Background(), fmt.Sprintf("miss%d", i)); err != nil {
				t.Error(err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if b := g.batches.Load(); b > callers/3 {
		t.Errorf("%d concurrent misses took %d store reads, want at most %d (batched)", callers, b, callers/3)
	} else {
		t.Logf("%d concurrent misses took %d store reads", callers, b)
	}
	start = make(chan struct{})
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if d, err := c.Decide(context.Background(), "same-user"); err != nil || !d.Personalized {
				t.Errorf("Decide(same-user) = %+v, %v", d, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := g.reads("same-user"); n != 1 {
		t.Errorf("100 concurrent misses for one user read it %d times, want 1", n)
	}
}

// The cache holds at most its capacity, evicts to make room, and every
// answer stays right whether it came from the cache or the store.
func TestCacheIsBounded(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			ctx := context.Background()
			for i := 0; i < 300; i += 3 {
				if _, err := st.Apply(ctx, consent.SetPersonalization(fmt.Sprintf("u%d", i), false)); err != nil {
					t.Fatal(err)
				}
			}
			c := newClient(t, st, sdk.Config{CacheSize: 16})
			for round := 0; round < 2; round++ {
				for i := 0; i < 300; i++ {
					d := mustDecide(t, c, fmt.Sprintf("u%d", i))
					if want := i%3 != 0; d.Personalized != want {
						t.Fatalf("u%d round %d: personalized %t, want %t", i, round, d.Personalized, want)
					}
				}
			}
			s := c.Stats()
			if s.CacheSize > s.CacheCapacity || s.CacheCapacity != 16 {
				t.Fatalf("cache size %d, capacity %d; want size <= capacity = 16", s.CacheSize, s.CacheCapacity)
			}
			if s.Evictions < 500 {
				t.Fatalf("evictions %d, want >= 500 after 600 lookups of 300 users in 16 slots", s.Evictions)
			}
			if s.Misses < 500 || s.HitRate() > 0.2 {
				t.Fatalf("misses %d, hit rate %.2f: want mostly misses", s.Misses, s.HitRate())
			}
		})
	}
}

// Writers on two clients and readers everywhere, under -race: every client
// ends with the store's answer for every user.
func TestConcurrentWritersAndReaders(t *testing.T) {
	rc := redistest.Client(t)
	p := redistest.Prefix(t, rc)
	a := newClient(t, redisStore(t, rc, p, rs.Options{}), sdk.Config{})
	b := newClient(t, redisStore(t, rc, p, rs.Options{}), sdk.Config{})
	const users, changes = 20, 30
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			c := []*sdk.Client{a, b}[r%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Decide(context.Background(), fmt.Sprintf("cw%d", i%users)); err != nil {
					t.Error(err)
					return
				}
			}
		}(r)
	}
	var ww sync.WaitGroup
	for w := 0; w < 2; w++ {
		ww.Add(1)
		go func(w int) {
			defer ww.Done()
			c := []*sdk.Client{a, b}[w]
			for i := 0; i < changes; i++ {
				u := fmt.Sprintf("cw%d", (i*7+w)%users)
				if _, err := c.Apply(context.Background(), consent.SetPersonalization(u, i%2 == 0)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	st := redisStore(t, rc, p, rs.Options{})
	for i := 0; i < users; i++ {
		u := fmt.Sprintf("cw%d", i)
		rec, _ := st.Get(context.Background(), u)
		want := !rec.State.PersonalizationOff
		for _, c := range []*sdk.Client{a, b} {
			eventually(t, time.Second, u+" converging", func() bool { return mustDecide(t, c, u).Personalized == want })
		}
	}
}

// On a Redis Cluster one XREAD cannot span the shards' slots: the client
// follows each log on its own and still converges.
func TestClusterFollowers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Redis Cluster run")
	}
	cl := redistest.StartCluster(t)
	cc := cl.Client(t)
	p := redistest.Prefix(t, cc)
	a := newClient(t, redisStore(t, cc, p, rs.Options{}), sdk.Config{})
	b := newClient(t, redisStore(t, cc, p, rs.Options{}), sdk.Config{})
	for i := 0; i < 10; i++ {
		u := fmt.Sprintf("cl%d", i)
		mustDecide(t, b, u)
		mustApply(t, a, consent.SetPersonalization(u, false))
		eventually(t, time.Second, u+" reaching B over the cluster", func() bool { return !mustDecide(t, b, u).Personalized })
	}
}

func TestConfigValidate(t *testing.T) {
	if err := sdk.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	for _, c := range []sdk.Config{
		{Lease: time.Millisecond},
		{Lease: time.Second, PollBlock: time.Second},
		{MissBatch: -1},
		{Loaders: 1000},
		{CacheSize: -5},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want ErrInvalidConfig", c)
		}
	}
}
