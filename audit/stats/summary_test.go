package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSummarySleep(t *testing.T) {
	// R: with(sleep, tapply(extra, group, mean)) gives 0.75 and 2.33
	// (also printed as "mean of x / mean of y" by t.test); var() of the
	// groups: 3.200556 and 4.009000; sd(): 1.789010 and 2.002249.
	a, b := summaryOf(sleep1...), summaryOf(sleep2...)
	if a.N() != 10 || b.N() != 10 {
		t.Fatalf("N = %d, %d", a.N(), b.N())
	}
	near(t, "mean1", a.Mean(), 0.75, 1e-12)
	near(t, "mean2", b.Mean(), 2.33, 1e-12)
	near(t, "var1", a.Variance(), 3.200556, 5e-7)
	near(t, "var2", b.Variance(), 4.009000, 5e-7)
	near(t, "sd1", a.SD(), 1.789010, 5e-7)
	near(t, "sd2", b.SD(), 2.002249, 5e-7)
}

func TestSummaryShiftedData(t *testing.T) {
	// The example of Wikipedia's "Algorithms for calculating variance"
	// (and Welford 1962's motivation): 4, 7, 13, 16 has mean 10 and sample
	// variance 30 (deviations -6, -3, 3, 6; squares 36+9+9+36 = 90; 90/3).
	// Shifted by 1e9 the naive sum-of-squares formula loses every digit;
	// Welford's update must still give exactly 30.
	s := summaryOf(1e9+4, 1e9+7, 1e9+13, 1e9+16)
	near(t, "mean", s.Mean(), 1e9+10, 0)
	near(t, "var", s.Variance(), 30, 1e-9)
	// The same through AddN and Merge.
	var u Summary
	u.AddN(1e9+4, 1)
	u.AddN(1e9+7, 1)
	u.Merge(summaryOf(1e9+13, 1e9+16))
	near(t, "merged var", u.Variance(), 30, 1e-9)
}

func TestSummaryDegenerate(t *testing.T) {
	var s Summary
	if s.N() != 0 || !math.IsNaN(s.Mean()) || s.Variance() != 0 || s.SD() != 0 {
		t.Errorf("empty: N %d mean %v var %v sd %v", s.N(), s.Mean(), s.Variance(), s.SD())
	}
	s.AddN(3, 0)
	s.AddN(3, -2)
	if s.N() != 0 {
		t.Errorf("AddN with n <= 0 added: N = %d", s.N())
	}
	s.Merge(Summary{})
	if s.N() != 0 {
		t.Errorf("merging an empty summary added: N = %d", s.N())
	}
	s.Add(5)
	if s.N() != 1 || s.Mean() != 5 || s.Variance() != 0 {
		t.Errorf("one value: N %d mean %v var %v", s.N(), s.Mean(), s.Variance())
	}
	// Constant data: variance exactly 0.
	s.AddN(5, 1000)
	if s.Variance() != 0 {
		t.Errorf("constant data: var %v", s.Variance())
	}
}

func TestSummaryAddN(t *testing.T) {
	// 2 seen 3 times, 10 once: mean 16/4 = 4, deviations -2,-2,-2,6,
	// squares 4+4+4+36 = 48, variance 48/3 = 16.
	var s Summary
	s.AddN(2, 3)
	s.AddN(10, 1)
	near(t, "mean", s.Mean(), 4, 1e-12)
	near(t, "var", s.Variance(), 16, 1e-12)
	near(t, "sd", s.SD(), 4, 1e-12)
}

// Property: merging summaries of the parts equals adding every value to
// one summary, whatever the split.
func TestSummaryMergeProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 500; trial++ {
		n := r.IntN(60)
		scale := math.Pow(10, float64(r.IntN(12)-4))
		shift := (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(8)))
		var whole Summary
		parts := make([]Summary, 1+r.IntN(5))
		for i := 0; i < n; i++ {
			x := shift + scale*r.NormFloat64()
			k := int64(1 + r.IntN(3))
			whole.AddN(x, k)
			parts[r.IntN(len(parts))].AddN(x, k)
		}
		var merged Summary
		for _, p := range parts {
			merged.Merge(p)
		}
		if merged.N() != whole.N() {
			t.Fatalf("trial %d: N %d vs %d", trial, merged.N(), whole.N())
		}
		if whole.N() == 0 {
			continue
		}
		tol := 1e-9 * (math.Abs(shift) + scale)
		near(t, "merged mean", merged.Mean(), whole.Mean(), tol)
		// Both are floating-point results; their rounding error grows with
		// the condition number of the variance, |mean| / sd.
		cond := 1 + math.Abs(shift)/scale
		vtol := 1e-12 * cond * whole.Variance()
		near(t, "merged var", merged.Variance(), whole.Variance(), vtol)
	}
}
