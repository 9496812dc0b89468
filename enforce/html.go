package enforce

import (
	_ "embed"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// HTMLMaxRows is how many violations the HTML report lists; the page says
// how many more the JSON and CSV reports hold.
const HTMLMaxRows = 1000

// WriteHTML writes the report as one self-contained HTML page for a
// regulator: a headline (how many violations, of which kinds, in which
// window, under which allowances), the coverage of the ledger by decisions
// and its drop counts, the totals per kind, per day and per surface, the
// entries within the allowances with their longest lag, the provisions by
// recipient, the notes, and the violations with their evidence (the first
// HTMLMaxRows, with a line saying how many more the JSON and CSV hold).
//
// The page loads nothing from anywhere (no script, font, style sheet or
// image: its CSS is inline), so it can be archived and handed on as it
// is; its tables are fixed-layout and fit a 1280 px wide window. Every
// text from the ledger or the receipts is escaped (html/template).
//
// WriteHTML is WriteHTMLLang in English.
func (r *Report) WriteHTML(w io.Writer) error {
	return r.WriteHTMLLang(w, LangEN)
}

// WriteHTMLLang is WriteHTML in lang: "en" (English) or "zh-CN"
// (Simplified Chinese, in the regulation's terms; the page's html element
// says lang="zh-CN"). Every static text, every sentence the page builds
// from the report's numbers, the kinds' names (with their codes), the
// violations' details and the engine's notes are in that language; the
// data (user IDs, tags, channels, codes) are shown as they are. Any other
// lang is an error wrapping ErrUnknownLang, and nothing is written.
func (r *Report) WriteHTMLLang(w io.Writer, lang string) error {
	t, err := textFor(lang)
	if err != nil {
		return err
	}
	return reportTemplate.Execute(w, buildPage(r, t))
}

var reportTemplate = template.Must(template.New("enforce").Parse(reportHTML))

// reportHTML is the page's template, an html/template file embedded in the
// binary (edit enforce/report.html.tmpl; no build step).
//
//go:embed report.html.tmpl
var reportHTML string

// kindInfo is how the page names a kind: a short label and what it means.
var kindInfo = map[Kind][2]string{
	PersonalizedAfterOptOut: {"Personalized after opt-out", "a personalized exposure after the user turned personalization off (Art. 42)"},
	PushOnRefusedChannel:    {"Push on a refused channel", "a push on a channel the user refused (Art. 42)"},
	TargetedPushAfterOptOut: {"Targeted push after opt-out", "a push chosen from the user's characteristics after the user turned personalization off (Art. 42)"},
	WhileSuspended:          {"While suspended", "a personalized exposure or a push while the service was suspended (Art. 51)"},
	WhileRestricted:         {"While restricted", "a personalized exposure or a push while the user restricted processing of their data (Art. 23)"},
	MinorWithoutGuardian:    {"Minor without guardian consent", "a personalized exposure or a targeted push to a minor without current guardian consent (Art. 22)"},
	TagAfterDeletion:        {"Tag after deletion", "an exposure or a push chosen by a tag the user had deleted (Art. 42)"},
	SensitiveWithoutConsent: {"Sensitive tag without consent", "an exposure or a push chosen by a sensitive tag without a separate consent valid at that time (Art. 22)"},
	ModeContradictsDecision: {"Mode contradicts decision", "an exposure declared personalized under a decision ID whose decision was not (no allowance)"},
}

// ---------------------------------------------------------------------------
// The page model: everything the template shows, already formatted.

type htmlPage struct {
	// T is the page's static text in its language.
	T                 *pageText
	Generated         string
	Window            string
	Allowance         string
	SettingsAllowance string
	Clean             bool
	Violations        string // the total, formatted
	KindsFound        []countItem
	Within            string
	MaxLag            string

	Entries, Exposures, Pushes, Provisions string
	Users, Unattributed, Receipts          string
	ExpDecided, ExpShare                   string
	PushDecided, PushShare                 string
	Drops                                  []countItem
	DropsTotal                             string
	// CoverageLine and DropsLine are the headline's sentences on them.
	CoverageLine, DropsLine string
	// The sentences the page builds from the numbers, in its language.
	Meta, CleanLine, FoundLine, AmongLine, AllowanceLine string
	WithinNote, ListLine, OmittedLine, Footer            string

	Kinds      []kindRow
	Days       []groupRow
	Surfaces   []groupRow
	ProvsBy    []provRow
	Notes      []string
	Rows       []violationRow
	Listed     string // how many the report lists
	Shown      string // how many the page shows
	More       string // listed but not shown ("" for none)
	Omitted    string // counted but not listed ("" for none)
	HTMLMaxRow string
}

type countItem struct {
	Label, Count string
}

type kindRow struct {
	Kind, Label, Meaning string
	Count, Within        string
	Zero                 bool
}

type groupRow struct {
	Label, All string
	ByKind     []countItem
}

type provRow struct {
	Recipient, Purpose, Exports, Users, First, Last string
}

type violationRow struct {
	N                                    string
	At, Logged                           string
	Kind, Label                          string
	User                                 string
	Event, Surface, Mode, Decided        string
	Channel, Campaign, Tag               string
	DecisionID, Reason, Versions         string
	ReceiptID, ReceiptAt, Lag            string
	Detail, LagLine                      string
	HasReceipt, HasDecision, HasChannels bool
}

// buildPage formats r for the template.
func buildPage(r *Report, t *pageText) htmlPage {
	p := htmlPage{
		T:                 t,
		Generated:         fmtTimeIn(r.Generated, false, t),
		Window:            fmtWindowIn(r.From, r.To, t),
		Allowance:         fmtAllowanceIn(r.Allowance, t),
		SettingsAllowance: fmtAllowanceIn(r.SettingsAllowance, t),
		Clean:             r.Totals.All == 0,
		Violations:        fmtInt(r.Totals.All),
		Within:            fmtInt(r.WithinAllowance.All),
		MaxLag:            fmtLagIn(r.WithinAllowance.MaxLagMS, t),
		Entries:           fmtInt(r.Entries),
		Exposures:         fmtInt(r.Exposures),
		Pushes:            fmtInt(r.Pushes),
		Provisions:        fmtInt(r.Provisions),
		Users:             fmtInt(r.Users),
		Unattributed:      fmtInt(r.Unattributed),
		Receipts:          fmtInt(r.Receipts),
		ExpDecided:        fmtInt(r.Coverage.ExposuresDecided),
		ExpShare:          fmtShareIn(r.Coverage.ExposureShare, r.Exposures, t),
		PushDecided:       fmtInt(r.Coverage.PushesDecided),
		PushShare:         fmtShareIn(r.Coverage.PushShare, r.Pushes, t),
		Notes:             t.notes(r),
		Listed:            fmtInt(int64(len(r.Violations))),
		HTMLMaxRow:        fmtInt(HTMLMaxRows),
	}

	// Drops, by event.
	var dropped uint64
	for _, k := range sortedKeys(r.Drops) {
		label := k
		if ev := t.eventName(k); ev != k {
			label = ev + " (" + k + ")"
		}
		p.Drops = append(p.Drops, countItem{Label: label, Count: fmtInt(int64(r.Drops[k]))})
		dropped += r.Drops[k]
	}
	p.DropsTotal = fmtInt(int64(dropped))
	if dropped > 0 {
		p.DropsLine = t.drops(p.DropsTotal)
	} else {
		p.DropsLine = t.noDrops
	}
	var cov []string
	if r.Exposures > 0 {
		cov = append(cov, t.expShare(p.ExpShare))
	}
	if r.Pushes > 0 {
		cov = append(cov, t.pushShare(p.PushShare))
	}
	if len(cov) > 0 {
		p.CoverageLine = t.coverage(cov)
	}
	p.Meta = t.meta(p.Generated, p.Window, p.Allowance, p.SettingsAllowance)
	p.CleanLine = t.clean(p.Exposures, p.Pushes, p.Users, p.Window, p.Receipts)
	p.FoundLine = t.found(p.Violations)
	p.AmongLine = t.among(p.Exposures, p.Pushes, p.Users, p.Window, p.Receipts)
	p.AllowanceLine = t.allowances(p.Allowance, p.SettingsAllowance, p.Within, p.MaxLag)
	p.WithinNote = t.withinNote(p.Allowance, p.SettingsAllowance, p.MaxLag)
	p.Footer = t.footer(p.Generated)

	// Per kind, every known kind (zeros too) and any other the report holds.
	for _, k := range reportKinds(r) {
		info := t.kinds[k]
		n := r.Totals.ByKind[k]
		row := kindRow{Kind: string(k), Label: t.kindLabelIn(k), Meaning: info[1],
			Count: fmtInt(n), Within: fmtInt(r.WithinAllowance.ByKind[k]), Zero: n == 0}
		p.Kinds = append(p.Kinds, row)
		if n > 0 {
			p.KindsFound = append(p.KindsFound, countItem{Label: t.displayKind(k, t.kindLabelIn(k)), Count: fmtInt(n)})
		}
	}

	for _, d := range r.Totals.ByDay {
		p.Days = append(p.Days, groupRow{Label: d.Day, All: fmtInt(d.All), ByKind: byKind(d.ByKind, t)})
	}
	surfaces := make([]string, 0, len(r.Totals.BySurface))
	for s := range r.Totals.BySurface {
		surfaces = append(surfaces, s)
	}
	sort.Strings(surfaces)
	for _, s := range surfaces {
		var all int64
		for _, n := range r.Totals.BySurface[s] {
			all += n
		}
		p.Surfaces = append(p.Surfaces, groupRow{Label: s, All: fmtInt(all), ByKind: byKind(r.Totals.BySurface[s], t)})
	}

	for _, pv := range r.ProvisionsBy {
		p.ProvsBy = append(p.ProvsBy, provRow{Recipient: pv.Recipient, Purpose: pv.Purpose,
			Exports: fmtInt(pv.Exports), Users: fmtInt(pv.Users), First: fmtTimeIn(pv.First, false, t), Last: fmtTimeIn(pv.Last, false, t)})
	}

	shown := r.Violations
	if len(shown) > HTMLMaxRows {
		shown = shown[:HTMLMaxRows]
		p.More = fmtInt(int64(len(r.Violations) - HTMLMaxRows))
	}
	p.Shown = fmtInt(int64(len(shown)))
	if r.ViolationsOmitted > 0 {
		p.Omitted = fmtInt(r.ViolationsOmitted)
	}
	p.ListLine = t.listed(p.Shown, p.Listed, p.More)
	if p.Omitted != "" {
		p.ListLine += t.omitted(p.Omitted, false)
		p.OmittedLine = t.omitted(p.Omitted, true)
	}
	p.Rows = make([]violationRow, 0, len(shown))
	for i := range shown {
		p.Rows = append(p.Rows, violationView(i+1, &shown[i], t))
	}
	return p
}

func violationView(n int, v *Violation, t *pageText) violationRow {
	row := violationRow{
		N: fmtInt(int64(n)), At: fmtTimeIn(v.At, true, t), Kind: string(v.Kind), Label: t.kindLabelIn(v.Kind),
		User: v.User, Event: t.eventName(v.Event), Surface: v.Surface, Mode: v.Mode,
		Channel: v.Channel, Campaign: v.Campaign, Tag: v.Tag,
		DecisionID: v.DecisionID, Reason: v.DecisionReason,
		ReceiptID: v.ReceiptID, Detail: t.detail(v),
	}
	if !v.Logged.IsZero() {
		row.Logged = fmtTimeIn(v.Logged, true, t)
	}
	row.Decided = t.declared
	if v.Decided {
		row.Decided = t.decided
	}
	var vs []string
	if v.RecordVersion != 0 {
		vs = append(vs, t.record+strconv.FormatUint(v.RecordVersion, 10))
	}
	if v.SettingsVersion != 0 {
		vs = append(vs, t.settings+strconv.FormatUint(v.SettingsVersion, 10))
	}
	row.Versions = strings.Join(vs, t.versionSep)
	row.HasDecision = row.DecisionID != "" || row.Reason != "" || row.Versions != ""
	row.HasChannels = row.Channel != "" || row.Campaign != "" || row.Tag != ""
	if v.ReceiptID != "" || !v.ReceiptAt.IsZero() {
		row.HasReceipt = true
		row.ReceiptAt = fmtTimeIn(v.ReceiptAt, true, t)
		row.Lag = fmtLagIn(v.LagMS, t)
		row.LagLine = t.lagLine(row.Lag)
	}
	return row
}

// reportKinds are the kinds the page lists: Kinds, then any other kind
// the report counts, by name.
func reportKinds(r *Report) []Kind {
	out := Kinds()
	known := map[Kind]bool{}
	for _, k := range out {
		known[k] = true
	}
	var extra []Kind
	seen := map[Kind]bool{}
	add := func(m map[Kind]int64) {
		for k := range m {
			if !known[k] && !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		}
	}
	add(r.Totals.ByKind)
	add(r.WithinAllowance.ByKind)
	sort.Slice(extra, func(i, j int) bool { return extra[i] < extra[j] })
	return append(out, extra...)
}

// byKind lists the non-zero counts of m in report order, named in t.
func byKind(m map[Kind]int64, t *pageText) []countItem {
	var out []countItem
	for _, k := range Kinds() {
		if m[k] > 0 {
			out = append(out, countItem{Label: t.kindLabelIn(k), Count: fmtInt(m[k])})
		}
	}
	var extra []string
	for k, n := range m {
		if _, ok := kindInfo[k]; !ok && n > 0 {
			extra = append(extra, string(k))
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		out = append(out, countItem{Label: k, Count: fmtInt(m[Kind(k)])})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------------
// Numbers and times, as the page shows them.

// fmtInt writes a count with thousands separators: 12,345.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtPct shows a share (0.1234) as a percentage with one decimal
// (12.3%), never rounding a share short of all up to 100.0% or a share
// above none down to 0.0%.
func fmtPct(v float64) string { return fmtPctIn(v, &textEN) }

// fmtPctIn is fmtPct in t's words.
func fmtPctIn(v float64, t *pageText) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return t.na
	case v > 0 && v < 0.0005:
		return "< 0.1%"
	case v < 1 && v >= 0.9995:
		return "> 99.9%"
	}
	return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
}

// fmtShare is fmtPct of a share of n things: "n/a" of none.
func fmtShare(v float64, n int64) string { return fmtShareIn(v, n, &textEN) }

// fmtShareIn is fmtShare in t's words.
func fmtShareIn(v float64, n int64, t *pageText) string {
	if n == 0 {
		return t.na
	}
	return fmtPctIn(v, t)
}

// fmtLag shows a lag in milliseconds readably: 850 ms, 12.3 s, 4.2 min,
// 3.1 h, 2.5 days (thousands separators beyond).
func fmtLag(ms float64) string { return fmtLagIn(ms, &textEN) }

// fmtLagIn is fmtLag in t's units.
func fmtLagIn(ms float64, t *pageText) string {
	u, sp := t.lagUnits, t.lagUnits[5]
	a := math.Abs(ms)
	switch {
	case math.IsNaN(ms) || math.IsInf(ms, 0):
		return t.na
	case ms == 0:
		return "0" + sp + u[0]
	case a < 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + sp + u[0]
	case a < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + sp + u[0]
	case a < 60e3:
		return strconv.FormatFloat(ms/1e3, 'f', 1, 64) + sp + u[1]
	case a < 3600e3:
		return strconv.FormatFloat(ms/60e3, 'f', 1, 64) + sp + u[2]
	case a < 48*3600e3:
		return strconv.FormatFloat(ms/3600e3, 'f', 1, 64) + sp + u[3]
	}
	days := ms / 86400e3
	if math.Abs(days) >= 1000 {
		return fmtInt(int64(math.Round(days))) + sp + u[4]
	}
	return strconv.FormatFloat(days, 'f', 1, 64) + sp + u[4]
}

// fmtAllowance writes a duration string as the report holds it
// ("2s", "1m0s") the short way ("2s", "1m"); "0s" is "none".
func fmtAllowance(s string) string { return fmtAllowanceIn(s, &textEN) }

// fmtAllowanceIn is fmtAllowance in t's words.
func fmtAllowanceIn(s string, t *pageText) string {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return s
	case d == 0:
		return t.none
	}
	s = d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if t.durUnits != nil {
		s = strings.TrimSpace(t.durUnits.Replace(s))
	}
	return s
}

// fmtTimeIn shows a time in UTC (ISO 8601 in every language), to the
// millisecond when ms; t names the zero time.
func fmtTimeIn(tm time.Time, ms bool, t *pageText) string {
	if tm.IsZero() {
		return t.unk
	}
	if ms {
		return tm.UTC().Format("2006-01-02 15:04:05.000 UTC")
	}
	return tm.UTC().Format("2006-01-02 15:04:05 UTC")
}

// fmtWindowIn says which entries the report covers, in t's words.
func fmtWindowIn(from, to time.Time, t *pageText) string {
	var f, e string
	if !from.IsZero() {
		f = fmtTimeIn(from, false, t)
	}
	if !to.IsZero() {
		e = fmtTimeIn(to, false, t)
	}
	return t.window(f, e)
}
