package stats

import (
	"math"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

// nan is math.NaN(), kept short for the many degenerate returns.
var nan = math.NaN()

// nanInterval is the interval returned when the interval is undefined.
var nanInterval = Interval{Lo: nan, Hi: nan}

// validConf reports whether conf is a usable two-sided confidence level.
func validConf(conf float64) bool { return conf > 0 && conf < 1 }

// zCrit is the standard normal quantile at (1+conf)/2; conf must be valid.
func zCrit(conf float64) float64 {
	return distuv.UnitNormal.Quantile((1 + conf) / 2)
}

// tCrit is Student's t quantile at (1+conf)/2 with df degrees of freedom;
// conf must be valid and df > 0.
func tCrit(conf, df float64) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile((1 + conf) / 2)
}

// normTwoSided is the two-sided p-value 2*P(Z > |z|) of a standard normal z.
func normTwoSided(z float64) float64 {
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}

// tTwoSided is the two-sided p-value 2*P(T > |t|) of Student's t with df
// degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2). A NaN t or df, or
// df <= 0, gives NaN (the incomplete beta would panic or not converge).
func tTwoSided(t, df float64) float64 {
	if math.IsNaN(t) || math.IsNaN(df) || df <= 0 {
		return nan
	}
	if math.IsInf(t, 0) {
		return 0
	}
	return mathext.RegIncBeta(df/2, 0.5, df/(df+t*t))
}
