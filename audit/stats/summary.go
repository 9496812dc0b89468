package stats

import "math"

// Interval is a confidence interval [Lo, Hi]. Either end may be NaN when
// the interval is undefined, or infinite when it is unbounded.
type Interval struct{ Lo, Hi float64 }

// Summary accumulates the count, mean and variance of a metric in one pass
// with Welford's algorithm; summaries of disjoint parts merge exactly
// (Chan, Golub and LeVeque's pairwise update), so a metric can be summed
// per shard and combined. The zero value is an empty summary, ready to use.
type Summary struct {
	n    int64
	mean float64
	m2   float64 // sum of squared deviations from the mean
}

// Add adds one observation x.
func (s *Summary) Add(x float64) { s.AddN(x, 1) }

// AddN adds the observation x seen n times. n <= 0 adds nothing.
func (s *Summary) AddN(x float64, n int64) {
	if n <= 0 {
		return
	}
	s.Merge(Summary{n: n, mean: x})
}

// Merge adds every observation summarized by o, as if each had been added
// to s one by one.
func (s *Summary) Merge(o Summary) {
	if o.n <= 0 {
		return
	}
	if s.n <= 0 {
		*s = o
		return
	}
	n := s.n + o.n
	na, nb, nt := float64(s.n), float64(o.n), float64(n)
	delta := o.mean - s.mean
	s.mean += delta * (nb / nt)
	s.m2 += o.m2 + delta*delta*(na*nb/nt)
	s.n = n
}

// N returns the number of observations.
func (s Summary) N() int64 { return s.n }

// Mean returns the sample mean, or NaN when there are no observations.
func (s Summary) Mean() float64 {
	if s.n <= 0 {
		return nan
	}
	return s.mean
}

// Variance returns the sample variance (divisor n-1), or 0 when n < 2.
func (s Summary) Variance() float64 {
	if s.n < 2 {
		return 0
	}
	return s.m2 / float64(s.n-1) // m2 only ever grows by terms >= 0
}

// SD returns the sample standard deviation, the square root of Variance.
func (s Summary) SD() float64 { return math.Sqrt(s.Variance()) }
