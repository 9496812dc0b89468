package audit

import (
	"encoding/csv"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// WriteCSV writes the report as one spreadsheet-friendly CSV (RFC 4180,
// CRLF line ends). It holds one section per table, in this order: report
// (key, value; min_group_size is the size the audit ran with, and
// min_group_size_asked, when present, what the spec asked for under the
// privacy floor), findings, groups (one row per group and metric), quantiles,
// tests, prices, parity and problems. Each section starts with a header row
// whose first cell is "section" and the column names; each of its rows
// starts with the section's name; a row of empty cells separates sections.
// Every row has the same number of cells.
//
// The rows of tests and parity end with how the comparison was adjusted
// (see TestResult): adjustment, strata (the strata both sides share; empty
// when none are counted), and the crude (unadjusted) comparison shown
// beside the adjusted one: crude_difference with crude_difference_lo and
// _hi, crude_ratio with crude_ratio_lo and _hi, crude_test and crude_p,
// every crude cell empty when the comparison has no crude figures. The
// report section names the spec's strata and strata_bucket.
//
// Numbers are written in full precision with a dot as the decimal
// separator; an undefined number (NaN or infinite) is an empty cell, as are
// the figures of a suppressed group, which the report does not hold. Text
// cells that a spreadsheet would take for a formula (starting with =, +, -,
// @, tab or carriage return) are prefixed with a single quote.
func (r *Report) WriteCSV(w io.Writer) error {
	minSize, alpha, bucket := specDefaults(r.Spec)
	strata, strataBucket, _ := specStrata(r.Spec)
	var rows [][]string
	section := func(name string, header []string, body [][]string) {
		if len(rows) > 0 {
			rows = append(rows, nil) // separator, padded below
		}
		rows = append(rows, append([]string{"section"}, header...))
		for _, b := range body {
			rows = append(rows, append([]string{name}, b...))
		}
	}

	// report: the spec and the counts.
	var segs []string
	for _, g := range r.Spec.Groups {
		segs = append(segs, g.Name+" = "+g.Segment)
	}
	summary := [][]string{
		{"name", text(r.Spec.Name)},
		{"generated", csvTime(r.Generated)},
		{"reference", text(r.Spec.Reference)},
		{"groups", text(strings.Join(segs, "; "))},
		{"from", csvTime(r.Spec.From)},
		{"to", csvTime(r.Spec.To)},
		{"min_group_size", strconv.Itoa(minSize)},
		{"alpha", num(alpha)},
		{"price_bucket", fmtDuration(bucket)},
		{"strata", text(strings.Join(strata, "; "))},
		{"strata_bucket", fmtDuration(strataBucket)},
		{"events", strconv.FormatInt(r.Events, 10)},
		{"used", strconv.FormatInt(r.Used, 10)},
		{"skipped", strconv.FormatInt(r.Skipped, 10)},
	}
	if r.Excluded > 0 {
		summary = append(summary, []string{"excluded", strconv.FormatInt(r.Excluded, 10)})
	}
	if r.MinGroupSizeAsked > 0 {
		// The spec asked for less than the privacy floor (min_group_size).
		summary = append(summary, []string{"min_group_size_asked", strconv.Itoa(r.MinGroupSizeAsked)})
	}
	if r.IntervalConfidence > 0 {
		summary = append(summary, []string{"interval_confidence", num(r.IntervalConfidence)})
	}
	if pv := r.Provenance; pv != nil {
		summary = append(summary, []string{"version", text(pv.Version)}, []string{"run_by", text(pv.RunBy)})
		for _, in := range pv.Inputs {
			v := in.Name
			if in.SHA256 != "" {
				v += " sha256:" + in.SHA256 + " bytes:" + strconv.FormatInt(in.Bytes, 10)
			}
			if in.Detail != "" {
				v += " (" + in.Detail + ")"
			}
			summary = append(summary, []string{"input_" + in.Kind, text(v)})
		}
	}
	section("report", []string{"key", "value"}, summary)

	var body [][]string
	for _, f := range r.Findings {
		body = append(body, []string{text(f.Severity), text(f.Text)})
	}
	section("findings", []string{"severity", "text"}, body)

	body = nil
	var qbody [][]string
	for _, g := range r.Groups {
		ref := strconv.FormatBool(g.Name == r.Spec.Reference)
		head := []string{text(g.Name), text(g.Segment), ref, strconv.FormatBool(g.Suppressed)}
		if g.Suppressed || len(g.Metrics) == 0 {
			row := append(head, make([]string, 9)...)
			if !g.Suppressed {
				row[4], row[5] = strconv.FormatInt(g.Users, 10), strconv.FormatInt(g.Events, 10)
			}
			body = append(body, row)
			continue
		}
		for _, m := range g.Metrics {
			row := append(append([]string(nil), head...),
				strconv.FormatInt(g.Users, 10), strconv.FormatInt(g.Events, 10),
				text(m.Metric), text(string(m.Kind)), strconv.FormatInt(m.N, 10),
				num(m.Value), num(m.CI.Lo), num(m.CI.Hi), "")
			if m.Kind != Rate {
				row[len(row)-1] = num(m.SD)
			}
			body = append(body, row)
			for _, q := range m.Quantiles {
				qbody = append(qbody, []string{text(g.Name), text(m.Metric), num(q.Q), num(q.Value)})
			}
		}
	}
	section("groups", []string{"group", "segment", "reference", "suppressed", "users", "events",
		"metric", "kind", "n", "value", "ci_lo", "ci_hi", "sd"}, body)
	section("quantiles", []string{"group", "metric", "q", "value"}, qbody)

	testHeader := []string{"metric", "group", "reference", "difference", "difference_ci_lo", "difference_ci_hi",
		"ratio", "ratio_ci_lo", "ratio_ci_hi", "test", "statistic", "p", "users", "reference_users", "q", "material", "significant",
		"adjustment", "strata", "crude_difference", "crude_difference_lo", "crude_difference_hi",
		"crude_ratio", "crude_ratio_lo", "crude_ratio_hi", "crude_test", "crude_p"}
	section("tests", testHeader, testRows(r.Tests))

	body = nil
	for _, p := range r.Prices {
		body = append(body, []string{text(p.Group), text(p.Reference), strconv.FormatInt(p.Pairs, 10),
			num(p.ShareHigher), num(p.ShareLower), num(p.MeanExcess), num(p.MeanExcessCI.Lo), num(p.MeanExcessCI.Hi),
			num(p.MeanExcessPct), num(p.MeanExcessPctCI.Lo), num(p.MeanExcessPctCI.Hi), text(p.Test),
			strconv.FormatInt(p.Users, 10), strconv.FormatInt(p.ReferenceUsers, 10),
			num(p.P), num(p.Q), strconv.FormatBool(p.Material), strconv.FormatBool(p.Significant)})
	}
	section("prices", []string{"group", "reference", "pairs", "share_higher", "share_lower", "mean_excess",
		"mean_excess_ci_lo", "mean_excess_ci_hi", "mean_excess_pct", "mean_excess_pct_ci_lo", "mean_excess_pct_ci_hi",
		"test", "users", "reference_users", "p", "q", "material", "significant"}, body)

	section("parity", testHeader, testRows(r.Parity))

	body = nil
	for _, p := range r.Problems {
		body = append(body, []string{text(p.File), strconv.FormatInt(p.Line, 10), text(p.Reason)})
	}
	section("problems", []string{"file", "line", "reason"}, body)

	width := 0
	for _, row := range rows {
		width = max(width, len(row))
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	for _, row := range rows {
		if len(row) < width {
			row = append(row, make([]string, width-len(row))...)
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func testRows(ts []TestResult) [][]string {
	var body [][]string
	for _, t := range ts {
		strata := ""
		if t.Strata != 0 {
			strata = strconv.FormatInt(t.Strata, 10)
		}
		crude := make([]string, 8)
		if c := t.Crude; c != nil {
			crude = []string{num(c.Difference), num(c.DifferenceCI.Lo), num(c.DifferenceCI.Hi),
				num(c.Ratio), num(c.RatioCI.Lo), num(c.RatioCI.Hi), text(c.Test), num(c.P)}
		}
		body = append(body, append([]string{text(t.Metric), text(t.Group), text(t.Reference),
			num(t.Difference), num(t.DifferenceCI.Lo), num(t.DifferenceCI.Hi),
			num(t.Ratio), num(t.RatioCI.Lo), num(t.RatioCI.Hi),
			text(t.Test), num(t.Statistic), num(t.P), strconv.FormatInt(t.Users, 10), strconv.FormatInt(t.ReferenceUsers, 10),
			num(t.Q), strconv.FormatBool(t.Material), strconv.FormatBool(t.Significant),
			text(t.Adjustment), strata}, crude...))
	}
	return body
}

// num writes a number in full precision; NaN and infinities are empty.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// text defuses cells a spreadsheet would evaluate as a formula.
func text(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
