package stats

import (
	"math"
	"math/rand/v2"
)

// PermutationTest is a user-level permutation test of equal ratio-of-sums
// means in groups a and b. The statistic is the difference
//
//	diff = sum Y / sum N over a  -  sum Y / sum N over b
//
// and the group labels are permuted between users, never between events,
// keeping the group sizes: each of B permutations assigns len(a) of the
// pooled users, drawn uniformly at random, to a and the rest to b. The
// two-sided p-value counts the permutations at least as extreme as the
// data, with the add-one correction that makes it a valid p-value for a
// finite B (Phipson and Smyth 2010, "Permutation p-values should never be
// zero", Stat. Appl. Genet. Mol. Biol. 9(1):39):
//
//	p = (1 + #{b : |diff_b| >= |diff|}) / (B + 1)
//
// so p >= 1/(B+1). "At least as extreme" allows a relative 1e-9 for
// rounding, so that a relabelling giving the same statistic in exact
// arithmetic counts. The test assumes only that, under the null, users are
// exchangeable between the groups (the same distribution of (Y, N)); it
// needs no variance estimate, which makes it a check on CompareClustered
// when users are few or heavy-tailed.
//
// The draw is reproducible: the same inputs, B and seed give the same p
// (a PCG generator seeded with seed). The cost is O(B min(len(a), len(b)))
// time, one partial Fisher-Yates shuffle of the smaller group's size per
// permutation, and O(len(a) + len(b)) memory.
//
// Users with N <= 0 (or NaN) have no events and are left out. With no
// user left in either group, a zero denominator or B < 1, p is NaN (diff
// is still given when both means are defined).
func PermutationTest(a, b []UserSum, B int, seed uint64) (diff, p float64) {
	pool := make([]UserSum, 0, len(a)+len(b))
	var ya, na, yt, nt float64
	for _, u := range a {
		if u.N > 0 {
			pool = append(pool, u)
			ya += u.Y
			na += u.N
		}
	}
	ka := len(pool)
	for _, u := range b {
		if u.N > 0 {
			pool = append(pool, u)
		}
	}
	for _, u := range pool {
		yt += u.Y
		nt += u.N
	}
	kb := len(pool) - ka
	if ka == 0 || kb == 0 {
		return nan, nan
	}
	diff = ya/na - (yt-ya)/(nt-na)
	if B < 1 || math.IsNaN(diff) || math.IsInf(diff, 0) {
		return diff, nan
	}
	// Draw the smaller side; the other side is the complement.
	k, drawnIsA := ka, true
	if kb < ka {
		k, drawnIsA = kb, false
	}
	obs := math.Abs(diff)
	tol := 1e-9 * math.Max(obs, math.Abs(ya/na)+math.Abs((yt-ya)/(nt-na)))
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	n := len(pool)
	var extreme int
	for range B {
		var ys, ns float64
		for i := range k {
			j := i + rng.IntN(n-i)
			pool[i], pool[j] = pool[j], pool[i]
			ys += pool[i].Y
			ns += pool[i].N
		}
		d := ys/ns - (yt-ys)/(nt-ns)
		if !drawnIsA {
			d = -d
		}
		if math.Abs(d) >= obs-tol {
			extreme++
		}
	}
	return diff, float64(1+extreme) / float64(B+1)
}
