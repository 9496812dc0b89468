package bench

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
)

// result is the last measured run of one sub-benchmark.
type result struct {
	nsPerOp float64
}

var (
	resultsMu sync.Mutex
	results   = map[string]map[string]result{} // group -> name -> result
	baselines = map[string]string{}            // group -> baseline name
)

// measure records b's ns/op under group/name when b finishes; the last (and
// largest) run of a benchmark wins. baseline marks the group's reference.
func measure(b *testing.B, group, name string, baseline bool) {
	b.Helper()
	b.ReportAllocs()
	b.Cleanup(func() {
		if b.N == 0 {
			return
		}
		r := result{nsPerOp: float64(b.Elapsed().Nanoseconds()) / float64(b.N)}
		resultsMu.Lock()
		defer resultsMu.Unlock()
		if results[group] == nil {
			results[group] = map[string]result{}
		}
		results[group][name] = r
		if baseline {
			baselines[group] = name
		}
	})
}

// TestMain runs the benchmarks and then prints, per group, each subject's
// speed relative to the group's baseline.
func TestMain(m *testing.M) {
	code := m.Run()
	resultsMu.Lock()
	groups := make([]string, 0, len(results))
	for g := range results {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		base, ok := results[g][baselines[g]]
		if !ok {
			continue
		}
		names := make([]string, 0, len(results[g]))
		for n := range results[g] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if n == baselines[g] {
				continue
			}
			r := results[g][n]
			fmt.Fprintf(os.Stdout, "ratio %s: %s %.0f ns/op vs baseline %s %.0f ns/op = %.2fx the baseline's time (%.2fx as fast)\n",
				g, n, r.nsPerOp, baselines[g], base.nsPerOp, r.nsPerOp/base.nsPerOp, base.nsPerOp/r.nsPerOp)
		}
	}
	resultsMu.Unlock()
	os.Exit(code)
}
