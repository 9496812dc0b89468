//go:build unix

package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
)

// clusterNodeTimeout is the trials' cluster-node-timeout: how long a dead
// master goes unnoticed before its replica is promoted. The figures after
// promotion do not depend on it.
const clusterNodeTimeout = time.Second

// TestClusterFailover kills the master that owns one shard's slot in a
// 6-node Redis Cluster (3 masters, 3 replicas) while two SDK instances turn
// personalization off and on (WaitForAll) for users on that shard and
// others, waits for the replica's promotion and restarts the killed node
// (it rejoins as a replica).
//
// durable: store/redis Durability{Replicas: 1}: 0 acknowledged changes may
// be lost and no instance may answer personalized after an acknowledged
// opt-out. async: the default acknowledgement (after the primary): what was
// lost is measured and reported, not asserted.
//
// Each runs with the replica in sync when its master dies, and with the
// replica lagging: stopped and cut off from the master's replication stream
// for 0.3-0.8 s before the kill, so that the master alone acknowledges
// writes meanwhile.
//
// Both measure, after the promotion, when requests to the slot succeed again
// for store/redis NewClient's client and for go-redis cluster clients
// without its settings, and when the SDK instances answer verified again
// for the shard's users (bound: 2 s).
func TestClusterFailover(t *testing.T) {
	m := currentMode()
	m.parallel(t)
	for _, durable := range []bool{true, false} {
		name := "async"
		if durable {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			cl := redistest.StartClusterWith(t, redistest.ClusterOptions{NodeTimeout: clusterNodeTimeout})
			cl.Client(t) // waits until every slot is writable
			cols := []string{"seed", "replica lag", "kill to promotion", "fail closed after kill", "SDK verified after promotion", "requests ok after promotion: NewClient", "1 s reload, no hook"}
			if m.long {
				cols = append(cols, "go-redis defaults")
			}
			cols = append(cols, "acked (opt-outs)", "lost acked (opt-outs)", "personalized after opt-out")
			tab := &table{head: cols}
			// in-sync: the replica is current when its master dies;
			// lagging: it was cut off for 0.3-0.8 s before (what loses
			// acknowledged writes without Durability). Short runs do only
			// the second, the stronger test.
			for _, lagging := range []bool{false, true} {
				name, short := "in-sync", 0
				if lagging {
					name, short = "lagging", 1
				}
				t.Run(name, func(t *testing.T) {
					trials(t, m, short, 2, func(t *testing.T, seed int64) { failoverTrial(t, m, cl, durable, lagging, seed, tab) })
				})
			}
			t.Log(tab)
		})
	}
}

func failoverTrial(t *testing.T, m mode, cl *redistest.Cluster, durable, lagging bool, seed int64, tab *table) {
	r := rand.New(rand.NewPCG(uint64(seed), 5))
	shard := r.IntN(store.DefaultShards)
	slot := redistest.Slot(strconv.Itoa(shard))
	cl.WaitClusterOK(t, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	// The cluster may still be settling after the previous trial's
	// failover: wait until the slot's master has a replica.
	var master *redistest.Server
	var reps []*redistest.Server
	for {
		master, reps, err = cl.SlotNodes(ctx, slot)
		if err == nil && len(reps) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("slot %d: no master with a replica: %d replicas, err %v", slot, len(reps), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, rp := range reps {
		redistest.WaitReplicaOf(t, rp, 30*time.Second)
	}
	cfgMaster, _, _ := cl.SlotNodes(ctx, redistest.Slot("cfg"))
	prefix := fmt.Sprintf("rgc%d", seed%1_000_000)
	victims := usersOfShard("v", shard, store.DefaultShards, 24)
	others := makeUsers("o", 24)
	users := append(append([]string{}, victims...), others...)
	only := map[string]bool{}
	for _, u := range victims {
		only[u] = true
	}
	ic := instConfig{addrs: cl.Addrs, cluster: true, prefix: prefix, lease: m.lease}
	if durable {
		ic.durability = rs.Durability{Replicas: 1, Timeout: 500 * time.Millisecond}
	}
	insts := openInstances(t, 2, ic)
	preload(t, insts, users)
	warm := jitter(r, 700*time.Millisecond, 1500*time.Millisecond)
	lag := time.Duration(0)
	if lagging {
		lag = jitter(r, 300*time.Millisecond, 800*time.Millisecond)
	}
	t.Logf("shard %d (slot %d) on %s, replica %s lagging %v; {cfg} on %s; SIGKILL at +%v", shard, slot, master.Addr, reps[0].Addr, lag, cfgMaster.Addr, warm+lag)

	probeKey := prefix + ":{" + strconv.Itoa(shard) + "}:probe"
	probes := []*probe{
		newProbe("NewClient", rs.NewClient(rs.ClientOptions{Addrs: cl.Addrs, Cluster: true}), probeKey),
		newProbe("1 s reload, no hook", goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Addrs,
			DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second,
			ContextTimeoutEnabled: true, PoolSize: 64, ClusterStateReloadInterval: time.Second}), probeKey),
	}
	if m.long {
		probes = append(probes, newProbe("go-redis defaults", goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Addrs}), probeKey))
	}
	for _, p := range probes {
		p.start()
		defer p.close()
	}

	wc := defaultWorkload()
	wc.writePause = 2 * time.Millisecond
	w := startWorkload(insts, users, seed, wc)
	time.Sleep(warm)
	var pausedAt time.Time
	if lag > 0 {
		// The replica falls behind: it stops (SIGSTOP) and the master drops
		// its replication link (CLIENT KILL TYPE replica), so what the
		// master acknowledges from now on reaches no replica until the
		// replica reconnects, which it cannot before the master dies.
		// (SIGSTOP alone is not enough on loopback: the stream waits in the
		// stopped replica's socket buffer and is read on SIGCONT.)
		for _, rp := range reps {
			rp.Pause()
		}
		mc := goredis.NewClient(&goredis.Options{Addr: master.Addr, MaxRetries: -1})
		err := mc.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err()
		mc.Close()
		if err != nil {
			t.Fatalf("CLIENT KILL TYPE replica on %s: %v", master.Addr, err)
		}
		pausedAt = time.Now()
		time.Sleep(lag)
	}
	f := redistest.KillMasterOf(t, slot, master, reps)
	for _, rp := range reps {
		if lag > 0 {
			rp.Resume()
		}
	}
	promotedAt := f.WaitPromoted(t, 60*time.Second)
	t.Logf("promoted %s %v after the kill", f.Promoted.Addr, promotedAt.Sub(f.KilledAt))
	time.Sleep(recoverBound + time.Second)
	// Wait for the slow probes too (go-redis defaults refresh the slot map
	// every 60 s), but not forever. The killed node stays down meanwhile: a
	// node that comes back answers MOVED, which any client follows at once.
	probeDeadline := promotedAt.Add(90 * time.Second)
	for _, p := range probes {
		for p.firstOKAfter(promotedAt) < 0 && time.Now().Before(probeDeadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Restart the killed node: it rejoins as a replica of the promoted one
	// (empty: no AOF), so writes are replicated (and, durable, acknowledged)
	// again.
	f.Killed.Start()
	redistest.WaitReplicaOf(t, f.Killed, 30*time.Second)
	time.Sleep(time.Second)
	h := w.halt()
	for _, p := range probes {
		p.close()
	}

	// The truth, through a new client and store (not Init: the keyspace
	// must still be there).
	rc := rs.NewClient(rs.ClientOptions{Addrs: cl.Addrs, Cluster: true})
	defer rc.Close()
	tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer tcancel()
	tst, err := rs.New(tctx, rc, rs.Options{Prefix: prefix, Logger: quiet})
	if err != nil {
		t.Fatalf("opening the store after the failover: %v", err)
	}
	truth := readTruth(t, tst, users)
	vs, ls := reportHistory(t, h, truth, durable)
	worstFC, worstRec := checkWindows(t, m, h, insts, f.KilledAt, promotedAt, promotedAt.Sub(f.KilledAt) > m.failClosedBound()+200*time.Millisecond, only)
	if d, wrong := converge(insts, users, truth, recoverBound); d < 0 {
		t.Errorf("(d) violated: %d answers still unverified or not the store's after the failover: %v", len(wrong), head(wrong, 5))
	}
	lagAcked := 0
	if lag > 0 {
		for _, o := range h.Ops {
			if o.Acked && only[o.User] && o.Complete.After(pausedAt) && o.Complete.Before(f.KilledAt) {
				lagAcked++
			}
		}
		t.Logf("%d changes to the shard's users acknowledged while its replica lagged", lagAcked)
	}
	row := []string{fmt.Sprint(seed), ms(lag), ms(promotedAt.Sub(f.KilledAt)), ms(worstFC), ms(worstRec)}
	for _, p := range probes {
		d := p.firstOKAfter(promotedAt)
		t.Logf("requests to slot %d through %q succeed again %s after the promotion", slot, p.name, ms(d))
		if p.name == "NewClient" && (d < 0 || d > recoverBound) {
			t.Errorf("requests through NewClient's client recovered %s after the promotion (bound %v)", ms(d), recoverBound)
		}
		row = append(row, ms(d))
	}
	acked, ackedOff := h.Acked()
	t.Logf("%d ops (%d acknowledged, %d opt-outs), %d answers; lost %d acknowledged changes (%d opt-outs); %d personalized answers after acknowledged opt-outs; errors: %s",
		len(h.Ops), acked, ackedOff, len(h.Answers), LostOps(ls), LostOptOuts(ls), len(vs), errSummary(h))
	row = append(row, fmt.Sprintf("%d (%d)", acked, ackedOff), fmt.Sprintf("%d (%d)", LostOps(ls), LostOptOuts(ls)), fmt.Sprint(len(vs)))
	tab.add(row...)
}

// probe sends GET key through one client every 5 ms (two goroutines,
// 250 ms per request) and remembers when requests succeeded.
type probe struct {
	name string
	c    goredis.UniversalClient
	key  string
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu  sync.Mutex
	oks []time.Time // completion times of successful requests
}

func newProbe(name string, c goredis.UniversalClient, key string) *probe {
	return &probe{name: name, c: c, key: key, stop: make(chan struct{})}
}

func (p *probe) start() {
	for i := 0; i < 2; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case <-p.stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
				err := p.c.Get(ctx, p.key).Err()
				cancel()
				if err == nil || errors.Is(err, goredis.Nil) {
					p.mu.Lock()
					p.oks = append(p.oks, time.Now())
					p.mu.Unlock()
				}
			}
		}()
	}
}

func (p *probe) close() {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.c.Close()
	})
}

// firstOKAfter returns how long after t the first request succeeded, or -1.
func (p *probe) firstOKAfter(t time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ok := range p.oks {
		if ok.After(t) {
			return ok.Sub(t)
		}
	}
	return -1
}
