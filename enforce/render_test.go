package enforce

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

const (
	hostileDetail   = "<img src=x onerror=alert(1)>"
	hostileCampaign = `=HYPERLINK("http://evil.example/x","click")`
)

var renderT0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

// renderSample is a report with three violations: one with a receipt
// (and a hostile detail), one push with an injection attempt in its
// campaign, one with no receipt and a decision.
func renderSample() *Report {
	return &Report{
		Generated: renderT0.Add(48 * time.Hour), From: renderT0.Add(-24 * time.Hour), To: renderT0.Add(24 * time.Hour),
		Allowance: "2s", SettingsAllowance: "30s",
		Entries: 1234567, Exposures: 1200000, Pushes: 34000, Provisions: 567, Users: 45678, Unattributed: 12, Receipts: 98765,
		Coverage: Coverage{ExposuresDecided: 1170000, PushesDecided: 34000, ExposureShare: 0.975, PushShare: 1},
		Drops:    map[string]uint64{"exposure": 4321, "push": 0},
		Totals: Totals{All: 3,
			ByKind:    map[Kind]int64{PersonalizedAfterOptOut: 1, PushOnRefusedChannel: 1, ModeContradictsDecision: 1},
			ByDay:     []DayTotal{{Day: "2025-03-04", All: 3, ByKind: map[Kind]int64{PersonalizedAfterOptOut: 1, PushOnRefusedChannel: 1, ModeContradictsDecision: 1}}},
			BySurface: map[string]map[Kind]int64{"sdk": {PersonalizedAfterOptOut: 1, ModeContradictsDecision: 1}, "http": {PushOnRefusedChannel: 1}}},
		WithinAllowance: Allowed{All: 7, ByKind: map[Kind]int64{PersonalizedAfterOptOut: 7}, MaxLagMS: 850},
		Violations: []Violation{
			{Kind: PersonalizedAfterOptOut, User: "alice", At: renderT0.Add(10*time.Second + 123456789), Event: "exposure", Surface: "sdk",
				Logged: renderT0.Add(11 * time.Second), Mode: "personalized", RecordVersion: 3, SettingsVersion: 2,
				ReceiptID: "r-alice-3", ReceiptAt: renderT0, LagMS: 10123.456789, Detail: hostileDetail},
			{Kind: PushOnRefusedChannel, User: "bob", At: renderT0.Add(time.Minute), Event: "push", Surface: "http", Mode: "allowed",
				Channel: "sms", Campaign: hostileCampaign, Tag: "interest:chess", ReceiptID: "r-bob-1", ReceiptAt: renderT0.Add(-time.Hour),
				LagMS: 3660000, Detail: `a push on "sms" after the user refused the channel (Art. 42)`},
			{Kind: ModeContradictsDecision, User: "+carol", At: renderT0.Add(2 * time.Minute), Event: "exposure", Surface: "sdk",
				Mode: "personalized", DecisionID: "d1.AbCdEf", DecisionReason: "opted_out",
				Detail: "-declared personalized under a decision ID whose decision was not"},
		},
		ProvisionsBy: []ProvisionTotal{{Recipient: "adnet", Purpose: "ads", Exports: 3, Users: 12345, First: renderT0, Last: renderT0.Add(time.Hour)}},
		Notes:        []string{"A tag's sensitive category is judged under today's taxonomy.", "4321 entries never reached the ledger."},
	}
}

// renderEmpty is what Run returns for an empty ledger.
func renderEmpty() *Report {
	return &Report{
		Generated: renderT0, Allowance: "2s", SettingsAllowance: "30s",
		Drops:           map[string]uint64{},
		Totals:          Totals{ByKind: map[Kind]int64{}, ByDay: []DayTotal{}, BySurface: map[string]map[Kind]int64{}},
		WithinAllowance: Allowed{ByKind: map[Kind]int64{}},
		Violations:      []Violation{}, ProvisionsBy: []ProvisionTotal{}, Notes: []string{},
	}
}

func renderCSV(t *testing.T, r *Report) [][]string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(b.String(), "\r\n") {
		t.Errorf("CSV does not end in CRLF: %q", b.String())
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v\n%s", err, b.String())
	}
	return rows
}

func TestWriteCSV(t *testing.T) {
	r := renderSample()
	rows := renderCSV(t, r)
	want := [][]string{
		{"kind", "user", "at", "event", "surface", "mode", "decided", "decision_id", "decision_reason", "record_version",
			"settings_version", "channel", "campaign", "tag", "receipt_id", "receipt_at", "lag_ms", "detail"},
		{"personalized_after_opt_out", "alice", "2025-03-04T10:00:10.123456789Z", "exposure", "sdk", "personalized", "false", "", "",
			"3", "2", "", "", "", "r-alice-3", "2025-03-04T10:00:00.000000000Z", "10123.456789", hostileDetail},
		{"push_on_refused_channel", "bob", "2025-03-04T10:01:00.000000000Z", "push", "http", "allowed", "false", "", "",
			"", "", "sms", "'" + hostileCampaign, "interest:chess", "r-bob-1", "2025-03-04T09:00:00.000000000Z", "3660000",
			`a push on "sms" after the user refused the channel (Art. 42)`},
		{"mode_contradicts_decision", "'+carol", "2025-03-04T10:02:00.000000000Z", "exposure", "sdk", "personalized", "false",
			"d1.AbCdEf", "opted_out", "", "", "", "", "", "", "", "", "'-declared personalized under a decision ID whose decision was not"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%q", len(rows), len(want), rows)
	}
	for i := range want {
		if strings.Join(rows[i], "\x00") != strings.Join(want[i], "\x00") {
			t.Errorf("row %d:\n got %q\nwant %q", i, rows[i], want[i])
		}
	}
	// Every row's times read back as the violation's, to the nanosecond.
	for i, v := range r.Violations {
		at, err := time.Parse(time.RFC3339Nano, rows[i+1][2])
		if err != nil || !at.Equal(v.At) {
			t.Errorf("row %d: at %q (%v), want %v", i+1, rows[i+1][2], err, v.At)
		}
	}
	// No cell a spreadsheet would evaluate.
	for i, row := range rows {
		for j, c := range row {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("row %d cell %d %q starts a formula", i, j, c)
			}
		}
	}
}

func TestCSVText(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx",
		"a=1": "a=1", "'x": "'x", "alice": "alice",
	} {
		if got := csvText(in); got != want {
			t.Errorf("csvText(%q) = %q, want %q", in, got, want)
		}
	}
}

func renderHTML(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := html.Parse(bytes.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var renderExternalRef = regexp.MustCompile(`(?i)(src|href|action|srcset)\s*=\s*["']?\s*(https?:)?//`)

// checkRenderSelfContained fails when the page runs or loads anything.
func checkRenderSelfContained(t *testing.T, page string) {
	t.Helper()
	low := strings.ToLower(page)
	for _, bad := range []string{"<script", "javascript:", "<link", "<iframe", "<object", "<embed", "@import", "url("} {
		if strings.Contains(low, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
	if m := renderExternalRef.FindString(page); m != "" {
		t.Errorf("the page refers outside: %q", m)
	}
}

func TestWriteHTML(t *testing.T) {
	r := renderSample()
	page := renderHTML(t, r)
	checkRenderSelfContained(t, page)
	if strings.Contains(page, hostileDetail) || !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the hostile detail is not escaped")
	}
	if strings.Contains(page, `"http://evil`) {
		t.Error("the hostile campaign is not escaped")
	}
	text := renderText(t, page)
	for _, v := range r.Violations {
		if !strings.Contains(text, string(v.Kind)) || !strings.Contains(text, v.User) {
			t.Errorf("violation %s of %s missing", v.Kind, v.User)
		}
	}
	if !strings.Contains(text, hostileDetail) {
		t.Error("the hostile detail is not shown as text")
	}
	for _, want := range []string{
		"3 violations found.",
		"1 Personalized after opt-out", "1 Push on a refused channel",
		"1 Mode contradicts decision",
		"from 2025-03-03 10:00:00 UTC to 2025-03-05 10:00:00 UTC",
		"Allowances used: 2s after a user's change, 30s after a settings change. 7 entries came within them (longest lag 850 ms)",
		"1,234,567", "1,200,000", "1,170,000", "45,678", "98,765", "12,345",
		"97.5%", "100.0%", "4,321",
		"2025-03-04", "adnet", "ads",
		"A tag's sensitive category is judged under today's taxonomy.",
		"All 3 violations listed",
		"2025-03-04 10:00:10.123 UTC", "entry 10.1 s after it", "entry 1.0 h after it",
		"97.5% of the exposures and 100.0% of the pushes are backed by a decision", "4,321 entries never reached the ledger", "d1.AbCdEf", "reason opted_out", "record v3, settings v2",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(text, "in the JSON and CSV reports.") {
		t.Error("says rows are left out when none are")
	}
	checkRenderTables(t, page)
}

// renderText is the page's text as a reader sees it (tags dropped,
// entities decoded, white space collapsed).
func renderText(t *testing.T, page string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "style" || n.Data == "head") {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return strings.Join(strings.Fields(b.String()), " ")
}

// checkRenderTables holds every table to the house layout: a colgroup of
// percentages adding up to at most 100, one col per header cell.
func checkRenderTables(t *testing.T, page string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var tables []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "table" {
			tables = append(tables, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if len(tables) == 0 {
		t.Fatal("no table")
	}
	width := regexp.MustCompile(`width:\s*([0-9.]+)%`)
	for i, tb := range tables {
		var cols, ths int
		var sum float64
		var in func(n *html.Node, head bool)
		in = func(n *html.Node, head bool) {
			if n.Type == html.ElementNode {
				switch n.Data {
				case "col":
					cols++
					for _, a := range n.Attr {
						if m := width.FindStringSubmatch(a.Val); a.Key == "style" && m != nil {
							v, _ := strconv.ParseFloat(m[1], 64)
							sum += v
						}
					}
				case "thead":
					head = true
				case "th":
					if head {
						ths++
					}
				}
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				in(c, head)
			}
		}
		in(tb, false)
		if cols == 0 || cols != ths || sum > 100.001 || sum < 99 {
			t.Errorf("table %d: %d cols adding up to %v%%, %d header cells", i, cols, sum, ths)
		}
	}
}

func TestWriteHTMLManyRows(t *testing.T) {
	r := renderSample()
	n := HTMLMaxRows + 234
	r.Violations = nil
	for i := range n {
		r.Violations = append(r.Violations, Violation{Kind: TagAfterDeletion, User: fmt.Sprintf("u%05d", i), At: renderT0.Add(time.Duration(i) * time.Second),
			Event: "exposure", Tag: "interest:golf", Detail: "chosen by a deleted tag"})
	}
	r.ViolationsOmitted = 5000
	r.Totals = Totals{All: int64(n) + 5000, ByKind: map[Kind]int64{TagAfterDeletion: int64(n) + 5000}}
	page := renderHTML(t, r)
	if got := strings.Count(page, "<td>chosen by a deleted tag</td>"); got != HTMLMaxRows {
		t.Errorf("%d rows shown, want %d", got, HTMLMaxRows)
	}
	if !strings.Contains(page, "u00999") || strings.Contains(page, "u01000") {
		t.Error("not the first rows shown")
	}
	for _, want := range []string{"The first 1,000 of the 1,234 violations listed, oldest first; the other 234 are in the JSON and CSV reports.",
		"A further 5,000 violations are counted in the totals but listed in no report", "6,234 violations found."} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if rows := renderCSV(t, r); len(rows) != n+1 {
		t.Errorf("CSV: %d rows, want %d", len(rows), n+1)
	}
}

func TestRenderEmpty(t *testing.T) {
	for name, r := range map[string]*Report{"run": renderEmpty(), "zero": {}} {
		rows := renderCSV(t, r)
		if len(rows) != 1 || strings.Join(rows[0], ",") != strings.Join(csvHeader, ",") {
			t.Errorf("%s: CSV %q, want the header only", name, rows)
		}
		page := renderHTML(t, r)
		checkRenderSelfContained(t, page)
		checkRenderTables(t, page)
		if !strings.Contains(page, "No violations found.") || regexp.MustCompile(`[0-9] violations found`).MatchString(page) {
			t.Errorf("%s: no clean headline", name)
		}
		if strings.Contains(page, "<table class=\"violations\">") {
			t.Errorf("%s: an empty violations table", name)
		}
		if !strings.Contains(page, "none recorded") || !strings.Contains(page, "No entry is recorded as dropped") || strings.Contains(page, "of the exposures") {
			t.Errorf("%s: drops not said to be none", name)
		}
	}
	// The JSON of an empty report has an empty list, not null.
	b, err := json.Marshal(renderEmpty())
	if err != nil || !strings.Contains(string(b), `"violations":[]`) {
		t.Errorf("JSON %s (%v)", b, err)
	}
}

func TestFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := fmtInt(n); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", n, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0.0%", 1: "100.0%", 0.975: "97.5%", 0.12345: "12.3%", 0.99999: "> 99.9%", 0.00001: "< 0.1%"} {
		if got := fmtPct(v); got != want {
			t.Errorf("fmtPct(%v) = %q, want %q", v, got, want)
		}
	}
	for ms, want := range map[float64]string{0: "0 ms", 0.26: "0.3 ms", 850: "850 ms", 10123.4: "10.1 s", 90000: "1.5 min",
		3660000: "1.0 h", 5 * 86400e3: "5.0 days", 2000 * 86400e3: "2,000 days"} {
		if got := fmtLag(ms); got != want {
			t.Errorf("fmtLag(%v) = %q, want %q", ms, got, want)
		}
	}
	for in, want := range map[string]string{"2s": "2s", "1m0s": "1m", "1h0m0s": "1h", "0s": "none", "1h30m0s": "1h30m", "bad": "bad"} {
		if got := fmtAllowance(in); got != want {
			t.Errorf("fmtAllowance(%q) = %q, want %q", in, got, want)
		}
	}
	if fmtShare(0, 0) != "n/a" {
		t.Error("a share of nothing")
	}
}
