package audit

import (
	"math"
	"slices"

	"github.com/recguard/recguard/audit/stats"
)

// Metrics: which field of an event a metric reads, and the accumulators
// (rates, means, distributions) of one group.

type metricField uint8

const (
	mfClicked metricField = iota + 1
	mfConverted
	mfShown
	mfDiscount
	mfPrice
	mfRank
	mfLatency
	mfFree
)

func fieldCode(f string) metricField {
	switch f {
	case FieldClicked:
		return mfClicked
	case FieldConverted:
		return mfConverted
	case FieldShown:
		return mfShown
	case FieldDiscount:
		return mfDiscount
	case FieldPrice:
		return mfPrice
	case FieldRank:
		return mfRank
	case FieldLatency:
		return mfLatency
	}
	return mfFree
}

type metricDef struct {
	spec  MetricSpec
	field metricField
}

// value extracts the metric's observation from an event: for a rate 1 or
// 0.
func (m *metricDef) value(it *readItem) (float64, bool) {
	var v float64
	switch m.field {
	case mfClicked:
		return it.boolValue(fClicked)
	case mfConverted:
		return it.boolValue(fConverted)
	case mfShown:
		return it.boolValue(fShown)
	case mfDiscount, mfPrice, mfRank, mfLatency:
		k := m.field - mfDiscount
		if it.flags&(fDiscount<<k) == 0 {
			return 0, false
		}
		v = it.num[k]
	default:
		var ok bool
		if v, ok = it.ev.Fields[m.spec.Field]; !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
	}
	if m.spec.Kind == Rate {
		if v > 0 {
			return 1, true
		}
		return 0, true
	}
	return v, true
}

// metricAcc accumulates one metric of one group.
type metricAcc struct {
	x, n  int64         // rate: successes, observations
	sum   stats.Summary // mean, distribution
	dist  dist          // distribution
	med   float64       // median, once asked
	medOK bool
}

// median returns the distribution's median (computed once, after reading).
func (a *metricAcc) median() float64 {
	if !a.medOK {
		a.med, a.medOK = stats.QuantilesOfSorted(a.dist.sample(), []float64{0.5})[0], true
	}
	return a.med
}

func (a *metricAcc) add(kind MetricKind, v float64) {
	switch kind {
	case Rate:
		a.n++
		if v > 0 {
			a.x++
		}
	case Mean:
		a.sum.Add(v)
	case Distribution:
		a.sum.Add(v)
		a.dist.add(v)
	}
}

// dist accumulates a distribution as distinct values with counts. Values
// are rounded to 1e-6 (round6); while there are few distinct values they
// are counted in place (whole values 1 to distInts in an array, others in
// a map); past distSmallMax they are buffered, and a full buffer is sorted
// and merged into the sorted distinct values, which keeps the work
// sequential instead of one random map access per value. The buffer holds
// distBufLen values, or a multiple of it about as many as the distinct
// values (merging then costs O(1) a value) as long as a merge cannot take
// them past MaxDistinctValues. Past MaxDistinctValues distinct values
// every value is rounded to 3 significant digits (round3), the ones kept
// and the ones to come.
type dist struct {
	small  map[float64]int64 // while there are few distinct values
	ints   *[distInts]int64  // counts of the whole values 1 to distInts, with small
	nInts  int               // values counted in ints
	buf    []float64
	keys   []uint64  // flush's scratch: buf's values as ordered integers
	bufMax int       // the buffer's size before the next merge
	vals   []float64 // sorted, distinct
	cnts   []int64
	coarse bool
	final  stats.Sorted // sample's, once made
	made   bool
}

const (
	distBufLen   = 4096
	distSmallMax = 2048 // distinct values counted in place before buffering
	distInts     = 256
)

func (d *dist) add(v float64) {
	if d.coarse {
		v = round3(v)
	} else {
		v = round6(v)
	}
	if d.buf == nil {
		if i := int(v); v >= 1 && v <= distInts && float64(i) == v {
			if d.ints == nil {
				d.ints = new([distInts]int64)
			}
			if c := &d.ints[i-1]; *c > 0 || len(d.small)+d.nInts < distSmallMax {
				if *c == 0 {
					d.nInts++
				}
				*c++
				return
			}
		} else {
			if d.small == nil {
				d.small = map[float64]int64{}
			}
			if len(d.small)+d.nInts < distSmallMax {
				d.small[v]++
				return
			}
			if _, ok := d.small[v]; ok {
				d.small[v]++
				return
			}
		}
		// Many distinct values: move to sorted buffering.
		d.vals = make([]float64, 0, 2*distSmallMax)
		for k := range d.small {
			d.vals = append(d.vals, k)
		}
		if d.ints != nil {
			for i, c := range d.ints {
				if c > 0 {
					d.vals = append(d.vals, float64(i+1))
				}
			}
		}
		slices.Sort(d.vals)
		d.cnts = make([]int64, len(d.vals), 2*distSmallMax)
		for i, k := range d.vals {
			if j := int(k); k >= 1 && k <= distInts && float64(j) == k && d.ints != nil && d.ints[j-1] > 0 {
				d.cnts[i] = d.ints[j-1]
			} else {
				d.cnts[i] = d.small[k]
			}
		}
		d.small, d.ints, d.nInts = nil, nil, 0
		d.buf = make([]float64, 0, distBufLen)
		d.bufMax = distBufLen
	}
	d.buf = append(d.buf, v)
	if len(d.buf) == d.bufMax {
		d.flush()
	}
}

// flush merges the buffer into vals and cnts.
func (d *dist) flush() {
	if len(d.buf) == 0 {
		return
	}
	b := d.buf
	d.keys = sortFloats(b, d.keys)
	// Count the buffer's distinct values missing from vals.
	extra := 0
	i := 0
	for j := 0; j < len(b); {
		v := b[j]
		for j < len(b) && b[j] == v {
			j++
		}
		for i < len(d.vals) && d.vals[i] < v {
			i++
		}
		if i == len(d.vals) || d.vals[i] != v {
			extra++
		}
	}
	// Merge from the back, in place.
	n := len(d.vals)
	d.vals = slices.Grow(d.vals, extra)[:n+extra]
	d.cnts = slices.Grow(d.cnts, extra)[:n+extra]
	i, w := n-1, n+extra-1
	for j := len(b) - 1; j >= 0; {
		v := b[j]
		k := j
		for j >= 0 && b[j] == v {
			j--
		}
		c := int64(k - j)
		for i >= 0 && d.vals[i] > v {
			d.vals[w], d.cnts[w] = d.vals[i], d.cnts[i]
			i, w = i-1, w-1
		}
		if i >= 0 && d.vals[i] == v {
			d.vals[w], d.cnts[w] = v, d.cnts[i]+c
			i, w = i-1, w-1
		} else {
			d.vals[w], d.cnts[w] = v, c
			w--
		}
	}
	d.buf = d.buf[:0]
	if !d.coarse && len(d.vals) > MaxDistinctValues {
		d.rebin()
	}
	// The next buffer: a multiple of distBufLen, about len(vals); before
	// the rounding to 3 digits, small enough that the merge cannot pass
	// MaxDistinctValues, so that it merges (and rounds) exactly when
	// buffers of distBufLen would.
	k := max(1, len(d.vals)/distBufLen)
	if !d.coarse {
		k = max(1, min(k, (MaxDistinctValues-len(d.vals))/distBufLen))
	}
	d.bufMax = k * distBufLen
}

// rebin rounds the distinct values to 3 significant digits.
func (d *dist) rebin() {
	m := make(map[float64]int64, 1024)
	for i, v := range d.vals {
		m[round3(v)] += d.cnts[i]
	}
	d.vals = d.vals[:0]
	for v := range m {
		d.vals = append(d.vals, v)
	}
	slices.Sort(d.vals)
	d.cnts = d.cnts[:len(d.vals)]
	for i, v := range d.vals {
		d.cnts[i] = m[v]
	}
	d.vals, d.cnts = slices.Clip(d.vals), slices.Clip(d.cnts)
	d.coarse = true
}

// sample returns the distribution as a stats.Sorted (made once, after
// reading): from the sorted distinct values when buffered, else from the
// counts in place.
func (d *dist) sample() stats.Sorted {
	if d.made {
		return d.final
	}
	d.made = true
	if d.buf == nil && (d.small != nil || d.ints != nil) {
		c := stats.Counts(d.small)
		if c == nil {
			c = stats.Counts{}
		}
		if d.ints != nil {
			for i, k := range d.ints {
				if k > 0 {
					c[float64(i+1)] = k
				}
			}
		}
		d.final, d.small, d.ints, d.nInts = c.Sorted(), nil, nil, 0
		return d.final
	}
	d.flush()
	d.final = stats.SortedOf(d.vals, d.cnts)
	d.buf, d.keys = nil, nil
	return d.final
}

func (a *metricAcc) count(kind MetricKind) int64 {
	if kind == Rate {
		return a.n
	}
	return a.sum.N()
}

// round6 rounds to 1e-6 (values of magnitude 1e9 and more are kept).
func round6(v float64) float64 {
	if math.Abs(v) >= 1e9 {
		return v
	}
	return math.Round(v*1e6) / 1e6
}

// round3 rounds to 3 significant digits.
func round3(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	e := math.Floor(math.Log10(math.Abs(v)))
	s := math.Pow(10, 2-e)
	r := math.Round(v*s) / s
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return v
	}
	return r
}

// sortFloats sorts b (no NaN) through keys, a scratch buffer it returns
// (grown if need be): the values as integers in the same order (the float's
// bits, with the sign's order turned over), sorted as integers, which
// takes about half the time of sorting floats (no NaN to look out for).
// -0 sorts just before +0 (equal as floats, so a merge counts them as one
// value, as it does after slices.Sort).
func sortFloats(b []float64, keys []uint64) []uint64 {
	keys = slices.Grow(keys[:0], len(b))[:len(b)]
	for i, v := range b {
		keys[i] = ordered64(v)
	}
	slices.Sort(keys)
	for i, k := range keys {
		b[i] = unordered64(k)
	}
	return keys
}

// ordered64 maps a float64 to an integer with the same order (-0 just
// below +0); unordered64 is its inverse.
func ordered64(v float64) uint64 {
	b := math.Float64bits(v)
	if b&(1<<63) != 0 {
		return ^b
	}
	return b | 1<<63
}

func unordered64(k uint64) float64 {
	if k&(1<<63) != 0 {
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}
