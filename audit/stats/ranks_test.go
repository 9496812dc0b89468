package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMannWhitneySleepNormal(t *testing.T) {
	// R: wilcox.test(extra ~ group, data = sleep, exact = FALSE) prints
	// W = 25.5, p-value = 0.06933 (normal approximation with continuity
	// correction; the data have ties, so R's default uses it too). By hand:
	// 20 values, tied pairs at -0.1, 0.8 and 3.4: sum(t^3 - t) = 3 * 6 = 18
	//   sigma^2 = (10*10/12) * (21 - 18/(20*19)) = 8.333333 * 20.952632
	//           = 174.605263, sigma = 13.213828
	//   z = (25.5 - 50 + 0.5) / 13.213828 = -24 / 13.213828 = -1.816279
	//   p = 2 Φ(-1.816279) = 0.069328
	u, z, p := MannWhitney(countsOf(sleep1...), countsOf(sleep2...))
	near(t, "W", u, 25.5, 0)
	near(t, "z", z, -1.816279, 1e-6)
	near(t, "p", p, 0.06933, 5e-6)
	// The other way round: U' = 100 - 25.5, z and p mirror.
	u2, z2, p2 := MannWhitney(countsOf(sleep2...), countsOf(sleep1...))
	near(t, "W swapped", u2, 74.5, 0)
	near(t, "z swapped", z2, -z, 1e-12)
	near(t, "p swapped", p2, p, 1e-12)
}

func TestMannWhitneyExact(t *testing.T) {
	// R, ?wilcox.test (Hollander & Wolfe 1973, p. 69f, permeability
	// constants): wilcox.test(x, y, alternative = "g") prints W = 35,
	// p-value = 0.1272, exact (no ties, sizes 10 and 5). The two-sided
	// exact p-value is twice the upper tail: 2 * 0.1272 = 0.2544.
	// z by hand: mean 25, no ties, sigma^2 = 50/12 * 16 = 66.666667,
	// z = (35 - 25 - 0.5)/8.1649658 = 1.1635076.
	x := countsOf(0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46)
	y := countsOf(1.15, 0.88, 0.90, 0.74, 1.21)
	u, z, p := MannWhitney(x, y)
	near(t, "W", u, 35, 0)
	near(t, "z", z, 9.5/math.Sqrt(50.0/12*16), 1e-12)
	near(t, "p", p, 2*0.1272, 1e-4)

	// The exact null distribution for m = n = 2: U takes 0..4 with counts
	// 1, 1, 2, 1, 1 out of C(4, 2) = 6 orderings.
	d := mwDist(2, 2)
	want := []float64{1.0 / 6, 1.0 / 6, 2.0 / 6, 1.0 / 6, 1.0 / 6}
	for k := range want {
		near(t, "P(U = k), m = n = 2", d[k], want[k], 1e-15)
	}
	// m = 3, n = 2: counts 1, 1, 2, 2, 2, 1, 1 of C(5, 2) = 10, so for the
	// most extreme U = 6 (all x above all y) p = 2 * 1/10 = 0.2.
	_, _, p = MannWhitney(countsOf(10, 11, 12), countsOf(1, 2))
	near(t, "p, complete separation 3 vs 2", p, 0.2, 1e-15)
	// And at the centre the two-sided p is capped at 1.
	_, _, p = MannWhitney(countsOf(1, 4), countsOf(2, 3))
	near(t, "p at the centre", p, 1, 0)
}

func TestMannWhitneyExactDistribution(t *testing.T) {
	// Sums to 1 and is symmetric about mn/2, for every size up to R's limit.
	for _, mn := range [][2]int{{1, 1}, {3, 7}, {10, 5}, {49, 49}, {1, 49}} {
		d := mwDist(mn[0], mn[1])
		var s float64
		for k := range d {
			s += d[k]
			near(t, "symmetry", d[k], d[len(d)-1-k], 1e-12)
		}
		near(t, "total", s, 1, 1e-12)
	}
}

func TestMannWhitneySwitchesToNormal(t *testing.T) {
	// 50 observations, no ties: R's default is the normal approximation,
	// so p must equal 2 Φ(-|z|).
	x, y := Counts{}, Counts{}
	for i := 0; i < 50; i++ {
		x[float64(2*i)]++
	}
	for i := 0; i < 10; i++ {
		y[float64(2*i+1)]++
	}
	_, z, p := MannWhitney(x, y)
	near(t, "normal p", p, math.Erfc(math.Abs(z)/math.Sqrt2), 1e-15)
}

// U counts pairs; check it against the definition on random tied data.
func TestMannWhitneyUByPairs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 300; trial++ {
		var xs, ys []float64
		for i := 1 + r.IntN(30); i > 0; i-- {
			xs = append(xs, float64(r.IntN(12)))
		}
		for i := 1 + r.IntN(30); i > 0; i-- {
			ys = append(ys, float64(r.IntN(12))+0.5*float64(r.IntN(2)))
		}
		var want float64
		for _, a := range xs {
			for _, b := range ys {
				switch {
				case a > b:
					want++
				case a == b:
					want += 0.5
				}
			}
		}
		u, z, p := MannWhitney(countsOf(xs...), countsOf(ys...))
		near(t, "U", u, want, 0)
		if !(p >= 0 && p <= 1) || (u > float64(len(xs)*len(ys))/2 && !(z >= 0)) {
			t.Fatalf("u %v z %v p %v for %v vs %v", u, z, p, xs, ys)
		}
	}
}

func TestMannWhitneyDegenerate(t *testing.T) {
	u, z, p := MannWhitney(Counts{}, countsOf(1, 2))
	if !math.IsNaN(u) || !math.IsNaN(z) || !math.IsNaN(p) {
		t.Errorf("empty x: %v %v %v", u, z, p)
	}
	// Entries with multiplicity <= 0 and NaN values are ignored.
	u, z, p = MannWhitney(Counts{1: 0, 2: -3, math.NaN(): 4}, countsOf(1, 2))
	if !math.IsNaN(u) || !math.IsNaN(z) || !math.IsNaN(p) {
		t.Errorf("x of ignored entries: %v %v %v", u, z, p)
	}
	// All values equal: U = nm/2, z and p undefined (as in R).
	u, z, p = MannWhitney(Counts{5: 3}, Counts{5: 4})
	if u != 6 || !math.IsNaN(z) || !math.IsNaN(p) {
		t.Errorf("all tied: %v %v %v", u, z, p)
	}
	// Large multiplicities: identical distributions of two million values
	// each give U = nm/2 exactly, z = 0, p = 1.
	big := Counts{1: 1_000_000, 2: 1_000_000}
	u, z, p = MannWhitney(big, big)
	near(t, "big U", u, 2e6*2e6/2, 0)
	near(t, "big z", z, 0, 0)
	near(t, "big p", p, 1, 0)
}

func TestQuantilesOf(t *testing.T) {
	// R: quantile(1:10) prints 1.00 3.25 5.50 7.75 10.00 (type 7).
	c := Counts{}
	for i := 1; i <= 10; i++ {
		c[float64(i)]++
	}
	got := QuantilesOf(c, []float64{0, 0.25, 0.5, 0.75, 1})
	for i, want := range []float64{1, 3.25, 5.5, 7.75, 10} {
		near(t, "quantile(1:10)", got[i], want, 1e-12)
	}

	// R: summary(sleep) shows for extra Min. -1.600, 1st Qu. -0.025,
	// Median 0.950, 3rd Qu. 3.400, Max. 5.500 (type 7 quantiles of 20
	// values with ties at -0.1, 0.8 and 3.4).
	var all []float64
	all = append(all, sleep1...)
	all = append(all, sleep2...)
	got = QuantilesOf(countsOf(all...), []float64{0, 0.25, 0.5, 0.75, 1})
	for i, want := range []float64{-1.6, -0.025, 0.95, 3.4, 5.5} {
		near(t, "summary(sleep)", got[i], want, 1e-12)
	}

	// By hand from counts {1: 2, 2: 3, 5: 1}, sorted 1 1 2 2 2 5 (n = 6,
	// h = 5q): q = 0.1 -> h 0.5, between 1 and 1: 1; q = 0.3 -> h 1.5,
	// between x[1] = 1 and x[2] = 2: 1.5; q = 0.5 -> h 2.5: 2;
	// q = 0.9 -> h 4.5, between 2 and 5: 3.5.
	got = QuantilesOf(Counts{1: 2, 2: 3, 5: 1}, []float64{0.1, 0.3, 0.5, 0.9})
	for i, want := range []float64{1, 1.5, 2, 3.5} {
		near(t, "counts quantile", got[i], want, 1e-12)
	}
}

func TestQuantilesOfDegenerate(t *testing.T) {
	got := QuantilesOf(Counts{}, []float64{0.5})
	near(t, "empty", got[0], math.NaN(), 0)
	got = QuantilesOf(Counts{3: 1}, []float64{-0.1, 1.1, math.NaN(), 0, 0.5, 1})
	for i, want := range []float64{math.NaN(), math.NaN(), math.NaN(), 3, 3, 3} {
		near(t, "single value", got[i], want, 0)
	}
	if got := QuantilesOf(Counts{1: 1}, nil); len(got) != 0 {
		t.Errorf("no qs: %v", got)
	}
	// Infinite values do not produce NaN from interpolation between equals.
	got = QuantilesOf(Counts{math.Inf(1): 2, 1: 1}, []float64{0.75})
	near(t, "inf", got[0], math.Inf(1), 0)
}
