package bench

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// verifyBenchUsers is how many users BenchmarkVerify1M builds;
// RECGUARD_VERIFY_USERS overrides it (for a quicker run).
const verifyBenchUsers = 1_000_000

// BenchmarkVerify1M builds a memory store of a million users with three
// receipts each (sealed under a chain key; built by parallel Applies,
// outside the measured time) and measures one store.Verify over all of it:
// every user listed, read in batches, every chain checked under the key,
// retention, redaction and tags checked. It reports the total time and
// users per second.
//
//	go test -run='^$' -bench=Verify1M -benchtime=1x ./bench
func BenchmarkVerify1M(b *testing.B) {
	n := verifyBenchUsers
	if v := os.Getenv("RECGUARD_VERIFY_USERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("RECGUARD_VERIFY_USERS=%q: want a positive number", v)
		}
	}
	ctx := context.Background()
	key := consent.ChainKey("bench verify chain key, not a secret")
	s, err := memory.Open(ctx, memory.Options{ChainKey: key, ChangelogMaxLen: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	buildStart := time.Now()
	workers := runtime.GOMAXPROCS(0)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				u := "user" + strconv.Itoa(i)
				for _, ch := range []consent.Change{
					consent.SetPersonalization(u, false),
					consent.RefuseChannel(u, "sms"),
					consent.DeclareTag(u, tags.Tag("interest:item"+strconv.Itoa(i%100))),
				} {
					if _, err := s.Apply(ctx, ch); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	build := time.Since(buildStart)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	var rep store.VerifyReport
	var took time.Duration
	for b.Loop() {
		start := time.Now()
		rep, err = store.Verify(ctx, s, key, store.VerifyOptions{})
		took = time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
	}
	if !rep.OK() || rep.Users != int64(n) || rep.Receipts != 3*int64(n) {
		b.Fatalf("verify: users %d, receipts %d, %d findings %+v", rep.Users, rep.Receipts, rep.FindingsTotal, rep.Findings)
	}
	perSec := float64(rep.Users) / took.Seconds()
	b.ReportMetric(took.Seconds(), "s/verify")
	b.ReportMetric(perSec, "users/s")
	b.ReportMetric(float64(rep.Receipts)/took.Seconds(), "receipts/s")
	b.Logf("built %d users (%d receipts) in %s with %d workers, heap %d MiB; verified them in %s: %.0f users/s, %.0f receipts/s, %d workers (GOMAXPROCS)",
		n, rep.Receipts, build.Round(time.Millisecond), workers, ms.HeapAlloc>>20, took.Round(time.Millisecond), perSec,
		float64(rep.Receipts)/took.Seconds(), runtime.GOMAXPROCS(0))
}
