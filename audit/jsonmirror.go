package audit

import (
	"encoding/json"
	"math"
)

// JSON: the report's types written with non-finite numbers as null.

//
// Reports hold NaN where a figure is undefined (an interval of one
// observation, a ratio to zero, an undefined test) and may hold ±Inf.
// encoding/json cannot write those, so the result types below write every
// non-finite number as null, and read null back as NaN.

type jsonNum float64

func (f jsonNum) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

func (f *jsonNum) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = jsonNum(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = jsonNum(v)
	return nil
}

type jsonInterval struct {
	Lo jsonNum `json:"lo"`
	Hi jsonNum `json:"hi"`
}

// MarshalJSON writes {"lo": .., "hi": ..}, a non-finite end as null.
func (i Interval) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonInterval{jsonNum(i.Lo), jsonNum(i.Hi)})
}

// UnmarshalJSON reads an interval, null as NaN.
func (i *Interval) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var j jsonInterval
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*i = Interval{float64(j.Lo), float64(j.Hi)}
	return nil
}

type jsonQuantile struct {
	Q     jsonNum `json:"q"`
	Value jsonNum `json:"value"`
}

// MarshalJSON writes a non-finite value as null.
func (q Quantile) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonQuantile{jsonNum(q.Q), jsonNum(q.Value)})
}

// UnmarshalJSON reads null as NaN.
func (q *Quantile) UnmarshalJSON(b []byte) error {
	var j jsonQuantile
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*q = Quantile{float64(j.Q), float64(j.Value)}
	return nil
}

type jsonMetricResult struct {
	Metric    string     `json:"metric"`
	Kind      MetricKind `json:"kind"`
	N         int64      `json:"n"`
	Value     jsonNum    `json:"value"`
	CI        Interval   `json:"ci"`
	Quantiles []Quantile `json:"quantiles,omitempty"`
	SD        jsonNum    `json:"sd,omitempty"`
}

// MarshalJSON writes a non-finite value as null.
func (m MetricResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonMetricResult{m.Metric, m.Kind, m.N, jsonNum(m.Value), m.CI, m.Quantiles, jsonNum(m.SD)})
}

// UnmarshalJSON reads null as NaN.
func (m *MetricResult) UnmarshalJSON(b []byte) error {
	var j jsonMetricResult
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = MetricResult{j.Metric, j.Kind, j.N, float64(j.Value), j.CI, j.Quantiles, float64(j.SD)}
	return nil
}

type jsonTestResult struct {
	Metric         string       `json:"metric"`
	Group          string       `json:"group"`
	Reference      string       `json:"reference"`
	Difference     jsonNum      `json:"difference"`
	DifferenceCI   Interval     `json:"difference_ci"`
	Ratio          jsonNum      `json:"ratio"`
	RatioCI        Interval     `json:"ratio_ci"`
	Test           string       `json:"test"`
	Statistic      jsonNum      `json:"statistic"`
	P              jsonNum      `json:"p"`
	Users          int64        `json:"users,omitempty"`
	ReferenceUsers int64        `json:"reference_users,omitempty"`
	SE             jsonNum      `json:"se,omitempty"`
	DF             jsonNum      `json:"df,omitempty"`
	Adjustment     string       `json:"adjustment,omitempty"`
	Strata         int64        `json:"strata,omitempty"`
	Crude          *CrudeResult `json:"crude,omitempty"`
	Q              jsonNum      `json:"q"`
	Material       bool         `json:"material"`
	Significant    bool         `json:"significant"`
}

// MarshalJSON writes a non-finite value as null.
func (t TestResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonTestResult{t.Metric, t.Group, t.Reference, jsonNum(t.Difference), t.DifferenceCI,
		jsonNum(t.Ratio), t.RatioCI, t.Test, jsonNum(t.Statistic), jsonNum(t.P), t.Users, t.ReferenceUsers,
		jsonNum(t.SE), jsonNum(t.DF), t.Adjustment, t.Strata, t.Crude, jsonNum(t.Q), t.Material, t.Significant})
}

// UnmarshalJSON reads null as NaN.
func (t *TestResult) UnmarshalJSON(b []byte) error {
	var j jsonTestResult
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = TestResult{Metric: j.Metric, Group: j.Group, Reference: j.Reference, Difference: float64(j.Difference),
		DifferenceCI: j.DifferenceCI, Ratio: float64(j.Ratio), RatioCI: j.RatioCI, Test: j.Test,
		Statistic: float64(j.Statistic), P: float64(j.P), Users: j.Users, ReferenceUsers: j.ReferenceUsers,
		SE: float64(j.SE), DF: float64(j.DF), Adjustment: j.Adjustment, Strata: j.Strata, Crude: j.Crude,
		Q: float64(j.Q), Material: j.Material, Significant: j.Significant}
	return nil
}

type jsonCrudeResult struct {
	Difference   jsonNum  `json:"difference"`
	DifferenceCI Interval `json:"difference_ci"`
	Ratio        jsonNum  `json:"ratio"`
	RatioCI      Interval `json:"ratio_ci"`
	Test         string   `json:"test"`
	P            jsonNum  `json:"p"`
}

// MarshalJSON writes a non-finite value as null.
func (c CrudeResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonCrudeResult{jsonNum(c.Difference), c.DifferenceCI, jsonNum(c.Ratio), c.RatioCI, c.Test, jsonNum(c.P)})
}

// UnmarshalJSON reads null as NaN.
func (c *CrudeResult) UnmarshalJSON(b []byte) error {
	var j jsonCrudeResult
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = CrudeResult{float64(j.Difference), j.DifferenceCI, float64(j.Ratio), j.RatioCI, j.Test, float64(j.P)}
	return nil
}

type jsonPriceResult struct {
	Group           string   `json:"group"`
	Reference       string   `json:"reference"`
	Pairs           int64    `json:"pairs"`
	ShareHigher     jsonNum  `json:"share_higher"`
	ShareLower      jsonNum  `json:"share_lower"`
	MeanExcess      jsonNum  `json:"mean_excess"`
	MeanExcessCI    Interval `json:"mean_excess_ci"`
	MeanExcessPct   jsonNum  `json:"mean_excess_pct"`
	MeanExcessPctCI Interval `json:"mean_excess_pct_ci"`
	Test            string   `json:"test"`
	Users           int64    `json:"users,omitempty"`
	ReferenceUsers  int64    `json:"reference_users,omitempty"`
	P               jsonNum  `json:"p"`
	Q               jsonNum  `json:"q"`
	Material        bool     `json:"material"`
	Significant     bool     `json:"significant"`
}

// MarshalJSON writes a non-finite value as null.
func (p PriceResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonPriceResult{p.Group, p.Reference, p.Pairs, jsonNum(p.ShareHigher), jsonNum(p.ShareLower),
		jsonNum(p.MeanExcess), p.MeanExcessCI, jsonNum(p.MeanExcessPct), p.MeanExcessPctCI, p.Test, p.Users, p.ReferenceUsers,
		jsonNum(p.P), jsonNum(p.Q), p.Material, p.Significant})
}

// UnmarshalJSON reads null as NaN.
func (p *PriceResult) UnmarshalJSON(b []byte) error {
	var j jsonPriceResult
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = PriceResult{j.Group, j.Reference, j.Pairs, float64(j.ShareHigher), float64(j.ShareLower), float64(j.MeanExcess),
		j.MeanExcessCI, float64(j.MeanExcessPct), j.MeanExcessPctCI, j.Test, j.Users, j.ReferenceUsers,
		float64(j.P), float64(j.Q), j.Material, j.Significant}
	return nil
}
