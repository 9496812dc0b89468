// Package prefetch asks the CPU to start bringing memory into its caches
// a little ahead of its use, without waiting for it.
//
// Why: the audit's passes add each event into entries found at random
// places of arrays of tens of megabytes (a stratum's coefficients, a
// user's sums). Each such access misses the caches and waits for memory.
// A loop that only loads the entries ahead of use overlaps few of these
// waits, because every load stays in the CPU's reorder window until its
// data comes and the window fills after a dozen or so; a prefetch
// instruction leaves the window at once. Go has no prefetch in the
// language, so addrs is a loop of PREFETCHT0 (amd64) or PRFM PLDL1KEEP
// (arm64) in assembly, called for a few items at a time; it does nothing
// on other architectures or with the purego build tag.
//
// A prefetch is a hint: it changes no memory and never faults, whatever
// the address, so a wrong address costs time, never correctness.
//
// Use: for a batch of work items (say 256 events), Add the addresses
// each item will touch and End the item; then, before doing item i, call
// Ahead(i), which keeps the lines of the next Distance items on their way.
package prefetch

import (
	"sync/atomic"
	"unsafe"
)

// Distance is how many items ahead of the one in hand Ahead keeps
// requested: enough to cover a memory access's latency with the work of
// the items in between, few enough that the requests fit the CPU's miss
// buffers (16 took the least CPU of 8, 16, 32 and 64 in the 10M-event
// audit, docs/results.md).
const Distance = 16

// issue prefetches the lines of the addresses (a variable so that tests
// can see what is requested).
var issue = addrs

// off turns requests off (SetEnabled).
var off atomic.Bool

// SetEnabled turns prefetching on (the default) or off for the whole
// process, and returns whether it was on: benchmarks measure what it
// gives (bench.BenchmarkAudit10M/audit_no_prefetch). Off, Ahead requests
// nothing and the work is the same.
func SetEnabled(on bool) (was bool) { return !off.Swap(!on) }

// ForWrite requests every cache line of s's memory in order to write it
// (PREFETCHW on amd64, PRFM PSTL1KEEP on arm64): for entries about to be
// written whose lines another core last held, so that the write does not
// wait for the other core to give them up.
func ForWrite[T any](s []T) {
	if len(s) == 0 || off.Load() {
		return
	}
	var zero T
	if n := uintptr(len(s)) * unsafe.Sizeof(zero); n > 0 {
		linesForWrite(unsafe.Pointer(unsafe.SliceData(s)), n)
	}
}

// Addr is p's address, for Batch.Add.
func Addr[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// Batch holds the addresses a batch of items will touch, item by item.
// The zero value is an empty batch.
type Batch struct {
	addrs []uintptr
	ends  []int // ends[i]: the end of item i's addresses in addrs
	next  int   // items requested so far
}

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.addrs, b.ends, b.next = b.addrs[:0], b.ends[:0], 0
}

// Add adds an address the current item will touch.
func (b *Batch) Add(addr uintptr) { b.addrs = append(b.addrs, addr) }

// End ends the current item (which may have no address).
func (b *Batch) End() { b.ends = append(b.ends, len(b.addrs)) }

// Ahead is called before item i is worked on: it requests the lines of
// items up to i+Distance that are not yet requested, half a Distance at a
// time.
func (b *Batch) Ahead(i int) {
	if b.next > i+Distance/2 {
		return
	}
	b.request(i)
}

func (b *Batch) request(i int) {
	to := min(len(b.ends), i+Distance)
	if to <= b.next {
		return
	}
	lo := 0
	if b.next > 0 {
		lo = b.ends[b.next-1]
	}
	if hi := b.ends[to-1]; hi > lo && !off.Load() {
		issue(b.addrs[lo:hi])
	}
	b.next = to
}
