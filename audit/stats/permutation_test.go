package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// exactPermutationP enumerates every split of the pooled users into groups
// of len(a) and len(b) and returns the exact two-sided permutation p-value
// of the ratio-of-sums difference: the share of splits with |diff| at
// least the observed one (within 1e-9).
func exactPermutationP(a, b []UserSum) float64 {
	pool := append(append([]UserSum{}, a...), b...)
	n, k := len(pool), len(a)
	ratioDiff := func(in []bool) float64 {
		var ya, na, yb, nb float64
		for i, u := range pool {
			if in[i] {
				ya, na = ya+u.Y, na+u.N
			} else {
				yb, nb = yb+u.Y, nb+u.N
			}
		}
		return ya/na - yb/nb
	}
	in := make([]bool, n)
	for i := range k {
		in[i] = true
	}
	obs := math.Abs(ratioDiff(in))
	var total, extreme int
	for mask := 0; mask < 1<<n; mask++ {
		c := 0
		for i := range n {
			in[i] = mask>>i&1 == 1
			if in[i] {
				c++
			}
		}
		if c != k {
			continue
		}
		total++
		if math.Abs(ratioDiff(in)) >= obs-1e-9 {
			extreme++
		}
	}
	return float64(extreme) / float64(total)
}

func TestPermutationTestAgainstEnumeration(t *testing.T) {
	// 4 + 5 users: all C(9, 4) = 126 splits enumerated give the exact
	// permutation p-value; B = 20000 random permutations must land within
	// 4 Monte Carlo SEs of it.
	a := []UserSum{{3, 4}, {5, 6}, {2, 2}, {7, 10}}
	b := []UserSum{{1, 5}, {0, 3}, {2, 6}, {1, 1}, {2, 8}}
	exact := exactPermutationP(a, b)
	const B = 20000
	diff, p := PermutationTest(a, b, B, 42)
	near(t, "diff", diff, 17.0/22-6.0/23, 1e-15)
	se := math.Sqrt(exact * (1 - exact) / B)
	t.Logf("exact %.5f, Monte Carlo %.5f", exact, p)
	near(t, "p vs exact enumeration", p, exact, 4*se+1.0/(B+1))

	// Complete separation, 5 vs 5: only the observed split and its mirror
	// image are as extreme, exact p = 2 / C(10, 5) = 2/252.
	a = []UserSum{{4, 4}, {2, 2}, {3, 3}, {1, 1}, {5, 5}}
	b = []UserSum{{0, 3}, {0, 2}, {0, 1}, {0, 4}, {0, 5}}
	near(t, "separation exact", exactPermutationP(a, b), 2.0/252, 1e-15)
	_, p = PermutationTest(a, b, B, 7)
	near(t, "separation", p, 2.0/252, 4*math.Sqrt(2.0/252/B)+1.0/(B+1))
}

func TestPermutationTestProperties(t *testing.T) {
	a := []UserSum{{3, 4}, {5, 6}, {2, 2}, {7, 10}, {0, 1}}
	b := []UserSum{{1, 5}, {0, 3}, {2, 6}}
	_, p1 := PermutationTest(a, b, 999, 1)
	_, p2 := PermutationTest(a, b, 999, 1)
	if p1 != p2 {
		t.Errorf("same seed: %v vs %v", p1, p2)
	}
	// Swapping the groups flips the sign of diff; p is two-sided. (The
	// draws differ, so p is only close.)
	d1, _ := PermutationTest(a, b, 999, 1)
	d2, p3 := PermutationTest(b, a, 999, 1)
	near(t, "swapped diff", d2, -d1, 1e-15)
	near(t, "swapped p", p3, p1, 0.05)
	// Add-one: never below 1/(B+1), at most 1; B = 1 gives 1/2 or 1.
	for seed := range uint64(20) {
		_, p := PermutationTest(a, b, 1, seed)
		if p != 0.5 && p != 1 {
			t.Fatalf("B = 1: p = %v", p)
		}
	}
	// Equal means: every permutation is at least as extreme as 0.
	_, p := PermutationTest([]UserSum{{1, 2}, {2, 4}}, []UserSum{{3, 6}, {0.5, 1}}, 99, 3)
	near(t, "identical rates", p, 1, 0)

	// Degenerate input.
	_, p = PermutationTest(a, b, 0, 1)
	near(t, "B = 0", p, math.NaN(), 0)
	d, p := PermutationTest(nil, b, 99, 1)
	near(t, "empty a", d, math.NaN(), 0)
	near(t, "empty a p", p, math.NaN(), 0)
	_, p = PermutationTest([]UserSum{{1, 0}, {1, -2}}, b, 99, 1)
	near(t, "no events in a", p, math.NaN(), 0)
	// Users without events are dropped, not counted.
	dd, _ := PermutationTest(append(a, UserSum{9, 0}), b, 99, 1)
	near(t, "zero-event user ignored", dd, d1, 0)
}

func TestPermutationTestCalibration(t *testing.T) {
	// Under the null (both groups drawn alike, clustered), the test at
	// 0.05 rejects about 5% of the time: 400 data sets of 30 + 30 users,
	// B = 199; binomial SE 0.011, accepted band [0.02, 0.085]. On the same
	// data the permutation p and CompareClustered's t p should be close.
	rng := rand.New(rand.NewPCG(8, 9))
	const reps = 400
	var reject int
	var maxGap float64
	for r := range reps {
		a, b := clusteredRates(rng, 30), clusteredRates(rng, 30)
		_, p := PermutationTest(a, b, 199, uint64(r))
		if p <= 0.05 {
			reject++
		}
		c := CompareClustered(SummarizeUsers(a), SummarizeUsers(b), 0.95)
		maxGap = max(maxGap, math.Abs(p-c.DiffP))
	}
	rate := float64(reject) / reps
	t.Logf("null rejection rate %.3f, largest |p_perm - p_t| %.3f", rate, maxGap)
	if rate < 0.02 || rate > 0.085 {
		t.Errorf("null rejection rate %.3f, want about 0.05", rate)
	}
	if maxGap > 0.15 {
		t.Errorf("permutation and cluster-robust t p-values differ by %.3f", maxGap)
	}
}
