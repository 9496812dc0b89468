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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/recguard/recguard/store"
)

const verifyUsage = `usage: recguard verify [store flags] [--format json|html] [--lang en|zh-CN] [--out FILE]
                       [--workers N] [--max-findings N] [--purge-grace D]

Art. 27 compliance verification of a whole store: every user's receipt
chain against the record's head and purge anchor under the receipt chain
key, receipts kept past the retention, receipts of erased users that still
hold personal content, and tags the consent state does not allow (a
sensitive tag without its separate consent, tags on an erased record, a
suppressed tag also present, tags of a minor without guardian consent, a
prohibited tag). The report names users by ID and findings by kind, never
personal content. It goes to --out, else to standard output; the format
defaults to the extension of --out (.html, .json), else json. --lang zh-CN
writes the HTML report in Simplified Chinese (default en, English); the
JSON stays as it is, and --lang is accepted and ignored with it. Progress
is shown on standard error.

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
	lang := fs.String("lang", "en", "the HTML report's language: en or zh-CN (accepted and ignored for json)")
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
	reportLanguage, err := reportLang(*lang)
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
		err = writeVerifyHTML(&buf, &rep, reportLanguage)
	} else {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		err = enc.Encode(&rep)
	}
	if err != nil {
		return fail(fmt.Errorf("writing the report: %w", err))
	}
	where, err := writeOut(stdout, *out, buf.Bytes())
	if err != nil {
		return fail(err)
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

// findingTextZH is findingText in Simplified Chinese, in the regulation's
// terms (用户标签, 敏感个人信息, 单独同意, 监护人同意).
var findingTextZH = map[store.FindingKind]string{
	store.FindingEdited:                  "回执被篡改或伪造，或回执顺序被打乱（或所给链密钥并非该存储所用）",
	store.FindingTruncatedNewest:         "最新一端的回执被删除",
	store.FindingTruncatedOldest:         "最早一端的回执被删除，且没有可解释的清除记录",
	store.FindingGap:                     "中间的回执被删除",
	store.FindingAnchorBeforeRetention:   "回执在保存期限届满前被清除",
	store.FindingForgedAnchor:            "清除锚点未以链密钥封存",
	store.FindingForgedHead:              "记录的链头未以链密钥封存（伪造或被篡改）",
	store.FindingHeadMismatch:            "记录与最新回执不符（被替换或回滚）",
	store.FindingBroken:                  "回执链校验未通过（其他原因）",
	store.FindingUnreadable:              "记录或回执缺失或无法解码",
	store.FindingNotPurged:               "超过保存期限的回执仍被保存",
	store.FindingUnredacted:              "删除请求之前的回执仍含有个人信息内容",
	store.FindingSensitiveWithoutConsent: "敏感个人信息用户标签未取得该类别的单独同意",
	store.FindingTagsOnErased:            "已删除的记录上仍有用户标签或屏蔽项",
	store.FindingSuppressedPresent:       "用户已删除的用户标签仍然存在",
	store.FindingMinorWithoutGuardian:    "不满十四周岁未成年人的用户标签未取得监护人同意",
	store.FindingProhibitedTag:           "属于禁止使用的命名空间的用户标签",
	store.FindingSettingsChain:           "设置回执校验未通过",
}

// verifyText is every word of the verification page in one language:
// the template's static text (.T) and the sentences built from the
// report's numbers. verifyTexts holds them all, per language.
type verifyText struct {
	Lang, Title, H1, Verified, Incomplete                            string
	Totals, Users, Receipts, ChainsVerified, ChainsBroken            string
	Unreadable, NotPurged, Unredacted, TagsUsers, SettingsReceipts   string
	UsersUnit, SettingsOK, SettingsBad                               string
	BrokenHead, TagsHead, KindHead, MeaningHead, UsersHead           string
	FindingsHead, UserHead, DetailHead, SettingsUser, None, Footnote string

	findings func(n int64) string
	checked  func(at string, secs float64, shards int, ret, grace string) string
	listed   func(n int, total int64) string
	noneList func(total int64) string
	duration func(s string) string
	kinds    map[store.FindingKind]string
	hints    map[string]string
}

var verifyTexts = map[string]*verifyText{
	"en": {
		Lang: "en", Title: "recguard verification", H1: "recguard compliance verification",
		Verified: "Everything verifies.", Incomplete: "Incomplete: the check stopped early.",
		Totals: "Totals", Users: "Users checked", Receipts: "Receipts read", ChainsVerified: "Receipt chains verified",
		ChainsBroken: "Receipt chains broken", Unreadable: "Users unreadable", NotPurged: "Receipts past retention not purged",
		Unredacted: "Receipts not redacted after erasure", TagsUsers: "Records with tags their consent does not allow",
		SettingsReceipts: "Settings receipts", UsersUnit: " users", SettingsOK: "verify", SettingsBad: "do not verify",
		BrokenHead: "Broken receipt chains by kind", TagsHead: "Tags the consent state does not allow, by kind",
		KindHead: "Kind", MeaningHead: "Meaning", UsersHead: "Users",
		FindingsHead: "Findings", UserHead: "User", DetailHead: "Detail", SettingsUser: "(settings)", None: "None.",
		Footnote: "The report names users by ID and findings by kind; it holds no personal content (no tag, category, purpose or reason).",
		findings: func(n int64) string { return fmt.Sprintf("%d findings.", n) },
		checked: func(at string, secs float64, shards int, ret, grace string) string {
			return fmt.Sprintf("Checked at %s in %.1f s; %d shards; receipt retention %s (purge grace %s).", at, secs, shards, ret, grace)
		},
		listed: func(n int, total int64) string {
			return fmt.Sprintf("%d of %d listed, in the order of user numbers.", n, total)
		},
		noneList: func(total int64) string { return fmt.Sprintf("%d findings, none listed (--max-findings 0).", total) },
		duration: func(s string) string { return s },
		kinds:    findingText,
	},
	"zh-CN": {
		Lang: "zh-CN", Title: "recguard 合规校验", H1: "recguard 合规校验报告",
		Verified: "全部校验通过。", Incomplete: "不完整：校验提前终止。",
		Totals: "合计", Users: "已检查用户", Receipts: "已读取回执", ChainsVerified: "校验通过的回执链",
		ChainsBroken: "校验未通过的回执链", Unreadable: "无法读取的用户", NotPurged: "超过保存期限而未清除的回执",
		Unredacted: "删除后未去除个人信息内容的回执", TagsUsers: "带有同意状态不允许的用户标签的记录",
		SettingsReceipts: "设置回执", UsersUnit: " 名用户", SettingsOK: "校验通过", SettingsBad: "校验未通过",
		BrokenHead: "按类型统计的校验未通过的回执链", TagsHead: "按类型统计的同意状态不允许的用户标签",
		KindHead: "类型", MeaningHead: "含义", UsersHead: "用户数",
		FindingsHead: "发现的问题", UserHead: "用户", DetailHead: "详情", SettingsUser: "（设置）", None: "无。",
		Footnote: "本报告以 ID 指称用户、以类型指称问题，不含任何个人信息内容（不含用户标签、类别、目的或原因）。",
		findings: func(n int64) string { return fmt.Sprintf("发现 %d 个问题。", n) },
		checked: func(at string, secs float64, shards int, ret, grace string) string {
			return fmt.Sprintf("校验时间 %s，用时 %.1f 秒；%d 个分片；回执保存期限 %s（清除宽限期 %s）。", at, secs, shards, ret, grace)
		},
		listed: func(n int, total int64) string {
			return fmt.Sprintf("共 %d 个问题，列出 %d 个，按用户编号排序。", total, n)
		},
		noneList: func(total int64) string {
			return fmt.Sprintf("共 %d 个问题，均未列出（--max-findings 0）。", total)
		},
		duration: zhDuration,
		kinds:    findingTextZH,
		hints: map[string]string{
			"no receipt chain verifies and every one fails a check under the chain key (receipt hashes, purge anchors, record heads): the chain key given is probably not the one the store seals with": "没有任何回执链校验通过，且每一条都未通过链密钥下的检查（回执哈希、清除锚点、记录链头）：所给的链密钥很可能不是该存储封存所用的密钥。",
			"receipts past their retention are kept: is the periodic purge (recguard serve runs it hourly) running?":                                                                                    "超过保存期限的回执仍被保存：定期清除（recguard serve 每小时运行一次）是否在运行？",
		},
	},
}

// zhDuration writes a Go duration ("26280h0m0s") in Chinese units, in
// the largest unit that holds it whole ("1095 天"); anything else as it is.
func zhDuration(s string) string {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return s
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d 天", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d 小时", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d 分钟", d/time.Minute)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " 秒"
}

// kindRow is one row of a table of counts per kind.
type kindRow struct {
	Kind  store.FindingKind
	Text  string
	Count int64
}

// findingRow is one finding as the page shows it: in Chinese, the kind's
// meaning (Text) above the store's detail, which is English (Detail).
type findingRow struct {
	UserID       string
	Kind         store.FindingKind
	Text, Detail string
}

var verifyHTML = template.Must(template.New("verify").Parse(`<!DOCTYPE html>
<html lang="{{.T.Lang}}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.T.Title}} {{.R.CheckedAt.Format "2006-01-02 15:04 MST"}}</title>
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
<h1>{{.T.H1}}</h1>
<p>{{if .R.Verified}}<span class="ok">{{.T.Verified}}</span>{{else if not .R.Complete}}<span class="bad">{{.T.Incomplete}}</span>{{else}}<span class="bad">{{.FindingsLine}}</span>{{end}}
{{.Checked}}</p>
{{range .Hints}}<p class="bad">{{.}}</p>{{end}}

<h2>{{.T.Totals}}</h2>
<table>
<tr><th>{{.T.Users}}</th><td class="n">{{.R.Users}}</td></tr>
<tr><th>{{.T.Receipts}}</th><td class="n">{{.R.Receipts}}</td></tr>
<tr><th>{{.T.ChainsVerified}}</th><td class="n">{{.R.ChainsVerified}}</td></tr>
<tr><th>{{.T.ChainsBroken}}</th><td class="n">{{.R.ChainsBroken}}</td></tr>
<tr><th>{{.T.Unreadable}}</th><td class="n">{{.R.Unreadable}}</td></tr>
<tr><th>{{.T.NotPurged}}</th><td class="n">{{.R.NotPurged.Receipts}} ({{.R.NotPurged.Users}}{{.T.UsersUnit}})</td></tr>
<tr><th>{{.T.Unredacted}}</th><td class="n">{{.R.Unredacted.Receipts}} ({{.R.Unredacted.Users}}{{.T.UsersUnit}})</td></tr>
<tr><th>{{.T.TagsUsers}}</th><td class="n">{{.R.Tags.Users}}</td></tr>
<tr><th>{{.T.SettingsReceipts}}</th><td class="n">{{.R.Settings.Receipts}} {{if .R.Settings.ChainOK}}<span class="ok">{{.T.SettingsOK}}</span>{{else}}<span class="bad">{{.T.SettingsBad}}</span>{{end}}</td></tr>
</table>

<h2>{{.T.BrokenHead}}</h2>
<table>
<tr><th>{{.T.KindHead}}</th><th>{{.T.MeaningHead}}</th><th>{{.T.UsersHead}}</th></tr>
{{range .Broken}}<tr><td><code>{{.Kind}}</code></td><td>{{.Text}}</td><td class="n{{if not .Count}} zero{{end}}">{{.Count}}</td></tr>
{{end}}</table>

<h2>{{.T.TagsHead}}</h2>
<table>
<tr><th>{{.T.KindHead}}</th><th>{{.T.MeaningHead}}</th><th>{{.T.UsersHead}}</th></tr>
{{range .Tags}}<tr><td><code>{{.Kind}}</code></td><td>{{.Text}}</td><td class="n{{if not .Count}} zero{{end}}">{{.Count}}</td></tr>
{{end}}</table>

<h2>{{.T.FindingsHead}}</h2>
{{if .R.Findings}}<p>{{.Listed}}</p>
<table>
<tr><th>{{.T.UserHead}}</th><th>{{.T.KindHead}}</th><th>{{.T.DetailHead}}</th></tr>
{{range .Findings}}<tr><td>{{if .UserID}}<code>{{.UserID}}</code>{{else}}{{$.T.SettingsUser}}{{end}}</td><td><code>{{.Kind}}</code></td><td>{{if .Text}}{{.Text}}<br><small lang="en">{{.Detail}}</small>{{else}}{{.Detail}}{{end}}</td></tr>
{{end}}</table>
{{else if .R.FindingsTotal}}<p>{{.NoneListed}}</p>
{{else}}<p class="ok">{{.T.None}}</p>{{end}}
<p><small>{{.T.Footnote}}</small></p>
</body>
</html>
`))

// writeVerifyHTML writes rep as a self-contained HTML page (no scripts, no
// external assets) in lang, "en" or "zh-CN" (see reportLang). In Chinese
// every finding shows its kind's meaning in Chinese above the store's
// detail, which stays English (marked lang="en"), and the known hints are
// translated.
func writeVerifyHTML(w io.Writer, rep *store.VerifyReport, lang string) error {
	t, ok := verifyTexts[lang]
	if !ok {
		return fmt.Errorf("report language %q: want en or zh-CN", lang)
	}
	rows := func(kinds []store.FindingKind, counts map[store.FindingKind]int64) []kindRow {
		out := make([]kindRow, 0, len(kinds))
		for _, k := range kinds {
			out = append(out, kindRow{Kind: k, Text: t.kinds[k], Count: counts[k]})
		}
		return out
	}
	findings := make([]findingRow, 0, len(rep.Findings))
	for _, f := range rep.Findings {
		row := findingRow{UserID: f.UserID, Kind: f.Kind, Detail: f.Detail}
		if lang != "en" {
			row.Text = t.kinds[f.Kind]
			if row.Text == "" {
				row.Text = string(f.Kind)
			}
		}
		findings = append(findings, row)
	}
	hints := make([]string, 0, len(rep.Hints))
	for _, h := range rep.Hints {
		if s, ok := t.hints[h]; ok {
			h = s
		}
		hints = append(hints, h)
	}
	return verifyHTML.Execute(w, struct {
		T                                         *verifyText
		R                                         *store.VerifyReport
		Broken, Tags                              []kindRow
		Findings                                  []findingRow
		Hints                                     []string
		FindingsLine, Checked, Listed, NoneListed string
	}{
		T: t, R: rep, Broken: rows(store.ChainKinds(), rep.BrokenByKind), Tags: rows(store.TagKinds(), rep.Tags.ByKind),
		Findings: findings, Hints: hints,
		FindingsLine: t.findings(rep.FindingsTotal),
		Checked:      t.checked(rep.CheckedAt.Format("2006-01-02 15:04:05 MST"), rep.Seconds, rep.Shards, t.duration(rep.Retention), t.duration(rep.PurgeGrace)),
		Listed:       t.listed(len(rep.Findings), rep.FindingsTotal),
		NoneListed:   t.noneList(rep.FindingsTotal),
	})
}
