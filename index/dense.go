package index

import (
	"math/bits"

	"github.com/RoaringBitmap/roaring/v2"
)

// Dense forms of eligible bitmaps.
//
// Roaring keeps a chunk of 65,536 numbers as a sorted array of 16-bit
// values until it holds 4,096 of them. The eligible bitmap of a tag of a
// few percent of the users is therefore arrays, and a count of two such
// tags tests its values one by one (an array against a bitmap) or merges
// two arrays. An eligible bitmap of at least one user in denseRatio also
// keeps a dense form: one bit per number, 0 to its largest, in 64-bit
// words. Two dense forms are counted word by word (AND, popcount), and a
// sparse eligible bitmap against a dense form tests its values against the
// words (no merge, no search). A dense form costs one bit per number (125
// KB per million numbers), whatever the fact's size, so at most maxDense
// are kept (see derived.go). It is kept current with its eligible bitmap
// by syncDerived, and dropped with it.

// denseRatio: an eligible bitmap of at least one number in denseRatio
// (of 0 to its largest) keeps a dense form.
const denseRatio = 256

// maxDense bounds the dense forms kept (the least recently used eligible
// bitmap's goes first): each costs 125 KB per million numbers.
const maxDense = 16

// denseSlack is how many words beyond the largest number a dense form is
// allocated with, so that new users (new largest numbers) set bits without
// reallocating.
const denseSlack = 1024

// wantDense reports whether b is dense enough to keep a dense form.
func wantDense(b *roaring.Bitmap) bool {
	if b.IsEmpty() {
		return false
	}
	return b.GetCardinality()*denseRatio >= uint64(b.Maximum())+1
}

// newDense returns b's dense form.
func newDense(b *roaring.Bitmap) []uint64 {
	n := b.DenseSize()
	w := make([]uint64, n, n+denseSlack)
	b.WriteDenseTo(w)
	return w
}

// denseSet returns w with number num set, grown if needed, or nil when
// num lies so far past w's end that the dense form should be dropped
// instead (it is built again, if dense enough, at the next count).
func denseSet(w []uint64, num uint32) []uint64 {
	i := int(num >> 6)
	if i >= len(w) {
		if i >= 2*len(w)+denseSlack {
			return nil
		}
		if i < cap(w) {
			w = w[:i+1] // beyond len, w was never written: zero
		} else {
			nw := make([]uint64, i+1, i+1+denseSlack+len(w)/8)
			copy(nw, w)
			w = nw
		}
	}
	w[i] |= 1 << (num & 63)
	return w
}

// denseClear clears number num in w.
func denseClear(w []uint64, num uint32) {
	if i := int(num >> 6); i < len(w) {
		w[i] &^= 1 << (num & 63)
	}
}

// denseHas reports whether number num is set in w.
func denseHas(w []uint64, num uint32) bool {
	i := int(num >> 6)
	return i < len(w) && w[i]&(1<<(num&63)) != 0
}

// andCount returns the number of bits set in both a and b.
func andCount(a, b []uint64) uint64 {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	c := 0
	for i := range a {
		c += bits.OnesCount64(a[i] & b[i])
	}
	return uint64(c)
}

// probeCount returns the number of b's values set in w.
func probeCount(w []uint64, b *roaring.Bitmap) uint64 {
	var it roaring.ManyIntIterator
	it.Initialize(b)
	var buf [256]uint32
	var c uint64
	for {
		k := it.NextMany(buf[:])
		if k == 0 {
			return c
		}
		for _, v := range buf[:k] {
			if i := int(v >> 6); i < len(w) {
				c += (w[i] >> (v & 63)) & 1
			}
		}
	}
}
