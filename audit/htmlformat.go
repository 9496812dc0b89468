package audit

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// The HTML report's vocabulary of numbers: every figure the page shows is
// written by one of these functions, so that a count, a share, a p-value
// or an interval reads the same in every table, chart and sentence. A
// non-finite value shows as "n/a". (The CSV writes full precision with its
// own num; the charts' axis ticks, whose decimals follow their step, with
// tickLabel.)

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// fmtInt writes a count with thousands separators: 12,345.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtNum shows a number with about three significant digits, never in
// exponent form for ordinary magnitudes.
func fmtNum(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 0.0001:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(v, 'e', 2, 64)
}

// fmtG shows a number as given (a setting: alpha, a quantile, a tolerance).
func fmtG(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// signed puts a plus sign before s, the text of v, when v is positive.
func signed(s string, v float64) string {
	if isFinite(v) && v > 0 {
		return "+" + s
	}
	return s
}

// fmtSigned is fmtNum with its sign: a difference.
func fmtSigned(v float64) string { return signed(fmtNum(v), v) }

// fmtPercentage shows p (already in percent, without the % sign): one
// decimal from 10, two from 1, two significant digits below.
func fmtPercentage(p float64) string {
	a := math.Abs(p)
	switch {
	case !isFinite(p):
		return "n/a"
	case p == 0:
		return "0"
	case a >= 10:
		return strconv.FormatFloat(p, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(p, 'f', 2, 64)
	case a >= 0.001:
		return strconv.FormatFloat(p, 'g', 2, 64)
	}
	return "≈0"
}

// fmtSignedPercentage is fmtPercentage with its sign.
func fmtSignedPercentage(p float64) string { return signed(fmtPercentage(p), p) }

// fmtPct shows a share (0.123) as a percentage: 12.3%.
func fmtPct(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	return fmtPercentage(v*100) + "%"
}

// fmtSignedPercent shows p, already in percent, with its sign: +8.50%.
func fmtSignedPercent(p float64) string {
	if !isFinite(p) {
		return "n/a"
	}
	return fmtSignedPercentage(p) + "%"
}

// fmtRatio shows a ratio with three decimals.
func fmtRatio(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// fmtP shows a p- or q-value.
func fmtP(v float64) string {
	switch {
	case !isFinite(v):
		return "n/a"
	case v < 0.0001:
		return "< 0.0001"
	case v >= 0.1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// fmtLevel shows a confidence level (0.95) as a percentage (95%), exactly
// to four decimals of a percent.
func fmtLevel(conf float64) string {
	return strconv.FormatFloat(math.Round(conf*1e6)/1e4, 'f', -1, 64) + "%"
}

// fmtCI shows an interval with f: "lo to hi"; "n/a" when neither end is
// finite.
func fmtCI(ci Interval, f func(float64) string) string {
	if !isFinite(ci.Lo) && !isFinite(ci.Hi) {
		return "n/a"
	}
	return f(ci.Lo) + " to " + f(ci.Hi)
}

// fmtValue is how a metric of kind k shows its value: a rate as a
// percentage, anything else as a number.
func fmtValue(k MetricKind) func(float64) string {
	if k == Rate {
		return fmtPct
	}
	return fmtNum
}

// diffUnit is what a difference is counted in.
type diffUnit int

const (
	// unitValue: the metric's own unit (a mean, a median's shift).
	unitValue diffUnit = iota
	// unitPP: percentage points (a difference of rates).
	unitPP
	// unitPercentile: percentile points (a distribution compared within
	// strata: the shift of the mean percentile within each stratum).
	unitPercentile
)

// unitOf is the unit of a plain (crude) difference of kind k.
func unitOf(k MetricKind) diffUnit {
	if k == Rate {
		return unitPP
	}
	return unitValue
}

// adjustedUnit is the unit of t's own difference: a distribution compared
// within strata shifts by percentile points.
func adjustedUnit(k MetricKind, t TestResult) diffUnit {
	if k == Distribution && t.Adjustment == AdjustMantelHaenszel {
		return unitPercentile
	}
	return unitOf(k)
}

// fmtDiff shows a difference in unit u, signed: "-1.20 pp", "+5.70",
// "+6.0 percentile points".
func fmtDiff(u diffUnit, v float64) string {
	switch {
	case !isFinite(v):
		return "n/a"
	case u == unitValue:
		return fmtSigned(v)
	}
	return fmtSignedPercentage(v*100) + u.suffix()
}

// fmtDiffCI shows the interval of a difference in unit u, its ends
// signed: "-1.2 to +0.40 pp", "+5.20 to +6.20".
func fmtDiffCI(u diffUnit, ci Interval) string {
	if u == unitValue {
		return fmtCI(ci, fmtSigned)
	}
	s := fmtCI(ci, func(v float64) string { return fmtSignedPercentage(v * 100) })
	if s == "n/a" {
		return s
	}
	return s + u.suffix()
}

func (u diffUnit) suffix() string {
	switch u {
	case unitPP:
		return " pp"
	case unitPercentile:
		return " percentile points"
	}
	return ""
}

// fmtDuration writes 1h rather than 1h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtWindow(from, to time.Time) string {
	switch {
	case from.IsZero() && to.IsZero():
		return "every event (no window)"
	case from.IsZero():
		return "every event before " + fmtTime(to)
	case to.IsZero():
		return "every event from " + fmtTime(from)
	}
	return "from " + fmtTime(from) + " to " + fmtTime(to)
}
