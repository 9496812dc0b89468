package prefetch

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestBatchRequestsAhead checks, for batches of random shapes (items with
// no address, one, many), that Ahead requests every address exactly once
// and in order, that when item i is worked on its addresses and those of
// the next Distance/2 items have been requested, and that nothing past
// i+Distance has.
func TestBatchRequestsAhead(t *testing.T) {
	var got []uintptr
	issue = func(a []uintptr) { got = append(got, a...) }
	defer func() { issue = addrs }()
	rng := rand.New(rand.NewPCG(1, 2))
	var b Batch
	for trial := range 200 {
		b.Reset()
		got = got[:0]
		n := rng.IntN(300)
		var want []uintptr
		for range n {
			for range rng.IntN(5) {
				a := uintptr(len(want) + 1)
				want = append(want, a)
				b.Add(a)
			}
			b.End()
		}
		if len(b.ends) != n {
			t.Fatalf("trial %d: %d items ended, want %d", trial, len(b.ends), n)
		}
		for i := range n {
			b.Ahead(i)
			need := b.ends[min(n, i+Distance/2+1)-1]
			if len(got) < need {
				t.Fatalf("trial %d, item %d: %d addresses requested, want at least %d", trial, i, len(got), need)
			}
			if limit := b.ends[min(n, i+Distance)-1]; len(got) > limit {
				t.Fatalf("trial %d, item %d: %d addresses requested, more than the %d of the next %d items", trial, i, len(got), limit, Distance)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: requested %v, want %v", trial, got, want)
		}
	}
}

// TestAddrsChangesNothing runs the assembly over addresses of live
// memory, nil, and addresses no memory is mapped at: no fault, and the
// memory unchanged.
func TestAddrsChangesNothing(t *testing.T) {
	mem := make([]uint64, 1<<16)
	for i := range mem {
		mem[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	before := slices.Clone(mem)
	var a []uintptr
	for i := 0; i < len(mem); i += 7 {
		a = append(a, Addr(&mem[i]))
	}
	a = append(a, 0, 1, 0xdead_beef, ^uintptr(0), ^uintptr(0)>>1)
	addrs(a)
	addrs(nil)
	addrs(a[:0])
	if !slices.Equal(mem, before) {
		t.Fatal("prefetching changed memory")
	}
	var b Batch
	b.Add(0xdead_beef)
	b.End()
	b.End()
	b.Ahead(0)
	b.Ahead(1)
	b.Ahead(5) // past the end
}

// TestSetEnabled: off, nothing is requested; on again, requests resume.
func TestSetEnabled(t *testing.T) {
	var n int
	issue = func(a []uintptr) { n += len(a) }
	defer func() { issue = addrs }()
	var b Batch
	fill := func() {
		b.Reset()
		for i := range 40 {
			b.Add(uintptr(i + 1))
			b.End()
		}
	}
	if !SetEnabled(false) {
		t.Fatal("prefetching was off by default")
	}
	fill()
	for i := range 40 {
		b.Ahead(i)
	}
	if was := SetEnabled(true); was || n != 0 {
		t.Fatalf("off: was on %v, %d addresses requested", was, n)
	}
	fill()
	for i := range 40 {
		b.Ahead(i)
	}
	if n != 40 {
		t.Fatalf("on again: %d addresses requested, want 40", n)
	}
}

// TestForWriteChangesNothing: prefetching for write spans of any length
// and alignment (one byte, a line's last byte to the next line's first,
// many lines) changes no byte.
func TestForWriteChangesNothing(t *testing.T) {
	mem := make([]byte, 1<<14)
	for i := range mem {
		mem[i] = byte(i * 7)
	}
	before := slices.Clone(mem)
	for _, r := range [][2]int{{0, 1}, {63, 65}, {1, 1 << 13}, {100, 100}, {0, len(mem)}, {len(mem) - 1, len(mem)}} {
		ForWrite(mem[r[0]:r[1]])
	}
	ForWrite([]struct{}{{}, {}})
	ForWrite[int](nil)
	if !slices.Equal(mem, before) {
		t.Fatal("prefetching for write changed memory")
	}
}
