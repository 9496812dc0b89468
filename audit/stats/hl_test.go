package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Hollander and Wolfe (1973, p. 69f), permeability constants, as in R's
// ?wilcox.test.
var (
	hwX = countsOf(0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46)
	hwY = countsOf(1.15, 0.88, 0.90, 0.74, 1.21)
)

func TestHodgesLehmannExact(t *testing.T) {
	// R 4.2.2: wilcox.test(x, y, conf.int = TRUE) (exact: sizes 10 and 5,
	// no ties) prints difference in location 0.305, 95 percent confidence
	// interval -0.15 0.76; with conf.level = 0.9, -0.08 0.72.
	s := HodgesLehmann(hwX, hwY, 0.95)
	near(t, "estimate", s.Estimate, 0.305, 1e-15)
	nearCI(t, "95% CI", s.CI, -0.15, 0.76, 1e-15)
	if !s.Exact {
		t.Error("not exact")
	}
	// The achieved level is at least 0.95 and is 1 - 2 P(U <= k-1) for
	// the k picked: check against the exact distribution directly.
	if s.Level < 0.95 || s.Level >= 1 {
		t.Errorf("level %v", s.Level)
	}
	s = HodgesLehmann(hwX, hwY, 0.90)
	nearCI(t, "90% CI", s.CI, -0.08, 0.72, 1e-15)

	// m = 3, n = 2: U has counts 1,1,2,2,2,1,1 of 10 on 0..6. For conf 0.8
	// (alpha/2 = 0.1) qwilcox is 1 (P(U <= 0) = 0.1 >= 0.1: q = 0, raised
	// to 1), so CI = [D_(1), D_(6)] with level 1 - 2 * 0.1 = 0.8. The
	// six differences of {10, 20, 30} - {1, 2}: 8, 9, 18, 19, 28, 29,
	// median (18+19)/2. R: wilcox.test(c(10, 20, 30), c(1, 2),
	// conf.int = TRUE, conf.level = 0.8) gives 18.5 and [8, 29], and with
	// conf.level = 0.5 [9, 28].
	s = HodgesLehmann(countsOf(10, 20, 30), countsOf(1, 2), 0.8)
	near(t, "tiny estimate", s.Estimate, 18.5, 0)
	nearCI(t, "tiny CI", s.CI, 8, 29, 0)
	near(t, "tiny level", s.Level, 0.8, 1e-15)
	// conf 0.5 (alpha/2 = 0.25): P(U <= 1) = 0.2, P(U <= 2) = 0.4, so
	// k = 2: CI = [D_(2), D_(5)] = [9, 28], level 1 - 2 * 0.2 = 0.6.
	s = HodgesLehmann(countsOf(10, 20, 30), countsOf(1, 2), 0.5)
	nearCI(t, "tiny CI 50%", s.CI, 9, 28, 0)
	near(t, "tiny level 50%", s.Level, 0.6, 1e-15)
}

func TestHodgesLehmannNormal(t *testing.T) {
	// The sleep data have ties between the groups (R uses the normal
	// approximation). R 4.2.2, wilcox.test(sleep1, sleep2, conf.int = TRUE):
	// difference in location -1.34638849248787, CI -3.59994709103699
	// 0.0999535598808875. R's bounds come from uniroot (tol 1e-4) and
	// converge on the differences -3.6 and 0.1; its estimate is a root of
	// the continuity-corrected statistic, which lies between the two
	// middle differences -1.4 and -1.3; ours is their mean.
	s := HodgesLehmann(countsOf(sleep1...), countsOf(sleep2...), 0.95)
	if s.Exact {
		t.Error("exact with ties")
	}
	nearCI(t, "sleep CI", s.CI, -3.59994709103699, 0.0999535598808875, 1e-4)
	nearCI(t, "sleep CI exactly", s.CI, -3.6, 0.1, 1e-14)
	near(t, "sleep estimate", s.Estimate, -1.35, 1e-14)
	near(t, "sleep level", s.Level, 0.95, 0)

	// 80 and 55 distinct values: normal approximation (m >= 50). R:
	// xi <- (1:80)*7919/1000; yj <- ((1:55)*6007 + 0.5)/1000
	// wilcox.test(xi, yj, conf.int = TRUE): CI 89.3215335531733
	// 215.724462801905 (uniroot), median(outer(xi, yj, "-")) 152.523.
	x, y := Counts{}, Counts{}
	for i := 1; i <= 80; i++ {
		x[float64(i*7919)/1000]++
	}
	for j := 1; j <= 55; j++ {
		y[(float64(j*6007)+0.5)/1000]++
	}
	s = HodgesLehmann(x, y, 0.95)
	nearCI(t, "80x55 CI", s.CI, 89.3215335531733, 215.724462801905, 1e-4)
	near(t, "80x55 estimate", s.Estimate, 152.523, 1e-12)

	// The Hollander-Wolfe data forced through the normal branch by R
	// (exact = FALSE): -0.150014837199084 0.759942765322294, the same
	// differences -0.15 and 0.76 as the exact interval. Checked here on
	// the rank k the normal branch would choose: sigma^2 = 50/12 * 16,
	// k = ceil(25 - 0.5 - 1.959964 * 8.164966) = ceil(8.497) = 9.
	d := newDiffs(hwX.sorted(), hwY.sorted())
	k := int64(math.Ceil(25 - 0.5 - zCrit(0.95)*math.Sqrt(50.0/12*16)))
	if k != 9 {
		t.Fatalf("k = %d", k)
	}
	near(t, "normal lo", d.kth(k), -0.150014837199084, 1e-4)
	near(t, "normal hi", d.kth(50+1-k), 0.759942765322294, 1e-4)
}

// bruteDiffs returns all differences x_i - y_j, sorted.
func bruteDiffs(x, y Counts) []float64 {
	var out []float64
	for xv, xk := range x {
		for yv, yk := range y {
			for range xk * yk {
				out = append(out, xv-yv)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestHodgesLehmannSelectionBruteForce(t *testing.T) {
	// Every order statistic from the bisection equals the brute-force
	// sorted list, with and without ties, including negative values and
	// zero differences.
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 60 {
		x, y := Counts{}, Counts{}
		nx, ny := 1+rng.IntN(40), 1+rng.IntN(40)
		for range nx {
			if trial%2 == 0 {
				x[float64(rng.IntN(12)-6)]++ // many ties
			} else {
				x[rng.NormFloat64()*1e3]++
			}
		}
		for range ny {
			if trial%2 == 0 {
				y[float64(rng.IntN(12)-4)]++
			} else {
				y[rng.NormFloat64()*1e-3+0.5]++
			}
		}
		all := bruteDiffs(x, y)
		d := newDiffs(x.sorted(), y.sorted())
		for k := int64(1); k <= int64(len(all)); k++ {
			if got := d.kth(k); got != all[k-1] {
				t.Fatalf("trial %d: kth(%d) = %v, want %v", trial, k, got, all[k-1])
			}
		}
		s := HodgesLehmann(x, y, 0.95)
		n := len(all)
		med := all[n/2]
		if n%2 == 0 {
			med = (all[n/2-1] + all[n/2]) / 2
		}
		near(t, "estimate", s.Estimate, med, 0)
		if !(s.CI.Lo <= s.Estimate && s.Estimate <= s.CI.Hi) {
			t.Errorf("trial %d: CI %+v misses estimate %v", trial, s.CI, s.Estimate)
		}
	}
}

func TestHodgesLehmannLarge(t *testing.T) {
	// 100,001 values per sample: x = y + 3 with y = 0, 1, ..., n-1. The
	// differences x_i - y_j = 3 + (i - j) take 3 + e with multiplicity
	// n - |e|, so their median is exactly 3 and the interval is
	// symmetric about 3: [3 + e_k, 3 - e_k] with e_k the k-th smallest
	// i - j, found here by walking the triangular distribution. There are
	// no ties within a sample, so sigma^2 = n^2 (2n+1) / 12.
	const n = 100_001
	x, y := make(Counts, n), make(Counts, n)
	for i := range n {
		y[float64(i)] = 1
		x[float64(i)+3] = 1
	}
	start := time.Now()
	s := HodgesLehmann(x, y, 0.95)
	t.Logf("100001 x 100001 (1e10 differences): %v", time.Since(start))
	near(t, "estimate", s.Estimate, 3, 0)
	fn := float64(n)
	sigma := math.Sqrt(fn * fn * (2*fn + 1) / 12)
	k := int64(math.Ceil(fn*fn/2 - 0.5 - zCrit(0.95)*sigma))
	var cum int64
	e := int64(-(n - 1))
	for ; ; e++ {
		cum += n - abs64(e)
		if cum >= k {
			break
		}
	}
	nearCI(t, "CI", s.CI, 3+float64(e), 3-float64(e), 0)
	if s.Exact {
		t.Error("exact at n = 100001")
	}
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestHodgesLehmannDegenerate(t *testing.T) {
	s := HodgesLehmann(Counts{}, countsOf(1, 2), 0.95)
	near(t, "empty", s.Estimate, math.NaN(), 0)
	isNaNCI(t, "empty CI", s.CI)
	s = HodgesLehmann(countsOf(math.Inf(1), 1), countsOf(1, 2), 0.95)
	near(t, "inf", s.Estimate, math.NaN(), 0)
	s = HodgesLehmann(countsOf(1, 2, 3), countsOf(1, 2), 1.5)
	near(t, "bad conf estimate", s.Estimate, 0.5, 0)
	isNaNCI(t, "bad conf CI", s.CI)
	// One value each: the single difference, interval [d, d].
	s = HodgesLehmann(countsOf(5), countsOf(2), 0.95)
	near(t, "1x1", s.Estimate, 3, 0)
	nearCI(t, "1x1 CI", s.CI, 3, 3, 0)
	// Ties everywhere (normal branch): all values equal gives 0 and [0, 0].
	s = HodgesLehmann(Counts{7: 60}, Counts{7: 60}, 0.95)
	near(t, "all equal", s.Estimate, 0, 0)
	nearCI(t, "all equal CI", s.CI, 0, 0, 0)
	// Signed zeros and huge values do not break the key mapping.
	s = HodgesLehmann(countsOf(-0.0, 1e308), countsOf(0, -1e308), 0.95)
	if math.IsNaN(s.Estimate) {
		t.Error("NaN estimate for finite extreme values")
	}
	for _, f := range []float64{-math.MaxFloat64, -1, -0.0, 0, 5e-324, 1, math.MaxFloat64} {
		if keyFloat(floatKey(f)) != f {
			t.Errorf("key round trip of %v", f)
		}
	}
	if !(floatKey(-1) < floatKey(-5e-324) && floatKey(-5e-324) < floatKey(0) && floatKey(0) < floatKey(5e-324)) {
		t.Error("floatKey does not preserve order")
	}
}
