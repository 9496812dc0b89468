package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

var resultSink sdk.Result

// quietLog drops the SDK's warnings (the ledger's drop reports) so they do
// not interleave with the benchmark lines.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// discardLedger is a store's ledger whose writes are thrown away: with it
// the benchmark measures what recording adds to Recommend itself (the
// queue), not the CPU the background writer spends on the same cores.
type discardLedger struct{ store.Ledger }

func (discardLedger) AppendLedger(context.Context, []store.LedgerEntry) error { return nil }

// BenchmarkRecommendLedger measures sdk.Client.Recommend on cached users
// without a ledger (the baseline), with Config.Ledger recording every
// exposure (sampling 1) into a sink that discards the batches (what
// recording adds to the call: a fixed-size entry copied into a
// mutex-guarded ring), and into the same Redis store (the whole system:
// the background writer encodes and sends batches on the same cores), in
// one run (group recommend_ledger; TestMain prints the ratios). The
// rankers return a prepared slice; none may allocate. Entries the writer
// could not keep up with are dropped and reported as ledger_dropped/op.
func BenchmarkRecommendLedger(b *testing.B) {
	ctx := context.Background()
	c := redistest.Client(b)
	p := redistest.Prefix(b, c)
	st, err := rs.New(ctx, c, rs.Options{Prefix: p, Init: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	const n = 10_000
	ids := userIDs(n)
	if err := fanOut(16, n, func(i int) error {
		ch := consent.RefuseChannel(ids[i], "sms")
		if i%2 == 1 {
			ch = consent.SetPersonalization(ids[i], false)
		}
		_, err := st.Apply(ctx, ch)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	items := []string{"a", "b", "c"}
	personal := func(context.Context, sdk.RankRequest) ([]string, error) { return items, nil }
	plain := func(context.Context, sdk.RankRequest) ([]string, error) { return items[:1], nil }
	for _, tc := range []struct {
		name     string
		cfg      sdk.Config
		baseline bool
	}{
		{"no_ledger_NoAlloc", sdk.Config{Logger: quietLog}, true},
		{"ledger_queue_NoAlloc", sdk.Config{Ledger: discardLedger{st}, LedgerBuffer: 1 << 16, Logger: quietLog}, false},
		{"ledger_redis_NoAlloc", sdk.Config{Ledger: st, LedgerBuffer: 1 << 16, Logger: quietLog}, false},
	} {
		cl := newSDK(b, st, tc.cfg)
		defer cl.Close() // before the next subject runs
		if err := fanOut(64, n, func(i int) error {
			_, err := cl.Decide(ctx, ids[i])
			return err
		}); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			measure(b, "recommend_ledger", tc.name, tc.baseline)
			j := 0
			next := func() {
				r, err := cl.Recommend(ctx, ids[j], personal, plain)
				if err != nil || r.Reason != wantReason(j) {
					b.Fatalf("Recommend(%s) = %v, %v; want %v", ids[j], r.Reason, err, wantReason(j))
				}
				resultSink = r
				if j++; j == len(ids) {
					j = 0
				}
			}
			requireNoAlloc(b, "Recommend", next)
			before := cl.Stats()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				next()
			}
			b.StopTimer()
			after := cl.Stats()
			if after.Misses != before.Misses {
				b.Fatalf("%d cache misses while measuring hits", after.Misses-before.Misses)
			}
			b.ReportMetric(float64(after.LedgerDropped[store.LedgerExposure]-before.LedgerDropped[store.LedgerExposure])/float64(b.N), "ledger_dropped/op")
		})
	}
}

// TestRecommendLedgerOverhead checks the budget: recording an exposure adds
// under 100 ns to Recommend's hit path and allocates nothing. Five
// interleaved pairs of runs (without a ledger, with a discarding sink and a
// queue big enough that nothing is dropped); the estimate is the fastest
// run with the ledger minus the fastest without, the figure least disturbed
// by other work on the machine.
func TestRecommendLedgerOverhead(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if raceEnabled {
		t.Skip("timings under the race detector measure the detector")
	}
	base, with := 1e18, 1e18
	var dropped float64
	for try := 0; try < 5; try++ {
		r0 := testing.Benchmark(func(b *testing.B) { benchRecommendOne(b, false) })
		r1 := testing.Benchmark(func(b *testing.B) { benchRecommendOne(b, true) })
		if r1.AllocsPerOp() != 0 || r0.AllocsPerOp() != 0 {
			t.Fatalf("allocations: %d without, %d with the ledger", r0.AllocsPerOp(), r1.AllocsPerOp())
		}
		base = min(base, float64(r0.T.Nanoseconds())/float64(r0.N))
		if v := float64(r1.T.Nanoseconds()) / float64(r1.N); v < with {
			with, dropped = v, r1.Extra["ledger_dropped/op"]
		}
	}
	t.Logf("Recommend hit, fastest of 5: %.1f ns/op without, %.1f ns/op with the ledger (%.4f dropped/op): +%.1f ns, 0 allocs/op", base, with, dropped, with-base)
	// The goal (< 100 ns) is the benchmark's to check on a quiet
	// machine; on a shared CI machine only a gross regression fails.
	if with-base >= 400 {
		t.Errorf("the ledger adds %.0f ns to Recommend's hit path; the goal is < 100 (the check allows 400 for noise)", with-base)
	}
	if dropped > 0.1 {
		t.Errorf("%.4f exposures dropped per call: the measure is of the drop path, not the record path", dropped)
	}
}

// benchRecommendOne is one Recommend hit benchmark on an embedded store
// (no Redis needed): with or without the ledger.
func benchRecommendOne(b *testing.B, withLedger bool) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{LedgerMaxLen: 100_000})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ids := userIDs(1000)
	for i, id := range ids {
		ch := consent.RefuseChannel(id, "sms")
		if i%2 == 1 {
			ch = consent.SetPersonalization(id, false)
		}
		if _, err := st.Apply(ctx, ch); err != nil {
			b.Fatal(err)
		}
	}
	cfg := sdk.Config{Logger: quietLog}
	if withLedger {
		cfg.Ledger, cfg.LedgerBuffer = discardLedger{st}, 1<<16
	}
	cl := newSDK(b, st, cfg)
	defer cl.Close()
	for _, id := range ids {
		cl.Decide(ctx, id)
	}
	items := []string{"a", "b", "c"}
	rank := func(context.Context, sdk.RankRequest) ([]string, error) { return items, nil }
	b.ReportAllocs()
	b.ResetTimer()
	j := 0
	for i := 0; i < b.N; i++ {
		r, err := cl.Recommend(ctx, ids[j], rank, rank)
		if err != nil {
			b.Fatal(fmt.Errorf("Recommend: %w", err))
		}
		resultSink = r
		if j++; j == len(ids) {
			j = 0
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cl.Stats().LedgerDropped[store.LedgerExposure])/float64(b.N), "ledger_dropped/op")
}
