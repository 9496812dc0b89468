package enforce

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownLang is what WriteHTMLLang returns (wrapped) for a language
// it has no text in: it knows "en" and "zh-CN".
var ErrUnknownLang = errors.New("unknown report language")

// The report languages.
const (
	// LangEN is English, the default.
	LangEN = "en"
	// LangZH is Simplified Chinese, worded as the regulation's Chinese
	// text words it (个性化推荐, 用户标签, 敏感个人信息, 单独同意).
	LangZH = "zh-CN"
)

// pageText is every word the page shows in one language: the template's
// static text (exported fields, read by the template as .T) and the
// sentences built from the report's numbers (the func fields). Every
// translation of the package is here, in textEN and textZH.
type pageText struct {
	Lang, TitlePrefix, H1                                          string
	CleanBig, KindsUnit                                            string
	Contents                                                       string
	SecCoverage, SecKinds, SecDays, SecSurfaces, SecProvs          string
	SecNotes, SecViolations                                        string
	CovHead, CountHead, ShareHead                                  string
	CovEntries, CovExposures, CovExpDecided, CovPushes             string
	CovPushDecided, CovProvisions, CovUsers, CovUnattr, CovRecs    string
	CovNote, DropsHead, DroppedHead, NoneRecorded                  string
	KindHead, MeaningHead, ViolationsHead, WithinHead, AllHead     string
	DayHead, ByKindHead, None, SurfaceHead                         string
	SurfaceNote1, SurfaceNote2, SurfaceNote3                       string
	RecipientHead, PurposeHead, ExportsHead, UsersHead             string
	FirstHead, LastHead, ProvsNote, NoProvs                        string
	WhenHead, UserHead, EntryHead, DecisionHead, ReceiptHead       string
	DetailHead, Logged, Via, Channel, Campaign, Tag, Reason        string
	NoDecision, ReceiptAtPrefix, NoReceipt                         string
	declared, decided, record, settings, versionSep, na, none, unk string
	lagUnits                                                       [6]string // ms, s, min, h, days, the space before a unit
	// durUnits rewrites a Go duration's units ("1h30m", "2s"); nil
	// keeps them.
	durUnits *strings.Replacer

	meta        func(gen, win, a, sa string) string
	clean       func(exp, push, users, win, recs string) string
	found       func(n string) string
	among       func(exp, push, users, win, recs string) string
	allowances  func(a, sa, within, lag string) string
	coverage    func(parts []string) string
	expShare    func(s string) string
	pushShare   func(s string) string
	drops       func(n string) string
	noDrops     string
	withinNote  func(a, sa, lag string) string
	listed      func(shown, listed, more string) string
	omitted     func(n string, alone bool) string
	lagLine     func(lag string) string
	footer      func(gen string) string
	window      func(from, to string) string
	kinds       map[Kind][2]string
	events      map[string]string
	detail      func(v *Violation) string
	notes       func(r *Report) []string
	displayKind func(k Kind, label string) string
}

// textFor returns the page's text in lang.
func textFor(lang string) (*pageText, error) {
	switch lang {
	case LangEN:
		return &textEN, nil
	case LangZH:
		return &textZH, nil
	}
	return nil, fmt.Errorf("enforce: report language %q (want %s or %s): %w", lang, LangEN, LangZH, ErrUnknownLang)
}

var textEN = pageText{
	Lang: "en", TitlePrefix: "recguard enforcement audit: ", H1: "Enforcement audit",
	CleanBig: "No violations found.", KindsUnit: "", Contents: "Contents",
	SecCoverage: "Coverage and drops", SecKinds: "Violations by kind", SecDays: "Violations by day",
	SecSurfaces: "Violations by surface", SecProvs: "Provisions by recipient", SecNotes: "Notes", SecViolations: "The violations",
	CovHead: "Ledger entries in the window", CountHead: "Count", ShareHead: "Share",
	CovEntries: "Entries audited", CovExposures: "Exposures",
	CovExpDecided: "… backed by a decision (the SDK's own, or a verified decision ID)", CovPushes: "Pushes",
	CovPushDecided: "… backed by a decision", CovProvisions: "Provisions (audiences handed over, Art. 12)", CovUsers: "Users named",
	CovUnattr: "Exposures and pushes naming no user (erased since, or when recorded): not checked", CovRecs: "Consent receipts replayed",
	CovNote:      "An entry not backed by a decision carries the mode the app declared; it is judged on that word.",
	DropsHead:    "Entries that never reached the ledger (a full queue, an unreachable store)",
	DroppedHead:  "Dropped",
	NoneRecorded: "none recorded",
	KindHead:     "Kind", MeaningHead: "Meaning", ViolationsHead: "Violations", WithinHead: "Within allowance", AllHead: "All",
	DayHead: "Day (UTC)", ByKindHead: "By kind", None: "None.", SurfaceHead: "Surface",
	SurfaceNote1: "The surface is where the entry was recorded: ", SurfaceNote2: " (the SDK in the app) or ", SurfaceNote3: " (posted to the server).",
	RecipientHead: "Recipient", PurposeHead: "Purpose", ExportsHead: "Exports", UsersHead: "Users", FirstHead: "First", LastHead: "Last",
	ProvsNote: "Audiences handed over in the window (Art. 12); users counts the users of every export, so a user exported twice counts twice.",
	NoProvs:   "No audience was handed over in the window.",
	WhenHead:  "When (UTC)", UserHead: "User", EntryHead: "Entry", DecisionHead: "Decision", ReceiptHead: "Receipt broken", DetailHead: "Detail",
	Logged: "logged", Via: " via ", Channel: "channel", Campaign: "campaign", Tag: "tag", Reason: "reason",
	NoDecision: "none", ReceiptAtPrefix: "at ", NoReceipt: "none (in force before every receipt kept, or the decision itself)",
	declared: "declared by the app", decided: "decided", record: "record v", settings: "settings v", versionSep: ", ",
	na: "n/a", none: "none", unk: "unknown",
	lagUnits: [6]string{"ms", "s", "min", "h", "days", " "},
	meta: func(gen, win, a, sa string) string {
		return "Generated " + gen + " · entries " + win + " · allowance " + a + " after a user's change, " + sa + " after a settings change"
	},
	clean: func(exp, push, users, win, recs string) string {
		return exp + " exposures and " + push + " pushes of " + users + " users, " + win + ", were replayed against " + recs +
			" consent receipts and the settings receipts: none broke the consent in force at its time."
	},
	found: func(n string) string { return n + " violations found." },
	among: func(exp, push, users, win, recs string) string {
		return "Among " + exp + " exposures and " + push + " pushes of " + users + " users, " + win + ", replayed against " + recs +
			" consent receipts and the settings receipts:"
	},
	allowances: func(a, sa, within, lag string) string {
		return "Allowances used: " + a + " after a user's change, " + sa + " after a settings change. " + within +
			" entries came within them (longest lag " + lag + ") and are put down to propagation, not listed."
	},
	expShare:  func(s string) string { return s + " of the exposures" },
	pushShare: func(s string) string { return s + " of the pushes" },
	coverage: func(parts []string) string {
		return strings.Join(parts, " and ") + " are backed by a decision (the SDK's own, or a verified decision ID); the others are judged on the mode the app declared."
	},
	drops: func(n string) string {
		return n + " entries never reached the ledger (a full queue or an unreachable store): it is incomplete by that many."
	},
	noDrops: "No entry is recorded as dropped before it reached the ledger.",
	withinNote: func(a, sa, lag string) string {
		return "Within allowance: entries that broke a change but came within " + a + " of it (" + sa +
			" for a settings change), put down to propagation; the longest lag among them was " + lag + "."
	},
	listed: func(shown, listed, more string) string {
		if more != "" {
			return "The first " + shown + " of the " + listed + " violations listed, oldest first; the other " + more + " are in the JSON and CSV reports."
		}
		return "All " + shown + " violations listed, oldest first."
	},
	omitted: func(n string, alone bool) string {
		if alone {
			return n + " violations are counted in the totals but listed in no report (the listing limit)."
		}
		return " A further " + n + " violations are counted in the totals but listed in no report (the listing limit)."
	},
	lagLine: func(lag string) string { return "entry " + lag + " after it" },
	footer: func(gen string) string {
		return "recguard enforcement audit, generated " + gen + ". Every exposure and push of the window was checked against the user's receipts " +
			"and the settings receipts as they stood at its time. This page loads nothing from elsewhere; the JSON and CSV reports hold every listed violation with its full evidence."
	},
	window: func(from, to string) string {
		switch {
		case from == "" && to == "":
			return "every entry kept (no window)"
		case from == "":
			return "every entry kept before " + to
		case to == "":
			return "every entry kept from " + from
		}
		return "from " + from + " to " + to
	},
	kinds:       kindInfo,
	detail:      func(v *Violation) string { return v.Detail },
	notes:       func(r *Report) []string { return r.Notes },
	displayKind: func(_ Kind, label string) string { return label },
}

// zhDurUnits writes a Go duration's units in Chinese: "1h30m" is
// "1 小时 30 分钟".
var zhDurUnits = strings.NewReplacer("ms", " 毫秒", "µs", " 微秒", "ns", " 纳秒", "h", " 小时 ", "m", " 分钟 ", "s", " 秒")

// kindInfoZH names the kinds in Chinese: a label and what it means.
var kindInfoZH = map[Kind][2]string{
	PersonalizedAfterOptOut: {"撤回个性化推荐同意后仍推送个性化内容", "用户关闭个性化推荐后，仍向其进行个性化推荐展示（第四十二条）"},
	PushOnRefusedChannel:    {"在用户拒绝的渠道推送", "在用户已拒绝的渠道上推送（第四十二条）"},
	TargetedPushAfterOptOut: {"关闭个性化推荐后仍定向推送", "用户关闭个性化推荐后，仍依据其个人特征选择推送内容（第四十二条）"},
	WhileSuspended:          {"服务暂停期间推荐或推送", "服务暂停期间进行个性化推荐展示或推送（第五十一条）"},
	WhileRestricted:         {"用户限制处理期间推荐或推送", "用户限制处理其个人信息期间进行个性化推荐展示或推送（第二十三条）"},
	MinorWithoutGuardian:    {"未取得监护人同意向不满十四周岁未成年人推荐", "未取得现行有效的监护人同意，向不满十四周岁未成年人进行个性化推荐展示或定向推送（第二十二条）"},
	TagAfterDeletion:        {"用户删除用户标签后仍使用该标签", "依据用户已删除的用户标签进行展示或推送（第四十二条）"},
	SensitiveWithoutConsent: {"未取得单独同意使用敏感个人信息标签", "依据敏感个人信息标签进行展示或推送，而当时没有有效的单独同意（第二十二条）"},
	ModeContradictsDecision: {"声明的模式与决策不符", "在决策并非个性化推荐的决策 ID 下声明为个性化推荐展示（不适用容许时差）"},
}

var textZH = pageText{
	Lang: "zh-CN", TitlePrefix: "recguard 同意执行情况审计：", H1: "同意执行情况审计",
	CleanBig: "未发现违规。", KindsUnit: "起 ", Contents: "目录",
	SecCoverage: "覆盖率与丢弃", SecKinds: "按类型统计的违规", SecDays: "按日统计的违规",
	SecSurfaces: "按记录端统计的违规", SecProvs: "按接收方统计的数据提供", SecNotes: "说明", SecViolations: "违规明细",
	CovHead: "时间范围内的台账条目", CountHead: "数量", ShareHead: "占比",
	CovEntries: "已审计条目", CovExposures: "曝光",
	CovExpDecided: "… 其中有决策支持（SDK 自身的决策，或经验证的决策 ID）", CovPushes: "推送",
	CovPushDecided: "… 其中有决策支持", CovProvisions: "数据提供（移交的受众，第十二条）", CovUsers: "涉及用户",
	CovUnattr: "未指明用户的曝光和推送（此后已删除，或记录时已删除）：未检查", CovRecs: "已重放的同意回执",
	CovNote:      "没有决策支持的条目带有应用声明的模式，按该声明判定。",
	DropsHead:    "未能写入台账的条目（队列已满、存储不可达）",
	DroppedHead:  "丢弃数",
	NoneRecorded: "无记录",
	KindHead:     "类型", MeaningHead: "含义", ViolationsHead: "违规数", WithinHead: "容许时差内", AllHead: "合计",
	DayHead: "日期（UTC）", ByKindHead: "按类型", None: "无。", SurfaceHead: "记录端",
	SurfaceNote1: "记录端指条目被记录的位置：", SurfaceNote2: "（应用内的 SDK）或 ", SurfaceNote3: "（提交至服务器）。",
	RecipientHead: "接收方", PurposeHead: "目的", ExportsHead: "导出次数", UsersHead: "用户数", FirstHead: "首次", LastHead: "最近一次",
	ProvsNote: "时间范围内移交的受众（第十二条）；用户数为每次导出的用户数之和，同一用户被导出两次计为两次。",
	NoProvs:   "时间范围内未移交任何受众。",
	WhenHead:  "时间（UTC）", UserHead: "用户", EntryHead: "条目", DecisionHead: "决策", ReceiptHead: "被违反的回执", DetailHead: "详情",
	Logged: "入库于", Via: "，记录端 ", Channel: "渠道", Campaign: "活动", Tag: "用户标签", Reason: "原因",
	NoDecision: "无", ReceiptAtPrefix: "时间 ", NoReceipt: "无（在所保存的全部回执之前即已生效，或由决策本身所违反）",
	declared: "应用声明的模式", decided: "有决策支持", record: "记录 v", settings: "设置 v", versionSep: "，",
	na: "不适用", none: "无", unk: "未知",
	lagUnits: [6]string{"毫秒", "秒", "分钟", "小时", "天", " "},
	durUnits: zhDurUnits,
	meta: func(gen, win, a, sa string) string {
		return "生成于 " + gen + " · 条目范围：" + win + " · 容许时差：用户变更后 " + a + "，设置变更后 " + sa
	},
	clean: func(exp, push, users, win, recs string) string {
		return users + " 名用户的 " + exp + " 次曝光和 " + push + " 次推送（" + win + "）已对照 " + recs +
			" 份同意回执及设置回执重放：均未违反当时有效的同意。"
	},
	found: func(n string) string { return "发现 " + n + " 起违规。" },
	among: func(exp, push, users, win, recs string) string {
		return "在 " + users + " 名用户的 " + exp + " 次曝光和 " + push + " 次推送中（" + win + "，已对照 " + recs + " 份同意回执及设置回执重放）："
	},
	allowances: func(a, sa, within, lag string) string {
		return "采用的容许时差：用户变更后 " + a + "，设置变更后 " + sa + "。" + within +
			" 条条目落在容许时差内（最长延迟 " + lag + "），视为变更传播所致，不予列出。"
	},
	expShare:  func(s string) string { return s + " 的曝光" },
	pushShare: func(s string) string { return " " + s + " 的推送" },
	coverage: func(parts []string) string {
		return strings.Join(parts, "和") + " 有决策支持（SDK 自身的决策，或经验证的决策 ID）；其余按应用声明的模式判定。"
	},
	drops: func(n string) string {
		return n + " 条条目未能写入台账（队列已满或存储不可达）：台账因此缺少相应数量的条目。"
	},
	noDrops: "没有记录到写入台账前被丢弃的条目。",
	withinNote: func(a, sa, lag string) string {
		return "容许时差内：违反某项变更、但在变更后 " + a + " 内（设置变更为 " + sa + "）出现的条目，视为变更传播所致；其中最长延迟为 " + lag + "。"
	},
	listed: func(shown, listed, more string) string {
		if more != "" {
			return "列出的 " + listed + " 起违规中的前 " + shown + " 起，按时间先后排列；其余 " + more + " 起见 JSON 和 CSV 报告。"
		}
		return "全部 " + shown + " 起违规，按时间先后排列。"
	},
	omitted: func(n string, alone bool) string {
		return "另有 " + n + " 起违规计入合计，但因列出上限未在任何报告中列出。"
	},
	lagLine: func(lag string) string { return "条目晚于该回执 " + lag },
	footer: func(gen string) string {
		return "recguard 同意执行情况审计，生成于 " + gen + "。时间范围内的每次曝光和推送均已对照用户的回执及设置回执在其发生时的状态进行检查。" +
			"本页面不从任何其他位置加载内容；JSON 和 CSV 报告包含每一起列出的违规及其完整证据。"
	},
	window: func(from, to string) string {
		switch {
		case from == "" && to == "":
			return "保存的全部条目（无时间范围）"
		case from == "":
			return to + " 之前保存的全部条目"
		case to == "":
			return "自 " + from + " 起保存的全部条目"
		}
		return "自 " + from + " 至 " + to
	},
	kinds:       kindInfoZH,
	events:      map[string]string{"exposure": "曝光", "push": "推送", "provision": "数据提供"},
	detail:      detailZH,
	notes:       notesZH,
	displayKind: func(k Kind, label string) string { return label + " (" + string(k) + ")" },
}

// eventName is how t names a ledger event (exposure, push): the event
// itself when t has no word for it.
func (t *pageText) eventName(ev string) string {
	if s, ok := t.events[ev]; ok {
		return s
	}
	return ev
}

// kindLabelIn is how t names k: its label, or k itself when unknown.
func (t *pageText) kindLabelIn(k Kind) string {
	if i, ok := t.kinds[k]; ok {
		return i[0]
	}
	return string(k)
}

// detailZH says in Chinese what v's Detail says in English, from v's
// fields (the engine writes Detail in English for the JSON and CSV);
// for a kind it does not know it keeps the English.
func detailZH(v *Violation) string {
	act := "进行个性化推荐展示"
	if v.Event == "push" {
		push := "推送"
		if v.Kind == TargetedPushAfterOptOut || v.Kind == MinorWithoutGuardian {
			push = "定向推送"
		}
		act = "在渠道「" + v.Channel + "」上" + push
	}
	if v.Event == "push" && v.Decided && v.Mode == "refused" && v.DecisionReason != "" && v.Kind != TagAfterDeletion && v.Kind != SensitiveWithoutConsent {
		return "其决策已拒绝该推送（原因 " + v.DecisionReason + "），仍" + act
	}
	switch v.Kind {
	case ModeContradictsDecision:
		return "在决策 ID 下声明为 " + v.Mode + "，但该决策并非个性化推荐（原因 " + v.DecisionReason + "）"
	case WhileSuspended:
		return "服务暂停期间仍" + act + "（第五十一条）"
	case WhileRestricted:
		return "用户限制处理其个人信息期间仍" + act + "（第二十三条）"
	case PersonalizedAfterOptOut, TargetedPushAfterOptOut:
		return "用户关闭个性化推荐后仍" + act + "（第四十二条）"
	case MinorWithoutGuardian:
		return "未取得现行有效的监护人同意，仍向不满十四周岁未成年人" + act + "（第二十二条）"
	case PushOnRefusedChannel:
		return "用户拒绝该渠道后仍" + act + "（第四十二条）"
	case TagAfterDeletion:
		return "依据用户已删除的用户标签 " + v.Tag + " " + act + "（第四十二条）"
	case SensitiveWithoutConsent:
		return "未取得有效的单独同意，依据敏感个人信息标签 " + v.Tag + " " + act + "（第二十二条）"
	}
	return v.Detail
}

// notesZH gives the report's notes in Chinese: each note the engine
// writes (notes in run.go) in its Chinese wording, built from the same
// fields; a note it does not know stays as it is.
func notesZH(r *Report) []string {
	// textZH's words (textZH itself refers to notesZH).
	none := &pageText{none: "无", durUnits: zhDurUnits}
	zh := []string{
		"在用户变更后 " + fmtAllowanceIn(r.Allowance, none) + " 内（设置变更后 " + fmtAllowanceIn(r.SettingsAllowance, none) +
			" 内）违反该变更的条目视为变更传播所致，计入容许时差内（within_allowance），不予列出。",
		"用户标签的敏感个人信息类别按当前的标签分类判定。",
	}
	var dropped uint64
	for _, v := range r.Drops {
		dropped += v
	}
	if dropped > 0 {
		zh = append(zh, fmtInt(int64(dropped))+" 条条目未能写入台账（队列已满或存储不可达）：台账因此缺少相应数量的条目。")
	}
	if r.Unattributed > 0 {
		zh = append(zh, fmtInt(r.Unattributed)+" 次曝光和推送未指明用户（此后已删除，或记录时已删除），未予检查。")
	}
	if r.ViolationsOmitted > 0 {
		zh = append(zh, fmtInt(r.ViolationsOmitted)+" 起违规计入合计，但未列出。")
	}
	en := notes(r)
	tr := map[string]string{}
	if len(en) == len(zh) {
		for i := range en {
			tr[en[i]] = zh[i]
		}
	}
	out := make([]string, 0, len(r.Notes))
	for _, n := range r.Notes {
		if s, ok := tr[n]; ok {
			n = s
		}
		out = append(out, n)
	}
	return out
}
