package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/faultproxy"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
)

// quiet is the logger the stores get: trials make Redis warn on purpose.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// instance is one SDK client with its own Redis connection (optionally
// through a fault proxy), as one app-server process would have.
type instance struct {
	name  string
	proxy *faultproxy.Proxy // nil: connected directly
	rc    goredis.UniversalClient
	st    *rs.Store
	c     *sdk.Client
}

// instConfig configures the instances of a trial.
type instConfig struct {
	addrs      []string // one Redis, or a cluster's seed addresses
	cluster    bool
	prefix     string
	proxied    bool // single Redis only: each instance behind its own proxy
	lease      time.Duration
	durability rs.Durability
}

// openInstance starts one instance and stops it when the test ends.
func openInstance(t *testing.T, name string, ic instConfig) *instance {
	t.Helper()
	in := &instance{name: name}
	addrs := ic.addrs
	if ic.proxied {
		p, err := faultproxy.New(ic.addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		in.proxy = p
		addrs = []string{p.Addr()}
	}
	in.rc = rs.NewClient(rs.ClientOptions{Addrs: addrs, Cluster: ic.cluster})
	t.Cleanup(func() { in.rc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := rs.New(ctx, in.rc, rs.Options{Prefix: ic.prefix, Init: true, Durability: ic.durability, Logger: quiet})
	if err != nil {
		t.Fatalf("%s: open the store: %v", name, err)
	}
	in.st = st
	t.Cleanup(func() { st.Close() })
	c, err := sdk.New(ctx, st, sdk.Config{Lease: ic.lease, WaitForAll: true, InstanceID: name, CacheSize: 1 << 12})
	if err != nil {
		t.Fatalf("%s: sdk.New: %v", name, err)
	}
	in.c = c
	t.Cleanup(func() { c.Close() })
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("%s: not ready: %v", name, err)
	}
	return in
}

// openInstances starts n instances named a, b, c, ...
func openInstances(t *testing.T, n int, ic instConfig) []*instance {
	t.Helper()
	out := make([]*instance, n)
	for i := range out {
		out[i] = openInstance(t, string(rune('a'+i)), ic)
	}
	return out
}

// makeUsers returns n user IDs.
func makeUsers(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// usersOfShard returns n user IDs that belong to shard among shards.
func usersOfShard(prefix string, shard, shards, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		u := fmt.Sprintf("%s%d", prefix, i)
		if store.ShardOf(u, shards) == shard {
			out = append(out, u)
		}
	}
	return out
}

// preload asks every instance about every user once, so that answers during
// a fault come from the cache (the lease decides them, not a read).
func preload(t *testing.T, insts []*instance, users []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, in := range insts {
		for _, u := range users {
			if _, err := in.c.Decide(ctx, u); err != nil {
				t.Fatalf("%s: preload %s: %v", in.name, u, err)
			}
		}
	}
}

// workloadConfig shapes the writers and readers.
type workloadConfig struct {
	writers, readers int           // per instance
	writePause       time.Duration // at most, between one writer's ops
	readPause        time.Duration // at most, between one reader's answers
	applyTimeout     time.Duration // ctx of one Apply
	decideTimeout    time.Duration // ctx of one Decide
}

func defaultWorkload() workloadConfig {
	return workloadConfig{writers: 2, readers: 2, writePause: 4 * time.Millisecond, readPause: 2 * time.Millisecond,
		applyTimeout: 5 * time.Second, decideTimeout: 500 * time.Millisecond}
}

// workload runs writers and readers on every instance until halt.
type workload struct {
	stop chan struct{}
	wg   sync.WaitGroup
	recs []*recorder
}

// startWorkload starts the writers (each owns a disjoint set of users and
// toggles their personalization, so a user's ops never overlap) and the
// readers (each asks about random users), seeded from seed.
func startWorkload(insts []*instance, users []string, seed int64, wc workloadConfig) *workload {
	w := &workload{stop: make(chan struct{})}
	total := len(insts) * wc.writers
	for i, in := range insts {
		for j := 0; j < wc.writers; j++ {
			widx := i*wc.writers + j
			var own []string
			for k, u := range users {
				if k%total == widx {
					own = append(own, u)
				}
			}
			if len(own) == 0 {
				continue
			}
			rec := &recorder{}
			w.recs = append(w.recs, rec)
			r := rand.New(rand.NewPCG(uint64(seed), uint64(1000+widx)))
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				w.write(in, own, r, rec, wc)
			}()
		}
		for j := 0; j < wc.readers; j++ {
			rec := &recorder{}
			w.recs = append(w.recs, rec)
			r := rand.New(rand.NewPCG(uint64(seed), uint64(2000+i*wc.readers+j)))
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				w.read(in, users, r, rec, wc)
			}()
		}
	}
	return w
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *workload) pause(r *rand.Rand, most time.Duration) {
	if most <= 0 {
		return
	}
	select {
	case <-w.stop:
	case <-time.After(time.Duration(r.Int64N(int64(most)))):
	}
}

func (w *workload) write(in *instance, own []string, r *rand.Rand, rec *recorder, wc workloadConfig) {
	lastOff := map[string]bool{}
	for !w.stopped() {
		u := own[r.IntN(len(own))]
		off := !lastOff[u]
		lastOff[u] = off
		ctx, cancel := context.WithTimeout(context.Background(), wc.applyTimeout)
		o := Op{Inst: in.name, User: u, Off: off, Invoke: time.Now()}
		a, err := in.c.Apply(ctx, consent.SetPersonalization(u, !off))
		o.Complete = time.Now()
		cancel()
		if err != nil {
			o.Err = err.Error()
		} else {
			o.Acked = true
			o.Version = a.Record.Version
			if a.Receipt != nil {
				o.Hash = a.Receipt.Hash
			}
		}
		rec.ops = append(rec.ops, o)
		w.pause(r, wc.writePause)
	}
}

func (w *workload) read(in *instance, users []string, r *rand.Rand, rec *recorder, wc workloadConfig) {
	for !w.stopped() {
		u := users[r.IntN(len(users))]
		ctx, cancel := context.WithTimeout(context.Background(), wc.decideTimeout)
		a := Answer{Inst: in.name, User: u, Start: time.Now()}
		d, err := in.c.Decide(ctx, u)
		a.End = time.Now()
		cancel()
		a.Personalized, a.Reason = d.Personalized, d.Reason
		if err != nil {
			a.Err = err.Error()
		}
		rec.answers = append(rec.answers, a)
		w.pause(r, wc.readPause)
	}
}

// halt stops the workload, waits for in-flight calls and returns the
// history.
func (w *workload) halt() *History {
	close(w.stop)
	w.wg.Wait()
	return merge(w.recs)
}

// readTruth reads every user's record and receipts from st (a store that
// was not under the fault), retrying while the store is unavailable.
func readTruth(t *testing.T, st store.Store, users []string) map[string]Truth {
	t.Helper()
	out := map[string]Truth{}
	deadline := time.Now().Add(20 * time.Second)
	for _, u := range users {
		for {
			tr, err := truthOf(st, u)
			if err == nil {
				out[u] = tr
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reading the truth for %s: %v", u, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return out
}

func truthOf(st store.Store, u string) (Truth, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rec, err := st.Get(ctx, u)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Truth{}, err
	}
	rcs, err := st.Receipts(ctx, u)
	if err != nil {
		return Truth{}, err
	}
	tr := Truth{Off: rec.State.PersonalizationOff, Hashes: map[string]bool{}}
	for _, rc := range rcs {
		tr.Hashes[rc.Hash] = true
	}
	return tr, nil
}

// converge waits (at most within) until every instance answers every user
// verified and as the truth says, and returns how long it took; it returns
// -1 and the users still wrong when that did not happen.
func converge(insts []*instance, users []string, truth map[string]Truth, within time.Duration) (time.Duration, []string) {
	start := time.Now()
	deadline := start.Add(within)
	for {
		var wrong []string
		for _, in := range insts {
			for _, u := range users {
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				d, err := in.c.Decide(ctx, u)
				cancel()
				want := !truth[u].Off
				a := Answer{Personalized: d.Personalized, Reason: d.Reason}
				if err != nil || a.failClosed() || d.Personalized != want {
					wrong = append(wrong, fmt.Sprintf("%s:%s=%v(%v, want personalized=%v)", in.name, u, d.Personalized, d.Reason, want))
				}
			}
		}
		if len(wrong) == 0 {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return -1, wrong
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reportHistory fails the test for violations and losses (when strict) and
// returns their counts; it logs at most a few of each.
func reportHistory(t *testing.T, h *History, truth map[string]Truth, strict bool) (violations []Violation, losses []Loss) {
	t.Helper()
	violations = h.Violations()
	losses = h.Lost(truth)
	logf, tag := t.Logf, "measured, not asserted"
	if strict {
		logf, tag = t.Errorf, "violated"
	}
	for i, v := range violations {
		if i == 5 {
			logf("... and %d more personalized answers after acknowledged opt-outs", len(violations)-5)
			break
		}
		logf("(a) %s: %v", tag, v)
	}
	for i, l := range losses {
		if i == 5 {
			logf("... and %d more lost acknowledged changes", len(losses)-5)
			break
		}
		logf("(b) %s: acknowledged change lost: %v", tag, l)
	}
	return violations, losses
}

var (
	reQuoted = regexp.MustCompile(`"[^"]*"`)
	reAddr   = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	reNum    = regexp.MustCompile(`\d+`)
)

// errSummary counts the distinct error texts of ops (addresses, quoted
// strings and numbers blanked, first 70 chars).
func errSummary(h *History) string {
	m := map[string]int{}
	for _, o := range h.Ops {
		if o.Err != "" {
			e := reAddr.ReplaceAllString(o.Err, "ADDR")
			e = reQuoted.ReplaceAllString(e, `"…"`)
			e = reNum.ReplaceAllString(e, "N")
			if len(e) > 70 {
				e = e[:70]
			}
			m[e]++
		}
	}
	var parts []string
	for e, n := range m {
		parts = append(parts, fmt.Sprintf("%dx %q", n, e))
	}
	return strings.Join(parts, "; ")
}
