package stats

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestWilsonNewcombe1998(t *testing.T) {
	// Newcombe RG (1998), "Two-sided confidence intervals for the single
	// proportion: comparison of seven methods", Statistics in Medicine
	// 17:857-872, Table I, method 3 (Wilson score interval without
	// continuity correction), 95% limits printed to 4 decimals.
	cases := []struct {
		x, n   int64
		lo, hi float64
	}{
		{81, 263, 0.2553, 0.3662},
		{15, 148, 0.0624, 0.1605},
		{0, 20, 0.0000, 0.1611},
		{1, 29, 0.0061, 0.1718},
	}
	for _, c := range cases {
		nearCI(t, "Wilson", Wilson(c.x, c.n, 0.95), c.lo, c.hi, 5e-5)
	}
	// At x = 0 the lower limit is exactly 0; at x = n the upper is exactly 1,
	// and by symmetry 20/20 mirrors 0/20: (1 - 0.1611, 1).
	if ci := Wilson(0, 20, 0.95); ci.Lo != 0 {
		t.Errorf("Wilson(0, 20).Lo = %v, want exactly 0", ci.Lo)
	}
	ci := Wilson(20, 20, 0.95)
	if ci.Hi != 1 {
		t.Errorf("Wilson(20, 20).Hi = %v, want exactly 1", ci.Hi)
	}
	near(t, "Wilson(20,20).Lo", ci.Lo, 1-0.1611, 5e-5)
}

func TestWilsonClosedForm(t *testing.T) {
	// 5/10 at 95%, by hand from Wilson's (1927) closed form
	// (p + z^2/2n ± z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n):
	//   z = 1.9599640, z^2 = 3.8414588, z^2/n = 0.3841459
	//   center = (0.5 + 0.1920729) / 1.3841459 = 0.5 (p = 1/2 is symmetric)
	//   half = (1.9599640 / 1.3841459) * sqrt(0.025 + 3.8414588/400)
	//        = 1.4160097 * sqrt(0.0346036) = 1.4160097 * 0.1860206 = 0.2634069
	//   interval 0.2365931 to 0.7634069
	nearCI(t, "Wilson(5,10)", Wilson(5, 10, 0.95), 0.2365931, 0.7634069, 1e-7)
}

func TestWilsonDegenerate(t *testing.T) {
	if ci := Wilson(0, 0, 0.95); ci != (Interval{0, 1}) {
		t.Errorf("Wilson(0, 0) = %+v, want [0, 1]", ci)
	}
	isNaNCI(t, "x > n", Wilson(5, 4, 0.95))
	isNaNCI(t, "x < 0", Wilson(-1, 4, 0.95))
	isNaNCI(t, "n < 0", Wilson(0, -4, 0.95))
	for _, conf := range []float64{0, 1, -0.5, 1.5, math.NaN()} {
		isNaNCI(t, "bad conf", Wilson(1, 4, conf))
	}
}

// Property: the Wilson interval lies in [0, 1] and contains p-hat, and a
// higher confidence gives a wider interval.
func TestWilsonProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 5000; trial++ {
		n := int64(1 + r.IntN(1_000_000))
		if trial%2 == 0 {
			n = int64(1 + r.IntN(30))
		}
		x := r.Int64N(n + 1)
		conf := 0.5 + 0.499*r.Float64()
		ci := Wilson(x, n, conf)
		p := float64(x) / float64(n)
		if !(0 <= ci.Lo && ci.Lo <= p && p <= ci.Hi && ci.Hi <= 1) {
			t.Fatalf("Wilson(%d, %d, %v) = %+v does not hold p = %v inside [0, 1]", x, n, conf, ci, p)
		}
		wide := Wilson(x, n, (conf+1)/2)
		if wide.Lo > ci.Lo || wide.Hi < ci.Hi {
			t.Fatalf("Wilson(%d, %d): conf %v gives %+v, narrower than %+v at %v", x, n, (conf+1)/2, wide, ci, conf)
		}
	}
}

func TestNewcombeDiffTableII(t *testing.T) {
	// Newcombe RG (1998), "Interval estimation for the difference between
	// independent proportions: comparison of eleven methods", Statistics in
	// Medicine 17:873-890, Table II, method 10 (hybrid score interval from
	// two Wilson intervals), 95% limits printed to 4 decimals.
	//
	// Example (a), 56/70 - 48/80, by hand so a reader can check the method:
	//   p1 = 0.8, p2 = 0.6, diff = 0.2 (not 0.1857)
	//   Wilson 56/70: 0.6918 to 0.8770; Wilson 48/80: 0.4905 to 0.7004
	//   Lo = 0.2 - sqrt((0.8-0.69183)^2 + (0.70039-0.6)^2)
	//      = 0.2 - sqrt(0.011701 + 0.010078) = 0.2 - 0.147578 = 0.0524
	//   Hi = 0.2 + sqrt((0.87695-0.8)^2 + (0.6-0.49046)^2)
	//      = 0.2 + sqrt(0.005922 + 0.011999) = 0.2 + 0.133870 = 0.3339
	cases := []struct {
		name           string
		x1, n1, x2, n2 int64
		diff, lo, hi   float64
	}{
		{"(a)", 56, 70, 48, 80, 0.2, 0.0524, 0.3339},
		{"(b)", 9, 10, 3, 10, 0.6, 0.1705, 0.8090},
		{"(d)", 5, 56, 0, 29, 5.0 / 56, -0.0381, 0.1926},
		{"(e)", 0, 10, 0, 20, 0, -0.1611, 0.2775},
		{"(f)", 0, 10, 0, 10, 0, -0.2775, 0.2775},
		{"(g)", 10, 10, 0, 20, 1, 0.6791, 1.0000},
		{"(h)", 10, 10, 0, 10, 1, 0.6075, 1.0000},
	}
	for _, c := range cases {
		d, ci := NewcombeDiff(c.x1, c.n1, c.x2, c.n2, 0.95)
		near(t, "diff "+c.name, d, c.diff, 1e-12)
		nearCI(t, "Newcombe "+c.name, ci, c.lo, c.hi, 5e-5)
	}
}

func TestNewcombeDiffDegenerate(t *testing.T) {
	d, ci := NewcombeDiff(0, 0, 3, 10, 0.95)
	if !math.IsNaN(d) || ci != (Interval{-1, 1}) {
		t.Errorf("empty group 1: %v %+v, want NaN [-1, 1]", d, ci)
	}
	d, ci = NewcombeDiff(3, 10, 0, 0, 0.95)
	if !math.IsNaN(d) || ci != (Interval{-1, 1}) {
		t.Errorf("empty group 2: %v %+v, want NaN [-1, 1]", d, ci)
	}
	d, ci = NewcombeDiff(11, 10, 3, 10, 0.95)
	near(t, "invalid diff", d, math.NaN(), 0)
	isNaNCI(t, "invalid counts", ci)
	_, ci = NewcombeDiff(1, 10, 3, 10, 1)
	isNaNCI(t, "bad conf", ci)
}

func TestRatioCIKatz(t *testing.T) {
	// Katz D, Baptista J, Azen SP, Pike MC (1978), Biometrics 34:469-474:
	// log interval exp(ln RR ± z * sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2)); the
	// formula as in Gardner & Altman, "Statistics with Confidence". By hand
	// for 56/70 against 48/80 (Newcombe's example (a)):
	//   RR = 0.8/0.6 = 1.3333333, ln RR = 0.2876821
	//   var = (1/56 - 1/70) + (1/48 - 1/80) = 1/280 + 1/120 = 1/84 = 0.0119048
	//   se = sqrt(1/84) = 0.1091089; z = 1.9599640; z*se = 0.2138496
	//   Lo = exp(0.2876821 - 0.2138496) = exp(0.0738325) = 1.0766264
	//   Hi = exp(0.2876821 + 0.2138496) = exp(0.5015317) = 1.6512485
	rr, ci := RatioCI(56, 70, 48, 80, 0.95)
	near(t, "RR", rr, 4.0/3, 1e-12)
	nearCI(t, "Katz", ci, 1.0766264, 1.6512485, 1e-6)

	// Zero count: 0/20 against 5/20. 0.5 is added to each of the four
	// cells (0, 20, 5, 15 -> 0.5, 20.5, 5.5, 15.5), so n becomes 21:
	//   RR = (0.5/21) / (5.5/21) = 1/11 = 0.0909091, ln RR = -2.3978953
	//   var = 1/0.5 - 1/21 + 1/5.5 - 1/21 = 2 - 0.0952381 + 0.1818182
	//       = 2.0865801; se = 1.4444999; z*se = 2.8311679
	//   Lo = exp(-2.3978953 - 2.8311679) = exp(-5.2290632) = 0.0053585
	//   Hi = exp(-2.3978953 + 2.8311679) = exp(0.4332726) = 1.5422966
	rr, ci = RatioCI(0, 20, 5, 20, 0.95)
	near(t, "RR zero cell", rr, 1.0/11, 1e-12)
	nearCI(t, "Katz zero cell", ci, 0.0053585, 1.5422966, 1e-6)

	// Both zero: corrected RR = (0.5/11)/(0.5/21) = 21/11 = 1.9090909.
	rr, ci = RatioCI(0, 10, 0, 20, 0.95)
	near(t, "RR both zero", rr, 21.0/11, 1e-12)
	if !(ci.Lo < rr && rr < ci.Hi) || math.IsInf(ci.Hi, 0) {
		t.Errorf("both zero: RR %v outside finite interval %+v", rr, ci)
	}
	// All successes (x = n): no correction, the plain ratio 1/0.5 = 2.
	rr, _ = RatioCI(10, 10, 5, 10, 0.95)
	near(t, "RR x = n", rr, 2, 1e-12)
}

func TestRatioCIDegenerate(t *testing.T) {
	rr, ci := RatioCI(0, 0, 1, 10, 0.95)
	if !math.IsNaN(rr) || ci.Lo != 0 || !math.IsInf(ci.Hi, 1) {
		t.Errorf("empty group: %v %+v, want NaN [0, +Inf]", rr, ci)
	}
	rr, ci = RatioCI(1, 10, 0, 0, 0.95)
	if !math.IsNaN(rr) || ci.Lo != 0 || !math.IsInf(ci.Hi, 1) {
		t.Errorf("empty group: %v %+v, want NaN [0, +Inf]", rr, ci)
	}
	rr, ci = RatioCI(-1, 10, 1, 10, 0.95)
	near(t, "invalid RR", rr, math.NaN(), 0)
	isNaNCI(t, "invalid counts", ci)
	_, ci = RatioCI(1, 10, 1, 10, 0)
	isNaNCI(t, "bad conf", ci)
}

func TestTwoProportionZ(t *testing.T) {
	// R: prop.test(c(56, 48), c(70, 80), correct = FALSE) reports
	// X-squared = z^2, the Pearson chi-square of [[56, 14], [48, 32]]. By
	// hand from the table (row totals 70, 80; column totals 104, 46; n 150):
	//   expected 48.5333, 21.4667, 55.4667, 24.5333; every |O - E| = 7.4667
	//   X^2 = 7.4667^2 * (1/48.5333 + 1/21.4667 + 1/55.4667 + 1/24.5333)
	//       = 55.7511 * 0.125978 = 7.0234
	// and from the pooled formula: p = 104/150 = 0.693333,
	//   se = sqrt(0.693333 * 0.306667 * (1/70 + 1/80)) = 0.0754668
	//   z = 0.2 / 0.0754668 = 2.650172; p-value = 2 (1 - Φ(2.650172)) = 0.008045
	z, p := TwoProportionZ(56, 70, 48, 80)
	near(t, "z^2", z*z, 7.0234, 5e-5)
	near(t, "z", z, 2.650172, 1e-6)
	near(t, "p", p, 0.008045, 5e-7)

	// Independently of the formula above: z^2 equals Pearson's X^2 computed
	// cell by cell, for any table.
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 200; trial++ {
		n1, n2 := int64(2+r.IntN(500)), int64(2+r.IntN(500))
		x1, x2 := 1+r.Int64N(n1-1), 1+r.Int64N(n2-1)
		z, _ := TwoProportionZ(x1, n1, x2, n2)
		obs := [4]float64{float64(x1), float64(n1 - x1), float64(x2), float64(n2 - x2)}
		n := float64(n1 + n2)
		s := float64(x1 + x2)
		exp := [4]float64{float64(n1) * s / n, float64(n1) * (n - s) / n, float64(n2) * s / n, float64(n2) * (n - s) / n}
		var chi2 float64
		for i := range obs {
			chi2 += (obs[i] - exp[i]) * (obs[i] - exp[i]) / exp[i]
		}
		near(t, "z^2 vs Pearson", z*z, chi2, 1e-9*chi2)
	}
	// Sign: positive when p1 > p2.
	if z, _ := TwoProportionZ(10, 100, 20, 100); !(z < 0) {
		t.Errorf("z = %v, want < 0 when p1 < p2", z)
	}
}

func TestTwoProportionZDegenerate(t *testing.T) {
	for _, c := range [][4]int64{{0, 0, 1, 10}, {1, 10, 0, 0}, {0, 10, 0, 20}, {10, 10, 20, 20}, {11, 10, 1, 10}} {
		z, p := TwoProportionZ(c[0], c[1], c[2], c[3])
		if !math.IsNaN(z) || !math.IsNaN(p) {
			t.Errorf("TwoProportionZ%v = %v, %v, want NaN", c, z, p)
		}
	}
}

func TestUseFisher(t *testing.T) {
	// Cochran's rule (Cochran 1954): use an exact test when an expected
	// count is below 5. Expected counts by hand:
	//   56/70 vs 48/80: 48.53, 21.47, 55.47, 24.53 -> z test
	//   3/4 vs 1/4 (the tea table): every expected count 2 -> Fisher
	//   10/100 vs 4/100: successes 14, expected 7 and 7; failures 93 each -> z
	//   10/100 vs 0/100: successes 10, expected 5 and 5 -> z (5 is not < 5)
	//   9/100 vs 0/100: expected 4.5 -> Fisher
	cases := []struct {
		x1, n1, x2, n2 int64
		want           bool
	}{
		{56, 70, 48, 80, false},
		{3, 4, 1, 4, true},
		{10, 100, 4, 100, false},
		{10, 100, 0, 100, false},
		{9, 100, 0, 100, true},
		{0, 0, 5, 100, true},
		{-1, 100, 5, 100, true},
	}
	for _, c := range cases {
		if got := UseFisher(c.x1, c.n1, c.x2, c.n2); got != c.want {
			t.Errorf("UseFisher(%d, %d, %d, %d) = %v, want %v", c.x1, c.n1, c.x2, c.n2, got, c.want)
		}
	}
}

func TestFisherExactR(t *testing.T) {
	// R, ?fisher.test: Fisher's tea-tasting table [[3, 1], [1, 3]];
	// fisher.test(TeaTasting) gives p-value = 0.4857 (the documented
	// one-sided "greater" is 0.2429, half of it). Closed form: margins 4,4,4,4;
	// P(a = k) = C(4,k) C(4,4-k) / C(8,4) = 1, 16, 36, 16, 1 over 70; the
	// observed a = 3 has 16/70, so p = (1+16+16+1)/70 = 34/70 = 0.485714.
	near(t, "tea", FisherExact(3, 1, 1, 3), 34.0/70, 1e-12)
	near(t, "tea (printed)", FisherExact(3, 1, 1, 3), 0.4857, 5e-5)

	// R: fisher.test(matrix(c(1, 9, 11, 3), 2)) p-value = 0.002759 (the
	// dieting example of Wikipedia's "Fisher's exact test"; the matrix is
	// [[1, 11], [9, 3]] in column-major order). Closed form: margins 12, 12
	// (rows), 10, 14 (columns), C(24, 12) = 2704156; the tables at least as
	// extreme have a = 0, 1, 9, 10 with C(10,a) C(14,12-a) = 91, 3640, 3640,
	// 91, so p = 7462/2704156 = 0.0027595.
	near(t, "dieting", FisherExact(1, 11, 9, 3), 7462.0/2704156, 1e-12)
	near(t, "dieting (printed)", FisherExact(1, 11, 9, 3), 0.002759, 5e-7)
	// The test is the same on the transposed and row-swapped table.
	near(t, "dieting transposed", FisherExact(1, 9, 11, 3), 7462.0/2704156, 1e-12)
	near(t, "dieting rows swapped", FisherExact(9, 3, 1, 11), 7462.0/2704156, 1e-12)

	// [[10, 0], [0, 10]]: only the two extreme tables are this unlikely,
	// each with probability 1/C(20, 10) = 1/184756; p = 2/184756.
	near(t, "10/0/0/10", FisherExact(10, 0, 0, 10), 2.0/184756, 1e-17)
}

func TestFisherExactLargeCounts(t *testing.T) {
	// Counts in the thousands, closed form: [[1, 999], [0, 3000]] has one
	// success among 4000; it falls in row 1 (1000 of 4000) with probability
	// 0.25 and in row 2 with 0.75, so p = 0.25.
	near(t, "one success", FisherExact(1, 999, 0, 3000), 0.25, 1e-9)
	// A perfectly balanced table: every table is at most as likely as the
	// observed mode, p = 1.
	near(t, "balanced", FisherExact(1000, 1000, 1000, 1000), 1, 1e-9)
	// Millions: finite, in [0, 1], and symmetric under transposition.
	p := FisherExact(1_000_000, 1_001_000, 1_000_500, 1_000_000)
	q := FisherExact(1_000_000, 1_000_500, 1_001_000, 1_000_000)
	if !(p >= 0 && p <= 1) || math.Abs(p-q) > 1e-6 {
		t.Errorf("large table p = %v, transposed %v", p, q)
	}
	// Far in the tail the p-value underflows to 0 rather than failing.
	if p := FisherExact(5000, 0, 0, 5000); p != 0 {
		t.Errorf("extreme table p = %v, want 0 (underflow)", p)
	}
}

// The log-factorial computation against exact rational arithmetic (big.Int
// binomial coefficients, the definition of the test with R's tolerance) on
// tables with counts in the thousands.
func TestFisherExactAgainstExactArithmetic(t *testing.T) {
	tables := [][4]int64{{1200, 800, 1100, 900}, {30, 2970, 55, 2945}, {7, 3, 2, 1500}, {400, 100, 380, 120}}
	for _, tb := range tables {
		want := fisherExactRat(tb[0], tb[1], tb[2], tb[3])
		got := FisherExact(tb[0], tb[1], tb[2], tb[3])
		near(t, "Fisher vs exact", got, want, 1e-9*want+1e-300)
	}
}

// fisherExactRat is the two-sided Fisher p-value by exact big-integer
// arithmetic: the sum of C(r1,k) C(r2,c1-k) over tables with
// C(r1,k) C(r2,c1-k) <= (1 + 1e-7) times the observed, over C(n, c1).
func fisherExactRat(a, b, c, d int64) float64 {
	r1, r2, c1 := a+b, c+d, a+c
	lo, hi := max(0, c1-r2), min(r1, c1)
	w := func(k int64) *big.Int {
		x := new(big.Int).Binomial(r1, k)
		return x.Mul(x, new(big.Int).Binomial(r2, c1-k))
	}
	obs := new(big.Rat).SetInt(w(a))
	cut := obs.Mul(obs, big.NewRat(10_000_001, 10_000_000))
	num := new(big.Int)
	for k := lo; k <= hi; k++ {
		wk := w(k)
		if new(big.Rat).SetInt(wk).Cmp(cut) <= 0 {
			num.Add(num, wk)
		}
	}
	p, _ := new(big.Rat).SetFrac(num, new(big.Int).Binomial(r1+r2, c1)).Float64()
	return p
}

func TestFisherExactDegenerate(t *testing.T) {
	near(t, "negative", FisherExact(-1, 2, 3, 4), math.NaN(), 0)
	near(t, "empty", FisherExact(0, 0, 0, 0), 1, 0)
	near(t, "one row", FisherExact(3, 4, 0, 0), 1, 0)
	near(t, "one column", FisherExact(3, 0, 4, 0), 1, 0)
}
