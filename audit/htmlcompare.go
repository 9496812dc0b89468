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
	// T is the page's static text in its language.
	T *pageText
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
	// t is the page's language.
	t *pageText
}

// testsView lays out a table of comparisons; kind tells each row's metric
// kind.
func (cc *compareCtx) testsView(ts []TestResult, kind func(TestResult) MetricKind, parity bool) testsView {
	v := testsView{T: cc.t, Parity: parity, SuppText: cc.suppressedText}
	for _, t := range ts {
		row := cc.testRow(t, kind(t), parity)
		v.HasCrude = v.HasCrude || row.Crude != nil
		v.Rows = append(v.Rows, row)
	}
	col := func(label, width string, num bool) tableCol {
		return tableCol{Label: label, Width: width, Num: num}
	}
	t := cc.t
	diff := t.diffHead + cc.conf + t.EffectB
	ratio := t.ratioHead + cc.conf + t.EffectB
	crude := tableCol{Label: t.crudeHead, Title: t.crudeTitle, Num: true}
	verdict := tableCol{Label: t.findingHead, Title: t.findingTitle}
	// Widths in percent, with and without the crude column.
	w := func(with, without string) string {
		if v.HasCrude {
			return with
		}
		return without
	}
	if parity {
		v.Cols = []tableCol{
			col(t.metricHead, w("12%", "14%"), false),
			{Label: t.npUsers, Title: t.npTitle, Width: "11%", Num: true},
			{Label: t.pUsers, Title: t.pTitle, Width: "11%", Num: true},
			col(diff, w("11%", "13%"), true),
			col(ratio, w("9%", "11%"), true),
		}
		crude.Width = "13%"
		if v.HasCrude {
			v.Cols = append(v.Cols, crude)
		}
		v.Cols = append(v.Cols, col(t.testHead, w("13%", "18%"), false))
	} else {
		v.Cols = []tableCol{
			col(t.groupHead, w("10%", "12%"), false),
			col(t.refHead, w("9%", "11%"), false),
			col(diff, w("12%", "15%"), true),
			col(ratio, w("10%", "13%"), true),
		}
		crude.Width = "15%"
		if v.HasCrude {
			v.Cols = append(v.Cols, crude)
		}
		v.Cols = append(v.Cols, col(t.testHead, w("16%", "17%"), false),
			tableCol{Label: t.usersHead, Title: t.usersTitle, Width: w("8%", "10%"), Num: true})
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
	tx := cc.t
	row := testRow{Metric: t.Metric, Group: t.Group, Ref: t.Reference,
		Suppressed: cc.suppressed[t.Group] || cc.suppressed[t.Reference],
		Adjustment: t.Adjustment, Strata: t.Strata}
	if row.Suppressed {
		return row
	}
	if t.Adjustment == AdjustNotComparable {
		row.NotComparable = notComparableIn(t, cc.strata, parity, tx)
	} else {
		u := adjustedUnit(k, t)
		row.Diff, row.DiffCI = tx.tr(fmtDiff(u, t.Difference)), tx.tr(fmtDiffCI(u, t.DifferenceCI))
		row.Ratio, row.RatioCI = tx.tr(fmtRatio(t.Ratio)), tx.tr(fmtCI(t.RatioCI, fmtRatio))
	}
	if c := t.Crude; c != nil {
		u := unitOf(k)
		row.Crude = &crudeCell{
			Diff: tx.tr(fmtDiff(u, c.Difference)), DiffCI: tx.tr(fmtDiffCI(u, c.DifferenceCI)),
			Ratio: tx.tr(fmtRatio(c.Ratio)), RatioCI: tx.tr(fmtCI(c.RatioCI, fmtRatio)),
			P: tx.tr(fmtP(c.P)), Test: tx.testName(c.Test),
		}
	}
	if t.Adjustment != AdjustNotComparable { // no test was made
		row.Test = tx.testName(t.Test)
	}
	if isFinite(t.Statistic) {
		row.Stat = fmtNum(t.Statistic)
	}
	row.Tag = adjustmentTagIn(t, cc.strata, tx)
	row.GroupUsers, row.RefUsers = fmtUsers(t.Users), fmtUsers(t.ReferenceUsers)
	if t.Users > 0 || t.ReferenceUsers > 0 {
		row.Users = row.GroupUsers + " / " + row.RefUsers
	}
	row.P, row.Q = tx.tr(fmtP(t.P)), tx.tr(fmtP(t.Q))
	row.Significant = t.Significant
	row.Verdict = verdictIn(t.Significant, t.Material, t.Q, cc.alpha, tx)
	return row
}

// fmtUsers is a count of users, "–" for none (an event-level test).
func fmtUsers(n int64) string {
	if n <= 0 {
		return "–"
	}
	return fmtInt(n)
}

// verdictIn words the Finding column in tx's words: a result with q <= alpha whose effect
// is not material is no finding, and says why.
func verdictIn(significant, material bool, q, alpha float64, tx *pageText) string {
	switch {
	case significant:
		return tx.yes
	case isFinite(q) && q <= alpha && !material:
		return tx.notMaterial
	}
	return tx.no
}

// adjustmentTag says, under a row's test, how its figures were adjusted.
func adjustmentTag(t TestResult, strata []string) string {
	return adjustmentTagIn(t, strata, &textEN)
}

// adjustmentTagIn is adjustmentTag in tx's words.
func adjustmentTagIn(t TestResult, strata []string, tx *pageText) string {
	switch t.Adjustment {
	case AdjustMantelHaenszel:
		s := tx.adjusted + strings.Join(strata, ", ")
		if t.Strata > 0 {
			s += " · " + countText(t.Strata, tx.stratumOne, tx.stratumMany)
		}
		return s
	case AdjustWithinUser:
		s := tx.withinUsers
		if t.Strata > 0 { // each user a stratum
			s += " · " + countText(t.Strata, tx.userOne, tx.userMany)
		}
		return s
	case AdjustNone:
		return tx.crudeTag
	case AdjustNotComparable:
		return tx.ncTag
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

// notComparableIn says, in tx's words, why a comparison could not be made: the parity of
// a behaviour (the click rate) is compared within the users seen in both
// modes, everything else within the spec's strata.
func notComparableIn(t TestResult, strata []string, parity bool, tx *pageText) string {
	if m := parityDef(t.Metric); parity && m != nil && behaviour(m) {
		n := ""
		if t.Strata > 0 {
			n = fmtInt(t.Strata)
		}
		return tx.ncParity(n)
	}
	return tx.ncStrata(strings.Join(strata, "/"))
}

// effectText words a significant comparison for the summary: its adjusted
// difference and ratio with their intervals, how they were adjusted, and
// the crude (unadjusted) figures beside them.
func effectText(t TestResult, k MetricKind, strata []string, tx *pageText) string {
	s := tx.effectDiff + figureText(adjustedUnit(k, t), t.Difference, t.DifferenceCI, t.Ratio, t.RatioCI, tx)
	if tag := adjustmentTagIn(t, strata, tx); tag != "" {
		s += "; " + tag
	}
	if c := t.Crude; c != nil {
		s += tx.effectCrude + figureText(unitOf(k), c.Difference, c.DifferenceCI, c.Ratio, c.RatioCI, tx) + ", p " + fmtP(c.P)
	}
	return tx.tr(s)
}

// figureText is "d (lo to hi), ratio r (lo to hi)", leaving out what is
// undefined.
func figureText(u diffUnit, diff float64, diffCI Interval, ratio float64, ratioCI Interval, tx *pageText) string {
	s := fmtDiff(u, diff)
	if ci := fmtDiffCI(u, diffCI); ci != "n/a" {
		s += " (" + ci + ")"
	}
	if isFinite(ratio) {
		s += tx.effectRatio + fmtRatio(ratio)
		if isFinite(ratioCI.Lo) && isFinite(ratioCI.Hi) {
			s += " (" + fmtCI(ratioCI, fmtRatio) + ")"
		}
	}
	return s
}

// sigRow is a significant comparison's line in the summary.
func (cc *compareCtx) sigRow(t TestResult, k MetricKind, anchor, where string) sigRow {
	return sigRow{Anchor: anchor, Metric: where, Group: t.Group, Ref: t.Reference,
		Effect: effectText(t, k, cc.strata, cc.t), P: cc.t.tr(fmtP(t.P)), Q: cc.t.tr(fmtP(t.Q)), TestName: cc.t.testName(t.Test)}
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
