package audit

import (
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ErrUnknownLang is what WriteHTMLLang returns (wrapped) for a language
// it has no text in: it knows "en" and "zh-CN".
var ErrUnknownLang = errors.New("unknown report language")

// The report languages.
const (
	// LangEN is English, the default.
	LangEN = "en"
	// LangZH is Simplified Chinese, worded as the regulation's Chinese
	// text words it (个性化推荐, 用户标签, 不合理的差别待遇).
	LangZH = "zh-CN"
)

// WriteHTMLLang is WriteHTML in lang: "en" (English) or "zh-CN"
// (Simplified Chinese; the page's html element says lang="zh-CN"). Every
// static text of the page, the sentences it builds from the report's
// figures, the units, the charts' words, the findings (rebuilt in Chinese
// from the comparisons they word) and the engine's notes (those it knows)
// are in that language; the data (group, metric and field names, segment
// expressions, input file names and the reasons of malformed lines) are
// shown as they are, and the JSON and CSV reports stay English. Numbers
// keep Western digits and thousands separators, times are ISO 8601. Any
// other lang is an error wrapping ErrUnknownLang, and nothing is written.
func (r *Report) WriteHTMLLang(w io.Writer, lang string) error {
	t, err := textFor(lang)
	if err != nil {
		return err
	}
	return reportTemplate.Execute(w, buildPage(r, t))
}

// textFor returns the page's text in lang.
func textFor(lang string) (*pageText, error) {
	switch lang {
	case LangEN:
		return &textEN, nil
	case LangZH:
		return &textZH, nil
	}
	return nil, fmt.Errorf("audit: report language %q (want %s or %s): %w", lang, LangEN, LangZH, ErrUnknownLang)
}

// pageText is every word of the HTML report in one language: the
// template's static text (exported fields, read as .T) and the words and
// sentences the page model is built with (unexported). textEN and textZH
// are all the translations of the package's HTML report.
type pageText struct {
	Lang string
	// Navigation and headings.
	Contents, SecFindings, SecSpec, SecGroups, MetricPrefix, SecPrices   string
	SecParity, SecProblems, SecMethods, NoFindings, SigHead              string
	Where, Group, ComparedWith, EffectA, EffectB, Test, Finding          string
	SigNoteA, SigNoteB, SigNoteC, NoSigA, NoSigB                         string
	DtAudit, DtRef, None, DtWindow, DtMinSize, MinSizeNote, DtAlpha      string
	AlphaNote, DtBucket, DtStrata, SeeMethods, GroupsCompared, SegExpr   string
	Metrics, DefaultMetrics, Metric, Kind, Field, Quantiles, Segment     string
	Users, Events, RefMark, NoData, IntervalSuffix, SD, ComparedRef      string
	Reference, Pairs, PaidMore, PaidLess, ExcessA, ExcessPctA, UsersMark string
	Yes, PricesCaption, ParityText, File, Line, Reason, Footer           string
	FindingTitle, CrudeNote, CrudeTitleA, RatioInterval, RatioWord       string
	PWord, StatisticWord, RunBy, BytesWord                               string

	num        *strings.Replacer // the words of formatted numbers ("n/a", " to ", " pp"); nil keeps them
	severity   map[string]string
	kindName   map[MetricKind]string
	meta       func(gen, events, used, skipped string) string
	title      func(name string) string
	suppressed func(n string) string
	minSize    func(n string) string
	strataOn   func(strata, bucket string) string
	strataOff  string
	stratum    func(k, bucket string) string
	kindText   func(k MetricKind) string
	OfField    string
	caption    func(note string, median bool) string
	dotNote    func(rate bool, conf string) string
	valueHead  func(k MetricKind) string
	median     string
	pricesText func(bucket string) string
	priceSig   func(more, less, pairs, excess, pct string) string
	sameItem   string
	problems   func(listed int, more int64) string
	methods    func(p *htmlPage) []methodItem
	// Comparisons.
	diffHead, ratioHead, crudeHead, crudeTitle, findingHead, findingTitle string
	metricHead, npUsers, npTitle, pUsers, pTitle, groupHead, refHead      string
	testHead, usersHead, usersTitle                                       string
	yes, no, notMaterial                                                  string
	adjusted, withinUsers, crudeTag, ncTag                                string
	stratumOne, stratumMany, userOne, userMany                            string
	ncParity                                                              func(n string) string
	ncStrata                                                              func(strata string) string
	effectDiff, effectRatio, effectCrude                                  string
	tests                                                                 map[string]string
	// Charts.
	dotTitle                       func(name string, k MetricKind, conf string) string
	tooltip                        func(g, v, conf, ci, n string) string
	boxTitle                       func(name string) string
	quantDots, boxNote, whiskers   string
	legendRef, legendSig, legendNS string
	shareTitle, versus, noPairs    string
	higher, same, lower            string
	sameLegend                     string
	shareTip                       func(g, what, share, n string) string
	// Findings and notes, rebuilt in the language (nil: the report's own).
	findings func(r *Report) []Finding
	unit     func(u diffUnit) string
	window   func(from, to string) string
	unknown  string
}

// methodItem is one paragraph of the methods.
type methodItem struct {
	ID, Text string
}

// tr translates a formatted figure's words ("n/a", "1.2 to 3.4", "-1.20
// pp") into t's language; a figure holds no data, only numbers and these
// words.
func (t *pageText) tr(s string) string {
	if t.num == nil {
		return s
	}
	return t.num.Replace(s)
}

// testName names a test in t's words.
func (t *pageText) testName(name string) string {
	if s, ok := t.tests[testName(name)]; ok {
		return s
	}
	return testName(name)
}

// quantileName names a quantile in t's words: "median", "p90".
func (t *pageText) quantileName(q float64) string {
	if q == 0.5 {
		return t.median
	}
	return quantileName(q)
}

var textEN = pageText{
	Lang:     "en",
	Contents: "Contents", SecFindings: "Summary of findings", SecSpec: "What was audited", SecGroups: "Groups", MetricPrefix: "Metric: ",
	SecPrices: "Same item, same time: prices", SecParity: "Personalized vs non-personalized", SecProblems: "Malformed input", SecMethods: "Methods",
	NoFindings: "No findings.", SigHead: "Findings: significant and material differences",
	Where: "Where", Group: "Group", ComparedWith: "Compared with", EffectA: "Effect (", EffectB: " interval)", Test: "Test", Finding: "Finding",
	SigNoteA: "q is the Benjamini-Hochberg adjusted p-value over every test of this report; a difference is a finding when q ≤ α (",
	SigNoteB: ") and its effect is material (see ",
	SigNoteC: "). Where a comparison was adjusted for what each side was shown, its adjusted figures decide; the crude (unadjusted) ones are quoted beside them.",
	NoSigA:   "No comparison is a finding: none has q ≤ α (the false discovery rate, α = ", NoSigB: ") and a material effect.",
	DtAudit: "Audit", DtRef: "Reference group", None: "none", DtWindow: "Window", DtMinSize: "Minimum group size",
	MinSizeNote: "; smaller groups are suppressed and show no figures", DtAlpha: "Significance (α)",
	AlphaNote: ": the false discovery rate, controlled with the Benjamini-Hochberg procedure over every test of the report",
	DtBucket:  "Price comparison bucket", DtStrata: "Strata", SeeMethods: "; see ", GroupsCompared: "Groups compared", SegExpr: "Segment expression",
	Metrics:        "Metrics",
	DefaultMetrics: "The default metrics: click rate, conversion rate, discount-offered rate, mean and quantiles of price and rank.",
	Metric:         "Metric", Kind: "Kind", Field: "Field", Quantiles: "Quantiles", Segment: "Segment", Users: "Users", Events: "Events",
	RefMark: "(reference)", NoData: "no data", IntervalSuffix: " interval", SD: "SD", ComparedRef: "Compared with the reference",
	Reference: "Reference", Pairs: "Pairs", PaidMore: "Paid more", PaidLess: "Paid less", ExcessA: "Mean excess (", ExcessPctA: "Excess % (",
	UsersMark: " (users)", Yes: "yes",
	PricesCaption: "Bars: share of same-item, same-time comparisons where the group paid more (left), the same, or less (right) than the reference; the dashed line marks 50%. Only a finding (q ≤ α and a material excess) is coloured; every other group is grey.",
	ParityText:    "The same metrics compared between the personalized path and the non-personalized one users can choose instead: the non-personalized path must not be a worse service. Each mode's size is the number of its users with a value of the metric.",
	File:          "File", Line: "Line", Reason: "Reason",
	Footer:       "Generated by recguard audit. This page is self-contained: it loads nothing from the network.",
	FindingTitle: "q ≤ α and a material excess",
	CrudeNote:    "Where a comparison is adjusted for what each side was shown (the tag under its test says how), its difference, ratio, p and q are the adjusted ones and decide; the crude (unadjusted) comparison beside them decides nothing.",
	CrudeTitleA:  "crude (unadjusted), ", RatioInterval: "; ratio interval ", RatioWord: "ratio ", PWord: "p ", StatisticWord: "statistic ",
	RunBy: "run by", BytesWord: " bytes",

	severity: map[string]string{},
	kindName: map[MetricKind]string{},
	meta: func(gen, events, used, skipped string) string {
		return "Generated " + gen + " · " + events + " events read, " + used + " used (inside the window and in a group), " + skipped + " malformed lines skipped"
	},
	title: func(name string) string {
		if name == "" {
			return "Audit report"
		}
		return "Audit report: " + name
	},
	suppressed: func(n string) string { return "suppressed (fewer than " + n + " users)" },
	minSize:    func(n string) string { return n + " distinct users" },
	strataOn: func(strata, bucket string) string {
		if bucket != "" {
			strata += " (time in buckets of " + bucket + ")"
		}
		return strata + ": rates, means and distributions are compared within them"
	},
	strataOff: "none: every figure is crude (not adjusted)",
	stratum: func(k, bucket string) string {
		switch k {
		case StratumItem:
			return "item (the event's item)"
		case StratumTime:
			return "time (the event's time, in buckets of " + bucket + ")"
		}
		return k + " (the event's attribute " + k + ":…, else the user's fact " + k + ":…)"
	},
	kindText: kindText,
	OfField:  " of ",
	caption: func(note string, median bool) string {
		what := "value"
		if median {
			what = "median"
		}
		return note + " The reference group is on a band; the dashed line marks its " + what + ". Only a finding (q ≤ α and a material effect) is coloured; every other group is grey."
	},
	dotNote: func(rate bool, conf string) string {
		if rate {
			return "Dots: the share of events in each group; whiskers: " + conf + " Wilson score intervals."
		}
		return "Dots: the mean in each group; whiskers: " + conf + " confidence intervals."
	},
	valueHead: func(k MetricKind) string {
		switch k {
		case Rate:
			return "Rate"
		case Distribution:
			return "Median"
		}
		return "Mean"
	},
	median: "median",
	pricesText: func(bucket string) string {
		return "For every item offered to both a group and the reference within the same " + bucket + " window, the group's mean price is compared with the reference's. Were prices set without regard to the group, the group would pay more about as often as less (sign test)."
	},
	priceSig: func(more, less, pairs, excess, pct string) string {
		return fmt.Sprintf("paid more in %s and less in %s of %s same-item, same-time comparisons (mean excess %s, %s)", more, less, pairs, excess, pct)
	},
	sameItem: "same-item price",
	problems: func(listed int, more int64) string {
		if more > 0 {
			return fmt.Sprintf("These input lines could not be read and were skipped (the first %d are listed, and %d more).", listed, more)
		}
		return "These input lines could not be read and were skipped."
	},
	methods:  methodsEN,
	diffHead: "Difference (", ratioHead: "Ratio (", crudeHead: "Crude (unadjusted)",
	crudeTitle:  "the plain comparison, before adjusting for what each side was shown; it does not decide",
	findingHead: "Finding", findingTitle: "q ≤ α and a material effect",
	metricHead: "Metric", npUsers: "Non-personalized users", npTitle: "users of mode non_personalized with a value",
	pUsers: "Personalized users", pTitle: "users of mode personalized with a value", groupHead: "Group", refHead: "Reference",
	testHead: "Test", usersHead: "Users", usersTitle: "users with a value: group / reference",
	yes: "yes", no: "no", notMaterial: "no: not material",
	adjusted: "adjusted: ", withinUsers: "adjusted: within users seen in both modes", crudeTag: "not adjusted (crude)", ncTag: "not comparable: no test",
	stratumOne: "stratum", stratumMany: "strata", userOne: "user", userMany: "users",
	ncParity: func(n string) string {
		s := "not comparable: too few users were seen in both modes"
		if n != "" {
			s += " (" + n + ")"
		}
		return s
	},
	ncStrata: func(strata string) string {
		return "not comparable: the two sides share no " + strata + " stratum with at least two users a side"
	},
	effectDiff: "difference ", effectRatio: ", ratio ", effectCrude: "; crude (unadjusted): difference ",
	dotTitle: func(name string, k MetricKind, conf string) string {
		return name + ": " + map[MetricKind]string{Rate: "rate", Mean: "mean"}[k] + " per group with " + conf + " interval"
	},
	tooltip: func(g, v, conf, ci, n string) string {
		return fmt.Sprintf("%s: %s (%s interval %s, n = %s)", g, v, conf, ci, n)
	},
	boxTitle:  func(name string) string { return name + ": distribution per group" },
	quantDots: "Dots: the quantiles of each group.", boxNote: "Boxes: 25th to 75th percentile; line: median", whiskers: "; whiskers: %s to %s",
	legendRef: "reference", legendSig: legendFinding, legendNS: "no finding",
	shareTitle: "same item, same time: share of comparisons where each group paid more or less than the reference",
	versus:     " vs ", noPairs: "no comparable pairs",
	higher: "paid more", same: "paid the same", lower: "paid less", sameLegend: "same price",
	shareTip: func(g, what, share, n string) string {
		return fmt.Sprintf("%s %s in %s of %s comparisons", g, what, share, n)
	},
	window:  nil,
	unknown: "unknown",
}

var textZH = pageText{
	Lang:     "zh-CN",
	Contents: "目录", SecFindings: "审计发现摘要", SecSpec: "审计范围", SecGroups: "用户分组", MetricPrefix: "指标：",
	SecPrices: "同一商品、同一时间的价格", SecParity: "个性化推荐与非个性化推荐的对比", SecProblems: "格式错误的输入", SecMethods: "方法说明",
	NoFindings: "没有审计发现。", SigHead: "审计发现：显著且实质性的差异",
	Where: "位置", Group: "分组", ComparedWith: "参照组", EffectA: "差异（", EffectB: " 置信区间）", Test: "检验", Finding: "是否构成发现",
	SigNoteA: "q 为对本报告全部检验按 Benjamini-Hochberg 方法校正后的 p 值；当 q ≤ α（",
	SigNoteB: "）且差异具有实质性时，该差异构成审计发现（见",
	SigNoteC: "）。对已按双方所见内容调整的比较，以调整后的数值为准；未调整的粗略数值列于其旁。",
	NoSigA:   "没有任何比较构成审计发现：没有比较同时满足 q ≤ α（错误发现率，α = ", NoSigB: "）且差异具有实质性。",
	DtAudit: "审计", DtRef: "参照组", None: "无", DtWindow: "时间范围", DtMinSize: "最小分组规模",
	MinSizeNote: "；更小的分组予以屏蔽，不显示任何数值", DtAlpha: "显著性水平（α）",
	AlphaNote: "：错误发现率，对报告的全部检验按 Benjamini-Hochberg 方法控制",
	DtBucket:  "价格比较时间段", DtStrata: "分层", SeeMethods: "；见", GroupsCompared: "比较的分组", SegExpr: "分组表达式",
	Metrics:        "指标",
	DefaultMetrics: "默认指标：点击率、转化率、提供折扣的比率，以及价格和排序位置的均值与分位数。",
	Metric:         "指标", Kind: "类型", Field: "字段", Quantiles: "分位数", Segment: "分组表达式", Users: "用户数", Events: "事件数",
	RefMark: "（参照组）", NoData: "无数据", IntervalSuffix: " 置信区间", SD: "标准差", ComparedRef: "与参照组的比较",
	Reference: "参照组", Pairs: "配对数", PaidMore: "支付更高", PaidLess: "支付更低", ExcessA: "平均超出额（", ExcessPctA: "超出百分比（",
	UsersMark: "（按用户）", Yes: "是",
	PricesCaption: "条形：同一商品、同一时间的比较中，该分组支付价格高于（左）、等于或低于（右）参照组的比例；虚线标示 50%。只有构成审计发现的分组（q ≤ α 且超出额具有实质性）以颜色标示，其他分组均为灰色。",
	ParityText:    "在个性化推荐路径与用户可选择的非个性化推荐路径之间比较相同的指标：非个性化推荐路径不得提供更差的服务。每种模式的规模为该模式下具有该指标数值的用户数。",
	File:          "文件", Line: "行", Reason: "原因",
	Footer:       "由 recguard 审计生成。本页面是自包含的：不从网络加载任何内容。",
	FindingTitle: "q ≤ α 且超出额具有实质性",
	CrudeNote:    "对已按双方所见内容调整的比较（其检验下方的标注说明调整方式），其差异、比值、p 和 q 均为调整后的数值并以之为准；旁列的粗略（未调整）比较不作判定依据。",
	CrudeTitleA:  "粗略（未调整），", RatioInterval: "；比值置信区间 ", RatioWord: "比值 ", PWord: "p ", StatisticWord: "统计量 ",
	RunBy: "运行方", BytesWord: " 字节",

	num:      strings.NewReplacer("n/a", "不适用", " to ", " 至 ", " percentile points", " 个百分位点", " pp", " 个百分点"),
	severity: map[string]string{"significant": "显著", "note": "说明"},
	kindName: map[MetricKind]string{Rate: "比率（rate）", Mean: "均值（mean）", Distribution: "分布（distribution）"},
	meta: func(gen, events, used, skipped string) string {
		return "生成于 " + gen + " · 读取 " + events + " 个事件，使用 " + used + " 个（在时间范围内且属于某一分组），跳过 " + skipped + " 行格式错误的输入"
	},
	title: func(name string) string {
		if name == "" {
			return "审计报告"
		}
		return "审计报告：" + name
	},
	suppressed: func(n string) string { return "已屏蔽（用户少于 " + n + " 名）" },
	minSize:    func(n string) string { return n + " 名不同用户" },
	strataOn: func(strata, bucket string) string {
		if bucket != "" {
			strata += "（时间按 " + bucket + " 分段）"
		}
		return strata + "：比率、均值和分布均在各层内比较"
	},
	strataOff: "无：所有数值均为粗略数值（未调整）",
	stratum: func(k, bucket string) string {
		switch k {
		case StratumItem:
			return "item（事件的商品）"
		case StratumTime:
			return "time（事件的时间，按 " + bucket + " 分段）"
		}
		return k + "（事件的属性 " + k + ":…，否则为用户的特征 " + k + ":…）"
	},
	kindText: func(k MetricKind) string {
		switch k {
		case Rate:
			return "比率（事件所占比例）"
		case Mean:
			return "均值"
		case Distribution:
			return "分布（分位数）"
		}
		return string(k)
	},
	OfField: "，字段 ",
	caption: func(note string, median bool) string {
		what := "数值"
		if median {
			what = "中位数"
		}
		return note + "参照组位于色带上；虚线标示其" + what + "。只有构成审计发现的分组（q ≤ α 且差异具有实质性）以颜色标示，其他分组均为灰色。"
	},
	dotNote: func(rate bool, conf string) string {
		if rate {
			return "圆点：各分组中事件所占比例；须线：" + conf + " Wilson 得分置信区间。"
		}
		return "圆点：各分组的均值；须线：" + conf + " 置信区间。"
	},
	valueHead: func(k MetricKind) string {
		switch k {
		case Rate:
			return "比率"
		case Distribution:
			return "中位数"
		}
		return "均值"
	},
	median: "中位数",
	pricesText: func(bucket string) string {
		return "对于在同一 " + bucket + " 时间段内同时向某分组和参照组提供的每件商品，比较该分组与参照组的平均价格。若定价与分组无关，该分组支付更高价格的频率应与支付更低价格的频率大致相同（符号检验）。若存在显著差异，可能构成在交易价格等交易条件上实行不合理的差别待遇。"
	},
	priceSig: func(more, less, pairs, excess, pct string) string {
		return fmt.Sprintf("在 %s 次同一商品、同一时间的比较中，支付更高的占 %s，更低的占 %s（平均超出额 %s，%s）", pairs, more, less, excess, pct)
	},
	sameItem: "同一商品价格",
	problems: func(listed int, more int64) string {
		if more > 0 {
			return fmt.Sprintf("以下输入行无法读取，已跳过（列出前 %d 行，另有 %d 行）。", listed, more)
		}
		return "以下输入行无法读取，已跳过。"
	},
	methods:  methodsZH,
	diffHead: "差异（", ratioHead: "比值（", crudeHead: "粗略（未调整）",
	crudeTitle:  "未按双方所见内容调整的简单比较，不作判定依据",
	findingHead: "是否构成发现", findingTitle: "q ≤ α 且差异具有实质性",
	metricHead: "指标", npUsers: "非个性化推荐用户数", npTitle: "非个性化推荐模式（non_personalized）下有该指标数值的用户",
	pUsers: "个性化推荐用户数", pTitle: "个性化推荐模式（personalized）下有该指标数值的用户", groupHead: "分组", refHead: "参照组",
	testHead: "检验", usersHead: "用户数", usersTitle: "有该指标数值的用户：分组 / 参照组",
	yes: "是", no: "否", notMaterial: "否：差异不具实质性",
	adjusted: "已调整：", withinUsers: "已调整：在两种模式下均出现的用户内比较", crudeTag: "未调整（粗略）", ncTag: "不可比较：未作检验",
	stratumOne: "层", stratumMany: "层", userOne: "名用户", userMany: "名用户",
	ncParity: func(n string) string {
		s := "不可比较：在两种模式下均出现的用户过少"
		if n != "" {
			s += "（" + n + "）"
		}
		return s
	},
	ncStrata: func(strata string) string {
		return "不可比较：双方没有共同的、每方至少两名用户的 " + strata + " 分层"
	},
	effectDiff: "差异 ", effectRatio: "，比值 ", effectCrude: "；粗略（未调整）：差异 ",
	tests: zhTestNames,
	dotTitle: func(name string, k MetricKind, conf string) string {
		w := map[MetricKind]string{Rate: "比率", Mean: "均值"}[k]
		return name + "：各分组的" + w + "及 " + conf + " 置信区间"
	},
	tooltip: func(g, v, conf, ci, n string) string {
		return fmt.Sprintf("%s：%s（%s 置信区间 %s，n = %s）", g, v, conf, ci, n)
	},
	boxTitle:  func(name string) string { return name + "：各分组的分布" },
	quantDots: "圆点：各分组的分位数。", boxNote: "箱体：第 25 至第 75 百分位；线：中位数", whiskers: "；须线：%s 至 %s",
	legendRef: "参照组", legendSig: "审计发现（q ≤ α 且具有实质性）", legendNS: "非审计发现",
	shareTitle: "同一商品、同一时间：各分组支付价格高于或低于参照组的比较所占比例",
	versus:     " 对比 ", noPairs: "没有可比较的配对",
	higher: "支付更高", same: "支付相同", lower: "支付更低", sameLegend: "价格相同",
	shareTip: func(g, what, share, n string) string {
		return fmt.Sprintf("%s 在 %s 次比较中有 %s %s", g, n, share, what)
	},
	findings: findingsZH,
	unit: func(u diffUnit) string {
		switch u {
		case unitPP:
			return " 个百分点"
		case unitPercentile:
			return " 个百分位点"
		}
		return ""
	},
	window: func(from, to string) string {
		switch {
		case from == "" && to == "":
			return "全部事件（无时间范围）"
		case from == "":
			return to + " 之前的全部事件"
		case to == "":
			return "自 " + from + " 起的全部事件"
		}
		return "自 " + from + " 至 " + to
	},
	unknown: "未知",
}

// zhTestNames name the tests in Chinese (by their English names).
var zhTestNames = map[string]string{
	"two-proportion z-test": "两比例 z 检验", "Fisher's exact test": "Fisher 精确检验", "Welch's t-test": "Welch t 检验",
	"user-level t-test": "用户层面 t 检验", "user-level permutation test": "用户层面置换检验", "Mann-Whitney U test": "Mann-Whitney U 检验",
	"sign test": "符号检验",
}

// zhTestName names a test in Chinese.
func zhTestName(name string) string {
	if s, ok := zhTestNames[testName(name)]; ok {
		return s
	}
	return testName(name)
}

// zhDuration writes a duration ("1h", "30m", "24h") in Chinese units.
func zhDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return fmtDuration(d)
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d 天", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d 小时", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d 分钟", d/time.Minute)
	}
	return fmtDuration(d)
}

// duration writes d in t's units.
func (t *pageText) duration(d time.Duration) string {
	if t.Lang == LangZH {
		return zhDuration(d)
	}
	return fmtDuration(d)
}

// timeText writes a time (ISO 8601, UTC) or t's word for none.
func (t *pageText) timeText(tm time.Time) string {
	if tm.IsZero() {
		return t.unknown
	}
	return fmtTime(tm)
}

// windowText says which events the spec audits, in t's words.
func (t *pageText) windowText(from, to time.Time) string {
	if t.window == nil {
		return fmtWindow(from, to)
	}
	var f, e string
	if !from.IsZero() {
		f = fmtTime(from)
	}
	if !to.IsZero() {
		e = fmtTime(to)
	}
	return t.window(f, e)
}

// ---------------------------------------------------------------------------
// Chinese findings and notes.

// metricPhraseZH is metricPhrase in Chinese.
func metricPhraseZH(m MetricSpec) string {
	switch m.Kind {
	case Rate:
		switch m.Field {
		case FieldClicked:
			return "点击率"
		case FieldConverted:
			return "转化率"
		case FieldShown:
			return "展示率"
		case FieldDiscount:
			return "提供折扣的比率"
		}
		return " " + m.Field + " > 0 的比率"
	case Mean:
		if m.Field == FieldLatency {
			return "平均延迟（毫秒）"
		}
		return " " + m.Field + " 均值"
	}
	return " " + m.Field + " 中位数"
}

// strataWordsZH is strataWords in Chinese.
func strataWordsZH(s Spec) string {
	var ws []string
	for _, k := range s.Strata {
		switch k {
		case StratumItem:
			ws = append(ws, "商品")
		case StratumTime:
			ws = append(ws, zhBucket(s.StrataBucket))
		default:
			ws = append(ws, k)
		}
	}
	if len(ws) == 0 {
		return "分层"
	}
	return strings.Join(ws, "、")
}

func zhBucket(d Duration) string {
	switch time.Duration(d) {
	case time.Hour:
		return "小时"
	case 24 * time.Hour:
		return "日"
	case time.Minute:
		return "分钟"
	}
	return zhDuration(time.Duration(d)) + "时间段"
}

func zhQ(q float64) string {
	if q < 0.0001 {
		return "q < 0.0001"
	}
	return findingQ(q)
}

// findingsZH words the report's findings in Chinese: the significant
// ones rebuilt from the comparisons they word (as findings.go words them
// in English, most significant first), the notes translated where known.
// When the significant findings do not match the comparisons (a report
// edited by hand), they are kept as they are.
func findingsZH(r *Report) []Finding {
	type sigF struct {
		q    float64
		text string
	}
	var fs []sigF
	specOf := map[string]MetricSpec{}
	for _, m := range DefaultMetrics() {
		specOf[m.Name] = m
	}
	for _, m := range r.Spec.Metrics {
		specOf[m.Name] = m
	}
	conf := r.IntervalConfidence
	if conf == 0 {
		_, alpha, _ := specDefaults(r.Spec)
		conf = 1 - alpha
	}
	confWord := fmtLevel(conf)
	effect := func(t TestResult, k MetricKind) string {
		within, crude := "", ""
		switch t.Adjustment {
		case AdjustMantelHaenszel:
			within = "在" + strataWordsZH(r.Spec) + "分层内，"
		case AdjustWithinUser:
			within = "在两种模式下均出现的用户内，"
		}
		if t.Crude != nil && k != Distribution {
			if k == Rate {
				crude = "；粗略差异 " + findingPts(t.Crude.Difference) + " 个百分点"
			} else {
				crude = "；粗略差异 " + findingSigned(t.Crude.Difference)
			}
		}
		switch {
		case k == Distribution && t.Adjustment == AdjustMantelHaenszel:
			return fmt.Sprintf("%s偏移 %s 个百分位点，%s 置信区间 %s 至 %s", within, findingPts(t.Difference), confWord, findingPts(t.DifferenceCI.Lo), findingPts(t.DifferenceCI.Hi))
		case k == Rate:
			return fmt.Sprintf("%s差异 %s 个百分点，%s 置信区间 %s 至 %s%s", within, findingPts(t.Difference), confWord, findingPts(t.DifferenceCI.Lo), findingPts(t.DifferenceCI.Hi), crude)
		case k == Mean:
			return fmt.Sprintf("%s差异 %s，%s 置信区间 %s 至 %s%s", within, findingSigned(t.Difference), confWord, findingSigned(t.DifferenceCI.Lo), findingSigned(t.DifferenceCI.Hi), crude)
		}
		return "差异 " + findingSigned(t.Difference)
	}
	for _, t := range r.Tests {
		if !t.Significant {
			continue
		}
		m := specOf[t.Metric]
		gv, rv := findingValues(r.groupValue(t.Group, t.Metric), r.groupValue(t.Reference, t.Metric), m.Kind)
		fs = append(fs, sigF{t.Q, fmt.Sprintf("分组 %s 的%s为 %s，参照组 %s 为 %s（%s；%s，%s）。",
			t.Group, metricPhraseZH(m), gv, t.Reference, rv, effect(t, m.Kind), zhTestName(t.Test), zhQ(t.Q))})
	}
	for _, p := range r.Prices {
		if !p.Significant {
			continue
		}
		more, share := "更高", p.ShareHigher
		if p.MeanExcess < 0 {
			more, share = "更低", p.ShareLower
		}
		n := int64(math.Round(share * float64(p.Pairs)))
		fs = append(fs, sigF{p.Q, fmt.Sprintf("对同一时间的同一商品，分组 %s 支付的价格比参照组 %s %s %s%%（%s 个商品-%s单元中有 %s 个%s，平均差额 %s，%s），可能构成在交易价格等交易条件上实行不合理的差别待遇。",
			p.Group, p.Reference, more, findingPctNum(math.Abs(p.MeanExcessPct)), findingCount(p.Pairs), zhBucket(r.Spec.PriceBucket), findingCount(n), more,
			findingSigned(p.MeanExcess), zhQ(p.Q))})
	}
	for _, t := range r.Parity {
		if !t.Significant {
			continue
		}
		m := MetricSpec{Name: t.Metric, Kind: parityKind(t.Metric)}
		if d := parityDef(t.Metric); d != nil {
			m = d.spec
		}
		fs = append(fs, sigF{t.Q, fmt.Sprintf("非个性化推荐结果与个性化推荐结果在%s 上存在显著差异（%s；%s，%s）。",
			metricPhraseZH(m), effect(t, m.Kind), zhTestName(t.Test), zhQ(t.Q))})
	}
	slices.SortStableFunc(fs, func(a, b sigF) int {
		switch {
		case a.q < b.q:
			return -1
		case a.q > b.q:
			return 1
		}
		return 0
	})
	var sig, notes []Finding
	for _, f := range r.Findings {
		if f.Severity == "significant" {
			sig = append(sig, f)
		} else {
			notes = append(notes, Finding{Severity: f.Severity, Text: noteZH(f.Text)})
		}
	}
	out := make([]Finding, 0, len(r.Findings))
	if len(sig) == len(fs) {
		for _, f := range fs {
			out = append(out, Finding{Severity: "significant", Text: f.text})
		}
	} else {
		out = append(out, sig...)
	}
	return append(out, notes...)
}

// zhNotes translate the engine's notes (report.go, spec.go): each a
// pattern of the English sentence and its Chinese, $1… its parts.
var zhNotes = []struct {
	re *regexp.Regexp
	zh string
}{
	{regexp.MustCompile(`^Group (.+) is suppressed so that no figure can be told apart by differencing: (.*)$`), "分组 $1 已屏蔽，以防通过差分推算出任何数值：$2"},
	{regexp.MustCompile(`^The reference group (.+) has fewer than ([0-9,]+) users and is suppressed: no group is compared with it, and the report shows no figures for it\.$`), "参照组 $1 的用户少于 $2 名，已屏蔽：没有分组与其比较，报告不显示其任何数值。"},
	{regexp.MustCompile(`^Group (.+) has fewer than ([0-9,]+) users and is suppressed: the report shows no figures for it and leaves it out of every comparison\.$`), "分组 $1 的用户少于 $2 名，已屏蔽：报告不显示其任何数值，也不纳入任何比较。"},
	{regexp.MustCompile(`^No event in the window has mode (.+), so the parity check is not run\.$`), "时间范围内没有模式为 $1 的事件，因此未进行个性化推荐与非个性化推荐的对比检查。"},
	{regexp.MustCompile(`^The parity check of non-personalized against personalized results is suppressed: one of the two modes has fewer than ([0-9,]+) users\.$`), "非个性化推荐与个性化推荐结果的对比检查已屏蔽：其中一种模式的用户少于 $1 名。"},
	{regexp.MustCompile(`^The parity check of non-personalized against personalized results is suppressed so that no figure can be told apart by differencing: (.*)$`), "非个性化推荐与个性化推荐结果的对比检查已屏蔽，以防通过差分推算出任何数值：$1"},
	{regexp.MustCompile(`^Group (.+) and the reference (.+) were never offered the same item in the same (.+), so their prices are not compared\.$`), "分组 $1 与参照组 $2 从未在同一时间段（$3）内被提供同一商品，因此未比较其价格。"},
	{regexp.MustCompile(`^Group (.+) and the reference (.+) are not compared on (.+): they have no (.+) in common with at least two users a side, so their figures cannot be told apart from what each chose to browse\.$`), "分组 $1 与参照组 $2 未在指标 $3 上比较：双方没有共同的、每方至少两名用户的 $4 分层，其数值无法与各自选择浏览的内容区分开。"},
	{regexp.MustCompile(`^The parity check does not judge (.+): it is what users do, and users who turn personalization off may differ as people; it is compared within the users seen in both modes, and fewer than ([0-9,]+) were \(([0-9]+)\)\.$`), "对比检查不评判 $1：它反映的是用户自身的行为，关闭个性化推荐的用户本身可能不同；该指标在两种模式下均出现的用户内比较，而这样的用户少于 $2 名（$3 名）。"},
	{regexp.MustCompile(`^The parity check does not compare (.+): the two modes have no (.+) in common with at least two users a side\.$`), "对比检查未比较 $1：两种模式没有共同的、每方至少两名用户的 $2 分层。"},
	{regexp.MustCompile(`^([0-9,]+) malformed input lines? (?:was|were) skipped \(the first ([0-9]+) are listed\)\.$`), "跳过 $1 行格式错误的输入（列出前 $2 行）。"},
	{regexp.MustCompile(`^([0-9,]+) malformed input lines? (?:was|were) skipped\.$`), "跳过 $1 行格式错误的输入。"},
	{regexp.MustCompile(`^([0-9,]+) events? fell outside the audit window and (?:was|were) not used\.$`), "$1 个事件在审计时间范围之外，未予使用。"},
	{regexp.MustCompile(`^([0-9,]+) events? of users who restricted processing of their data or were erased (?:was|were) left out of the audit \(Art\. 23, 24\)\.$`), "$1 个事件属于已限制处理其个人信息或已被删除的用户，未纳入审计（第二十三条、第二十四条）。"},
	{regexp.MustCompile(`^([0-9,]+) events? in the window matched no group\.$`), "时间范围内有 $1 个事件不属于任何分组。"},
	{regexp.MustCompile(`^The same-item price comparison keeps at most ([0-9,]+) item-time cells; ([0-9,]+) events? with a price fell in cells beyond that and (?:was|were) left out of it\.$`), "同一商品价格比较最多保留 $1 个商品-时间单元；有 $2 个带价格的事件落在超出部分的单元中，未纳入比较。"},
	{regexp.MustCompile(`^No event in the groups records (.+), so metric (.+) has no data\.$`), "各分组中没有事件记录 $1，因此指标 $2 没有数据。"},
	{regexp.MustCompile(`^The spec asked to suppress groups of fewer than ([0-9]+) users; this audit's privacy floor is ([0-9]+), so groups of fewer than ([0-9]+) users are suppressed\.$`), "审计规格要求屏蔽少于 $1 名用户的分组；本次审计的隐私下限为 $2，因此屏蔽少于 $3 名用户的分组。"},
}

// noteZH is a note of the engine in Chinese; a note it does not know
// stays as it is.
func noteZH(s string) string {
	for _, n := range zhNotes {
		if n.re.MatchString(s) {
			return n.re.ReplaceAllString(s, n.zh)
		}
	}
	return s
}
