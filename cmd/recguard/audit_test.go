package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// The report names its inputs by their SHA-256, as a regulator holding
	// the same files can check.
	evData, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(evData)
	pv := rep.Provenance
	if pv == nil || pv.RunBy != "cli" || pv.Version == "" || len(pv.Inputs) != 2 || pv.Inputs[1].Kind != "events" ||
		pv.Inputs[1].SHA256 != hex.EncodeToString(sum[:]) || pv.Inputs[1].Bytes != int64(len(evData)) || pv.Inputs[0].Kind != "users" {
		t.Errorf("provenance %+v", pv)
	}

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

// TestAuditCLIStore reads the users' facts from an embedded store. keys
// list does not make one where there is none, and an audit of a store
// that knows none of the events' users (every event matched no group)
// writes its report but fails: a report of nothing is not a clean audit.
func TestAuditCLIStore(t *testing.T) {
	t.Parallel()
	dir, spec, events, _ := auditFixture(t)
	data := filepath.Join(dir, "data")
	if _, stderr, err := runInProcess(t, "keys", "list", "--data", data); err == nil || !strings.Contains(err.Error(), "no store at "+data) {
		t.Fatalf("keys list on no store: %v, want no store at %s\n%s", err, data, stderr)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("keys list made %s (%v)", data, err)
	}
	if _, _, err := runAudit(t, "--spec", spec, "--events", events, "--data", data); err == nil || !strings.Contains(err.Error(), "no store at") {
		t.Fatalf("audit on no store: %v, want no store", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("audit made %s (%v)", data, err)
	}
	// keys create makes the store (it stores a key).
	if _, stderr, err := runInProcess(t, "keys", "create", "--role", "auditor", "--data", data); err != nil {
		t.Fatalf("keys create: %v\n%s", err, stderr)
	}
	stdout, stderr, err := runAudit(t, "--spec", spec, "--events", events, "--data", data)
	if err == nil || !strings.Contains(err.Error(), "audits nothing") || !strings.Contains(err.Error(), "the store in "+data) {
		t.Fatalf("audit against a store that knows none of the users: %v, want it to fail saying it audits nothing\n%s", err, stderr)
	}
	if exitStatus(err, io.Discard) != 1 {
		t.Errorf("exit status %d, want 1", exitStatus(err, io.Discard))
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	// The store knows none of these users: no one has a tag, so every group
	// is suppressed.
	if rep.Used != 0 || rep.Events == 0 {
		t.Errorf("report: %d events, %d used", rep.Events, rep.Used)
	}
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

// TestAuditCLITooManyMalformed: over --max-malformed percent of malformed
// lines (default 10), or every line, audit fails naming the first lines
// and writes no report; --max-malformed raises the bar, never past "all".
func TestAuditCLITooManyMalformed(t *testing.T) {
	t.Parallel()
	dir, spec, events, users := auditFixture(t)
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	// 1,000 good lines and 200 malformed ones: 16.7%.
	var b strings.Builder
	for i := range 1000 {
		b.WriteString(lines[i])
		if i%5 == 4 {
			fmt.Fprintf(&b, "{\"user\":\"u%d\"}\n", i)
		}
	}
	some := filepath.Join(dir, "some.jsonl")
	allBad := filepath.Join(dir, "all.jsonl")
	allCSV := filepath.Join(dir, "all.csv")
	for path, body := range map[string]string{
		some:   b.String(),
		allBad: "not json\n{\"user\":\"u1\"}\n\n[]\n",
		allCSV: "user,item,time,mode,clicked\nu1,i1,2025-03-01T10:00:00Z,personalized,maybe\nu2,i1,yesterday,personalized,1\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "r.json")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"over 10%", []string{"--events", some}, []string{"200 of 1200 input lines are malformed (16.7%), more than the 10% allowed",
			"the first: " + some + ":6: missing item; " + some + ":12: ", "and 195 more", "no report written"}},
		{"over 15%", []string{"--events", some, "--max-malformed", "15"}, []string{"more than the 15% allowed"}},
		{"all", []string{"--events", allBad}, []string{"all 3 input lines are malformed; the first: " + allBad + ":1: invalid character", allBad + ":2: missing item", allBad + ":4: "}},
		{"all, anything allowed", []string{"--events", allBad, "--max-malformed", "100"}, []string{"all 3 input lines are malformed"}},
		{"all CSV", []string{"--events", allCSV}, []string{"all 2 input lines are malformed", `clicked "maybe" is not true, false, 1 or 0`, "not RFC 3339"}},
	} {
		_, stderr, err := runAudit(t, append([]string{"--spec", spec, "--users", users, "--out", out}, c.args...)...)
		if !errors.Is(err, audit.ErrTooManyMalformed) {
			t.Errorf("%s: %v, want ErrTooManyMalformed\n%s", c.name, err, stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%s: a report was written: %v", c.name, err)
		}
	}
	// The same run through main's exit path: non-zero, the message on
	// stderr.
	if err := run(context.Background(), []string{"audit", "--spec", spec, "--users", users, "--events", allBad}, io.Discard, io.Discard); err == nil {
		t.Error("all malformed: run returned nil (exit 0)")
	}

	// 16.7% is under --max-malformed 20: the report is written, with the
	// lines skipped.
	stdout, stderr, err := runAudit(t, "--spec", spec, "--users", users, "--events", some, "--max-malformed", "20")
	if err != nil {
		t.Fatalf("--max-malformed 20: %v\n%s", err, stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != 200 || rep.Events != 1000 {
		t.Errorf("skipped %d of %d", rep.Skipped, rep.Events)
	}
	for _, bad := range []string{"-1", "101", "NaN", "ten"} {
		if _, _, err := runAudit(t, "--spec", spec, "--users", users, "--events", events, "--max-malformed", bad); err == nil {
			t.Errorf("--max-malformed %s accepted", bad)
		}
	}
}

// TestAuditCLIMinGroupSizeFloor: a spec under the floor (50 by default,
// --min-group-size-floor down to 10) runs with the floor and the report
// says so; a spec over it keeps its size; a floor under 10 is refused.
func TestAuditCLIMinGroupSizeFloor(t *testing.T) {
	t.Parallel()
	dir, _, events, users := auditFixture(t)
	specAt := func(size int) string {
		p := filepath.Join(dir, fmt.Sprintf("spec%d.yaml", size))
		if err := os.WriteFile(p, []byte(auditTestSpec+fmt.Sprintf("min_group_size: %d\n", size)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		size  int
		floor []string
		want  int
		asked int
	}{
		{5, nil, 50, 5},
		{5, []string{"--min-group-size-floor", "10"}, 10, 5},
		{20, []string{"--min-group-size-floor", "10"}, 20, 0},
		{60, nil, 60, 0},
		{60, []string{"--min-group-size-floor", "100"}, 100, 60},
		{300, nil, 300, 0}, // every group (200 users) suppressed
	} {
		spec := specAt(c.size)
		stdout, stderr, err := runAudit(t, append([]string{"--spec", spec, "--events", events, "--users", users}, c.floor...)...)
		if err != nil {
			t.Fatalf("spec %d %v: %v\n%s", c.size, c.floor, err, stderr)
		}
		var rep audit.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Spec.MinGroupSize != c.want || rep.MinGroupSizeAsked != c.asked {
			t.Errorf("spec %d %v: ran with %d (asked %d), want %d (asked %d)", c.size, c.floor, rep.Spec.MinGroupSize, rep.MinGroupSizeAsked, c.want, c.asked)
		}
		noted := false
		for _, f := range rep.Findings {
			noted = noted || f.Severity == "note" && strings.Contains(f.Text, "privacy floor")
		}
		said := strings.Contains(stderr, fmt.Sprintf("asks for min_group_size %d, under the privacy floor", c.size))
		if noted != (c.asked > 0) || said != (c.asked > 0) {
			t.Errorf("spec %d %v: note %v, stderr %v:\n%s", c.size, c.floor, noted, said, stderr)
		}
		for _, g := range rep.Groups {
			if g.Suppressed != (c.want > 200) {
				t.Errorf("spec %d %v: group %s (200 users) suppressed %v at %d", c.size, c.floor, g.Name, g.Suppressed, c.want)
			}
		}
	}
	for _, bad := range []string{"9", "0", "-5"} {
		_, _, err := runAudit(t, "--spec", specAt(5), "--events", events, "--users", users, "--min-group-size-floor", bad)
		if err == nil || !strings.Contains(err.Error(), "--min-group-size-floor") || !strings.Contains(err.Error(), "at least 10") {
			t.Errorf("--min-group-size-floor %s: %v", bad, err)
		}
	}
}

// TestServeAuditMinGroupSize: serve's --audit-min-group-size (and
// RECGUARD_AUDIT_MIN_GROUP_SIZE) refuses a floor under 10 before it opens
// anything; help lists it.
func TestServeAuditMinGroupSize(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--audit-min-group-size", "5"}, {"--audit-min-group-size", "-1"}} {
		_, _, err := runInProcess(t, append([]string{"serve", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "--audit-min-group-size: ") || !strings.Contains(err.Error(), "under 10") {
			t.Errorf("serve %v: %v", args, err)
		}
	}
	t.Setenv("RECGUARD_AUDIT_MIN_GROUP_SIZE", "9")
	if _, _, err := runInProcess(t, "serve", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "AuditMinGroupSize 9") {
		t.Errorf("RECGUARD_AUDIT_MIN_GROUP_SIZE=9: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a refused serve made a store: %v", err)
	}
	out, _, err := runInProcess(t, "help")
	if err != nil || !strings.Contains(out, "--audit-min-group-size N") || !strings.Contains(out, "--min-group-size-floor N") {
		t.Errorf("help: %v\n%s", err, out)
	}
}
