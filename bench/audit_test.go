package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/internal/prefetch"
)

// Audit benchmarks: 10 million synthetic events (audit.Synthesize, seed
// auditSeed) with 8 loyalty-tier groups over 500,000 users and 2,000 items
// across 30 days (1.44 million item-hour cells), written once to a JSONL
// file in a temporary directory, with the users file beside it.
//
// Group audit_10M: "audit" is the whole audit (reading the users file,
// audit.Run over audit.ReadJSONL with the default metrics); the baseline
// "decode_only" reads the same file into Events with audit.ReadJSONL and
// does nothing else; "audit_no_prefetch" is the audit with prefetch
// instructions turned off (internal/prefetch.SetEnabled), to measure what
// they give. The audit reports events/s and its peak heap
// (runtime.MemStats.HeapInuse sampled every 100,000 events). Both report
// cpu_s, the process's CPU time (user + system) per op: on a shared
// machine wall time depends on what else runs, CPU time much less.
//
// Group decode_1M compares the two JSON decoders on the file's first
// million lines: ReadJSONL's hand-written fast path against encoding/json
// (json.Unmarshal of each line into an Event, the baseline).
const (
	auditSeed   = 0xa0d17
	auditEvents = 10_000_000
	auditUsers  = 500_000
	auditItems  = 2_000
	auditGroups = 8
	auditSpan   = 30 * 24 * time.Hour
	decodeLines = 1_000_000
)

func auditConfig() audit.SynthConfig {
	return audit.SynthConfig{
		Seed: auditSeed, Users: auditUsers, Events: auditEvents, Items: auditItems, Groups: auditGroups,
		Span: auditSpan, PriceGap: 0.03, ClickGap: 0.01,
	}
}

// writeAuditFiles writes the events and users files into dir.
func writeAuditFiles(b *testing.B, dir string) (events, users string) {
	b.Helper()
	events, users = filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "users.jsonl")
	ef, err := os.Create(events)
	if err != nil {
		b.Fatal(err)
	}
	uf, err := os.Create(users)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := audit.Synthesize(auditConfig(), ef, uf); err != nil {
		b.Fatal(err)
	}
	if err := errors.Join(ef.Close(), uf.Close()); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(events)
	b.Logf("synthesized %d events (%.0f MB) for %d users in %.1fs", auditEvents, float64(fi.Size())/1e6, auditUsers, time.Since(start).Seconds())
	return events, users
}

// cpuTime is the process's CPU time so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkAudit10M(b *testing.B) {
	events, users := writeAuditFiles(b, b.TempDir())
	spec := audit.SynthSpec(auditConfig())

	b.Run("decode_only", func(b *testing.B) {
		measure(b, "audit_10M", "decode_only", true)
		cpu0 := cpuTime()
		for b.Loop() {
			f, err := os.Open(events)
			if err != nil {
				b.Fatal(err)
			}
			src := audit.ReadJSONL(f, events)
			n := 0
			for {
				if _, err := src.Next(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
				n++
			}
			f.Close()
			if n != auditEvents {
				b.Fatalf("decoded %d events", n)
			}
		}
		b.ReportMetric(float64(auditEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu_s")
	})

	runAudit := func(b *testing.B, name string) {
		measure(b, "audit_10M", name, false)
		// The heap in use is sampled as events are read and every 100 ms:
		// the report's own work (strata, percentiles) runs after the last
		// event is read.
		var peak uint64
		var mu sync.Mutex
		var ms runtime.MemStats
		sample := func() {
			mu.Lock()
			defer mu.Unlock()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		stop := make(chan struct{})
		ticked := make(chan struct{})
		go func() {
			defer close(ticked)
			tk := time.NewTicker(100 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					sample()
				}
			}
		}()
		var r *audit.Report
		var usersLoad time.Duration
		cpu0 := cpuTime()
		for b.Loop() {
			start := time.Now()
			uf, err := os.Open(users)
			if err != nil {
				b.Fatal(err)
			}
			facts, probs, err := audit.UsersFile(uf, users)
			uf.Close()
			if err != nil || len(probs) > 0 {
				b.Fatalf("users: %v %v", err, probs)
			}
			usersLoad = time.Since(start)
			f, err := os.Open(events)
			if err != nil {
				b.Fatal(err)
			}
			r, err = audit.Run(context.Background(), spec, audit.ReadJSONL(f, events), facts,
				audit.Options{Strict: true, Progress: func(int64) { sample() }})
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			sample()
		}
		close(stop)
		<-ticked
		if r.Events != auditEvents || r.Used != auditEvents {
			b.Fatalf("report: %d events, %d used", r.Events, r.Used)
		}
		sig := 0
		for _, f := range r.Findings {
			if f.Severity == "significant" {
				sig++
				b.Logf("finding: %s", f.Text)
			}
		}
		if sig == 0 {
			b.Fatal("the planted gaps were not found")
		}
		b.ReportMetric(float64(auditEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MiB")
		b.ReportMetric(usersLoad.Seconds(), "users_load_s")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu_s")
	}
	b.Run("audit", func(b *testing.B) { runAudit(b, "audit") })
	// The same audit with no prefetch instruction (internal/prefetch):
	// what requesting lines ahead gives.
	b.Run("audit_no_prefetch", func(b *testing.B) {
		defer prefetch.SetEnabled(prefetch.SetEnabled(false))
		runAudit(b, "audit_no_prefetch")
	})

	// The first decodeLines lines, in memory, for the decoder comparison.
	f, err := os.Open(events)
	if err != nil {
		b.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for len(lines) < decodeLines && sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	f.Close()
	var all []byte
	for _, l := range lines {
		all = append(append(all, l...), '\n')
	}
	b.Run("decode_1M/encoding_json", func(b *testing.B) {
		measure(b, "decode_1M", "encoding_json", true)
		for b.Loop() {
			for _, l := range lines {
				var ev audit.Event
				if err := json.Unmarshal(l, &ev); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(lines)), "ns/event")
	})
	b.Run("decode_1M/fast_path", func(b *testing.B) {
		measure(b, "decode_1M", "fast_path", false)
		for b.Loop() {
			src := audit.ReadJSONL(bytes.NewReader(all), "")
			for {
				if _, err := src.Next(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(lines)), "ns/event")
	})
}
