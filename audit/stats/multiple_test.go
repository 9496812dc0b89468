package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBenjaminiHochbergR(t *testing.T) {
	// R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "BH") = 0.05 0.05 0.05
	// 0.05 0.05 (every m p_(i)/i is 0.05).
	for _, q := range BenjaminiHochberg([]float64{0.01, 0.02, 0.03, 0.04, 0.05}) {
		near(t, "trivial", q, 0.05, 1e-15)
	}
}

func TestBenjaminiHochberg1995(t *testing.T) {
	// Benjamini & Hochberg (1995), JRSS B 57:289-300, the paper's worked
	// example: the 15 p-values of Neuhaus et al.'s thrombolysis trial; at
	// q* = 0.05 the procedure rejects the four smallest. The q-values by hand,
	// q_(i) = min_{j >= i} 15 p_(j) / j:
	//   15p/j: 0.0015, 0.003, 0.0095, 0.035625, 0.0603, 0.0695, 0.0638571,
	//          0.0645, 0.0765, 0.486, 0.5811818, 0.714875, 0.7532308,
	//          0.8132143, 1
	//   running minimum from the top changes only 0.0695 -> 0.0638571.
	p := []float64{0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
		0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000}
	want := []float64{0.0015, 0.003, 0.0095, 0.035625, 0.0603, 0.0638571, 0.0638571,
		0.0645, 0.0765, 0.486, 0.5811818, 0.714875, 0.7532308, 0.8132143, 1}
	// Present them shuffled: the result must follow the input order.
	perm := []int{9, 3, 14, 0, 7, 12, 5, 1, 10, 6, 2, 13, 8, 4, 11}
	in := make([]float64, len(p))
	for i, j := range perm {
		in[i] = p[j]
	}
	got := BenjaminiHochberg(in)
	rejected := 0
	for i, j := range perm {
		near(t, "BH 1995", got[i], want[j], 5e-8)
		if got[i] <= 0.05 {
			rejected++
		}
	}
	if rejected != 4 {
		t.Errorf("rejected %d at 0.05, want 4 (Benjamini & Hochberg 1995)", rejected)
	}
	if in[0] != p[9] {
		t.Errorf("input modified")
	}
}

func TestBenjaminiHochbergNaN(t *testing.T) {
	// By hand, as R's p.adjust(c(0.01, NA, 0.04), "BH"), whose default n
	// is the number of non-NA p-values: m = 2, 2*0.01/1 = 0.02,
	// 2*0.04/2 = 0.04, giving 0.02 NA 0.04.
	got := BenjaminiHochberg([]float64{0.01, math.NaN(), 0.04})
	near(t, "q1", got[0], 0.02, 1e-15)
	near(t, "q2", got[1], math.NaN(), 0)
	near(t, "q3", got[2], 0.04, 1e-15)
	if got := BenjaminiHochberg(nil); len(got) != 0 {
		t.Errorf("empty: %v", got)
	}
	// Ties share one q-value, by hand for c(0.02, 0.02, 0.5): 3*0.5/3 = 0.5,
	// 3*0.02/2 = 0.03, 3*0.02/1 = 0.06 -> running minimum 0.03 0.03 0.5.
	got = BenjaminiHochberg([]float64{0.02, 0.02, 0.5})
	near(t, "tie 1", got[0], 0.03, 1e-15)
	near(t, "tie 2", got[1], 0.03, 1e-15)
	near(t, "tie 3", got[2], 0.5, 1e-15)
	// By hand for c(0.9, 0.8): 2*0.9/2 = 0.9, 2*0.8/1 = 1.6 -> min 0.9,
	// so 0.9 0.9.
	got = BenjaminiHochberg([]float64{0.9, 0.8})
	near(t, "cap", got[0], 0.9, 1e-15)
	near(t, "cap", got[1], 0.9, 1e-15)
}

// Property: q-values are >= p, <= 1, and non-decreasing in p.
func TestBenjaminiHochbergProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for trial := 0; trial < 500; trial++ {
		n := r.IntN(40)
		p := make([]float64, n)
		for i := range p {
			switch r.IntN(10) {
			case 0:
				p[i] = math.NaN()
			case 1:
				p[i] = float64(r.IntN(4)) / 4 // ties and the ends 0, 1
			default:
				p[i] = math.Pow(r.Float64(), 3)
			}
		}
		q := BenjaminiHochberg(p)
		idx := make([]int, 0, n)
		for i := range p {
			if math.IsNaN(p[i]) {
				if !math.IsNaN(q[i]) {
					t.Fatalf("NaN p got q %v", q[i])
				}
				continue
			}
			if q[i] < p[i] || q[i] > 1 {
				t.Fatalf("q %v for p %v", q[i], p[i])
			}
			idx = append(idx, i)
		}
		slices.SortFunc(idx, func(a, b int) int {
			switch {
			case p[a] < p[b]:
				return -1
			case p[a] > p[b]:
				return 1
			}
			return 0
		})
		for k := 1; k < len(idx); k++ {
			if q[idx[k]] < q[idx[k-1]] {
				t.Fatalf("q not monotone: p %v -> q %v, p %v -> q %v", p[idx[k-1]], q[idx[k-1]], p[idx[k]], q[idx[k]])
			}
		}
	}
}
