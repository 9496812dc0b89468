package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/audit"
)

const auditTestSpec = `name: loyalty pricing
groups:
  - name: new
    segment: loyalty:new
  - name: gold
    segment: loyalty:gold
  - name: silver
    segment: loyalty:silver
reference: new
`

// auditFixture writes a synthetic data set with a 10% price gap planted in
// the gold group, the spec and the users file into a temporary directory.
func auditFixture(t *testing.T) (dir, spec, events, users string) {
	t.Helper()
	dir = t.TempDir()
	spec = filepath.Join(dir, "spec.yaml")
	events = filepath.Join(dir, "events.jsonl")
	users = filepath.Join(dir, "users.jsonl")
	var ev, us bytes.Buffer
	if err := audit.Synthesize(audit.SynthConfig{Seed: 7, Users: 600, Events: 30000, Items: 100, Groups: 3, PriceGap: 0.1}, &ev, &us); err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{spec: []byte(auditTestSpec), events: ev.Bytes(), users: us.Bytes()} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, spec, events, users
}

func runAudit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runInProcess(t, append([]string{"audit"}, args...)...)
}

// goldPriceFinding checks the planted gap is found: a significant price
// comparison and a significant finding naming the group.
func goldPriceFinding(t *testing.T, rep *audit.Report) {
	t.Helper()
	var gold *audit.PriceResult
	for i := range rep.Prices {
		if rep.Prices[i].Group == "gold" {
			gold = &rep.Prices[i]
		}
	}
	if gold == nil || !gold.Significant || gold.ShareHigher < 0.9 || gold.MeanExcessPct < 5 {
		t.Errorf("the planted price gap is not a significant finding: %+v", gold)
	}
	for _, p := range rep.Prices {
		if p.Group == "silver" && p.Significant {
			t.Errorf("silver has no gap but is significant: %+v", p)
		}
	}
	found := false
	for _, f := range rep.Findings {
		if f.Severity == "significant" && strings.Contains(f.Text, "gold") && strings.Contains(f.Text, "same item") {
			found = true
		}
	}
	if !found {
		t.Errorf("no significant finding about gold's prices: %+v", rep.Findings)
	}
}

func TestAuditCLIFormats(t *testing.T) {
	t.Parallel()
	dir, spec, events, users := auditFixture(t)
	base := []string{"--spec", spec, "--events", events, "--users", users}

	// JSON, chosen by the extension.
	jsonOut := filepath.Join(dir, "report.json")
	_, stderr, err := runAudit(t, append(base, "--out", jsonOut)...)
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "30000 events read") || !strings.Contains(stderr, "json report written to "+jsonOut) {
		t.Errorf("summary line: %q", stderr)
	}
	data, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	var rep audit.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("the JSON report does not parse into audit.Report: %v", err)
	}
	if rep.Events != 30000 || rep.Skipped != 0 || len(rep.Groups) != 3 || rep.Spec.Reference != "new" {
		t.Errorf("report: events %d skipped %d groups %d ref %q", rep.Events, rep.Skipped, len(rep.Groups), rep.Spec.Reference)
	}
	goldPriceFinding(t, &rep)

	// HTML, chosen by the extension.
	htmlOut := filepath.Join(dir, "report.html")
	if _, stderr, err := runAudit(t, append(base, "--out", htmlOut)...); err != nil {
		t.Fatalf("audit: %v\n%s", err, stderr)
	}
	page, err := os.ReadFile(htmlOut)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) || !bytes.Contains(page, []byte("<svg")) ||
		bytes.Contains(page, []byte("<script")) || !bytes.Contains(page, []byte("Audit report: loyalty pricing")) {
		t.Errorf("the HTML report is not what it should be (%d bytes)", len(page))
	}

	// CSV, chosen by --format over the extension.
	csvOut := filepath.Join(dir, "report.txt")
	if _, stderr, err := runAudit(t, append(base, "--format", "csv", "--out", csvOut)...); err != nil {
		t.Fatalf("audit: %v\n%s", err, stderr)
	}
	f, err := os.Open(csvOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("the CSV report does not parse: %v", err)
	}
	var header []string
	goldSig := false
	for _, rec := range recs {
		if rec[0] == "section" {
			header = rec
			continue
		}
		if rec[0] != "prices" {
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = rec[i]
		}
		if row["group"] == "gold" {
			goldSig = row["significant"] == "true"
			if v, err := strconv.ParseFloat(row["share_higher"], 64); err != nil || v < 0.9 {
				t.Errorf("gold share_higher %q", row["share_higher"])
			}
		}
	}
	if !goldSig {
		t.Error("the CSV has no significant gold price row")
	}

	// No --out: JSON on standard output.
	stdout, _, err := runAudit(t, base...)
	if err != nil {
		t.Fatal(err)
	}
	var rep2 audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep2); err != nil {
		t.Fatalf("stdout is not a JSON report: %v", err)
	}
	goldPriceFinding(t, &rep2)
}

// TestAuditCLICSVEvents reads the same events as CSV.
func TestAuditCLICSVEvents(t *testing.T) {
	t.Parallel()
	dir, spec, events, users := auditFixture(t)
	in, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	csvPath := filepath.Join(dir, "events.csv")
	out, err := os.Create(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(out)
	w.Write([]string{"user", "item", "time", "mode", "rank", "price", "discount", "clicked", "converted", "latency_ms", "attrs"})
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 1<<20)
	num := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	boolean := func(p *bool) string {
		if p == nil {
			return ""
		}
		return strconv.FormatBool(*p)
	}
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		w.Write([]string{ev.UserID, ev.Item, ev.Time.Format(time.RFC3339), ev.Mode, num(ev.Rank), num(ev.Price),
			num(ev.Discount), boolean(ev.Clicked), boolean(ev.Converted), num(ev.LatencyMS), strings.Join(ev.Attrs, ";")})
	}
	w.Flush()
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runAudit(t, "--spec", spec, "--events", csvPath, "--users", users, "--format", "json")
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Events != 30000 || rep.Skipped != 0 {
		t.Errorf("CSV events: %d read, %d skipped", rep.Events, rep.Skipped)
	}
	goldPriceFinding(t, &rep)
}

// TestAuditCLIMalformed: malformed lines are reported as file:line (the
// first 20), counted and skipped; --strict stops at the first.
func TestAuditCLIMalformed(t *testing.T) {
	t.Parallel()
	dir, spec, events, users := auditFixture(t)
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	good := len(lines) - 1 // the last is empty
	var b strings.Builder
	b.WriteString(strings.Join(lines[:10], ""))
	for i := range 25 {
		fmt.Fprintf(&b, "{not json %d\n", i)
	}
	b.WriteString(strings.Join(lines[10:], ""))
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, err := runAudit(t, "--spec", spec, "--events", bad, "--users", users)
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, stderr)
	}
	for i := 11; i <= 30; i++ {
		if !strings.Contains(stderr, fmt.Sprintf("%s:%d: ", bad, i)) {
			t.Errorf("stderr does not report line %d:\n%s", i, stderr)
		}
	}
	if strings.Contains(stderr, fmt.Sprintf("%s:%d: ", bad, 31)) {
		t.Error("more than 20 malformed lines printed")
	}
	if !strings.Contains(stderr, "... and 5 more malformed lines") || !strings.Contains(stderr, "25 malformed lines skipped") {
		t.Errorf("stderr lacks the count:\n%s", stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != 25 || int(rep.Events) != good || len(rep.Problems) != 25 || rep.Problems[0].Line != 11 {
		t.Errorf("skipped %d events %d (want 25, %d), problems %d", rep.Skipped, rep.Events, good, len(rep.Problems))
	}

	_, _, err = runAudit(t, "--spec", spec, "--events", bad, "--users", users, "--strict")
	if err == nil || !strings.Contains(err.Error(), bad+":11:") {
		t.Errorf("--strict: %v, want the first malformed line", err)
	}
}

func TestAuditCLIErrors(t *testing.T) {
	t.Parallel()
	dir, spec, events, users := auditFixture(t)
	badSpec := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badSpec, []byte("name: x\ngroups:\n  - name: a\n    segment: 'loyalty:new &'\nreference: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unknownRef := filepath.Join(dir, "ref.yaml")
	if err := os.WriteFile(unknownRef, []byte(strings.Replace(auditTestSpec, "reference: new", "reference: nobody", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no spec", []string{"--events", events, "--users", users}, "--spec and --events are required"},
		{"bad segment", []string{"--spec", badSpec, "--events", events, "--users", users}, "invalid spec"},
		{"unknown reference", []string{"--spec", unknownRef, "--events", events, "--users", users}, "invalid spec"},
		{"missing spec file", []string{"--spec", filepath.Join(dir, "nope.yaml"), "--events", events, "--users", users}, "no such file"},
		{"missing events", []string{"--spec", spec, "--events", filepath.Join(dir, "nope.jsonl"), "--users", users}, "no such file"},
		{"users and store", []string{"--spec", spec, "--events", events, "--users", users, "--data", dir}, "not both"},
		{"no users", []string{"--spec", spec, "--events", events, "--data", filepath.Join(dir, "no-store")}, "--users"},
		{"bad format", []string{"--spec", spec, "--events", events, "--users", users, "--format", "pdf"}, "want html, json or csv"},
		{"unknown extension", []string{"--spec", spec, "--events", events, "--users", users, "--out", filepath.Join(dir, "r.pdf")}, "give --format"},
	} {
		_, stderr, err := runAudit(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q\n%s", c.name, err, c.want, stderr)
		}
	}
	// A failed run leaves no report behind.
	if _, err := os.Stat(filepath.Join(dir, "r.pdf")); !os.IsNotExist(err) {
		t.Errorf("a report was written on failure: %v", err)
	}
}

// TestAuditCLIStore reads the users' facts from an embedded store.
func TestAuditCLIStore(t *testing.T) {
	t.Parallel()
	dir, spec, events, _ := auditFixture(t)
	data := filepath.Join(dir, "data")
	// keys list creates the store.
	if _, stderr, err := runInProcess(t, "keys", "list", "--data", data); err != nil {
		t.Fatalf("keys list: %v\n%s", err, stderr)
	}
	stdout, stderr, err := runAudit(t, "--spec", spec, "--events", events, "--data", data)
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	// The store knows none of these users: no one has a tag, so every group
	// is suppressed.
	for _, g := range rep.Groups {
		if !g.Suppressed {
			t.Errorf("group %s not suppressed with an empty store", g.Name)
		}
	}
}

// runInProcess calls run as main does.
func runInProcess(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

// TestAuditProgress shows progress lines when stderr is not a terminal.
func TestAuditProgress(t *testing.T) {
	_, spec, events, users := auditFixture(t)
	old := progressMinBytes
	progressMinBytes = 0
	defer func() { progressMinBytes = old }()
	_, stderr, err := runAudit(t, "--spec", spec, "--events", events, "--users", users, "--out", filepath.Join(t.TempDir(), "r.json"))
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "audit: 30k events read (") || !strings.Contains(stderr, "100%)") {
		t.Errorf("no progress line:\n%s", stderr)
	}
	if strings.Contains(stderr, "\r") {
		t.Error("a bar drawn with \\r on a non-terminal")
	}
}

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	cr := &countingReader{}
	p := &progress{w: &out, cr: cr, total: 1000, tty: true}
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	p.start = now
	cr.n.Store(250)
	now = now.Add(2 * time.Second)
	p.update(100_000)
	cr.n.Store(1000)
	p.finish(true, -1)
	s := out.String()
	if !strings.HasPrefix(s, "\rreading events [=======>") || !strings.Contains(s, " 25% 100k events, 250 B of 1000 B, 6s left") {
		t.Errorf("bar: %q", s)
	}
	if !strings.HasSuffix(s, "] 100% 100k events, 1000 B of 1000 B\x1b[K\n") {
		t.Errorf("finished bar: %q", s)
	}

	// Not a terminal: a line at each 10%, or every 10 s.
	out.Reset()
	p = &progress{w: &out, cr: cr, total: 1000, now: p.now, start: now, lastLine: now}
	for i, n := range []int64{50, 60, 120, 130, 999} {
		cr.n.Store(n)
		p.update(int64(i+1) * 100_000)
	}
	if got := strings.Count(out.String(), "\n"); got != 2 { // 12% and 99%
		t.Errorf("%d lines, want 2:\n%s", got, out.String())
	}
	now = now.Add(11 * time.Second)
	p.update(600_000)
	if got := strings.Count(out.String(), "\n"); got != 3 {
		t.Errorf("no line after 10 s:\n%s", out.String())
	}
}
