package audit

import "strings"

// The methods section of the HTML report, per language (see pageText).

func methodsEN(p *htmlPage) []methodItem {
	out := []methodItem{
		{Text: "Users are put into groups by segment expressions over their tags and flags and the events' attributes. A group with fewer distinct users than the minimum group size is suppressed: none of its figures are shown, so no figure can single out a person."},
		{Text: "A group's own intervals are at " + p.Conf + " confidence (1 − α): rates are shares of events with Wilson score intervals, means have t intervals."},
		{Text: "Rates and means are compared at the level of users, not events: each side's rate or mean is its users' total over their events, its standard error the cluster-robust one over users (a user in both groups adds their covariance), and the test a t-test with one less degree of freedom than the smaller number of users (user-level t-test). One user's many events count as one witness. When few users carry a side (an effective number of users, Kish's (Σn)²/Σn², under 50) the p-value comes from permuting the group labels between users (user-level permutation test, 1,999 permutations, reproducible). A side with fewer than two users falls back to the per-event test (Newcombe interval and two-proportion z-test or Fisher's exact test for rates, Welch's t-test for means), named as such."},
	}
	if p.Method.Stratified {
		s := "Rates, means and distributions are compared within strata, so that a group is not judged for what it was shown or chose to browse (Simpson's paradox). The strata are " + strings.Join(p.Method.Strata, ", ") + "; events are put in the stratum of their values of all of these together. Within each stratum both sides have events, the difference of their rates or means is taken, and the strata's differences are pooled with Mantel-Haenszel weights n1·n0/(n1+n0), n1 and n0 the two sides' events in the stratum: the same estimate as a regression with one fixed effect per stratum. Its standard error is cluster-robust by user, so one user's many events count as one witness, and the test is the user-level t-test (or, when few users carry a side, the user-level permutation test). A distribution is compared the same way through percentiles: each event's value becomes its percentile within its stratum (ties share their mid-rank), and the two sides' mean percentiles are compared and pooled as above (van Elteren's stratified Wilcoxon test, at the level of users); its difference is a shift in percentile points and it has no ratio. A stratum only one side has takes no part; when the two sides share no stratum with at least two users a side, the comparison is not comparable and has no test (shown as such, with no p-value). The parity of the click rate, a behaviour of the users, is compared within users (within_user): only users seen in both modes count, each user a stratum of their own; with too few of them it is not comparable. The adjusted figures (difference, ratio, p, q) decide; beside them the crude (unadjusted) comparison, the plain figures of each side compared without strata, is shown and decides nothing. A tag under each test says how it was adjusted and over how many strata."
		if p.Method.Unrecorded {
			s += " This report's comparisons do not record an adjustment: their figures are crude."
		}
		out = append(out, methodItem{ID: "adjustment", Text: s})
	} else {
		out = append(out, methodItem{ID: "adjustment", Text: "The spec names no strata (strata: none): every figure is crude, the plain figures of each side, not adjusted for what each side was shown."})
	}
	return append(out,
		methodItem{Text: "Without strata (and in their crude comparison) distributions are compared with the Mann-Whitney U test over events; their value is the median, with a distribution-free interval; their difference is the Hodges-Lehmann shift (the median of the pairwise differences) with its interval, their ratio that of the medians. Ratios have log-scale intervals."},
		methodItem{Text: "Every p-value of the report is adjusted together with the Benjamini-Hochberg procedure. The comparisons' intervals are at " + p.TestConf + " confidence, the false coverage-rate level 1 − Rα/m (Benjamini and Yekutieli), so that they exclude no difference exactly when the comparison is selected."},
		methodItem{Text: "A result is significant, a finding, when its adjusted value q is at most α and its effect is material: a rate ratio outside [" + p.RateLo + ", " + p.RateHi + "], a mean or median ratio outside [" + p.MeanLo + ", " + p.MeanHi + "], a shift of a distribution within strata of at least " + p.PctShift + " percentile points, a same-item price excess of at least " + p.PricePct + "%. An effect of zero is never a finding."},
		methodItem{Text: "The same-item price comparison pairs a group with the reference for each item and time bucket where both were offered it. It compares the users' excess over the reference price in the same item and time bucket (user-level t-test) or, with fewer than two users on a side, tests with a sign test whether the group paid more as often as less."},
	)
}

func methodsZH(p *htmlPage) []methodItem {
	out := []methodItem{
		{Text: "按基于用户标签、用户特征和事件属性的分组表达式将用户分入各组。不同用户数少于最小分组规模的分组予以屏蔽：不显示其任何数值，使任何数值都无法识别到具体个人。"},
		{Text: "各分组自身的置信区间为 " + p.Conf + " 置信水平（1 − α）：比率为事件所占比例，采用 Wilson 得分置信区间；均值采用 t 置信区间。"},
		{Text: "比率和均值在用户层面而非事件层面比较：每一方的比率或均值为其用户在各自事件上的合计，标准误为按用户聚类的稳健标准误（同时属于两组的用户计入其协方差），检验为自由度比较少一方的用户数少一的 t 检验（用户层面 t 检验）。同一用户的多个事件只算作一个证据。当某一方的用户较少时（有效用户数，即 Kish 的 (Σn)²/Σn²，少于 50），p 值通过在用户之间置换分组标签得到（用户层面置换检验，1,999 次置换，可复现）。用户少于两名的一方改用按事件的检验（比率采用 Newcombe 置信区间及两比例 z 检验或 Fisher 精确检验，均值采用 Welch t 检验），并如实标明。"},
	}
	if p.Method.Stratified {
		s := "比率、均值和分布在各层内比较，使分组不因其所见或自行选择浏览的内容而受评判（辛普森悖论）。分层为 " + strings.Join(p.Method.Strata, "、") + "；事件按其在上述各项上的取值组合归入相应的层。在双方均有事件的每一层内计算比率或均值之差，再以 Mantel-Haenszel 权重 n1·n0/(n1+n0)（n1、n0 为双方在该层的事件数）合并各层的差异：与每层一个固定效应的回归估计相同。其标准误按用户聚类稳健，同一用户的多个事件只算作一个证据，检验为用户层面 t 检验（某一方用户较少时为用户层面置换检验）。分布同样通过百分位比较：每个事件的取值转换为其在所在层内的百分位（并列值取平均秩），比较并按上述方法合并双方的平均百分位（van Elteren 分层 Wilcoxon 检验，用户层面）；其差异为百分位点的偏移，不计算比值。只有一方出现的层不参与比较；双方没有共同的、每方至少两名用户的层时，该比较不可比较，不作检验（如实标明，不给出 p 值）。点击率反映用户自身的行为，其对比检查在用户内比较（within_user）：只计入在两种模式下均出现的用户，每名用户自成一层；此类用户过少时不可比较。以调整后的数值（差异、比值、p、q）为准；其旁列出粗略（未调整）比较，即双方不分层的简单数值，不作判定依据。每项检验下方的标注说明其调整方式及分层数。"
		if p.Method.Unrecorded {
			s += "本报告的比较未记录调整方式：其数值为粗略数值。"
		}
		out = append(out, methodItem{ID: "adjustment", Text: s})
	} else {
		out = append(out, methodItem{ID: "adjustment", Text: "审计规格未指定分层（strata: none）：所有数值均为粗略数值，即双方的简单数值，未按双方所见内容调整。"})
	}
	return append(out,
		methodItem{Text: "不分层时（以及分层比较中的粗略比较），分布采用按事件的 Mann-Whitney U 检验比较；其数值为中位数，采用无分布假设的置信区间；其差异为 Hodges-Lehmann 偏移（两两差值的中位数）及其置信区间，比值为中位数之比。比值采用对数尺度的置信区间。"},
		methodItem{Text: "报告的全部 p 值一并按 Benjamini-Hochberg 方法校正。比较的置信区间为 " + p.TestConf + " 置信水平，即错误覆盖率水平 1 − Rα/m（Benjamini 和 Yekutieli），使其恰在比较被选中时不包含零差异。"},
		methodItem{Text: "当校正后的 q 值不超过 α 且差异具有实质性时，结果为显著，构成审计发现：比率之比在 [" + p.RateLo + ", " + p.RateHi + "] 之外，均值或中位数之比在 [" + p.MeanLo + ", " + p.MeanHi + "] 之外，分层内分布的偏移至少 " + p.PctShift + " 个百分位点，同一商品价格超出至少 " + p.PricePct + "%。零差异永远不构成审计发现。"},
		methodItem{Text: "同一商品价格比较在双方均被提供的每件商品和时间段内，将分组与参照组配对。比较用户在同一商品、同一时间段内相对参照组价格的超出额（用户层面 t 检验）；若某一方用户少于两名，则用符号检验判断该分组支付更高价格的频率是否与支付更低价格的频率相同。"},
	)
}
