package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// SynthConfig describes a synthetic data set (see Synthesize). Zero fields
// take the defaults in brackets.
type SynthConfig struct {
	// Seed makes the data: the same config writes the same bytes.
	Seed uint64
	// Users [1,000], Events [100,000] and Items [200] size the data set.
	Users, Events, Items int
	// Groups is the number of loyalty tiers [3]: users are spread evenly
	// over the tags loyalty:new (the reference), loyalty:gold (the loyal
	// group the gaps are planted in), loyalty:silver, loyalty:bronze,
	// loyalty:platinum, loyalty:diamond, loyalty:basic, loyalty:plus, then
	// loyalty:tier8, loyalty:tier9, ...
	Groups int
	// Start [2025-03-01T00:00:00Z] and Span [7 days] bound the events'
	// times: whole seconds, spread evenly over the span and increasing from
	// line to line, as in a log.
	Start time.Time
	Span  time.Duration
	// PriceGap is planted: the loyal group pays price * (1 + PriceGap) for
	// the same item at the same time. 0 means no gap.
	PriceGap float64
	// ClickGap is planted: the loyal group's click probability is raised
	// by ClickGap (absolute). 0 means no gap.
	ClickGap float64
	// PersonalizationOff is the share of users who turned personalization
	// off [0.1]; their events have mode non_personalized. Negative means
	// none.
	PersonalizationOff float64
}

var synthTiers = []string{"new", "gold", "silver", "bronze", "platinum", "diamond", "basic", "plus"}

// SynthTier returns the name of loyalty tier i (0 is "new", 1 "gold").
func SynthTier(i int) string {
	if i < len(synthTiers) {
		return synthTiers[i]
	}
	return "tier" + strconv.Itoa(i)
}

func (c SynthConfig) withDefaults() SynthConfig {
	if c.Users <= 0 {
		c.Users = 1000
	}
	if c.Events <= 0 {
		c.Events = 100_000
	}
	if c.Items <= 0 {
		c.Items = 200
	}
	if c.Groups <= 0 {
		c.Groups = 3
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.Span <= 0 {
		c.Span = 7 * 24 * time.Hour
	}
	if c.PersonalizationOff == 0 {
		c.PersonalizationOff = 0.1
	}
	return c
}

// SynthSpec returns the spec that audits the data of cfg: one group per
// loyalty tier, named as its tag ("loyalty:gold"), with loyalty:new the
// reference, the default metrics, and the window of the data.
func SynthSpec(cfg SynthConfig) Spec {
	cfg = cfg.withDefaults()
	s := Spec{Name: "synthetic", Reference: "loyalty:new", From: cfg.Start.UTC(), To: cfg.Start.Add(cfg.Span).UTC()}
	for i := range cfg.Groups {
		t := "loyalty:" + SynthTier(i)
		s.Groups = append(s.Groups, GroupSpec{Name: t, Segment: t})
	}
	s.Normalize()
	return s
}

// Synthesize writes a synthetic data set: events as JSONL (ReadJSONL) to
// events and the users file (UsersFile) to users; either may be nil.
//
// User i is "u<i>" (7 digits), in tier i mod Groups (tag loyalty:<tier>),
// with a region tag (region:r0..r4) and, with probability
// PersonalizationOff, the flag consent:personalization_off; 2% refuse sms.
// Each event picks a user and an item uniformly, the next time in the span
// (times increase line by line), the mode from the user's flag, a rank 1 + Geometric(0.25) capped at
// 50, a price from the item's base price (10 to 500) times an hourly cycle
// (±15%) times 1 + 2% noise, rounded to cents, a discount (25% of events:
// 5-20% of the price, else 0), shown true, clicked with probability
// 0.12 / sqrt(rank), converted after a click with probability 0.15,
// latency 20 + lognormal ms, and the attribute device:ios or
// device:android. Without gaps nothing depends on the tier, so no group
// differs from another. The loyal group (loyalty:gold) pays PriceGap more
// and clicks ClickGap more often.
func Synthesize(cfg SynthConfig, events io.Writer, users io.Writer) error {
	cfg = cfg.withDefaults()
	if cfg.Groups > MaxGroups {
		return fmt.Errorf("audit: synthesize: %d groups; at most %d", cfg.Groups, MaxGroups)
	}
	if cfg.PriceGap <= -1 || cfg.ClickGap < -1 || cfg.ClickGap > 1 {
		return errors.New("audit: synthesize: PriceGap must be > -1 and ClickGap in [-1, 1]")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed_a0d17))
	off := make([]bool, cfg.Users)
	var ub *bufio.Writer
	if users != nil {
		ub = bufio.NewWriterSize(users, 1<<16)
	}
	var line []byte
	for i := range cfg.Users {
		off[i] = rng.Float64() < cfg.PersonalizationOff
		refused := rng.Float64() < 0.02
		region := rng.IntN(5)
		if ub == nil {
			continue
		}
		line = append(line[:0], `{"id":"`...)
		line = synthUser(line, i)
		line = append(line, `","tags":["loyalty:`...)
		line = append(line, SynthTier(i%cfg.Groups)...)
		line = append(line, `","region:r`...)
		line = strconv.AppendInt(line, int64(region), 10)
		line = append(line, `"],"flags":[`...)
		sep := ""
		if off[i] {
			line = append(line, `"consent:personalization_off"`...)
			sep = ","
		}
		if refused {
			line = append(line, sep...)
			line = append(line, `"refused:sms"`...)
		}
		line = append(line, "]}\n"...)
		if _, err := ub.Write(line); err != nil {
			return err
		}
	}
	if ub != nil {
		if err := ub.Flush(); err != nil {
			return err
		}
	}
	if events == nil {
		return nil
	}
	base := make([]float64, cfg.Items)
	phase := make([]float64, cfg.Items)
	for i := range base {
		base[i] = 10 * math.Exp(rng.Float64()*math.Log(50))
		phase[i] = rng.Float64() * 2 * math.Pi
	}
	eb := bufio.NewWriterSize(events, 1<<20)
	spanSecs := int64(cfg.Span / time.Second)
	if spanSecs < 1 {
		spanSecs = 1
	}
	start := cfg.Start.UTC().Truncate(time.Second)
	step := max(1, spanSecs/int64(cfg.Events))
	for i := range cfg.Events {
		u := rng.IntN(cfg.Users)
		loyal := u%cfg.Groups == 1
		item := rng.IntN(cfg.Items)
		// Times increase through the span, as in a log.
		sec := min(spanSecs-1, int64(float64(i)*float64(spanSecs)/float64(cfg.Events))+rng.Int64N(step))
		t := start.Add(time.Duration(sec) * time.Second)
		rank := 1
		for rank < 50 && rng.Float64() >= 0.25 {
			rank++
		}
		hour := float64(sec/3600) + float64(start.Hour())
		price := base[item] * (1 + 0.15*math.Sin(2*math.Pi*hour/24+phase[item])) * (1 + 0.02*rng.NormFloat64())
		if loyal {
			price *= 1 + cfg.PriceGap
		}
		price = math.Max(0.01, math.Round(price*100)/100)
		discount := 0.0
		if rng.Float64() < 0.25 {
			discount = math.Round(price*(0.05+0.15*rng.Float64())*100) / 100
		}
		pc := 0.12 / math.Sqrt(float64(rank))
		if loyal {
			pc += cfg.ClickGap
		}
		clicked := rng.Float64() < pc
		converted := clicked && rng.Float64() < 0.15
		latency := math.Round((20+math.Exp(2+0.5*rng.NormFloat64()))*10) / 10
		mode := ModePersonalized
		if off[u] {
			mode = ModeNonPersonalized
		}
		device := "ios"
		if rng.IntN(2) == 1 {
			device = "android"
		}
		line = append(line[:0], `{"user":"`...)
		line = synthUser(line, u)
		line = append(line, `","item":"i`...)
		line = strconv.AppendInt(line, int64(item), 10)
		line = append(line, `","time":"`...)
		line = t.AppendFormat(line, time.RFC3339)
		line = append(line, `","mode":"`...)
		line = append(line, mode...)
		line = append(line, `","rank":`...)
		line = strconv.AppendInt(line, int64(rank), 10)
		line = append(line, `,"price":`...)
		line = strconv.AppendFloat(line, price, 'f', -1, 64)
		line = append(line, `,"discount":`...)
		line = strconv.AppendFloat(line, discount, 'f', -1, 64)
		line = append(line, `,"shown":true,"clicked":`...)
		line = strconv.AppendBool(line, clicked)
		line = append(line, `,"converted":`...)
		line = strconv.AppendBool(line, converted)
		line = append(line, `,"latency_ms":`...)
		line = strconv.AppendFloat(line, latency, 'f', -1, 64)
		line = append(line, `,"attrs":["device:`...)
		line = append(line, device...)
		line = append(line, "\"]}\n"...)
		if _, err := eb.Write(line); err != nil {
			return err
		}
	}
	return eb.Flush()
}

func synthUser(b []byte, i int) []byte {
	b = append(b, 'u')
	s := strconv.Itoa(i)
	for range 7 - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}
