package audit

import (
	"strings"
)

// The comparisons' tables: a group's tests against the reference in each
// metric's section, and the parity of the non-personalized path against
// the personalized one. A comparison adjusted for what each side was shown
// (Adjustment mantel_haenszel or within_user) shows its adjusted figures,
// which decide, and beside them, labelled crude (unadjusted), the plain
// comparison (Crude), which decides nothing; a tag under its test says how
// it was adjusted. A comparison that could not be made (not_comparable)
// says so instead of figures.

// testsView is one table of comparisons.
type testsView struct {
	// Parity: the rows are metrics of the parity check, with each mode's
	// users; otherwise groups compared with the reference.
	Parity bool
	// HasCrude: some row has crude figures, shown in their own column.
	HasCrude bool
	// Cols are the table's columns, their headers and widths (percent of
	// the table; they add up to 100, so the table fits its page).
	Cols []tableCol
	// SuppSpan is how many columns a suppressed row's note spans, and
	// SuppText the note.
	SuppSpan int
	SuppText string
	Rows     []testRow
}

// tableCol is one column of a table: its header and width.
type tableCol struct {
	Label string
	Title string // the header's tooltip, "" for none
	Width string // "12%"
	Num   bool
}

type testRow struct {
	Metric     string
	Group      string
	Ref        string
	Suppressed bool
	// Adjustment and Strata are the row's own (data attributes).
	Adjustment string
	Strata     int64
	// NotComparable says why no test could be made; the row then has no
	// adjusted figures.
	NotComparable string
	Diff, DiffCI  string
	Ratio         string
	RatioCI       string
	// Crude is the unadjusted comparison; nil when there is none.
	Crude *crudeCell
	Test  string
	Stat  string
	// Tag says how the figures were adjusted: "adjusted: item, time · 48
	// strata", "not adjusted (crude)"; "" when the report does not say.
	Tag string
	// Users is "group / reference" (tests); GroupUsers and RefUsers the
	// same apart (parity: non-personalized, personalized).
	Users, GroupUsers, RefUsers string
	P, Q                        string
	Significant                 bool
	Verdict                     string // "yes", "no", "no: not material"
}

// crudeCell is the crude (unadjusted) comparison of a row.
type crudeCell struct {
	Diff, DiffCI, Ratio, RatioCI, P, Test string
}

// compareCtx is what every comparison's row needs of the report.
type compareCtx struct {
	alpha      float64
	conf       string   // the comparisons' interval level, "99.5%"
	strata     []string // the spec's strata (defaults filled in)
	suppressed map[string]bool
	// suppressedText is what a suppressed row says.
	suppressedText string
}

// testsView lays out a table of comparisons; kind tells each row's metric
// kind.
func (cc *compareCtx) testsView(ts []TestResult, kind func(TestResult) MetricKind, parity bool) testsView {
	v := testsView{Parity: parity, SuppText: cc.suppressedText}
	for _, t := range ts {
		row := cc.testRow(t, kind(t), parity)
		v.HasCrude = v.HasCrude || row.Crude != nil
		v.Rows = append(v.Rows, row)
	}
	col := func(label, width string, num bool) tableCol {
		return tableCol{Label: label, Width: width, Num: num}
	}
	diff := "Difference (" + cc.conf + " interval)"
	ratio := "Ratio (" + cc.conf + " interval)"
	crude := tableCol{Label: "Crude (unadjusted)", Title: "the plain comparison, before adjusting for what each side was shown; it does not decide", Num: true}
	verdict := tableCol{Label: "Finding", Title: "q ≤ α and a material effect"}
	// Widths in percent, with and without the crude column.
	w := func(with, without string) string {
		if v.HasCrude {
			return with
		}
		return without
	}
	if parity {
		v.Cols = []tableCol{
			col("Metric", w("12%", "14%"), false),
			{Label: "Non-personalized users", Title: "users of mode non_personalized with a value", Width: "11%", Num: true},
			{Label: "Personalized users", Title: "users of mode personalized with a value", Width: "11%", Num: true},
			col(diff, w("11%", "13%"), true),
			col(ratio, w("9%", "11%"), true),
		}
		crude.Width = "13%"
		if v.HasCrude {
			v.Cols = append(v.Cols, crude)
		}
		v.Cols = append(v.Cols, col("Test", w("13%", "18%"), false))
	} else {
		v.Cols = []tableCol{
			col("Group", w("10%", "12%"), false),
			col("Reference", w("9%", "11%"), false),
			col(diff, w("12%", "15%"), true),
			col(ratio, w("10%", "13%"), true),
		}
		crude.Width = "15%"
		if v.HasCrude {
			v.Cols = append(v.Cols, crude)
		}
		v.Cols = append(v.Cols, col("Test", w("16%", "17%"), false),
			tableCol{Label: "Users", Title: "users with a value: group / reference", Width: w("8%", "10%"), Num: true})
	}
	verdict.Width = w("7%", "8%")
	v.Cols = append(v.Cols, col("p", w("6.5%", "7%"), true), col("q", w("6.5%", "7%"), true), verdict)
	// A suppressed row names its metric (parity) or its group and
	// reference, and nothing else.
	v.SuppSpan = len(v.Cols) - 2
	if parity {
		v.SuppSpan = len(v.Cols) - 1
	}
	return v
}

func (cc *compareCtx) testRow(t TestResult, k MetricKind, parity bool) testRow {
	row := testRow{Metric: t.Metric, Group: t.Group, Ref: t.Reference,
		Suppressed: cc.suppressed[t.Group] || cc.suppressed[t.Reference],
		Adjustment: t.Adjustment, Strata: t.Strata}
	if row.Suppressed {
		return row
	}
	if t.Adjustment == AdjustNotComparable {
		row.NotComparable = notComparableText(t, cc.strata, parity)
	} else {
		u := adjustedUnit(k, t)
		row.Diff, row.DiffCI = fmtDiff(u, t.Difference), fmtDiffCI(u, t.DifferenceCI)
		row.Ratio, row.RatioCI = fmtRatio(t.Ratio), fmtCI(t.RatioCI, fmtRatio)
	}
	if c := t.Crude; c != nil {
		u := unitOf(k)
		row.Crude = &crudeCell{
			Diff: fmtDiff(u, c.Difference), DiffCI: fmtDiffCI(u, c.DifferenceCI),
			Ratio: fmtRatio(c.Ratio), RatioCI: fmtCI(c.RatioCI, fmtRatio),
			P: fmtP(c.P), Test: testName(c.Test),
		}
	}
	if t.Adjustment != AdjustNotComparable { // no test was made
		row.Test = testName(t.Test)
	}
	if isFinite(t.Statistic) {
		row.Stat = fmtNum(t.Statistic)
	}
	row.Tag = adjustmentTag(t, cc.strata)
	row.GroupUsers, row.RefUsers = fmtUsers(t.Users), fmtUsers(t.ReferenceUsers)
	if t.Users > 0 || t.ReferenceUsers > 0 {
		row.Users = row.GroupUsers + " / " + row.RefUsers
	}
	row.P, row.Q = fmtP(t.P), fmtP(t.Q)
	row.Significant = t.Significant
	row.Verdict = verdict(t.Significant, t.Material, t.Q, cc.alpha)
	return row
}

// fmtUsers is a count of users, "–" for none (an event-level test).
func fmtUsers(n int64) string {
	if n <= 0 {
		return "–"
	}
	return fmtInt(n)
}

// verdict words the Finding column: a result with q <= alpha whose effect
// is not material is no finding, and says why.
func verdict(significant, material bool, q, alpha float64) string {
	switch {
	case significant:
		return "yes"
	case isFinite(q) && q <= alpha && !material:
		return "no: not material"
	}
	return "no"
}

// adjustmentTag says, under a row's test, how its figures were adjusted.
func adjustmentTag(t TestResult, strata []string) string {
	switch t.Adjustment {
	case AdjustMantelHaenszel:
		s := "adjusted: " + strings.Join(strata, ", ")
		if t.Strata > 0 {
			s += " · " + countText(t.Strata, "stratum", "strata")
		}
		return s
	case AdjustWithinUser:
		s := "adjusted: within users seen in both modes"
		if t.Strata > 0 { // each user a stratum
			s += " · " + countText(t.Strata, "user", "users")
		}
		return s
	case AdjustNone:
		return "not adjusted (crude)"
	case AdjustNotComparable:
		return "not comparable: no test"
	}
	return ""
}

// countText is "1 stratum", "48 strata".
func countText(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmtInt(n) + " " + many
}

// notComparableText says why a comparison could not be made: the parity of
// a behaviour (the click rate) is compared within the users seen in both
// modes, everything else within the spec's strata.
func notComparableText(t TestResult, strata []string, parity bool) string {
	if m := parityDef(t.Metric); parity && m != nil && behaviour(m) {
		s := "not comparable: too few users were seen in both modes"
		if t.Strata > 0 {
			s += " (" + fmtInt(t.Strata) + ")"
		}
		return s
	}
	return "not comparable: the two sides share no " + strings.Join(strata, "/") + " stratum with at least two users a side"
}

// effectText words a significant comparison for the summary: its adjusted
// difference and ratio with their intervals, how they were adjusted, and
// the crude (unadjusted) figures beside them.
func effectText(t TestResult, k MetricKind, strata []string) string {
	s := "difference " + figureText(adjustedUnit(k, t), t.Difference, t.DifferenceCI, t.Ratio, t.RatioCI)
	if tag := adjustmentTag(t, strata); tag != "" {
		s += "; " + tag
	}
	if c := t.Crude; c != nil {
		s += "; crude (unadjusted): difference " + figureText(unitOf(k), c.Difference, c.DifferenceCI, c.Ratio, c.RatioCI) + ", p " + fmtP(c.P)
	}
	return s
}

// figureText is "d (lo to hi), ratio r (lo to hi)", leaving out what is
// undefined.
func figureText(u diffUnit, diff float64, diffCI Interval, ratio float64, ratioCI Interval) string {
	s := fmtDiff(u, diff)
	if ci := fmtDiffCI(u, diffCI); ci != "n/a" {
		s += " (" + ci + ")"
	}
	if isFinite(ratio) {
		s += ", ratio " + fmtRatio(ratio)
		if isFinite(ratioCI.Lo) && isFinite(ratioCI.Hi) {
			s += " (" + fmtCI(ratioCI, fmtRatio) + ")"
		}
	}
	return s
}

// sigRow is a significant comparison's line in the summary.
func (cc *compareCtx) sigRow(t TestResult, k MetricKind, anchor, where string) sigRow {
	return sigRow{Anchor: anchor, Metric: where, Group: t.Group, Ref: t.Reference,
		Effect: effectText(t, k, cc.strata), P: fmtP(t.P), Q: fmtP(t.Q), TestName: testName(t.Test)}
}

// testName names a test in words (the findings use it too).
func testName(t string) string {
	switch t {
	case "two_proportion_z":
		return "two-proportion z-test"
	case "fisher_exact":
		return "Fisher's exact test"
	case "welch_t":
		return "Welch's t-test"
	case "cluster_robust_t":
		return "user-level t-test"
	case "cluster_permutation":
		return "user-level permutation test"
	case "mann_whitney":
		return "Mann-Whitney U test"
	case "sign_test", "sign":
		return "sign test"
	}
	return t
}

// priceTestName names a same-item price test; a report that does not say
// ran the sign test.
func priceTestName(t string) string {
	if t == "" {
		return testName("sign_test")
	}
	return testName(t)
}
