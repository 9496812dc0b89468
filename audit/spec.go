package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/recguard/recguard/tags"
)

// ErrInvalidSpec is wrapped by every error about a spec.
var ErrInvalidSpec = errors.New("audit: invalid spec")

// SpecError is an invalid spec: the field at fault (a path such as
// "groups[1].segment" or "metrics[0].kind"; empty when the document itself
// does not decode) and why. It unwraps to ErrInvalidSpec and, when there is
// one, to the underlying error (a *tags.SyntaxError for a segment).
type SpecError struct {
	Field  string
	Reason string
	Err    error
}

func (e *SpecError) Error() string {
	if e.Field == "" {
		return ErrInvalidSpec.Error() + ": " + e.Reason
	}
	return ErrInvalidSpec.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidSpec and the underlying error, if any.
func (e *SpecError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidSpec, e.Err}
	}
	return []error{ErrInvalidSpec}
}

func specErr(field, format string, args ...any) *SpecError {
	return &SpecError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Defaults and limits of a Spec.
const (
	DefaultMinGroupSize = 50
	DefaultAlpha        = 0.05
	DefaultPriceBucket  = Duration(time.Hour)
	DefaultStrataBucket = Duration(24 * time.Hour)
	// MaxStrata is the most names Spec.Strata holds.
	MaxStrata = 6
	// MaxGroups is the most groups one audit compares.
	MaxGroups = 64
	// MaxMetrics is the most metrics one audit computes.
	MaxMetrics = 64
	maxNameLen = 100
)

// Privacy floors of MinGroupSize. A spec says how small a group may be
// before it is suppressed, but whoever runs an audit for someone else sets
// a floor under which no spec goes: the server (Config.AuditMinGroupSize,
// serve --audit-min-group-size, default 50, may be set higher or down to
// LowestMinGroupSizeFloor) and recguard audit (--min-group-size-floor,
// default 50, down to LowestMinGroupSizeFloor: its user is an auditor who
// holds the data anyway). A spec asking for less is raised to the floor,
// not refused, and the report says so (ApplyMinGroupSizeFloor,
// Report.NoteMinGroupSizeFloor). Run itself applies MinGroupSize as given.
const (
	// DefaultMinGroupSizeFloor is the floor of the server and of recguard
	// audit unless configured.
	DefaultMinGroupSizeFloor = 50
	// LowestMinGroupSizeFloor is the lowest floor anything may set: a
	// configuration under it is refused (CheckMinGroupSizeFloor).
	LowestMinGroupSizeFloor = 10
)

// CheckMinGroupSizeFloor refuses a floor under LowestMinGroupSizeFloor.
func CheckMinGroupSizeFloor(floor int) error {
	if floor < LowestMinGroupSizeFloor {
		return fmt.Errorf("audit: minimum group size floor %d: must be at least %d, so that no report singles out a handful of people", floor, LowestMinGroupSizeFloor)
	}
	return nil
}

// ApplyMinGroupSizeFloor raises the spec's MinGroupSize to floor when it
// asks for less (0 asks for DefaultMinGroupSize), and returns what it asked
// for and whether it was raised; a spec asking for the floor or more keeps
// its size. A floor under LowestMinGroupSizeFloor is taken as
// LowestMinGroupSizeFloor. After running the spec, give the report
// NoteMinGroupSizeFloor(asked, floor) when raised.
func (s *Spec) ApplyMinGroupSizeFloor(floor int) (asked int, raised bool) {
	floor = max(floor, LowestMinGroupSizeFloor)
	asked = s.MinGroupSize
	if asked == 0 {
		asked = DefaultMinGroupSize
	}
	if asked >= floor {
		s.MinGroupSize = asked
		return asked, false
	}
	s.MinGroupSize = floor
	return asked, true
}

// NoteMinGroupSizeFloor records in the report that the spec asked for
// groups of at least asked users and the audit ran with floor instead
// (Report.MinGroupSizeAsked, and a note among the findings).
func (r *Report) NoteMinGroupSizeFloor(asked, floor int) {
	r.MinGroupSizeAsked = asked
	r.Findings = append(r.Findings, Finding{Severity: "note", Text: fmt.Sprintf(
		"The spec asked to suppress groups of fewer than %d users; this audit's privacy floor is %d, so groups of fewer than %d users are suppressed.",
		asked, floor, floor)})
}

// DefaultQuantiles are the quantiles of a Distribution metric that names
// none.
func DefaultQuantiles() []float64 { return []float64{0.1, 0.25, 0.5, 0.75, 0.9} }

// DefaultMetrics are the metrics of a spec that names none: click rate,
// conversion rate, discount-offered rate, mean and distribution of price
// and of rank, and mean latency. A metric whose field no event records is
// left out of the report (with a note), so latency appears only when
// present.
func DefaultMetrics() []MetricSpec {
	return []MetricSpec{
		{Name: "click_rate", Kind: Rate, Field: "clicked"},
		{Name: "conversion_rate", Kind: Rate, Field: "converted"},
		{Name: "discount_rate", Kind: Rate, Field: "discount"},
		{Name: "price_mean", Kind: Mean, Field: "price"},
		{Name: "price_distribution", Kind: Distribution, Field: "price", Quantiles: DefaultQuantiles()},
		{Name: "rank_mean", Kind: Mean, Field: "rank"},
		{Name: "rank_distribution", Kind: Distribution, Field: "rank", Quantiles: DefaultQuantiles()},
		{Name: "latency_mean", Kind: Mean, Field: "latency_ms"},
	}
}

// Fields an event records by name (see Event); any other name is a free
// field (Event.Fields).
const (
	FieldClicked   = "clicked"
	FieldConverted = "converted"
	FieldShown     = "shown"
	FieldDiscount  = "discount"
	FieldPrice     = "price"
	FieldRank      = "rank"
	FieldLatency   = "latency_ms"
)

// notMetricFields are event keys that cannot be metrics.
var notMetricFields = map[string]bool{"user": true, "item": true, "time": true, "mode": true, "attrs": true, "fields": true}

func fieldIsBool(f string) bool {
	return f == FieldClicked || f == FieldConverted || f == FieldShown
}

// LoadSpec reads a spec written as JSON (a document starting with '{') or
// YAML, strictly (unknown fields are errors, one document only), fills the
// defaults (Normalize) and checks it (Validate). Every error wraps
// ErrInvalidSpec and is a *SpecError naming the field at fault.
func LoadSpec(data []byte) (Spec, error) {
	var s Spec
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Spec{}, specErr("", "empty document")
	}
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return Spec{}, &SpecError{Reason: "JSON: " + strings.TrimPrefix(err.Error(), "json: "), Err: err}
		}
		if _, err := dec.Token(); err != io.EOF {
			return Spec{}, specErr("", "JSON: data after the spec object")
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			return Spec{}, &SpecError{Reason: "YAML: " + strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
		}
		var extra yaml.Node
		if err := dec.Decode(&extra); err != io.EOF {
			return Spec{}, specErr("", "YAML: more than one document")
		}
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// Normalize fills the defaults: MinGroupSize 50, Alpha 0.05, PriceBucket
// one hour, DefaultMetrics when none is named, a metric's name from its
// field and kind when empty, DefaultQuantiles for a Distribution without
// quantiles. It trims spaces around names and segments. It does not check
// anything (Validate does) and is idempotent.
func (s *Spec) Normalize() {
	s.Name = strings.TrimSpace(s.Name)
	s.Reference = strings.TrimSpace(s.Reference)
	if len(s.Groups) > 0 {
		gs := make([]GroupSpec, len(s.Groups))
		for i, g := range s.Groups {
			gs[i] = GroupSpec{Name: strings.TrimSpace(g.Name), Segment: strings.TrimSpace(g.Segment)}
		}
		s.Groups = gs
	}
	if len(s.Metrics) == 0 {
		s.Metrics = DefaultMetrics()
	} else {
		ms := make([]MetricSpec, len(s.Metrics))
		for i, m := range s.Metrics {
			m.Name = strings.TrimSpace(m.Name)
			m.Field = strings.TrimSpace(m.Field)
			m.Kind = MetricKind(strings.TrimSpace(string(m.Kind)))
			if m.Name == "" && m.Field != "" && m.Kind != "" {
				m.Name = defaultMetricName(m.Kind, m.Field)
			}
			if m.Kind == Distribution && len(m.Quantiles) == 0 {
				m.Quantiles = DefaultQuantiles()
			} else if len(m.Quantiles) > 0 {
				m.Quantiles = append([]float64(nil), m.Quantiles...)
			}
			ms[i] = m
		}
		s.Metrics = ms
	}
	if s.MinGroupSize == 0 {
		s.MinGroupSize = DefaultMinGroupSize
	}
	if s.Alpha == 0 {
		s.Alpha = DefaultAlpha
	}
	if s.PriceBucket == 0 {
		s.PriceBucket = DefaultPriceBucket
	}
	if s.Strata == nil {
		s.Strata = DefaultStrata()
	} else {
		st := make([]string, len(s.Strata))
		for i, k := range s.Strata {
			st[i] = strings.TrimSpace(k)
		}
		s.Strata = st
	}
	if s.StrataBucket == 0 {
		s.StrataBucket = DefaultStrataBucket
	}
}

// DefaultStrata are the strata of a spec that names none: the item and
// the day.
func DefaultStrata() []string { return []string{StratumItem, StratumTime} }

// Names of Spec.Strata with a meaning of their own; any other name is an
// attribute or fact key.
const (
	StratumItem = "item"
	StratumTime = "time"
	StratumNone = "none"
)

// stratified says whether the spec compares rates and means within strata.
func (s *Spec) stratified() bool {
	return !(len(s.Strata) == 1 && s.Strata[0] == StratumNone) && len(s.Strata) > 0
}

func defaultMetricName(k MetricKind, field string) string {
	if k == Rate {
		switch field {
		case FieldClicked:
			return "click_rate"
		case FieldConverted:
			return "conversion_rate"
		}
	}
	if k == Mean && field == FieldLatency {
		return "latency_mean"
	}
	return field + "_" + string(k)
}

// Validate checks a normalized spec: at least one group, at most
// MaxGroups; group names non-empty and unique; segments that parse; a
// reference naming one of the groups; metrics of a known kind over a field
// that kind can summarize (rate: clicked, converted, shown, discount or a
// free field; mean and distribution: price, rank, discount, latency_ms or a
// free field) with unique names; quantiles in (0, 1), increasing, for
// distributions only; From before To; MinGroupSize >= 1; Alpha in (0, 1);
// PriceBucket at least one second. The error is a *SpecError.
func (s Spec) Validate() error {
	if len(s.Name) > 200 {
		return specErr("name", "longer than 200 bytes")
	}
	if len(s.Groups) == 0 {
		return specErr("groups", "no group; name at least the reference group")
	}
	if len(s.Groups) > MaxGroups {
		return specErr("groups", "%d groups; at most %d", len(s.Groups), MaxGroups)
	}
	names := map[string]int{}
	for i, g := range s.Groups {
		f := fmt.Sprintf("groups[%d]", i)
		if err := checkName(g.Name); err != "" {
			return specErr(f+".name", "%s", err)
		}
		if j, dup := names[g.Name]; dup {
			return specErr(f+".name", "%q already names groups[%d]", g.Name, j)
		}
		names[g.Name] = i
		if g.Segment == "" {
			return specErr(f+".segment", "empty; write \"*\" for every user")
		}
		if _, err := tags.ParseSegment(g.Segment); err != nil {
			return &SpecError{Field: f + ".segment", Reason: err.Error(), Err: err}
		}
	}
	if s.Reference == "" {
		return specErr("reference", "required: the name of the group the others are compared with")
	}
	if _, ok := names[s.Reference]; !ok {
		return specErr("reference", "%q is not the name of a group", clipText(s.Reference))
	}
	if len(s.Metrics) > MaxMetrics {
		return specErr("metrics", "%d metrics; at most %d", len(s.Metrics), MaxMetrics)
	}
	mnames := map[string]int{}
	for i, m := range s.Metrics {
		f := fmt.Sprintf("metrics[%d]", i)
		if err := checkMetric(f, m); err != nil {
			return err
		}
		if j, dup := mnames[m.Name]; dup {
			return specErr(f+".name", "%q already names metrics[%d]", m.Name, j)
		}
		mnames[m.Name] = i
	}
	if !s.From.IsZero() && !s.To.IsZero() && !s.From.Before(s.To) {
		return specErr("to", "%s is not after from (%s)", s.To.Format(time.RFC3339), s.From.Format(time.RFC3339))
	}
	if s.MinGroupSize < 1 {
		return specErr("min_group_size", "%d; must be at least 1 (0 means %d)", s.MinGroupSize, DefaultMinGroupSize)
	}
	if math.IsNaN(s.Alpha) || s.Alpha <= 0 || s.Alpha >= 1 {
		return specErr("alpha", "%v; must be in (0, 1) (0 means %v)", s.Alpha, DefaultAlpha)
	}
	if time.Duration(s.PriceBucket) < time.Second {
		return specErr("price_bucket", "%s; must be at least 1s (0 means 1h)", time.Duration(s.PriceBucket))
	}
	if err := s.validateStrata(); err != nil {
		return err
	}
	return nil
}

func (s Spec) validateStrata() error {
	if len(s.Strata) > MaxStrata {
		return specErr("strata", "%d names; at most %d", len(s.Strata), MaxStrata)
	}
	seen := map[string]int{}
	for i, k := range s.Strata {
		f := fmt.Sprintf("strata[%d]", i)
		if err := checkName(k); err != "" {
			return specErr(f, "%s", err)
		}
		if strings.ContainsAny(k, ": \t") {
			return specErr(f, "%q: a stratum is item, time or an attribute key (region, not region:north)", clipText(k))
		}
		if k == StratumNone && len(s.Strata) > 1 {
			return specErr(f, "none compares the plain figures: it cannot be named with other strata")
		}
		if j, dup := seen[k]; dup {
			return specErr(f, "%q already named in strata[%d]", k, j)
		}
		seen[k] = i
	}
	if time.Duration(s.StrataBucket) < time.Second {
		return specErr("strata_bucket", "%s; must be at least 1s (0 means 24h)", time.Duration(s.StrataBucket))
	}
	return nil
}

func checkName(n string) string {
	switch {
	case n == "":
		return "empty"
	case len(n) > maxNameLen:
		return fmt.Sprintf("longer than %d bytes", maxNameLen)
	case !utf8.ValidString(n):
		return "not valid UTF-8"
	}
	for _, r := range n {
		if unicode.IsControl(r) {
			return "contains a control character"
		}
	}
	return ""
}

func checkMetric(f string, m MetricSpec) error {
	if err := checkName(m.Name); err != "" {
		return specErr(f+".name", "%s", err)
	}
	switch m.Kind {
	case Rate, Mean, Distribution:
	case "":
		return specErr(f+".kind", "required: rate, mean or distribution")
	default:
		return specErr(f+".kind", "%q is not rate, mean or distribution", clipText(string(m.Kind)))
	}
	switch {
	case m.Field == "":
		return specErr(f+".field", "required")
	case notMetricFields[m.Field]:
		return specErr(f+".field", "%q is not a numeric or boolean field", m.Field)
	case checkName(m.Field) != "":
		return specErr(f+".field", "%s", checkName(m.Field))
	}
	switch {
	case m.Kind == Rate && (m.Field == FieldPrice || m.Field == FieldRank || m.Field == FieldLatency):
		return specErr(f+".field", "a rate needs a yes/no field (clicked, converted, shown), discount or a free field; %q is a number: use mean or distribution", m.Field)
	case m.Kind != Rate && fieldIsBool(m.Field):
		return specErr(f+".field", "%q is yes/no: use kind rate", m.Field)
	}
	if m.Kind != Distribution && len(m.Quantiles) > 0 {
		return specErr(f+".quantiles", "only a distribution has quantiles")
	}
	if len(m.Quantiles) > 99 {
		return specErr(f+".quantiles", "%d quantiles; at most 99", len(m.Quantiles))
	}
	for j, q := range m.Quantiles {
		if math.IsNaN(q) || q <= 0 || q >= 1 {
			return specErr(fmt.Sprintf("%s.quantiles[%d]", f, j), "%v is not in (0, 1)", q)
		}
		if j > 0 && q <= m.Quantiles[j-1] {
			return specErr(fmt.Sprintf("%s.quantiles[%d]", f, j), "%v does not increase", q)
		}
	}
	return nil
}

// ---------------------------------------------------------------- Duration

// String returns the duration as Go writes it ("1h0m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string ("1h", "30m").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("duration %q: write it like \"1h\" or \"30m\"", clipText(string(b)))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration must be a string like \"1h\"", n.Line)
	}
	if err := d.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}
