package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/recguard/recguard/store"
)

const verifyUsage = `usage: recguard verify [store flags] [--format json|html] [--out FILE]
                       [--workers N] [--max-findings N] [--purge-grace D]

Art. 27 compliance verification of a whole store: every user's receipt
chain against the record's head and purge anchor under the receipt chain
key, receipts kept past the retention, receipts of erased users that still
hold personal content, and tags the consent state does not allow (a
sensitive tag without its separate consent, tags on an erased record, a
suppressed tag also present, tags of a minor without guardian consent, a
prohibited tag). The report names users by ID and findings by kind, never
personal content. It goes to --out, else to standard output; the format
defaults to the extension of --out (.html, .json), else json. Progress is
shown on standard error.

The chain key is the one the store seals with: --chain-key-file FILE, or
--chain-key HEX (prefer RECGUARD_CHAIN_KEY), or for the embedded store its
DIR/chain.key; --unkeyed-chain for a store made before chain keys.

The embedded store (--data) cannot be verified while recguard serve holds
its directory: verify a copy, or stop it.

Exit status: 0 when everything verifies, 1 when there are findings, 2 on
errors (no report is written).

flags:
`

// verifyProgressMin is the store size (users) from which verify prints
// progress lines when standard error is not a terminal.
var verifyProgressMin int64 = 10000

// verifyMain runs `recguard verify` when args name it and exits with its
// status (0 verified, 1 findings, 2 errors); for any other command it
// returns.
func verifyMain(args []string) {
	if len(args) == 0 || args[0] != "verify" {
		return
	}
	os.Exit(verifyCmd(context.Background(), args[1:], os.Stdout, os.Stderr))
}

// verifyCmd runs `recguard verify` with args and returns its exit status.
func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, verifyUsage)
		fs.PrintDefaults()
	}
	var sf storeFlags
	sf.register(fs)
	format := fs.String("format", "", "report format: json or html (default from --out's extension, else json)")
	out := fs.String("out", "", "report file (default standard output)")
	workers := fs.Int("workers", 0, "users' batches checked at once (default GOMAXPROCS; more helps a remote Redis)")
	maxFindings := fs.Int("max-findings", store.DefaultMaxFindings, "findings listed in the report (all are counted; 0: none)")
	grace := fs.Duration("purge-grace", store.DefaultPurgeGrace, "how long past their retention receipts may be kept before they count as not purged")
	fail := func(err error) int {
		fmt.Fprintln(stderr, "recguard verify:", err)
		return 2
	}
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // the flag package printed it
	}
	if len(pos) > 0 {
		return fail(fmt.Errorf("unexpected argument %q", pos[0]))
	}
	fmtName, err := verifyFormat(*format, *out)
	if err != nil {
		return fail(err)
	}
	if *workers < 0 || *maxFindings < 0 {
		return fail(errors.New("--workers and --max-findings must not be negative"))
	}
	embedded := sf.redisURL == "" && sf.cluster == ""
	if embedded && !storeExists(sf.data) {
		// Opening it would create an empty store (and a key for it).
		return fail(fmt.Errorf("no store at %s: give --data DIR of an existing store, or the Redis flags", sf.data))
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, key, closeAll, err := sf.open(ctx, openOptions{cmd: "verify", log: log})
	if err != nil {
		return fail(fmt.Errorf("opening the store: %w", err))
	}
	defer closeAll()
	if len(key) == 0 && !sf.unkeyed {
		return fail(errors.New("verify needs the receipt chain key the store seals with: give --chain-key-file FILE, " +
			"or the key in hex in RECGUARD_CHAIN_KEY (--chain-key); --unkeyed-chain for a store made before chain keys"))
	}

	bar := &verifyProgress{w: stderr, tty: isTerminal(stderr), now: time.Now}
	bar.start = bar.now()
	opts := store.VerifyOptions{Workers: *workers, MaxFindings: *maxFindings, PurgeGrace: *grace, Progress: bar.update}
	if *maxFindings == 0 {
		opts.MaxFindings = -1
	}
	if *grace == 0 {
		opts.PurgeGrace = -1 // the flag's 0 means none
	}
	rep, err := store.Verify(ctx, st, key, opts)
	bar.finish(err == nil)
	if err != nil {
		return fail(err)
	}

	var buf bytes.Buffer
	if fmtName == "html" {
		err = writeVerifyHTML(&buf, &rep)
	} else {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		err = enc.Encode(&rep)
	}
	if err != nil {
		return fail(fmt.Errorf("writing the report: %w", err))
	}
	where := "standard output"
	if *out == "" || *out == "-" {
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return fail(err)
		}
	} else {
		if err := writeFileAtomic(*out, buf.Bytes()); err != nil {
			return fail(err)
		}
		where = *out
	}
	fmt.Fprintf(stderr, "verify: %d users, %d receipts: %d chains verified, %d broken; %d findings; %s report written to %s\n",
		rep.Users, rep.Receipts, rep.ChainsVerified, rep.ChainsBroken, rep.FindingsTotal, fmtName, where)
	for _, h := range rep.Hints {
		fmt.Fprintln(stderr, "verify: hint:", h)
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

// verifyFormat picks the format from --format, else --out's extension.
func verifyFormat(format, out string) (string, error) {
	switch f := strings.ToLower(format); f {
	case "html", "json":
		return f, nil
	case "":
	default:
		return "", fmt.Errorf("--format %q: want json or html", format)
	}
	switch strings.ToLower(filepath.Ext(out)) {
	case ".html", ".htm":
		return "html", nil
	case ".json", "":
		return "json", nil
	}
	return "", fmt.Errorf("cannot tell the format from %q: give --format json or html", out)
}

// verifyProgress shows how many users are verified: a bar redrawn in place
// on a terminal, else a line every 10% or every 10 seconds (for stores of
// at least verifyProgressMin users).
type verifyProgress struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	start time.Time

	mu          sync.Mutex
	done, total int64
	lastLine    time.Time
	lastPct     int
	drawn       bool
}

func (p *verifyProgress) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = done, total
	now := p.now()
	if p.tty {
		p.drawn = true
		fmt.Fprint(p.w, "\r"+p.bar(now)+"\x1b[K")
		return
	}
	if total < verifyProgressMin || done == 0 {
		return
	}
	pct := int(100 * done / max(total, 1))
	if pct/10 > p.lastPct/10 || now.Sub(p.lastLine) >= 10*time.Second {
		p.lastPct, p.lastLine = pct, now
		fmt.Fprintln(p.w, p.line(now))
	}
}

// finish ends the bar's line.
func (p *verifyProgress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r"+p.bar(p.now())+"\x1b[K\n")
	}
}

func (p *verifyProgress) frac() float64 {
	if p.total <= 0 {
		return 1
	}
	return min(float64(p.done)/float64(p.total), 1)
}

func (p *verifyProgress) eta(now time.Time) string {
	f, el := p.frac(), now.Sub(p.start)
	if f <= 0.01 || f >= 1 || el < time.Second {
		return ""
	}
	return time.Duration(float64(el) * (1 - f) / f).Round(time.Second).String()
}

func (p *verifyProgress) bar(now time.Time) string {
	f := p.frac()
	n := int(f * barWidth)
	var b strings.Builder
	b.WriteString("verifying [")
	b.WriteString(strings.Repeat("=", n))
	if n < barWidth {
		b.WriteString(">")
		b.WriteString(strings.Repeat(" ", barWidth-n-1))
	}
	fmt.Fprintf(&b, "] %3.0f%% %s of %s users", f*100, humanCount(p.done), humanCount(p.total))
	if eta := p.eta(now); eta != "" {
		fmt.Fprintf(&b, ", %s left", eta)
	}
	return b.String()
}

func (p *verifyProgress) line(now time.Time) string {
	s := fmt.Sprintf("verify: %s of %s users (%.0f%%) in %s", humanCount(p.done), humanCount(p.total), p.frac()*100, now.Sub(p.start).Round(time.Second))
	if eta := p.eta(now); eta != "" {
		s += ", about " + eta + " left"
	}
	return s
}

// findingText says what each kind of finding means, for the HTML report.
var findingText = map[store.FindingKind]string{
	store.FindingEdited:                  "a receipt was edited or forged, or receipts reordered (or the chain key is not the store's)",
	store.FindingTruncatedNewest:         "receipts removed at the newest end",
	store.FindingTruncatedOldest:         "receipts removed at the oldest end, with no purge that accounts for them",
	store.FindingGap:                     "receipts removed in the middle",
	store.FindingAnchorBeforeRetention:   "receipts purged before their retention ended",
	store.FindingForgedAnchor:            "a purge anchor not sealed under the chain key",
	store.FindingForgedHead:              "the record's head is not sealed under the chain key (forged or edited)",
	store.FindingHeadMismatch:            "the record is not the newest receipt's (replaced or rolled back)",
	store.FindingBroken:                  "the chain does not verify (other reason)",
	store.FindingUnreadable:              "the record or receipts are missing or cannot be decoded",
	store.FindingNotPurged:               "receipts past the retention still kept",
	store.FindingUnredacted:              "receipts up to an erasure still hold personal content",
	store.FindingSensitiveWithoutConsent: "sensitive tags without the category's separate consent",
	store.FindingTagsOnErased:            "tags or suppressions on an erased record",
	store.FindingSuppressedPresent:       "tags present although the user deleted them",
	store.FindingMinorWithoutGuardian:    "tags of a minor without guardian consent",
	store.FindingProhibitedTag:           "tags of a prohibited namespace",
	store.FindingSettingsChain:           "the settings receipts do not verify",
}

// kindRow is one row of a table of counts per kind.
type kindRow struct {
	Kind  store.FindingKind
	Text  string
	Count int64
}

var verifyHTML = template.Must(template.New("verify").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>recguard verification {{.R.CheckedAt.Format "2006-01-02 15:04 MST"}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#0a6d2c;font-weight:600}.bad{color:#b00020;font-weight:600}.zero{color:#888}
code{font-size:.95em}
</style>
</head>
<body>
<h1>recguard compliance verification</h1>
<p>{{if .R.Verified}}<span class="ok">Everything verifies.</span>{{else if not .R.Complete}}<span class="bad">Incomplete: the check stopped early.</span>{{else}}<span class="bad">{{.R.FindingsTotal}} findings.</span>{{end}}
Checked at {{.R.CheckedAt.Format "2006-01-02 15:04:05 MST"}} in {{printf "%.1f" .R.Seconds}} s; {{.R.Shards}} shards; receipt retention {{.R.Retention}} (purge grace {{.R.PurgeGrace}}).</p>
{{range .R.Hints}}<p class="bad">{{.}}</p>{{end}}

<h2>Totals</h2>
<table>
<tr><th>Users checked</th><td class="n">{{.R.Users}}</td></tr>
<tr><th>Receipts read</th><td class="n">{{.R.Receipts}}</td></tr>
<tr><th>Receipt chains verified</th><td class="n">{{.R.ChainsVerified}}</td></tr>
<tr><th>Receipt chains broken</th><td class="n">{{.R.ChainsBroken}}</td></tr>
<tr><th>Users unreadable</th><td class="n">{{.R.Unreadable}}</td></tr>
<tr><th>Receipts past retention not purged</th><td class="n">{{.R.NotPurged.Receipts}} ({{.R.NotPurged.Users}} users)</td></tr>
<tr><th>Receipts not redacted after erasure</th><td class="n">{{.R.Unredacted.Receipts}} ({{.R.Unredacted.Users}} users)</td></tr>
<tr><th>Records with tags their consent does not allow</th><td class="n">{{.R.Tags.Users}}</td></tr>
<tr><th>Settings receipts</th><td class="n">{{.R.Settings.Receipts}} {{if .R.Settings.ChainOK}}<span class="ok">verify</span>{{else}}<span class="bad">do not verify</span>{{end}}</td></tr>
</table>

<h2>Broken receipt chains by kind</h2>
<table>
<tr><th>Kind</th><th>Meaning</th><th>Users</th></tr>
{{range .Broken}}<tr><td><code>{{.Kind}}</code></td><td>{{.Text}}</td><td class="n{{if not .Count}} zero{{end}}">{{.Count}}</td></tr>
{{end}}</table>

<h2>Tags the consent state does not allow, by kind</h2>
<table>
<tr><th>Kind</th><th>Meaning</th><th>Users</th></tr>
{{range .Tags}}<tr><td><code>{{.Kind}}</code></td><td>{{.Text}}</td><td class="n{{if not .Count}} zero{{end}}">{{.Count}}</td></tr>
{{end}}</table>

<h2>Findings</h2>
{{if .R.Findings}}<p>{{len .R.Findings}} of {{.R.FindingsTotal}} listed, in the order of user numbers.</p>
<table>
<tr><th>User</th><th>Kind</th><th>Detail</th></tr>
{{range .R.Findings}}<tr><td>{{if .UserID}}<code>{{.UserID}}</code>{{else}}(settings){{end}}</td><td><code>{{.Kind}}</code></td><td>{{.Detail}}</td></tr>
{{end}}</table>
{{else if .R.FindingsTotal}}<p>{{.R.FindingsTotal}} findings, none listed (--max-findings 0).</p>
{{else}}<p class="ok">None.</p>{{end}}
<p><small>The report names users by ID and findings by kind; it holds no personal content (no tag, category, purpose or reason).</small></p>
</body>
</html>
`))

// writeVerifyHTML writes rep as a self-contained HTML page (no scripts, no
// external assets).
func writeVerifyHTML(w io.Writer, rep *store.VerifyReport) error {
	rows := func(kinds []store.FindingKind, counts map[store.FindingKind]int64) []kindRow {
		out := make([]kindRow, 0, len(kinds))
		for _, k := range kinds {
			out = append(out, kindRow{Kind: k, Text: findingText[k], Count: counts[k]})
		}
		return out
	}
	return verifyHTML.Execute(w, struct {
		R            *store.VerifyReport
		Broken, Tags []kindRow
	}{rep, rows(store.ChainKinds(), rep.BrokenByKind), rows(store.TagKinds(), rep.Tags.ByKind)})
}
