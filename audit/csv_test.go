package audit

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
)

// csvSections re-reads a report's CSV: section -> rows as header -> cell.
func csvSections(t *testing.T, r *Report) (map[string][]map[string]string, [][]string) {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	raw := buf.String()
	if !strings.HasSuffix(raw, "\r\n") || strings.Count(raw, "\n") != strings.Count(raw, "\r\n") {
		t.Error("lines do not end with CRLF (RFC 4180)")
	}
	rd := csv.NewReader(strings.NewReader(raw))
	// FieldsPerRecord 0: every record must have as many fields as the first.
	recs, err := rd.ReadAll()
	if err != nil {
		t.Fatalf("re-reading the CSV: %v\n%s", err, raw)
	}
	out := map[string][]map[string]string{}
	var header []string
	for _, rec := range recs {
		if strings.Join(rec, "") == "" {
			header = nil
			continue
		}
		if rec[0] == "section" {
			header = rec
			continue
		}
		if header == nil {
			t.Fatalf("a row before its section's header: %q", rec)
		}
		row := map[string]string{}
		for i, h := range header {
			if h != "" {
				row[h] = rec[i]
			}
		}
		out[rec[0]] = append(out[rec[0]], row)
	}
	return out, recs
}

func TestCSV(t *testing.T) {
	r := sampleReport()
	secs, recs := csvSections(t, r)

	var order []string
	for _, rec := range recs {
		if rec[0] == "section" {
			continue
		}
		if rec[0] != "" && (len(order) == 0 || order[len(order)-1] != rec[0]) {
			order = append(order, rec[0])
		}
	}
	want := "report findings groups quantiles tests prices parity problems"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("sections %q, want %q", got, want)
	}

	kv := map[string]string{}
	for _, row := range secs["report"] {
		kv[row["key"]] = row["value"]
	}
	for k, v := range map[string]string{
		"name": "Q3 loyalty pricing <review>", "reference": "new", "events": "120000", "used": "118500",
		"skipped": "3", "min_group_size": "50", "alpha": "0.05", "price_bucket": "1h",
		"from": "2025-07-01T00:00:00Z", "generated": "2025-10-02T09:30:00Z",
	} {
		if kv[k] != v {
			t.Errorf("report %s = %q, want %q", k, kv[k], v)
		}
	}

	if len(secs["findings"]) != len(r.Findings) {
		t.Fatalf("%d findings", len(secs["findings"]))
	}
	for i, f := range secs["findings"] {
		if f["text"] != r.Findings[i].Text || f["severity"] != r.Findings[i].Severity {
			t.Errorf("finding %d: %v", i, f)
		}
	}

	// groups: 5 + 5 + 4 metric rows and one row for the suppressed group.
	if n := len(secs["groups"]); n != 15 {
		t.Errorf("%d group rows, want 15", n)
	}
	found := false
	for _, g := range secs["groups"] {
		switch {
		case g["group"] == "minors":
			if g["suppressed"] != "true" {
				t.Errorf("minors not marked suppressed: %v", g)
			}
			for _, k := range []string{"users", "events", "metric", "n", "value", "ci_lo", "ci_hi", "sd"} {
				if g[k] != "" {
					t.Errorf("suppressed group shows %s = %q", k, g[k])
				}
			}
		case g["group"] == "loyal" && g["metric"] == "discount_rate":
			found = true
			if g["value"] != "0.118" || g["ci_lo"] != "0.1152" || g["ci_hi"] != "0.1208" || g["n"] != "50211" ||
				g["users"] != "3120" || g["kind"] != "rate" || g["reference"] != "false" || g["sd"] != "" {
				t.Errorf("loyal discount_rate row: %v", g)
			}
		case g["group"] == "ios" && g["metric"] == "discount_rate":
			if g["value"] != "" || g["ci_lo"] != "" || g["ci_hi"] != "" {
				t.Errorf("NaN/Inf must be empty cells: %v", g)
			}
		case g["group"] == "new" && g["metric"] == "mean_price":
			if g["reference"] != "true" || g["sd"] != "20.1" || g["value"] != "48.2" {
				t.Errorf("new mean_price row: %v", g)
			}
		}
	}
	if !found {
		t.Error("no loyal discount_rate row")
	}

	// quantiles: new price 5 + rank 3, loyal 5 + 3, ios 5.
	if n := len(secs["quantiles"]); n != 21 {
		t.Errorf("%d quantile rows, want 21", n)
	}
	for _, q := range secs["quantiles"] {
		if q["group"] == "loyal" && q["metric"] == "price" && q["q"] == "0.9" && q["value"] != "86" {
			t.Errorf("loyal price p90 = %q", q["value"])
		}
	}

	if len(secs["tests"]) != len(r.Tests) {
		t.Fatalf("%d tests", len(secs["tests"]))
	}
	for i, tr := range secs["tests"] {
		w := r.Tests[i]
		if tr["metric"] != w.Metric || tr["group"] != w.Group || tr["test"] != w.Test ||
			tr["significant"] != strconv.FormatBool(w.Significant) {
			t.Errorf("test %d: %v", i, tr)
		}
		if p, err := strconv.ParseFloat(tr["q"], 64); err != nil || p != w.Q {
			t.Errorf("test %d q = %q, want %v", i, tr["q"], w.Q)
		}
	}
	if d := secs["tests"][2]; d["difference"] != "-0.113" || d["difference_ci_lo"] != "-0.117" || d["ratio_ci_hi"] != "0.525" {
		t.Errorf("discount test row: %v", d)
	}

	if len(secs["prices"]) != 2 {
		t.Fatalf("%d price rows", len(secs["prices"]))
	}
	if p := secs["prices"][0]; p["group"] != "loyal" || p["pairs"] != "8123" || p["share_higher"] != "0.62" ||
		p["share_lower"] != "0.21" || p["mean_excess_pct"] != "8.5" || p["significant"] != "true" {
		t.Errorf("price row: %v", p)
	}
	if len(secs["parity"]) != 1 || secs["parity"][0]["group"] != "non_personalized" {
		t.Errorf("parity: %v", secs["parity"])
	}
	if len(secs["problems"]) != 2 || secs["problems"][1]["reason"] != `bad "time" <field>` || secs["problems"][0]["line"] != "17" {
		t.Errorf("problems: %v", secs["problems"])
	}
}

func TestCSVFormulaInjection(t *testing.T) {
	r := &Report{
		Spec:     Spec{Name: "=HYPERLINK(\"http://x\")", Reference: "a"},
		Findings: []Finding{{Severity: "note", Text: "+1 more, -2 less, @sum"}},
		Groups: []GroupResult{{Name: "-a", Segment: "@b", Metrics: []MetricResult{
			{Metric: "m", Kind: Mean, Value: -1.5, CI: Interval{-2, -1}},
		}}},
	}
	secs, _ := csvSections(t, r)
	if v := secs["report"][0]["value"]; v != `'=HYPERLINK("http://x")` {
		t.Errorf("name cell %q", v)
	}
	if v := secs["findings"][0]["text"]; v != "'+1 more, -2 less, @sum" {
		t.Errorf("finding cell %q", v)
	}
	g := secs["groups"][0]
	if g["group"] != "'-a" || g["segment"] != "'@b" {
		t.Errorf("group cells %v", g)
	}
	// Numbers keep their sign.
	if g["value"] != "-1.5" || g["ci_lo"] != "-2" {
		t.Errorf("numbers %v", g)
	}
}

func TestCSVEmpty(t *testing.T) {
	secs, recs := csvSections(t, &Report{})
	if len(secs["report"]) == 0 || len(secs["groups"]) != 0 {
		t.Errorf("empty report: %v", secs)
	}
	if len(recs[0]) != 28 {
		t.Errorf("rows have %d cells, want 28 (the widest sections: tests and parity)", len(recs[0]))
	}
}

// TestCSVMinGroupSizeAsked: a spec raised to the privacy floor shows both
// sizes in the report section.
func TestCSVMinGroupSizeAsked(t *testing.T) {
	r := sampleReport()
	secs, _ := csvSections(t, r)
	for _, row := range secs["report"] {
		if row["key"] == "min_group_size_asked" {
			t.Errorf("min_group_size_asked without a raise: %v", row)
		}
	}
	r.Spec.MinGroupSize = 50
	r.NoteMinGroupSizeFloor(5, 50)
	secs, _ = csvSections(t, r)
	got := map[string]string{}
	for _, row := range secs["report"] {
		got[row["key"]] = row["value"]
	}
	if got["min_group_size"] != "50" || got["min_group_size_asked"] != "5" {
		t.Errorf("report section %v", got)
	}
}

// testColumns are the columns of the tests and parity sections, the
// adjustment's appended after the earlier ones, whose order stays.
var testColumns = []string{"section", "metric", "group", "reference", "difference", "difference_ci_lo", "difference_ci_hi",
	"ratio", "ratio_ci_lo", "ratio_ci_hi", "test", "statistic", "p", "users", "reference_users", "q", "material", "significant",
	"adjustment", "strata", "crude_difference", "crude_difference_lo", "crude_difference_hi",
	"crude_ratio", "crude_ratio_lo", "crude_ratio_hi", "crude_test", "crude_p"}

// TestCSVAdjustment: tests and parity rows say how each comparison was
// adjusted and carry the crude figures beside the adjusted ones; a row
// without crude figures has those cells empty; a comparison that could
// not be made has an empty p.
func TestCSVAdjustment(t *testing.T) {
	r := adjustedReport()
	secs, recs := csvSections(t, r)
	for _, sec := range []string{"tests", "parity"} {
		var header []string
		for i, rec := range recs {
			if rec[0] == "section" && i+1 < len(recs) && recs[i+1][0] == sec {
				header = rec
			}
		}
		if got := strings.Join(header[:len(testColumns)], ","); got != strings.Join(testColumns, ",") {
			t.Errorf("%s columns:\n%s\nwant\n%s", sec, got, strings.Join(testColumns, ","))
		}
	}
	kv := map[string]string{}
	for _, row := range secs["report"] {
		kv[row["key"]] = row["value"]
	}
	if kv["strata"] != "item; time" || kv["strata_bucket"] != "24h" {
		t.Errorf("report strata %q bucket %q", kv["strata"], kv["strata_bucket"])
	}

	row := func(sec, metric, group string) map[string]string {
		t.Helper()
		for _, r := range secs[sec] {
			if r["metric"] == metric && r["group"] == group {
				return r
			}
		}
		t.Fatalf("no %s row %s/%s", sec, metric, group)
		return nil
	}
	d := row("tests", "discount_rate", "loyal")
	for k, v := range map[string]string{
		"difference": "-0.113", "p": "1e-300", "adjustment": "mantel_haenszel", "strata": "48",
		"crude_difference": "-0.12", "crude_difference_lo": "-0.124", "crude_difference_hi": "-0.116",
		"crude_ratio": "0.48", "crude_ratio_lo": "0.466", "crude_ratio_hi": "0.494",
		"crude_test": "cluster_robust_t", "crude_p": "1e-250",
	} {
		if d[k] != v {
			t.Errorf("discount_rate/loyal %s = %q, want %q", k, d[k], v)
		}
	}
	// A distribution within strata: no ratio; its crude figures are
	// Mann-Whitney's.
	p := row("tests", "price", "loyal")
	if p["difference"] != "0.12" || p["ratio"] != "" || p["crude_test"] != "mann_whitney" || p["crude_difference"] != "6" || p["crude_ratio"] != "1.13" {
		t.Errorf("price/loyal row: %v", p)
	}
	// A report that records no adjustment: its cells are empty.
	plain, _ := csvSections(t, sampleReport())
	for _, sec := range []string{"tests", "parity"} {
		for _, row := range plain[sec] {
			for _, k := range testColumns[18:] {
				if row[k] != "" {
					t.Errorf("%s %s/%s: %s = %q, want empty (no adjustment recorded)", sec, row["metric"], row["group"], k, row[k])
				}
			}
		}
	}
	// Not comparable: no p, no strata shared; its crude figures stay.
	nc := row("tests", "click_rate", "ios")
	if nc["adjustment"] != "not_comparable" || nc["p"] != "" || nc["q"] != "" || nc["strata"] != "" || nc["crude_p"] != "0.31" {
		t.Errorf("not comparable row: %v", nc)
	}
	pc := row("parity", "click_rate", "non_personalized")
	if pc["adjustment"] != "within_user" || pc["crude_difference"] != "-0.006" || pc["users"] != "1840" || pc["reference_users"] != "5120" {
		t.Errorf("parity click_rate row: %v", pc)
	}
}
