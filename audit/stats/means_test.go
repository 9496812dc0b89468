package stats

import (
	"math"
	"testing"
)

func TestWelchSleep(t *testing.T) {
	// R, ?t.test: t.test(extra ~ group, data = sleep) (Welch, the default)
	// prints t = -1.8608, df = 17.776, p-value = 0.07939,
	// 95 percent confidence interval -3.3654832 0.2054832,
	// mean in group 1 0.75, mean in group 2 2.33.
	a, b := summaryOf(sleep1...), summaryOf(sleep2...)
	tt, df, p := Welch(a, b)
	near(t, "t", tt, -1.8608, 5e-5)
	near(t, "df", df, 17.776, 5e-4)
	near(t, "p", p, 0.07939, 5e-6)
	d, ci := WelchDiffCI(a, b, 0.95)
	near(t, "diff", d, 0.75-2.33, 1e-12)
	nearCI(t, "Welch CI", ci, -3.3654832, 0.2054832, 5e-8)
	// Swapping the groups flips t and the interval, not df or p.
	tt2, df2, p2 := Welch(b, a)
	near(t, "t swapped", tt2, -tt, 1e-12)
	near(t, "df swapped", df2, df, 1e-9)
	near(t, "p swapped", p2, p, 1e-12)
}

func TestWelchClosedForms(t *testing.T) {
	// a = {1, 1, 1} (variance 0), b = {1, 2, 3} (mean 2, variance 1):
	//   se^2 = 0/3 + 1/3, t = (1 - 2)/sqrt(1/3) = -sqrt(3) = -1.7320508
	//   df = (1/3)^2 / ((1/3)^2 / 2) = 2 (Welch-Satterthwaite)
	// Student's t with 2 df has the closed form CDF 1/2 + t/(2 sqrt(2 + t^2)),
	// so p = 1 - |t|/sqrt(2 + t^2) = 1 - sqrt(3)/sqrt(5) = 0.2254033.
	// Its 97.5% quantile is (2p-1) sqrt(2/(4p(1-p))) at p = 0.975
	//   = 0.95 * sqrt(2/0.0975) = 0.95 * 4.5291081 = 4.3026527,
	// so the 95% interval is -1 ± 4.3026527 * 0.5773503 = -1 ± 2.4841377.
	a, b := summaryOf(1, 1, 1), summaryOf(1, 2, 3)
	tt, df, p := Welch(a, b)
	near(t, "t", tt, -math.Sqrt(3), 1e-12)
	near(t, "df", df, 2, 1e-12)
	near(t, "p", p, 1-math.Sqrt(3.0/5), 1e-10)
	_, ci := WelchDiffCI(a, b, 0.95)
	nearCI(t, "df 2 CI", ci, -1-2.4841377, -1+2.4841377, 1e-7)

	// a = {0, 2} (mean 1, variance 2), b = {5, 5}: se^2 = 2/2 = 1, t = -4,
	// df = 1^2 / (1^2/1) = 1: the Cauchy distribution, whose two-sided
	// p-value is 1 - (2/pi) atan(4) = 1 - 0.8440417 = 0.1559583.
	tt, df, p = Welch(summaryOf(0, 2), summaryOf(5, 5))
	near(t, "t", tt, -4, 1e-12)
	near(t, "df", df, 1, 1e-12)
	near(t, "p", p, 1-2/math.Pi*math.Atan(4), 1e-10)
}

func TestWelchDegenerate(t *testing.T) {
	cases := []struct {
		name string
		a, b Summary
	}{
		{"empty", Summary{}, summaryOf(1, 2, 3)},
		{"one value", summaryOf(1), summaryOf(1, 2, 3)},
		{"both constant", summaryOf(1, 1, 1), summaryOf(2, 2)},
	}
	for _, c := range cases {
		tt, df, p := Welch(c.a, c.b)
		if !math.IsNaN(tt) || !math.IsNaN(df) || !math.IsNaN(p) {
			t.Errorf("Welch %s = %v, %v, %v, want NaN", c.name, tt, df, p)
		}
		_, ci := WelchDiffCI(c.a, c.b, 0.95)
		isNaNCI(t, "WelchDiffCI "+c.name, ci)
	}
	d, _ := WelchDiffCI(summaryOf(1, 1, 1), summaryOf(2, 2), 0.95)
	near(t, "constant diff", d, -1, 0)
	d, _ = WelchDiffCI(Summary{}, summaryOf(2, 2), 0.95)
	near(t, "empty diff", d, math.NaN(), 0)
	_, ci := WelchDiffCI(summaryOf(1, 2), summaryOf(2, 4), 1.5)
	isNaNCI(t, "bad conf", ci)
}

func TestMeanCI(t *testing.T) {
	// R, ?t.test and ?sleep: t.test(extra ~ group, data = sleep,
	// paired = TRUE), the one-sample t test of the 10 differences
	// group 1 - group 2, prints t = -4.0621, df = 9, p-value = 0.002833,
	// 95 percent confidence interval -2.4598858 -0.7001142, mean -1.58.
	var diff Summary
	for i := range sleep1 {
		diff.Add(sleep1[i] - sleep2[i])
	}
	near(t, "mean diff", diff.Mean(), -1.58, 1e-12)
	nearCI(t, "paired CI", MeanCI(diff, 0.95), -2.4598858, -0.7001142, 5e-8)

	// Group 1 alone, by hand: mean 0.75, sd 1.7890097, se = sd/sqrt(10)
	// = 0.5657345; t(0.975, 9) = 2.2621572 (2.262 in every t table);
	// half-width 2.2621572 * 0.5657345 = 1.2797804, so -0.5297804 to
	// 2.0297804.
	nearCI(t, "group 1 CI", MeanCI(summaryOf(sleep1...), 0.95), -0.5297804, 2.0297804, 5e-7)

	// 99%, n = 2, values 0 and 2: mean 1, sd sqrt(2), se 1; t with 1 df is
	// Cauchy, quantile tan(pi (0.995 - 1/2)) = 63.656741 (the t table's
	// 63.657), so 1 ± 63.656741.
	q := math.Tan(math.Pi * 0.495)
	nearCI(t, "Cauchy CI", MeanCI(summaryOf(0, 2), 0.99), 1-q, 1+q, 1e-6)
}

func TestMeanCIDegenerate(t *testing.T) {
	isNaNCI(t, "empty", MeanCI(Summary{}, 0.95))
	isNaNCI(t, "one value", MeanCI(summaryOf(3), 0.95))
	isNaNCI(t, "bad conf", MeanCI(summaryOf(3, 4), 0))
	if ci := MeanCI(summaryOf(3, 3, 3), 0.95); ci != (Interval{3, 3}) {
		t.Errorf("constant = %+v, want [3, 3]", ci)
	}
}

func TestMeanRatioCI(t *testing.T) {
	// Delta method on the log scale, by hand: a = {2, 4, 6} (mean 4,
	// variance 4), b = {1, 2, 3} (mean 2, variance 1):
	//   ratio = 4/2 = 2
	//   var(log ratio) = 4/(3 * 4^2) + 1/(3 * 2^2) = 1/12 + 1/12 = 1/6
	//   se = sqrt(1/6) = 0.4082483; z = 1.9599640; z*se = 0.8001519
	//   Lo = 2 exp(-0.8001519) = 2 * 0.4492607 = 0.8985214
	//   Hi = 2 exp(+0.8001519) = 2 * 2.2258791 = 4.4517582
	r, ci := MeanRatioCI(summaryOf(2, 4, 6), summaryOf(1, 2, 3), 0.95)
	near(t, "ratio", r, 2, 1e-12)
	nearCI(t, "ratio CI", ci, 0.8985214, 4.4517582, 1e-7)
	// Zero variance in both: the zero-width interval.
	r, ci = MeanRatioCI(summaryOf(3, 3), summaryOf(2, 2), 0.95)
	near(t, "constant ratio", r, 1.5, 1e-12)
	nearCI(t, "constant CI", ci, 1.5, 1.5, 1e-12)
}

func TestMeanRatioCIDegenerate(t *testing.T) {
	r, ci := MeanRatioCI(summaryOf(-1, 1), summaryOf(1, 2), 0.95)
	near(t, "zero mean ratio", r, 0, 0)
	isNaNCI(t, "mean <= 0", ci)
	_, ci = MeanRatioCI(summaryOf(1, 2), summaryOf(-3, -2), 0.95)
	isNaNCI(t, "negative mean", ci)
	r, ci = MeanRatioCI(Summary{}, summaryOf(1, 2), 0.95)
	near(t, "empty ratio", r, math.NaN(), 0)
	isNaNCI(t, "empty", ci)
	_, ci = MeanRatioCI(summaryOf(1), summaryOf(1, 2), 0.95)
	isNaNCI(t, "one value", ci)
	_, ci = MeanRatioCI(summaryOf(1, 2), summaryOf(1, 2), math.NaN())
	isNaNCI(t, "bad conf", ci)
}
