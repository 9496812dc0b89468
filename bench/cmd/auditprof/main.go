//go:build unix

// Command auditprof runs the Art. 46 audit of the 10M-event benchmark
// (audit.Synthesize with the benchmark's configuration, written once to
// -dir) and prints where its time went: wall and CPU time of the reading
// (up to the last progress call) and of what follows, and the time the Go
// scheduler's processors stood idle in each (runtime/metrics
// /cpu/classes/idle:cpu-seconds: time a core could have worked and had
// nothing to run). With -cpuprofile it writes a CPU profile; with -json
// the report, with -memprofile an allocation profile.
//
//	go run ./bench/cmd/auditprof -dir /tmp/auditdata
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/recguard/recguard/audit"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func idle() float64 {
	ms := []metrics.Sample{{Name: "/cpu/classes/idle:cpu-seconds"}}
	metrics.Read(ms)
	return ms[0].Value.Float64()
}

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "recguard-auditdata"), "where the synthetic files are (written when missing)")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	out := flag.String("json", "", "write the report as JSON here")
	memprof := flag.String("memprofile", "", "write an allocation profile here")
	flag.Parse()
	// The configuration of bench.BenchmarkAudit10M.
	cfg := audit.SynthConfig{Seed: 0xa0d17, Users: 500_000, Events: 10_000_000, Items: 2_000, Groups: 8,
		Span: 30 * 24 * time.Hour, PriceGap: 0.03, ClickGap: 0.01}
	ev, us := filepath.Join(*dir, "events.jsonl"), filepath.Join(*dir, "users.jsonl")
	if _, err := os.Stat(ev); err != nil {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			log.Fatal(err)
		}
		ef, err := os.Create(ev)
		if err != nil {
			log.Fatal(err)
		}
		uf, err := os.Create(us)
		if err != nil {
			log.Fatal(err)
		}
		if err := audit.Synthesize(cfg, ef, uf); err != nil {
			log.Fatal(err)
		}
		if err := ef.Close(); err != nil {
			log.Fatal(err)
		}
		if err := uf.Close(); err != nil {
			log.Fatal(err)
		}
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	start, c0 := time.Now(), cpu()
	uf, err := os.Open(us)
	if err != nil {
		log.Fatal(err)
	}
	facts, probs, err := audit.UsersFile(uf, us)
	uf.Close()
	if err != nil || len(probs) > 0 {
		log.Fatalf("users: %v %v", err, probs)
	}
	usersDone := time.Since(start)
	f, err := os.Open(ev)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	var last time.Time
	var lastCPU time.Duration
	i0 := idle()
	lastIdle := i0
	r, err := audit.Run(context.Background(), audit.SynthSpec(cfg), audit.ReadJSONL(f, ev), facts, audit.Options{Strict: true,
		Progress: func(int64) { last, lastCPU, lastIdle = time.Now(), cpu(), idle() }})
	if err != nil {
		log.Fatal(err)
	}
	wall, total := time.Since(start), cpu()-c0
	fmt.Printf("audit %.2fs, %.2f CPU-s (users file %.2fs)\n", wall.Seconds(), total.Seconds(), usersDone.Seconds())
	fmt.Printf("reading: %.2fs, %.2f CPU-s, idle %.2f core-s\n", last.Sub(start).Seconds(), (lastCPU - c0).Seconds(), lastIdle-i0)
	fmt.Printf("after:   %.2fs, %.2f CPU-s, idle %.2f core-s\n", time.Since(last).Seconds(), (cpu() - lastCPU).Seconds(), idle()-lastIdle)
	if *memprof != "" {
		w, err := os.Create(*memprof)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.Lookup("allocs").WriteTo(w, 0); err != nil {
			log.Fatal(err)
		}
		if err := w.Close(); err != nil {
			log.Fatal(err)
		}
	}
	if *out != "" {
		w, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		if err := json.NewEncoder(w).Encode(r); err != nil {
			log.Fatal(err)
		}
		if err := w.Close(); err != nil {
			log.Fatal(err)
		}
	}
}
