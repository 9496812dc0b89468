package audit

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestReportFormatsMirror: JSON, CSV and HTML say the same of every
// comparison's adjustment: the CSV's cells and the HTML's rows are those
// of the report read back from its JSON (how it was adjusted, over how
// many strata, the adjusted and the crude figures).
func TestReportFormatsMirror(t *testing.T) {
	r := adjustedReport()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Tests, Parity []map[string]json.RawMessage
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	secs, _ := csvSections(t, r)
	doc, _ := parseHTML(t, r)
	_, kinds, _ := metricOrder(r)

	for _, c := range []struct {
		section, table string
		ts             []TestResult
		raw            []map[string]json.RawMessage
		kind           func(string) MetricKind
	}{
		{"tests", "tests", back.Tests, raw.Tests, func(m string) MetricKind { return kinds[m] }},
		{"parity", "parity", back.Parity, raw.Parity, parityKind},
	} {
		if len(c.ts) != len(secs[c.section]) || len(c.ts) == 0 {
			t.Fatalf("%s: %d in the JSON, %d in the CSV", c.section, len(c.ts), len(secs[c.section]))
		}
		crudeSeen := 0
		for i, jt := range c.ts {
			name := c.section + " " + jt.Metric + "/" + jt.Group
			k := c.kind(jt.Metric)
			// JSON: the fields are there exactly when set.
			_, hasAdj := c.raw[i]["adjustment"]
			_, hasCrude := c.raw[i]["crude"]
			if jt.Adjustment == "" || !hasAdj || hasCrude != (jt.Crude != nil) {
				t.Errorf("%s: JSON adjustment %q (key %v), crude key %v", name, jt.Adjustment, hasAdj, hasCrude)
			}

			// CSV.
			row := secs[c.section][i]
			want := map[string]string{"metric": jt.Metric, "group": jt.Group, "adjustment": jt.Adjustment, "strata": "",
				"difference": num(jt.Difference), "p": num(jt.P), "q": num(jt.Q)}
			if jt.Strata != 0 {
				want["strata"] = strconv.FormatInt(jt.Strata, 10)
			}
			for _, col := range testColumns[20:] {
				want[col] = ""
			}
			if cr := jt.Crude; cr != nil {
				crudeSeen++
				for col, v := range map[string]float64{"crude_difference": cr.Difference, "crude_difference_lo": cr.DifferenceCI.Lo,
					"crude_difference_hi": cr.DifferenceCI.Hi, "crude_ratio": cr.Ratio, "crude_ratio_lo": cr.RatioCI.Lo,
					"crude_ratio_hi": cr.RatioCI.Hi, "crude_p": cr.P} {
					want[col] = num(v)
				}
				want["crude_test"] = cr.Test
			}
			for col, v := range want {
				if row[col] != v {
					t.Errorf("%s: CSV %s = %q, JSON says %q", name, col, row[col], v)
				}
			}

			// HTML.
			tr := tableRow(t, doc, c.table, jt.Metric, jt.Group)
			adj, _ := attr(tr, "data-adjustment")
			strata, _ := attr(tr, "data-strata")
			if adj != jt.Adjustment || strata != want["strata"] {
				t.Errorf("%s: HTML adjustment %q strata %q, JSON %q %d", name, adj, strata, jt.Adjustment, jt.Strata)
			}
			if tag := adjustmentTag(jt, back.Spec.Strata); !strings.Contains(cellOf(tr, "test"), tag) {
				t.Errorf("%s: HTML test cell %q lacks %q", name, cellOf(tr, "test"), tag)
			}
			if jt.Adjustment != "not_comparable" {
				if got, w := cellOf(tr, "diff"), fmtDiff(adjustedUnit(k, jt), jt.Difference)+fmtDiffCI(adjustedUnit(k, jt), jt.DifferenceCI); got != w {
					t.Errorf("%s: HTML difference %q, JSON says %q", name, got, w)
				}
			}
			wantCrude := ""
			if cr := jt.Crude; cr != nil {
				wantCrude = fmtDiff(unitOf(k), cr.Difference) + fmtDiffCI(unitOf(k), cr.DifferenceCI) + "ratio " + fmtRatio(cr.Ratio) + "p " + fmtP(cr.P)
			} else if hdr := strings.Join(headerOf(tr), "|"); strings.Contains(hdr, "Crude") {
				wantCrude = "–"
			}
			if got := cellOf(tr, "crude"); got != wantCrude {
				t.Errorf("%s: HTML crude %q, JSON says %q", name, got, wantCrude)
			}
		}
		if crudeSeen == 0 {
			t.Errorf("%s: no crude figures compared", c.section)
		}
	}
}
