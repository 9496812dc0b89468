package audit

import (
	"time"
)

// Event is one outcome: an item shown to a user. Optional numeric fields are
// pointers; a nil field is "not recorded", never zero.
type Event struct {
	UserID string    `json:"user"`
	Item   string    `json:"item"`
	Time   time.Time `json:"time"`
	// Mode is "personalized" or "non_personalized".
	Mode      string   `json:"mode"`
	Rank      *float64 `json:"rank,omitempty"`
	Price     *float64 `json:"price,omitempty"`
	Discount  *float64 `json:"discount,omitempty"`
	Shown     *bool    `json:"shown,omitempty"`
	Clicked   *bool    `json:"clicked,omitempty"`
	Converted *bool    `json:"converted,omitempty"`
	// LatencyMS is how long the answer took (for the parity check).
	LatencyMS *float64 `json:"latency_ms,omitempty"`
	// Fields are free numeric fields, usable as metrics by name.
	Fields map[string]float64 `json:"fields,omitempty"`
	// Attrs are the event's own attributes, matched by segments like tags
	// and flags (e.g. "device:ios").
	Attrs []string `json:"attrs,omitempty"`
}

// Modes of an Event.
const (
	ModePersonalized    = "personalized"
	ModeNonPersonalized = "non_personalized"
)

// Spec describes one audit.
type Spec struct {
	Name string `json:"name" yaml:"name"`
	// Groups name the groups compared, as segment expressions over the
	// users' tags and flags and the events' attributes.
	Groups []GroupSpec `json:"groups" yaml:"groups"`
	// Reference is the name of the group the others are compared with.
	Reference string `json:"reference" yaml:"reference"`
	// Metrics to compute; empty means click rate, conversion rate,
	// discount-offered rate, mean and quantiles of price and rank.
	Metrics []MetricSpec `json:"metrics,omitempty" yaml:"metrics,omitempty"`
	// From and To bound the events' times (zero: unbounded).
	From time.Time `json:"from,omitzero" yaml:"from,omitempty"`
	To   time.Time `json:"to,omitzero" yaml:"to,omitempty"`
	// MinGroupSize: groups with fewer distinct users are suppressed. Zero
	// means 50.
	MinGroupSize int `json:"min_group_size,omitempty" yaml:"min_group_size,omitempty"`
	// Alpha is the false discovery rate for Benjamini-Hochberg. Zero means
	// 0.05.
	Alpha float64 `json:"alpha,omitempty" yaml:"alpha,omitempty"`
	// PriceBucket is the time bucket of the same-item price comparison.
	// Zero means one hour.
	PriceBucket Duration `json:"price_bucket,omitempty" yaml:"price_bucket,omitempty"`
	// Tolerance is what a difference must exceed to be material (see
	// Tolerance); nil means DefaultTolerance, and a zero member its
	// default.
	Tolerance *Tolerance `json:"tolerance,omitempty" yaml:"tolerance,omitempty"`
	// Strata are what rates and means are compared within, so that a
	// group is not judged for what it chose to browse (Simpson's
	// paradox): "item" (the event's item), "time" (the event's time
	// bucket of StrataBucket) and any other name k: the value of the
	// event's attribute "k:..." or, when the event has none, of the
	// user's fact "k:..." (e.g. "region", "device"). Nil means
	// DefaultStrata (item and time); ["none"] compares the plain figures.
	// At most MaxStrata names.
	Strata []string `json:"strata,omitempty" yaml:"strata,omitempty"`
	// StrataBucket is the time bucket of the "time" stratum. Zero means
	// one day.
	StrataBucket Duration `json:"strata_bucket,omitempty" yaml:"strata_bucket,omitempty"`
}

// GroupSpec is one group: a name and a segment expression.
type GroupSpec struct {
	Name    string `json:"name" yaml:"name"`
	Segment string `json:"segment" yaml:"segment"`
}

// MetricKind is how a metric summarizes its field.
type MetricKind string

// The metric kinds.
const (
	// Rate is the share of events where a boolean field is true (for
	// discount: where a discount > 0 was offered).
	Rate MetricKind = "rate"
	// Mean is the mean of a numeric field with a confidence interval.
	Mean MetricKind = "mean"
	// Distribution is the quantiles of a numeric field, compared with
	// Mann-Whitney.
	Distribution MetricKind = "distribution"
)

// MetricSpec names one metric: a kind over a field (clicked, converted,
// shown, discount, price, rank, latency_ms, or a free field's name).
type MetricSpec struct {
	Name  string     `json:"name" yaml:"name"`
	Kind  MetricKind `json:"kind" yaml:"kind"`
	Field string     `json:"field" yaml:"field"`
	// Quantiles for Distribution; empty means 0.1, 0.25, 0.5, 0.75, 0.9.
	Quantiles []float64 `json:"quantiles,omitempty" yaml:"quantiles,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("1h").
type Duration time.Duration

// Interval is a confidence interval.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// Report is the result of an audit.
type Report struct {
	Spec      Spec      `json:"spec"`
	Generated time.Time `json:"generated"`
	// Events counts the events read; Used those inside the window with a
	// group; Skipped the malformed lines (see Problems); Excluded, of the
	// events read, those of users who restricted processing of their data
	// (Art. 23) or were erased (Art. 24), left out of everything.
	Events   int64 `json:"events"`
	Used     int64 `json:"used"`
	Skipped  int64 `json:"skipped"`
	Excluded int64 `json:"excluded,omitempty"`
	// MinGroupSizeAsked is the min_group_size the spec asked for when it
	// was under the privacy floor of whoever ran the audit (the server's
	// or recguard audit's): Spec.MinGroupSize holds the floor the audit
	// ran with instead, and a note says so (see ApplyMinGroupSizeFloor).
	// Absent when the spec's own size was used.
	MinGroupSizeAsked int `json:"min_group_size_asked,omitempty"`
	// Problems lists malformed input lines (at most 100; Skipped counts
	// all).
	Problems []LineProblem `json:"problems,omitempty"`
	Groups   []GroupResult `json:"groups"`
	Tests    []TestResult  `json:"tests"`
	Prices   []PriceResult `json:"prices,omitempty"`
	Parity   []TestResult  `json:"parity,omitempty"`
	Findings []Finding     `json:"findings"`
	// IntervalConfidence is the level of the tests' and prices'
	// intervals: 1 - R Alpha / m (R tests selected, at least 1, of m), so
	// that the intervals shown match the decision (Benjamini-Yekutieli
	// false coverage-rate intervals). Groups' own intervals are at
	// 1 - Alpha.
	IntervalConfidence float64 `json:"interval_confidence,omitempty"`
	// Provenance says what was audited, with which recguard, by whom
	// (input fingerprints); set by whoever ran Run (recguard audit, the
	// server), nil when unknown.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// LineProblem is one malformed input line.
type LineProblem struct {
	File   string `json:"file,omitempty"`
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

// GroupResult is one group's figures. A suppressed group (fewer users than
// MinGroupSize) carries no figures at all.
type GroupResult struct {
	Name       string         `json:"name"`
	Segment    string         `json:"segment"`
	Suppressed bool           `json:"suppressed"`
	Users      int64          `json:"users,omitempty"`
	Events     int64          `json:"events,omitempty"`
	Metrics    []MetricResult `json:"metrics,omitempty"`
}

// MetricResult is one metric of one group.
type MetricResult struct {
	Metric string     `json:"metric"`
	Kind   MetricKind `json:"kind"`
	N      int64      `json:"n"`
	// Value is the rate or the mean; CI its interval.
	Value float64  `json:"value"`
	CI    Interval `json:"ci"`
	// Quantiles (Distribution): q -> value, in the order asked.
	Quantiles []Quantile `json:"quantiles,omitempty"`
	// SD is the standard deviation (Mean, Distribution).
	SD float64 `json:"sd,omitempty"`
}

// Quantile is one quantile of a distribution.
type Quantile struct {
	Q     float64 `json:"q"`
	Value float64 `json:"value"`
}

// TestResult compares one metric between a group and the reference.
type TestResult struct {
	Metric    string `json:"metric"`
	Group     string `json:"group"`
	Reference string `json:"reference"`
	// Difference is group - reference with its interval (Newcombe for
	// rates, Welch for means); Ratio is group / reference with a log-scale
	// interval.
	Difference   float64  `json:"difference"`
	DifferenceCI Interval `json:"difference_ci"`
	Ratio        float64  `json:"ratio"`
	RatioCI      Interval `json:"ratio_ci"`
	// Test names the test: cluster_robust_t (rates and means: the unit is
	// the user, see Users), cluster_permutation (the same, when few users
	// carry a side: the p-value from permuting the labels between users),
	// or, when a side has fewer than two users with a value, the
	// event-level two_proportion_z, fisher_exact or welch_t; mann_whitney
	// for distributions.
	Test      string  `json:"test"`
	Statistic float64 `json:"statistic"`
	P         float64 `json:"p"`
	// Users and ReferenceUsers count the users with a value on each side
	// (the clusters of a cluster_robust_t test); SE is the standard error
	// of the difference and DF the test's degrees of freedom (zero for
	// other tests).
	Users          int64   `json:"users,omitempty"`
	ReferenceUsers int64   `json:"reference_users,omitempty"`
	SE             float64 `json:"se,omitempty"`
	DF             float64 `json:"df,omitempty"`
	// Adjustment says how the decision's figures (Difference, Ratio, P)
	// were adjusted for what each side was shown (see stratify.go):
	// "mantel_haenszel" (rates and means compared within strata, Spec.Strata,
	// and pooled with Mantel-Haenszel weights n1 n0 / (n1 + n0), the same
	// estimate as a regression with a fixed effect per stratum; Strata
	// counts the strata both sides share), "within_user" (parity of a
	// behaviour, the click rate: compared within the users seen in both
	// modes), "none" (not adjusted: Spec.Strata is ["none"], or a
	// distribution), or "not_comparable" (the sides share no stratum, or
	// too few users were seen in both modes: no test, P is NaN). Crude is
	// the comparison of the plain figures, shown beside the adjusted one;
	// nil when not adjusted.
	Adjustment string       `json:"adjustment,omitempty"`
	Strata     int64        `json:"strata,omitempty"`
	Crude      *CrudeResult `json:"crude,omitempty"`
	// Q is the Benjamini-Hochberg adjusted p-value over every test of the
	// report; Material says the effect is outside the spec's Tolerance;
	// Significant (a finding) is Q <= Alpha and Material.
	Q           float64 `json:"q"`
	Material    bool    `json:"material"`
	Significant bool    `json:"significant"`
}

// CrudeResult is a comparison before adjustment: the plain figures of
// each side, compared user by user (cluster_robust_t) without strata. It
// is shown beside the adjusted figures and takes no part in the decision.
type CrudeResult struct {
	Difference   float64  `json:"difference"`
	DifferenceCI Interval `json:"difference_ci"`
	Ratio        float64  `json:"ratio"`
	RatioCI      Interval `json:"ratio_ci"`
	Test         string   `json:"test"`
	P            float64  `json:"p"`
}

// PriceResult is the same-item, same-time price comparison of a group
// against the reference.
type PriceResult struct {
	Group     string `json:"group"`
	Reference string `json:"reference"`
	// Pairs counts (item, time bucket) cells where both were offered the
	// item.
	Pairs int64 `json:"pairs"`
	// ShareHigher is the share of pairs where the group's mean price was
	// higher; ShareLower where it was lower.
	ShareHigher float64 `json:"share_higher"`
	ShareLower  float64 `json:"share_lower"`
	// MeanExcess is the mean (group - reference) price difference over all
	// pairs, with its interval over the pairs (descriptive).
	MeanExcess   float64  `json:"mean_excess"`
	MeanExcessCI Interval `json:"mean_excess_ci"`
	// MeanExcessPct is the decision's effect: with Test
	// cluster_robust_t, how much more (in percent of the item-time cell's
	// reference price) the group's users paid on average than the
	// reference's users, each user's events averaged first, with
	// MeanExcessPctCI; with Test sign_test (fewer than two users on a
	// side), the pairs' mean excess relative to the reference price.
	MeanExcessPct   float64  `json:"mean_excess_pct"`
	MeanExcessPctCI Interval `json:"mean_excess_pct_ci"`
	// Test is cluster_robust_t (users compared: robust to each user's own
	// price level) or sign_test (pairs compared: higher as likely as
	// lower); Users and ReferenceUsers count the users with a price in a
	// cell the reference was offered.
	Test           string `json:"test"`
	Users          int64  `json:"users,omitempty"`
	ReferenceUsers int64  `json:"reference_users,omitempty"`
	// Material says the excess is at least the spec's tolerance;
	// Significant (a finding) is Q <= Alpha and Material.
	P           float64 `json:"p"`
	Q           float64 `json:"q"`
	Material    bool    `json:"material"`
	Significant bool    `json:"significant"`
}

// Finding is one line of the summary a regulator reads first.
type Finding struct {
	Severity string `json:"severity"` // significant, note
	Text     string `json:"text"`
}
