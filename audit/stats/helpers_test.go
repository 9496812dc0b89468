package stats

import (
	"math"
	"testing"
)

// near fails the test unless got is within tol of want (absolute). A want
// of NaN requires a NaN; an infinite want requires the same infinity.
func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	switch {
	case math.IsNaN(want):
		if !math.IsNaN(got) {
			t.Errorf("%s = %v, want NaN", what, got)
		}
	case math.IsInf(want, 0):
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	case !(math.Abs(got-want) <= tol):
		t.Errorf("%s = %.10g, want %.10g (±%g)", what, got, want, tol)
	}
}

// nearCI checks both ends of an interval.
func nearCI(t *testing.T, what string, got Interval, lo, hi, tol float64) {
	t.Helper()
	near(t, what+".Lo", got.Lo, lo, tol)
	near(t, what+".Hi", got.Hi, hi, tol)
}

// isNaNCI fails the test unless both ends of ci are NaN.
func isNaNCI(t *testing.T, what string, ci Interval) {
	t.Helper()
	if !math.IsNaN(ci.Lo) || !math.IsNaN(ci.Hi) {
		t.Errorf("%s = %+v, want a NaN interval", what, ci)
	}
}

// summaryOf summarizes xs.
func summaryOf(xs ...float64) Summary {
	var s Summary
	for _, x := range xs {
		s.Add(x)
	}
	return s
}

// countsOf builds Counts from xs.
func countsOf(xs ...float64) Counts {
	c := Counts{}
	for _, x := range xs {
		c[x]++
	}
	return c
}

// R's built-in data set sleep (Cushny and Peebles 1905, as in Student
// 1908): extra hours of sleep of 10 patients under drug 1 (group 1) and
// drug 2 (group 2), patient i in the same position in both vectors.
var (
	sleep1 = []float64{0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0}
	sleep2 = []float64{1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4}
)
