package prefetch_test

import (
	"fmt"

	"github.com/recguard/recguard/internal/prefetch"
)

// Adding a batch of events into per-user sums at random places: list the
// line each event will touch, then request them a few events ahead.
func ExampleBatch() {
	sums := make([]float64, 1<<20)
	users := []int{123456, 7, 999999, 42, 123456}
	values := []float64{1, 2, 3, 4, 5}

	var pf prefetch.Batch
	pf.Reset()
	for _, u := range users {
		pf.Add(prefetch.Addr(&sums[u]))
		pf.End()
	}
	for i, u := range users {
		pf.Ahead(i)
		sums[u] += values[i]
	}
	fmt.Println(sums[123456], sums[7], sums[42])
	// Output: 6 2 4
}
