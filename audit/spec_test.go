package audit

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/tags"
)

const specJSON = `{
  "name": "loyalty pricing",
  "groups": [
    {"name": "new", "segment": "loyalty:new"},
    {"name": "gold", "segment": "loyalty:gold & !consent:personalization_off"}
  ],
  "reference": "new",
  "metrics": [
    {"kind": "rate", "field": "clicked"},
    {"name": "basket", "kind": "distribution", "field": "basket_value", "quantiles": [0.5, 0.9]},
    {"kind": "distribution", "field": "price"}
  ],
  "from": "2025-03-01T00:00:00Z",
  "to": "2025-04-01T00:00:00Z",
  "min_group_size": 20,
  "alpha": 0.1,
  "price_bucket": "30m"
}`

const specYAML = `
name: loyalty pricing
groups:
  - name: new
    segment: loyalty:new
  - name: gold
    segment: "loyalty:gold & !consent:personalization_off"
reference: new
metrics:
  - kind: rate
    field: clicked
  - name: basket
    kind: distribution
    field: basket_value
    quantiles: [0.5, 0.9]
  - kind: distribution
    field: price
from: 2025-03-01T00:00:00Z
to: 2025-04-01T00:00:00Z
min_group_size: 20
alpha: 0.1
price_bucket: 30m
`

func TestLoadSpecJSONAndYAML(t *testing.T) {
	js, err := LoadSpec([]byte(specJSON))
	if err != nil {
		t.Fatal(err)
	}
	ys, err := LoadSpec([]byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(js, ys) {
		t.Fatalf("JSON and YAML differ:\n%+v\n%+v", js, ys)
	}
	want := Spec{
		Name: "loyalty pricing",
		Groups: []GroupSpec{
			{Name: "new", Segment: "loyalty:new"},
			{Name: "gold", Segment: "loyalty:gold & !consent:personalization_off"},
		},
		Reference: "new",
		Metrics: []MetricSpec{
			{Name: "click_rate", Kind: Rate, Field: "clicked"},
			{Name: "basket", Kind: Distribution, Field: "basket_value", Quantiles: []float64{0.5, 0.9}},
			{Name: "price_distribution", Kind: Distribution, Field: "price", Quantiles: DefaultQuantiles()},
		},
		From:         time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		To:           time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC),
		MinGroupSize: 20,
		Alpha:        0.1,
		PriceBucket:  Duration(30 * time.Minute),
		Strata:       DefaultStrata(),
		StrataBucket: DefaultStrataBucket,
	}
	if !reflect.DeepEqual(js, want) {
		t.Fatalf("spec\n%+v\nwant\n%+v", js, want)
	}
	// It writes back to JSON that loads to the same spec.
	b, err := json.Marshal(js)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadSpec(b)
	if err != nil {
		t.Fatalf("reloading %s: %v", b, err)
	}
	if !reflect.DeepEqual(again, js) {
		t.Fatalf("round trip changed the spec: %s", b)
	}
}

func TestLoadSpecDefaults(t *testing.T) {
	s, err := LoadSpec([]byte("groups: [{name: all, segment: '*'}]\nreference: all\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.MinGroupSize != 50 || s.Alpha != 0.05 || s.PriceBucket != Duration(time.Hour) {
		t.Errorf("defaults: %+v", s)
	}
	if !reflect.DeepEqual(s.Metrics, DefaultMetrics()) {
		t.Errorf("metrics %+v", s.Metrics)
	}
	names := []string{}
	for _, m := range s.Metrics {
		names = append(names, m.Name+"/"+string(m.Kind)+"/"+m.Field)
	}
	want := "click_rate/rate/clicked conversion_rate/rate/converted discount_rate/rate/discount price_mean/mean/price price_distribution/distribution/price rank_mean/mean/rank rank_distribution/distribution/rank latency_mean/mean/latency_ms"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("default metrics %s", got)
	}
	// Normalize is idempotent.
	s2 := s
	s2.Normalize()
	if !reflect.DeepEqual(s, s2) {
		t.Error("Normalize is not idempotent")
	}
}

func TestLoadSpecErrors(t *testing.T) {
	base := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(specJSON), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	groups := func(m map[string]any) []any { return m["groups"].([]any) }
	metric := func(m map[string]any, i int) map[string]any { return m["metrics"].([]any)[i].(map[string]any) }
	for _, tc := range []struct {
		name  string
		edit  func(m map[string]any)
		field string
		want  string
	}{
		{"long name", func(m map[string]any) { m["name"] = strings.Repeat("x", 201) }, "name", "longer"},
		{"no groups", func(m map[string]any) { m["groups"] = []any{} }, "groups", "no group"},
		{"too many groups", func(m map[string]any) {
			var gs []any
			for i := range MaxGroups + 1 {
				gs = append(gs, map[string]any{"name": "g" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), "segment": "*"})
			}
			m["groups"] = gs
		}, "groups", "at most 64"},
		{"empty group name", func(m map[string]any) { groups(m)[1].(map[string]any)["name"] = " " }, "groups[1].name", "empty"},
		{"control char", func(m map[string]any) { groups(m)[1].(map[string]any)["name"] = "a\x07" }, "groups[1].name", "control"},
		{"long group name", func(m map[string]any) { groups(m)[1].(map[string]any)["name"] = strings.Repeat("g", 101) }, "groups[1].name", "longer"},
		{"duplicate group", func(m map[string]any) { groups(m)[1].(map[string]any)["name"] = "new" }, "groups[1].name", "already names groups[0]"},
		{"empty segment", func(m map[string]any) { groups(m)[0].(map[string]any)["segment"] = "" }, "groups[0].segment", "empty"},
		{"bad segment", func(m map[string]any) { groups(m)[1].(map[string]any)["segment"] = "loyalty:gold &" }, "groups[1].segment", "invalid segment"},
		{"no reference", func(m map[string]any) { delete(m, "reference") }, "reference", "required"},
		{"unknown reference", func(m map[string]any) { m["reference"] = "old" }, "reference", "not the name of a group"},
		{"metric kind missing", func(m map[string]any) { delete(metric(m, 1), "kind") }, "metrics[1].kind", "required"},
		{"metric kind bad", func(m map[string]any) { metric(m, 1)["kind"] = "median" }, "metrics[1].kind", "not rate, mean or distribution"},
		{"metric name missing", func(m map[string]any) { delete(metric(m, 1), "name"); delete(metric(m, 1), "field") }, "metrics[1].name", "empty"},
		{"metric field missing", func(m map[string]any) { delete(metric(m, 1), "field") }, "metrics[1].field", "required"},
		{"metric field not numeric", func(m map[string]any) { metric(m, 1)["field"] = "item" }, "metrics[1].field", "not a numeric"},
		{"rate of price", func(m map[string]any) { metric(m, 0)["field"] = "price"; metric(m, 0)["name"] = "x" }, "metrics[0].field", "use mean or distribution"},
		{"mean of clicked", func(m map[string]any) { metric(m, 2)["field"] = "clicked" }, "metrics[2].field", "use kind rate"},
		{"quantiles on rate", func(m map[string]any) { metric(m, 0)["quantiles"] = []any{0.5} }, "metrics[0].quantiles", "only a distribution"},
		{"quantile out of range", func(m map[string]any) { metric(m, 1)["quantiles"] = []any{0.5, 1} }, "metrics[1].quantiles[1]", "not in (0, 1)"},
		{"quantiles not increasing", func(m map[string]any) { metric(m, 1)["quantiles"] = []any{0.5, 0.5} }, "metrics[1].quantiles[1]", "does not increase"},
		{"duplicate metric", func(m map[string]any) { metric(m, 2)["name"] = "basket" }, "metrics[2].name", "already names metrics[1]"},
		{"to before from", func(m map[string]any) { m["to"] = "2025-02-01T00:00:00Z" }, "to", "not after from"},
		{"negative min size", func(m map[string]any) { m["min_group_size"] = -1 }, "min_group_size", "at least 1"},
		{"alpha 1", func(m map[string]any) { m["alpha"] = 1 }, "alpha", "(0, 1)"},
		{"negative alpha", func(m map[string]any) { m["alpha"] = -0.1 }, "alpha", "(0, 1)"},
		{"tiny bucket", func(m map[string]any) { m["price_bucket"] = "10ms" }, "price_bucket", "at least 1s"},
		{"negative bucket", func(m map[string]any) { m["price_bucket"] = "-1h" }, "price_bucket", "at least 1s"},
		{"bad bucket", func(m map[string]any) { m["price_bucket"] = "an hour" }, "", "duration"},
		{"numeric bucket", func(m map[string]any) { m["price_bucket"] = 3600 }, "", "price_bucket"},
		{"unknown field", func(m map[string]any) { m["colour"] = "red" }, "", "unknown field"},
		{"unknown metric field", func(m map[string]any) { metric(m, 0)["qs"] = 1 }, "", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.edit(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = LoadSpec(b)
			checkSpecErr(t, err, tc.field, tc.want)
		})
	}
}

func checkSpecErr(t *testing.T, err error, field, want string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("err = %v, want ErrInvalidSpec", err)
	}
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatalf("err %T is not a *SpecError", err)
	}
	if se.Field != field || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v (field %q), want field %q and %q", err, se.Field, field, want)
	}
}

func TestLoadSpecDocumentErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"  \n", "empty"},
		{"{", "JSON"},
		{specJSON + "{}", "after the spec"},
		{"groups: [", "YAML"},
		{"name: x\ncolour: red\n", "colour"},
		{"name: a\n---\nname: b\n", "more than one document"},
		{"groups: [{name: a, segment: '*'}]\nreference: a\nprice_bucket: [1]\n", "duration"},
		{"- 1\n- 2\n", "YAML"},
	} {
		_, err := LoadSpec([]byte(tc.in))
		checkSpecErr(t, err, "", tc.want)
	}
	// A segment error unwraps to the segment's syntax error.
	_, err := LoadSpec([]byte(`{"groups":[{"name":"a","segment":"(x:y"}],"reference":"a"}`))
	var se *tags.SyntaxError
	if !errors.As(err, &se) || !errors.Is(err, tags.ErrInvalidSegment) {
		t.Fatalf("err = %v, want a *tags.SyntaxError", err)
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"90m"`), &d); err != nil || d != Duration(90*time.Minute) {
		t.Fatalf("d = %v, %v", d, err)
	}
	b, _ := json.Marshal(Duration(time.Hour))
	if string(b) != `"1h0m0s"` {
		t.Errorf("marshal = %s", b)
	}
	if d.String() != "1h30m0s" {
		t.Errorf("String = %s", d)
	}
}

// TestSpecMinGroupSizeFloor: a spec asking for less than the floor is raised
// to it (and says so in the report), one asking for more keeps its size;
// no floor goes under LowestMinGroupSizeFloor.
func TestSpecMinGroupSizeFloor(t *testing.T) {
	for _, c := range []struct {
		spec, floor int
		want, asked int
		raised      bool
	}{
		{0, 50, 50, 50, false}, // 0 asks for the default, 50
		{5, 50, 50, 5, true},
		{49, 50, 50, 49, true},
		{50, 50, 50, 50, false},
		{80, 50, 80, 80, false},
		{0, 100, 100, 50, true},
		{20, 10, 20, 20, false},
		{5, 10, 10, 5, true},
		{5, 3, 10, 5, true}, // a floor under 10 counts as 10
	} {
		s := Spec{MinGroupSize: c.spec}
		asked, raised := s.ApplyMinGroupSizeFloor(c.floor)
		if s.MinGroupSize != c.want || asked != c.asked || raised != c.raised {
			t.Errorf("spec %d, floor %d: size %d asked %d raised %v; want %d %d %v", c.spec, c.floor, s.MinGroupSize, asked, raised, c.want, c.asked, c.raised)
		}
	}
	for floor, ok := range map[int]bool{-1: false, 0: false, 9: false, 10: true, 50: true, 1000: true} {
		err := CheckMinGroupSizeFloor(floor)
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "at least 10") {
			t.Errorf("floor %d: %v", floor, err)
		}
	}

	// The report says so: the field, a note, and the spec echo holds the
	// size the audit ran with.
	spec, err := LoadSpec([]byte("groups:\n  - name: all\n    segment: '*'\nreference: all\nmin_group_size: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	asked, raised := spec.ApplyMinGroupSizeFloor(DefaultMinGroupSizeFloor)
	if !raised || asked != 5 || spec.MinGroupSize != 50 {
		t.Fatalf("asked %d raised %v size %d", asked, raised, spec.MinGroupSize)
	}
	r := &Report{Spec: spec, Findings: []Finding{{Severity: "significant", Text: "x"}}}
	r.NoteMinGroupSizeFloor(asked, spec.MinGroupSize)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"min_group_size":50`) || !strings.Contains(string(b), `"min_group_size_asked":5`) {
		t.Errorf("report JSON %s", b)
	}
	if len(r.Findings) != 2 || r.Findings[1].Severity != "note" ||
		!strings.Contains(r.Findings[1].Text, "asked to suppress groups of fewer than 5 users; this audit's privacy floor is 50") {
		t.Errorf("findings %+v", r.Findings)
	}
	// Not raised: no field.
	b, _ = json.Marshal(&Report{Spec: spec})
	if strings.Contains(string(b), "min_group_size_asked") {
		t.Errorf("min_group_size_asked without a raise: %s", b)
	}
}
