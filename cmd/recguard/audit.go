package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/store"
)

const auditUsage = `usage: recguard audit --spec spec.yaml --events events.jsonl|events.csv|store [--users users.jsonl | store flags]
                      [--format html|json|csv] [--out report.html] [--strict] [--max-malformed PCT]
                      [--min-group-size-floor N] [--lang en|zh-CN]

Runs an Art. 46 audit: reads the outcome events (JSON lines, or CSV when the
file name ends in .csv), puts the users into the spec's groups by their tags
and flags (from --users, else from the store the store flags name) and writes
the report (to --out, else to standard output). The format defaults to the
extension of --out (.html, .json, .csv), else json. --lang zh-CN writes the
HTML report in Simplified Chinese (default en, English); JSON and CSV stay
as they are (field names and codes), and --lang is accepted and ignored
with them.

Malformed lines are printed (the first 20), skipped and counted in the
report; when more than --max-malformed percent of the lines are malformed
(default 10), or all of them, no report is written and audit exits non-zero
naming the first ones. --strict stops at the first malformed line.

Privacy floor: a spec whose min_group_size is under --min-group-size-floor
(default 50, as on the server) runs with the floor instead, and the report
says so (min_group_size_asked and a note). The floor may be lowered to 10,
no further: audit runs where the auditor holds the data anyway, but a
report travels.

The enforcement audit (consent receipts replayed against the ledger of
exposures and pushes) is another command: recguard audit enforcement --help.

flags:
`

// maxShownProblems is how many malformed lines audit prints.
const maxShownProblems = 20

// progressMinBytes is the input size from which audit shows its progress.
var progressMinBytes int64 = 32 << 20

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "enforcement" {
		return enforcementErr(enforcementCmd(ctx, args[1:], stdout, stderr))
	}
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), auditUsage)
		printFlags(fs.Output(), fs)
	}
	var sf storeFlags
	sf.register(fs)
	specPath := fs.String("spec", "", "the audit spec (YAML or JSON)")
	eventsPath := fs.String("events", "", `the outcome events: JSON lines, CSV if the name ends in .csv, or "store" for the events kept in the store (Redis; see the store flags)`)
	usersPath := fs.String("users", "", "the users' tags and flags, one JSON object a line (default: the store)")
	format := fs.String("format", "", "report format: html, json or csv (default from --out's extension, else json)")
	out := fs.String("out", "", "report file (default standard output)")
	strict := fs.Bool("strict", false, "stop at the first malformed line instead of skipping it")
	maxMalformed := fs.Float64("max-malformed", audit.DefaultMaxMalformed*100, "fail (writing no report) when more than this percentage of the lines are malformed; all malformed always fails")
	lang := fs.String("lang", "en", "the HTML report's language: en or zh-CN (accepted and ignored for json and csv)")
	floor := fs.Int("min-group-size-floor", audit.DefaultMinGroupSizeFloor, fmt.Sprintf("the privacy floor: a spec's min_group_size under it is raised to it (at least %d)", audit.LowestMinGroupSizeFloor))
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err // flag.ErrHelp (exit 0) or a usage error (exit 2)
	}
	if len(pos) > 0 {
		return usageErrorf("audit: unexpected arguments %q", pos)
	}
	// Store flags given on the command line (not from the environment,
	// which may name a store for other commands) conflict with --users.
	storeSet := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data", "redis", "redis-cluster", "prefix":
			storeSet = true
		}
	})
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return usageErrorf("audit: %w", err)
	}
	if *specPath == "" || *eventsPath == "" {
		fs.Usage()
		return usageErrorf("audit: --spec and --events are required")
	}
	fromStore := *eventsPath == "store"
	if *usersPath != "" && storeSet && !fromStore {
		return usageErrorf("audit: give --users or store flags, not both")
	}
	fmtName, err := reportFormat(*format, *out)
	if err != nil {
		return asUsage(err)
	}
	reportLanguage, err := reportLang(*lang)
	if err != nil {
		return usageErrorf("audit: %w", err)
	}
	if math.IsNaN(*maxMalformed) || *maxMalformed < 0 || *maxMalformed > 100 {
		return usageErrorf("audit: --max-malformed %v: want a percentage from 0 to 100", *maxMalformed)
	}
	if err := audit.CheckMinGroupSizeFloor(*floor); err != nil {
		return usageErrorf("audit: --min-group-size-floor: %w", err)
	}

	specData, err := os.ReadFile(*specPath)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	spec, err := audit.LoadSpec(specData)
	if err != nil {
		return fmt.Errorf("audit: %s: %w", *specPath, err)
	}
	ar := auditRun{strict: *strict, maxMalformed: *maxMalformed / 100, lang: reportLanguage}
	if asked, raised := spec.ApplyMinGroupSizeFloor(*floor); raised {
		ar.floorAsked = asked
		fmt.Fprintf(stderr, "audit: %s asks for min_group_size %d, under the privacy floor: groups of fewer than %d users are suppressed (--min-group-size-floor, at least %d)\n",
			*specPath, asked, spec.MinGroupSize, audit.LowestMinGroupSizeFloor)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The events are read on a goroutine of the engine's own: malformed
	// lines are printed from it while the progress is drawn from this one.
	tty := isTerminal(stderr)
	stderr = &lockedWriter{w: stderr}
	shown := &problemPrinter{w: stderr, tty: tty}
	// The store, opened once when the users' facts or the events come from it.
	var st store.Store
	var closers []func()
	openStore := func() error {
		if st != nil {
			return nil
		}
		if sf.redisURL == "" && sf.cluster == "" {
			// Opening the embedded store would create an empty one.
			if !storeExists(sf.data) {
				return fmt.Errorf("audit: no store at %s: give --users FILE and --events FILE, or the store flags of an existing store", sf.data)
			}
		}
		s, _, closeAll, err := sf.open(ctx, openOptions{cmd: "audit", log: slog.New(slog.NewTextHandler(stderr, nil))})
		if err != nil {
			return fmt.Errorf("audit: opening the store: %w", err)
		}
		st = s
		closers = append(closers, closeAll)
		return nil
	}
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var users audit.UserFacts
	var inputs []*audit.FingerprintReader // the files read, fingerprinted for the report
	if *usersPath != "" {
		f, err := os.Open(*usersPath)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		fp := audit.NewFingerprintReader(f, "users", *usersPath)
		facts, probs, err := audit.UsersFile(fp, *usersPath)
		f.Close()
		inputs = append(inputs, fp)
		if err != nil {
			return err
		}
		for _, p := range probs {
			shown.print(p)
		}
		if len(probs) > 0 && *strict {
			return fmt.Errorf("audit: %s: %d malformed lines (--strict)", *usersPath, len(probs))
		}
		users = facts
	} else {
		if err := openStore(); err != nil {
			return err
		}
		users = audit.StoreFacts(st)
		ar.usersFrom = "the store"
		if sf.redisURL == "" && sf.cluster == "" {
			ar.usersFrom = "the store in " + sf.data
		}
	}

	if fromStore {
		if err := openStore(); err != nil {
			return err
		}
		ol, ok := st.(store.OutcomeLog)
		if !ok {
			return errors.New("audit: this store keeps no outcome events")
		}
		ar.inputs = inputs
		ar.store = true
		return finishAudit(ctx, spec, &reportingSource{src: audit.StoreSource(ctx, ol), p: shown}, users, ar, nil, -1, stderr, tty, shown, fmtName, *out, stdout)
	}

	ef, err := os.Open(*eventsPath)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer ef.Close()
	var total int64 = -1
	if fi, err := ef.Stat(); err == nil && fi.Mode().IsRegular() {
		total = fi.Size()
	}
	efp := audit.NewFingerprintReader(ef, "events", *eventsPath)
	ar.inputs = append(inputs, efp)
	cr := &countingReader{r: efp}
	var src audit.Source
	if strings.EqualFold(filepath.Ext(*eventsPath), ".csv") {
		if src, err = audit.ReadCSV(cr, *eventsPath); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	} else {
		src = audit.ReadJSONL(cr, *eventsPath)
	}
	return finishAudit(ctx, spec, &reportingSource{src: src, p: shown}, users, ar, cr, total, stderr, tty, shown, fmtName, *out, stdout)
}

// auditRun is how audit runs: --strict, --max-malformed (as a share), and
// the size the spec asked for when the privacy floor raised it (0: not
// raised).
type auditRun struct {
	strict       bool
	maxMalformed float64
	floorAsked   int
	// inputs are the files read (their fingerprints go in the report);
	// store says the events came from the store.
	inputs []*audit.FingerprintReader
	store  bool
	// usersFrom names the store the users' facts came from ("" for a
	// users file), for the error of an audit that used no event.
	usersFrom string
	// lang is the HTML report's language (--lang).
	lang string
}

// finishAudit runs the audit over src and writes the report, unless the
// input was mostly malformed.
func finishAudit(ctx context.Context, spec audit.Spec, src audit.Source, users audit.UserFacts, ar auditRun,
	cr *countingReader, total int64, stderr io.Writer, tty bool, shown *problemPrinter, fmtName, outPath string, stdout io.Writer) error {
	out := &outPath

	var bar *progress
	if cr != nil {
		bar = newProgress(stderr, tty, cr, total)
	}
	opts := audit.Options{Strict: ar.strict}
	if bar != nil {
		opts.Progress = bar.update
	}
	rep, err := audit.Run(ctx, spec, src, users, opts)
	if bar != nil {
		if err == nil {
			bar.finish(true, rep.Events)
		} else {
			bar.finish(false, -1)
		}
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if n := shown.n.Load(); n > maxShownProblems {
		fmt.Fprintf(stderr, "... and %d more malformed lines\n", n-maxShownProblems)
	}
	if err := rep.CheckMalformed(ar.maxMalformed); err != nil {
		return fmt.Errorf("%w (no report written; see --max-malformed)", err)
	}
	if ar.floorAsked > 0 {
		rep.NoteMinGroupSizeFloor(ar.floorAsked, rep.Spec.MinGroupSize)
	}
	prov := &audit.Provenance{Version: audit.Version(), RunBy: "cli", Inputs: []audit.Input{}}
	for _, in := range ar.inputs {
		prov.Inputs = append(prov.Inputs, in.Input())
	}
	if ar.store {
		prov.Inputs = append(prov.Inputs, audit.Input{Kind: "events", Name: "store",
			Detail: fmt.Sprintf("the store's outcome events, %d read, at %s", rep.Events, rep.Generated.Format(time.RFC3339))})
	}
	rep.Provenance = prov

	var buf bytes.Buffer
	switch fmtName {
	case "html":
		err = rep.WriteHTMLLang(&buf, ar.lang)
	case "csv":
		err = rep.WriteCSV(&buf)
	default:
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	}
	if err != nil {
		return fmt.Errorf("audit: writing the report: %w", err)
	}
	if *out == "" || *out == "-" {
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return err
		}
	} else if err := writeFileAtomic(*out, buf.Bytes()); err != nil {
		return fmt.Errorf("audit: %w", err)
	}

	sig := 0
	for _, f := range rep.Findings {
		if f.Severity == "significant" {
			sig++
		}
	}
	where := "standard output"
	if *out != "" && *out != "-" {
		where = *out
	}
	fmt.Fprintf(stderr, "audit: %d events read, %d used, %d malformed lines skipped; %d significant findings; %s report written to %s\n",
		rep.Events, rep.Used, rep.Skipped, sig, fmtName, where)
	if rep.Used == 0 {
		// A report of nothing is not a clean audit: say so, and fail.
		why := "no event was read"
		if rep.Events > 0 {
			why = fmt.Sprintf("none of the %d events read is in the window with a group: every group matched no user the events name", rep.Events)
		}
		if ar.usersFrom != "" {
			why += fmt.Sprintf(" (the users' tags and flags came from %s: is it the deployment's store, and does it hold these users?)", ar.usersFrom)
		}
		return fmt.Errorf("audit: %s; the report audits nothing", why)
	}
	return nil
}

// reportFormat picks the format from --format, else --out's extension
// (pickFormat, its errors prefixed with "audit: ").
func reportFormat(format, out string) (string, error) {
	f, err := pickFormat(format, out)
	if err != nil {
		return "", fmt.Errorf("audit: %w", err)
	}
	return f, nil
}

// pickFormat picks a report's format (html, json or csv) from --format,
// else from --out's extension (json when there is no --out).
func pickFormat(format, out string) (string, error) {
	switch f := strings.ToLower(format); f {
	case "html", "json", "csv":
		return f, nil
	case "":
	default:
		return "", fmt.Errorf("--format %q: want html, json or csv", format)
	}
	switch strings.ToLower(filepath.Ext(out)) {
	case ".html", ".htm":
		return "html", nil
	case ".csv":
		return "csv", nil
	case ".json", "":
		return "json", nil
	}
	return "", fmt.Errorf("cannot tell the format from %q: give --format html, json or csv", out)
}

// writeOut writes a report to standard output (out "" or "-") or, whole
// or not at all, to the file out; it returns where it went.
func writeOut(stdout io.Writer, out string, b []byte) (string, error) {
	if out == "" || out == "-" {
		_, err := stdout.Write(b)
		return "standard output", err
	}
	return out, writeFileAtomic(out, b)
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it, so a failed run leaves no half-written report.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// lockedWriter serializes writes (one Write is one line).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// problemPrinter prints the first malformed lines as file:line: reason and
// counts them all.
type problemPrinter struct {
	w   io.Writer
	tty bool // clear a progress bar first
	n   atomic.Int64
}

func (p *problemPrinter) print(lp audit.LineProblem) {
	if p.n.Add(1) > maxShownProblems {
		return
	}
	var s string
	if lp.File != "" {
		s = fmt.Sprintf("%s:%d: %s\n", lp.File, lp.Line, lp.Reason)
	} else {
		s = fmt.Sprintf("line %d: %s\n", lp.Line, lp.Reason)
	}
	if p.tty {
		s = "\r\x1b[K" + s
	}
	io.WriteString(p.w, s)
}

// reportingSource prints the malformed lines its Source reports and passes
// them on.
type reportingSource struct {
	src audit.Source
	p   *problemPrinter
}

func (s *reportingSource) Next() (audit.Event, error) {
	ev, err := s.src.Next()
	var le *audit.LineError
	if errors.As(err, &le) {
		s.p.print(le.Problem())
	}
	return ev, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// progress shows how far the events file has been read: a bar redrawn in
// place on a terminal, else a line every 10% or every 10 seconds.
type progress struct {
	w        io.Writer
	cr       *countingReader
	total    int64 // bytes; <= 0: unknown
	tty      bool
	start    time.Time
	now      func() time.Time
	mu       sync.Mutex
	events   int64
	lastLine time.Time
	lastPct  int
	lastOut  string
	drawn    bool
}

// newProgress returns nil when the input is too small to bother.
func newProgress(w io.Writer, tty bool, cr *countingReader, total int64) *progress {
	if total >= 0 && total < progressMinBytes {
		return nil
	}
	p := &progress{w: w, cr: cr, total: total, tty: tty, now: time.Now}
	p.start = p.now()
	p.lastLine = p.start
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(events int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = events
	read := p.cr.n.Load()
	now := p.now()
	elapsed := now.Sub(p.start)
	frac := -1.0
	if p.total > 0 {
		frac = min(float64(read)/float64(p.total), 1)
	}
	if p.tty {
		p.drawn = true
		fmt.Fprint(p.w, "\r"+p.bar(frac, events, read, elapsed)+"\x1b[K")
		return
	}
	pct := int(frac * 100)
	if (frac >= 0 && pct/10 > p.lastPct/10) || now.Sub(p.lastLine) >= 10*time.Second {
		p.lastPct, p.lastLine = pct, now
		p.println(p.line(frac, events, read, elapsed))
	}
}

// finish ends the bar's line (and prints a last line when ok); events is
// the final count, or negative for the last one reported.
func (p *progress) finish(ok bool, events int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if events >= 0 {
		p.events = events
	}
	read := p.cr.n.Load()
	elapsed := p.now().Sub(p.start)
	frac := -1.0
	if p.total > 0 && ok {
		frac = 1
	} else if p.total > 0 {
		frac = min(float64(read)/float64(p.total), 1)
	}
	if p.tty {
		if p.drawn || ok {
			fmt.Fprint(p.w, "\r"+p.bar(frac, p.events, read, elapsed)+"\x1b[K\n")
		}
		return
	}
	if ok {
		p.println(p.line(frac, p.events, read, elapsed))
	}
}

// println prints a progress line unless it says what the last one did.
func (p *progress) println(s string) {
	if s != p.lastOut {
		fmt.Fprintln(p.w, s)
		p.lastOut = s
	}
}

const barWidth = 30

func (p *progress) bar(frac float64, events, read int64, elapsed time.Duration) string {
	var b strings.Builder
	b.WriteString("reading events [")
	if frac >= 0 {
		n := int(frac * barWidth)
		b.WriteString(strings.Repeat("=", n))
		if n < barWidth {
			b.WriteString(">")
			b.WriteString(strings.Repeat(" ", barWidth-n-1))
		}
		fmt.Fprintf(&b, "] %3.0f%%", frac*100)
	} else {
		b.WriteString(strings.Repeat("?", barWidth))
		b.WriteString("]")
	}
	fmt.Fprintf(&b, " %s events, %s", humanCount(events), humanBytes(read))
	if p.total > 0 {
		fmt.Fprintf(&b, " of %s", humanBytes(p.total))
	}
	if eta, ok := p.eta(frac, elapsed); ok {
		fmt.Fprintf(&b, ", %s left", eta)
	}
	return b.String()
}

func (p *progress) line(frac float64, events, read int64, elapsed time.Duration) string {
	s := fmt.Sprintf("audit: %s events read (%s", humanCount(events), humanBytes(read))
	if frac >= 0 {
		s += fmt.Sprintf(" of %s, %.0f%%", humanBytes(p.total), frac*100)
	}
	s += fmt.Sprintf(") in %s", elapsed.Round(time.Second))
	if eta, ok := p.eta(frac, elapsed); ok {
		s += ", about " + eta + " left"
	}
	return s
}

func (p *progress) eta(frac float64, elapsed time.Duration) (string, bool) {
	if frac <= 0.01 || frac >= 1 || elapsed < time.Second {
		return "", false
	}
	left := time.Duration(float64(elapsed) * (1 - frac) / frac)
	return left.Round(time.Second).String(), true
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
