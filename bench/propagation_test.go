package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	rs "github.com/recguard/recguard/store/redis"
)

// Propagation between two processes on loopback.
//
// The parent re-executes the test binary as a child (TestPropagationChild)
// that follows the same Redis key prefix. In "sdk" mode the child opens its
// own store and sdk.Client, warms the users into its cache, says it is
// ready, then busy-polls Decide on each user in turn and prints the wall
// clock (Unix nanoseconds) at which it first sees the user opted out (in
// "sdk-sleep" mode it sleeps propPollSleep between polls instead, so it
// does not take a whole CPU on a small machine). The
// parent applies the opt-outs through its own sdk.Client, one every
// propSpacing, noting the wall clock just before the call and when Apply
// returns (the acknowledgement). In "xread" mode (the baseline) the child
// blocks in XREAD on a stream and the parent XADDs to it: the raw latency
// of a Redis stream entry reaching a blocked reader in another process,
// which is the transport the SDK's followers use.
//
// Both processes read the same system clock, so seen - ack is the time a
// change takes to be visible elsewhere after its writer was told it was
// recorded. It can be slightly negative: Redis wakes the blocked reader in
// the same event-loop turn that answers the writer, so the reader may win
// the race. seen - send (from just before the write) is never negative and
// includes the write's round trip.

const (
	envPropMode   = "RECGUARD_BENCH_PROP_CHILD"  // "sdk" or "xread"; set only in the child
	envPropPrefix = "RECGUARD_BENCH_PROP_PREFIX" // the Redis key prefix to follow
	envPropUsers  = "RECGUARD_BENCH_PROP_USERS"  // sdk: comma-separated user IDs, in order
	envPropCount  = "RECGUARD_BENCH_PROP_COUNT"  // xread: how many entries to expect
	envPropSleep  = "RECGUARD_BENCH_PROP_SLEEP"  // sdk: "1" to sleep propPollSleep between polls

	propSamples    = 200
	propSpacing    = 5 * time.Millisecond
	propChildLimit = 20 * time.Second // the child gives up and exits after this
	propLinePrefix = "recguard-prop "
	propPollSleep  = 20 * time.Microsecond
)

// propResult is one experiment: per sample, the child's observation time
// minus the parent's acknowledgement (lat) and minus the time just before
// the write was sent (send).
type propResult struct {
	lat, send []time.Duration
	missed    int
}

// quantile returns the q-quantile (nearest rank) of ds, sorted in place.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	r := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(r, 0)]
}

func (r propResult) summary() string {
	return fmt.Sprintf("%d samples, %d missed; after ack p50 %v p99 %v max %v; after send p50 %v p99 %v max %v",
		len(r.lat), r.missed,
		quantile(r.lat, 0.50), quantile(r.lat, 0.99), quantile(r.lat, 1),
		quantile(r.send, 0.50), quantile(r.send, 0.99), quantile(r.send, 1))
}

// child is a running helper process and the lines it printed.
type child struct {
	cmd    *exec.Cmd
	ready  chan struct{}
	seen   chan [2]int64 // sample index, unix nanos
	failed chan string
	done   chan struct{} // closed when the process has exited
	stderr lockedBuffer
}

// lockedBuffer is a bytes.Buffer safe to read while the child writes to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startChild re-executes the test binary as TestPropagationChild with env,
// and kills it (if still running) when tb ends.
func startChild(tb testing.TB, n int, env ...string) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPropagationChild$", "-test.count=1",
		"-test.timeout="+(propChildLimit+10*time.Second).String())
	cmd.Env = append(os.Environ(), env...)
	ch := &child{cmd: cmd, ready: make(chan struct{}), seen: make(chan [2]int64, n+1),
		failed: make(chan string, 4), done: make(chan struct{})}
	cmd.Stderr = &ch.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start child: %v", err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill() // harmless when it already exited
		select {
		case <-ch.done:
		case <-time.After(5 * time.Second):
			tb.Errorf("child %d did not exit after kill", cmd.Process.Pid)
		}
	})
	go func() {
		defer close(ch.done)
		sc := bufio.NewScanner(out)
		var other []string
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), propLinePrefix)
			if !ok {
				other = append(other, sc.Text())
				continue
			}
			f := strings.Fields(line)
			switch {
			case len(f) == 1 && f[0] == "ready":
				close(ch.ready)
			case len(f) == 3 && f[0] == "seen":
				i, err1 := strconv.ParseInt(f[1], 10, 64)
				ns, err2 := strconv.ParseInt(f[2], 10, 64)
				if err1 == nil && err2 == nil {
					ch.seen <- [2]int64{i, ns}
				}
			default:
				ch.failed <- line
			}
		}
		// Wait only after every read from the pipe (os/exec's rule).
		if err := cmd.Wait(); err != nil {
			ch.failed <- fmt.Sprintf("child exited: %v; stdout: %s", err, strings.Join(other, " | "))
		}
	}()
	return ch
}

// waitReady waits until the child says it is ready.
func (ch *child) waitReady(tb testing.TB) {
	tb.Helper()
	select {
	case <-ch.ready:
	case msg := <-ch.failed:
		tb.Fatalf("child failed before ready: %s\nstderr: %s", msg, ch.stderr.String())
	case <-time.After(15 * time.Second):
		tb.Fatalf("child not ready after 15s\nstderr: %s", ch.stderr.String())
	}
}

// collect gathers the child's observations until it saw n samples, exited,
// or grace passed after the last write.
func (ch *child) collect(tb testing.TB, n int, grace time.Duration) (seen []int64, missed int) {
	tb.Helper()
	seen = make([]int64, n)
	got := 0
	timeout := time.After(grace)
	for got < n {
		select {
		case s := <-ch.seen:
			if s[0] >= 0 && s[0] < int64(n) && seen[s[0]] == 0 {
				seen[s[0]] = s[1]
				got++
			}
		case msg := <-ch.failed:
			tb.Logf("child: %s", msg)
		case <-ch.done:
			// Drain what it printed before exiting.
			for len(ch.seen) > 0 {
				s := <-ch.seen
				if s[0] >= 0 && s[0] < int64(n) && seen[s[0]] == 0 {
					seen[s[0]] = s[1]
					got++
				}
			}
			return seen, n - got
		case <-timeout:
			return seen, n - got
		}
	}
	return seen, 0
}

// runPropagation runs one experiment of n samples in mode "sdk" (the child
// spins on Decide), "sdk-sleep" (the child sleeps propPollSleep between
// polls) or "xread" (the baseline).
func runPropagation(tb testing.TB, mode string, n int) propResult {
	tb.Helper()
	ctx := context.Background()
	rc := redistest.Client(tb)
	p := redistest.Prefix(tb, rc)

	var write func(i int) error
	var ch *child
	switch mode {
	case "sdk", "sdk-sleep":
		// The parent creates the store first so the child finds it made.
		st, err := rs.New(ctx, rc, rs.Options{Prefix: p, Init: true})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		client := newSDK(tb, st, sdk.Config{})
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "prop" + strconv.Itoa(i)
		}
		sleep := "0"
		if mode == "sdk-sleep" {
			sleep = "1"
		}
		ch = startChild(tb, n, envPropMode+"=sdk", envPropPrefix+"="+p, envPropUsers+"="+strings.Join(ids, ","), envPropSleep+"="+sleep)
		write = func(i int) error {
			a, err := client.Apply(ctx, consent.SetPersonalization(ids[i], false))
			if err == nil && a.Receipt == nil {
				err = fmt.Errorf("opt-out of %s was a no-op", ids[i])
			}
			return err
		}
	case "xread":
		key := p + ":propstream"
		ch = startChild(tb, n, envPropMode+"=xread", envPropPrefix+"="+p, envPropCount+"="+strconv.Itoa(n))
		write = func(i int) error {
			return rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"i", i}}).Err()
		}
	default:
		tb.Fatalf("unknown mode %q", mode)
	}
	ch.waitReady(tb)

	sent := make([]int64, n)
	acked := make([]int64, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * propSpacing)))
		sent[i] = time.Now().UnixNano()
		if err := write(i); err != nil {
			tb.Fatalf("write %d: %v", i, err)
		}
		acked[i] = time.Now().UnixNano()
	}
	seen, missed := ch.collect(tb, n, 5*time.Second)
	r := propResult{missed: missed}
	for i := range seen {
		if seen[i] != 0 {
			r.lat = append(r.lat, time.Duration(seen[i]-acked[i]))
			r.send = append(r.send, time.Duration(seen[i]-sent[i]))
		}
	}
	return r
}

// TestPropagationChild is the helper process of the propagation experiment;
// it does nothing unless started by runPropagation.
func TestPropagationChild(t *testing.T) {
	mode := os.Getenv(envPropMode)
	if mode == "" {
		t.Skip("helper process for TestPropagationTwoProcesses and BenchmarkPropagation")
	}
	// Exit by itself even if something blocks past the limit.
	time.AfterFunc(propChildLimit+2*time.Second, func() {
		fmt.Fprintln(os.Stdout, propLinePrefix+"error hard time limit")
		os.Exit(3)
	})
	ctx, cancel := context.WithTimeout(context.Background(), propChildLimit)
	defer cancel()
	say := func(format string, args ...any) {
		fmt.Fprintf(os.Stdout, propLinePrefix+format+"\n", args...)
	}
	rc := redistest.Client(t)
	prefix := os.Getenv(envPropPrefix)
	switch mode {
	case "sdk":
		childSDK(ctx, rc, prefix, strings.Split(os.Getenv(envPropUsers), ","), os.Getenv(envPropSleep) == "1", say)
	case "xread":
		n, _ := strconv.Atoi(os.Getenv(envPropCount))
		childXRead(ctx, rc, prefix+":propstream", n, say)
	default:
		say("error unknown mode %q", mode)
	}
}

func childSDK(ctx context.Context, rc goredis.UniversalClient, prefix string, ids []string, sleep bool, say func(string, ...any)) {
	st, err := rs.New(ctx, rc, rs.Options{Prefix: prefix, Init: true})
	if err != nil {
		say("error store: %v", err)
		return
	}
	defer st.Close()
	c, err := sdk.New(ctx, st, sdk.Config{})
	if err != nil {
		say("error sdk: %v", err)
		return
	}
	defer c.Close()
	if err := c.Ready(ctx); err != nil {
		say("error not ready: %v", err)
		return
	}
	for _, id := range ids {
		// Under load (CI runs every package at once on two cores) a warm
		// read may fail closed while a lease is renewed: wait it out.
		d, err := c.Decide(ctx, id)
		for tries := 0; err == nil && !d.Personalized && tries < 50 && (d.Reason == consent.ReasonUnverified || d.Reason == consent.ReasonUnavailable); tries++ {
			_ = c.Ready(ctx)
			d, err = c.Decide(ctx, id)
		}
		if err != nil || !d.Personalized {
			say("error warm %s: %v %v", id, d.Reason, err)
			return
		}
	}
	if m := c.Stats().Misses; m < uint64(len(ids)) {
		say("error warm: %d misses for %d users", m, len(ids))
		return
	}
	say("ready")
	for i, id := range ids {
		for {
			d, err := c.Decide(ctx, id)
			if err != nil {
				say("error decide %s: %v", id, err)
				return
			}
			if d.Reason == consent.ReasonOptedOut {
				say("seen %d %d", i, time.Now().UnixNano())
				break
			}
			if ctx.Err() != nil {
				say("error timeout waiting for %s", id)
				return
			}
			if sleep {
				time.Sleep(propPollSleep)
			}
			// Spinning without yielding is deliberate: a loop that calls
			// runtime.Gosched keeps a goroutine always runnable, and the
			// Go scheduler then polls the network only from sysmon (about
			// every 10 ms), which delays the follower's wake-up by that
			// much; a plain spin leaves the other P free to poll.
		}
	}
	if m := c.Stats().Misses; m < uint64(len(ids)) {
		say("error %d cache misses while polling", m-uint64(len(ids)))
	}
}

func childXRead(ctx context.Context, rc goredis.UniversalClient, key string, n int, say func(string, ...any)) {
	last := "0"
	say("ready")
	for got := 0; got < n; {
		res, err := rc.XRead(ctx, &goredis.XReadArgs{Streams: []string{key, last}, Count: 100, Block: time.Second}).Result()
		now := time.Now().UnixNano()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			say("error xread: %v", err)
			return
		}
		for _, s := range res {
			for _, m := range s.Messages {
				say("seen %v %d", m.Values["i"], now)
				last = m.ID
				got++
			}
		}
	}
}

// TestPropagationTwoProcesses applies propSamples opt-outs through one
// process's client and checks that another process's client sees every one
// of them, with the median under 50 ms and p99 under one second. These are
// loose on purpose: CI runs every package's tests at once on two cores, and
// a measured run under that load saw p99 ~300 ms from scheduling alone. The
// goal (p99 under 5 ms) is measured and reported by BenchmarkPropagation on
// a quiet machine (docs/results.md), not asserted here.
func TestPropagationTwoProcesses(t *testing.T) {
	r := runPropagation(t, "sdk", propSamples)
	t.Log(r.summary())
	if r.missed != 0 {
		t.Fatalf("%d of %d opt-outs never seen by the other process", r.missed, propSamples)
	}
	if p50 := quantile(r.lat, 0.50); p50 >= 50*time.Millisecond {
		t.Fatalf("propagation p50 after ack = %v; want < 50ms", p50)
	}
	if p99 := quantile(r.lat, 0.99); p99 >= time.Second {
		t.Fatalf("propagation p99 after ack = %v; want < 1s", p99)
	}
}

// propRuns caches each experiment: it runs once per process whatever b.N
// (its cost is fixed: propSamples writes propSpacing apart).
var (
	propMu   sync.Mutex
	propRuns = map[string]propResult{}
)

// BenchmarkPropagation measures how long an opt-out applied in one process
// takes to change Decide's answer in another (sdk_apply_to_decide), next to
// the raw Redis transport: an XADD reaching a blocked XREAD in another
// process (baseline_xadd_to_xread). sdk_apply_to_decide_sleep_poll is the
// same as sdk_apply_to_decide with a child that sleeps propPollSleep
// between polls instead of spinning (on a 2-core machine a spinning child
// takes a core from Redis and the writer). Each runs the propSamples-sample
// experiment once, whatever b.N; ns/op is then meaningless (the
// experiment's wall time over b.N). The figures are the reported metrics:
// p50-ns, p99-ns and max-ns after the writer's acknowledgement, and
// send-p50-ns / send-p99-ns from just before the write. The ratio lines
// compare the p50 and p99 latencies from send (always positive; the ones
// after ack can be around zero or negative for the baseline).
func BenchmarkPropagation(b *testing.B) {
	for _, m := range []struct{ name, mode string }{
		{"baseline_xadd_to_xread", "xread"},
		{"sdk_apply_to_decide", "sdk"},
		{"sdk_apply_to_decide_sleep_poll", "sdk-sleep"},
	} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			propMu.Lock()
			r, ok := propRuns[m.mode]
			propMu.Unlock()
			if !ok {
				r = runPropagation(b, m.mode, propSamples)
				propMu.Lock()
				propRuns[m.mode] = r
				propMu.Unlock()
				b.Logf("%s: %s", m.name, r.summary())
			}
			if r.missed != 0 {
				b.Fatalf("%d of %d samples never seen", r.missed, propSamples)
			}
			b.ReportMetric(float64(quantile(r.lat, 0.50)), "p50-ns")
			b.ReportMetric(float64(quantile(r.lat, 0.99)), "p99-ns")
			b.ReportMetric(float64(quantile(r.lat, 1)), "max-ns")
			b.ReportMetric(float64(quantile(r.send, 0.50)), "send-p50-ns")
			b.ReportMetric(float64(quantile(r.send, 0.99)), "send-p99-ns")
			base := m.mode == "xread"
			record("propagation_p50_from_send", m.name, float64(quantile(r.send, 0.50)), base)
			record("propagation_p99_from_send", m.name, float64(quantile(r.send, 0.99)), base)
		})
	}
}

// record enters a figure that is not a ns/op (a latency percentile) into
// the results TestMain compares, as measure does for ns/op.
func record(group, name string, ns float64, baseline bool) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if results[group] == nil {
		results[group] = map[string]result{}
	}
	results[group][name] = result{nsPerOp: ns}
	if baseline {
		baselines[group] = name
	}
}
