package audit

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"
)

// SynthConfig describes a synthetic data set (see Synthesize). Zero fields
// take the defaults in brackets; every field from UserClick on is off when
// zero, and a config that sets none of them writes the same bytes as
// before they existed.
type SynthConfig struct {
	// Seed makes the data: the same config writes the same bytes.
	Seed uint64
	// Users [1,000], Events [100,000] and Items [200] size the data set.
	Users, Events, Items int
	// Groups is the number of loyalty tiers [3]: users are spread evenly
	// over the tags loyalty:new (the reference), loyalty:gold (the loyal
	// group the gaps are planted in), loyalty:silver, loyalty:bronze,
	// loyalty:platinum, loyalty:diamond, loyalty:basic, loyalty:plus, then
	// loyalty:tier8, loyalty:tier9, ... (but see SmallGroup).
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

	// Heterogeneous users. Each user draws their own propensities, from
	// the same distributions in every group and for users with
	// personalization on or off, so no group differs on average; but a
	// user's events are alike, so events are not independent.

	// UserClick, when > 0, is the concentration k of each user's click
	// propensity c ~ Beta(0.12k, 0.88k) (mean 0.12, sd
	// sqrt(0.12*0.88/(k+1)): smaller is more spread); 0 means c = 0.12 for
	// everyone. An event is clicked with probability c / sqrt(rank).
	UserClick float64
	// UserDiscount, when > 0, is the concentration k of each user's
	// discount propensity d ~ Beta(0.25k, 0.75k) (mean 0.25); 0 means
	// d = 0.25 for everyone. An event carries a discount with probability
	// d (times the item class's factor, see PremiumItems).
	UserDiscount float64
	// UserPriceSD, when > 0, gives each user a price factor
	// exp(UserPriceSD * N(0,1)) (lognormal, median 1; 0.03 is about ±3%)
	// that multiplies every price they are shown: prices differ from user
	// to user, not from group to group.
	UserPriceSD float64
	// Activity, when > 0, is the exponent s of Zipf-like activity: the
	// users, in a random order independent of their tier, have weights
	// 1/k^s (k = 1, 2, ...), and each event's user is drawn by weight, so
	// a few users have many events and most have few (s = 1: the busiest
	// of 2,000 users has about 12% of the events). 0 means every user is
	// equally likely.
	Activity float64

	// Confounding (Simpson's paradox). Items fall in two classes, premium
	// (the most expensive) and standard; premium items carry fewer
	// discounts, and the loyal group can be made to browse premium items
	// more. Then the loyal group's overall discount rate is lower even
	// when, within every class, it gets discounts more often (DiscountGap).

	// PremiumItems is the share of items, the ones of highest base price,
	// that are premium; 0 means no classes.
	PremiumItems float64
	// PremiumDiscount [0.05 when PremiumItems > 0] is the discount
	// probability on a premium item for a user of average propensity (a
	// user's propensity d is scaled by PremiumDiscount / 0.25); standard
	// items keep d. Negative means no discount on premium items.
	PremiumDiscount float64
	// LoyalPremium, when > 0, is the probability that an event of the
	// loyal group is on a premium item (uniform among them; else uniform
	// among standard items); other groups pick items uniformly, so they
	// see premium items with probability about PremiumItems. 0 means the
	// loyal group picks uniformly too.
	LoyalPremium float64
	// DiscountGap is planted: the loyal group's discount probability is
	// raised by DiscountGap (absolute) on every item, whatever its class.
	// 0 means no gap.
	DiscountGap float64

	// Users who turned personalization off (PersonalizationOff) can differ
	// as people, without their non-personalized results being worse.

	// OffActivity, when > 0, multiplies the activity weight of users with
	// personalization off (3: three times as many events each); 0 means 1.
	OffActivity float64
	// OffClick, when > 0, multiplies the click propensity of users with
	// personalization off (0.6: they click 40% less, whatever they are
	// shown); 0 means 1.
	OffClick float64
	// OffLatencyMS is planted: a degraded non-personalized path answers
	// OffLatencyMS later (added to its events' latency_ms). 0 means no gap.
	OffLatencyMS float64
	// OffRankShift is planted: a degraded non-personalized path shows
	// items OffRankShift places lower (rank + OffRankShift, capped at
	// 50), which also lowers their click probability. 0 means no gap.
	OffRankShift int

	// SmallGroup, when > 0, makes the loyal group loyalty:gold small: it
	// has only SmallGroup users (users 0 to SmallGroup*Groups - 1 are
	// spread over all tiers as usual, later ones over the other tiers),
	// so gaps planted in it are planted in a small group. 0 means tiers of
	// equal size.
	SmallGroup int
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
	if c.PremiumItems > 0 && c.PremiumDiscount == 0 {
		c.PremiumDiscount = 0.05
	}
	return c
}

// tier is user i's loyalty tier (see Groups and SmallGroup).
func (c SynthConfig) tier(i int) int {
	if c.SmallGroup <= 0 || i < c.SmallGroup*c.Groups {
		return i % c.Groups
	}
	// Past the small group's users: every tier but gold (1) in turn.
	k := (i - c.SmallGroup*c.Groups) % (c.Groups - 1)
	if k >= 1 {
		k++
	}
	return k
}

func (c SynthConfig) validate() error {
	if c.Groups > MaxGroups {
		return fmt.Errorf("audit: synthesize: %d groups; at most %d", c.Groups, MaxGroups)
	}
	if c.PriceGap <= -1 || c.ClickGap < -1 || c.ClickGap > 1 {
		return errors.New("audit: synthesize: PriceGap must be > -1 and ClickGap in [-1, 1]")
	}
	bad := func(v float64) bool { return v < 0 || math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case bad(c.UserClick) || bad(c.UserDiscount) || bad(c.UserPriceSD) || bad(c.Activity) || bad(c.OffActivity) || bad(c.OffClick):
		return errors.New("audit: synthesize: UserClick, UserDiscount, UserPriceSD, Activity, OffActivity and OffClick must be finite and >= 0")
	case bad(c.PremiumItems) || c.PremiumItems >= 1 || c.PremiumDiscount > 1 || math.IsNaN(c.PremiumDiscount) || bad(c.LoyalPremium) || c.LoyalPremium > 1:
		return errors.New("audit: synthesize: PremiumItems must be in [0, 1), PremiumDiscount and LoyalPremium at most 1")
	case c.LoyalPremium > 0 && c.PremiumItems == 0:
		return errors.New("audit: synthesize: LoyalPremium needs PremiumItems")
	case !(c.DiscountGap >= -1 && c.DiscountGap <= 1):
		return errors.New("audit: synthesize: DiscountGap must be in [-1, 1]")
	case math.IsNaN(c.OffLatencyMS) || math.IsInf(c.OffLatencyMS, 0) || c.OffRankShift < 0:
		return errors.New("audit: synthesize: OffLatencyMS must be finite and OffRankShift >= 0")
	case c.SmallGroup < 0 || c.SmallGroup > 0 && (c.Groups < 2 || c.SmallGroup*c.Groups > c.Users):
		return errors.New("audit: synthesize: SmallGroup needs at least 2 groups and SmallGroup * Groups users")
	}
	return nil
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
// User i is "u<i>" (7 digits), in tier i mod Groups (tag loyalty:<tier>;
// see SmallGroup), with a region tag (region:r0..r4) and, with probability
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
//
// The fields from UserClick on change this (each only when set): users
// with their own click and discount propensities and price factor, drawn
// alike in every group (UserClick, UserDiscount, UserPriceSD); users
// picked by Zipf-like activity instead of uniformly (Activity); premium
// and standard items, premium ones with fewer discounts and favoured by
// the loyal group (PremiumItems, PremiumDiscount, LoyalPremium); a
// planted discount gap (DiscountGap); users with personalization off who
// are more active or click less (OffActivity, OffClick); a degraded
// non-personalized path (OffLatencyMS, OffRankShift); a small loyal group
// (SmallGroup). The users' propensities come from a random stream of
// their own, so setting them leaves the other draws of the users file as
// they were.
func Synthesize(cfg SynthConfig, events io.Writer, users io.Writer) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed_a0d17))
	// The users' own traits, from a stream of their own.
	urng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed_0f_05e75))
	off := make([]bool, cfg.Users)
	tier := make([]uint8, cfg.Users)
	var click, disc, pf []float64
	if cfg.UserClick > 0 {
		click = make([]float64, cfg.Users)
	}
	if cfg.UserDiscount > 0 {
		disc = make([]float64, cfg.Users)
	}
	if cfg.UserPriceSD > 0 {
		pf = make([]float64, cfg.Users)
	}
	var ub *bufio.Writer
	if users != nil {
		ub = bufio.NewWriterSize(users, 1<<16)
	}
	var line []byte
	for i := range cfg.Users {
		off[i] = rng.Float64() < cfg.PersonalizationOff
		refused := rng.Float64() < 0.02
		region := rng.IntN(5)
		tier[i] = uint8(cfg.tier(i))
		if click != nil {
			click[i] = synthBeta(urng, 0.12*cfg.UserClick, 0.88*cfg.UserClick)
		}
		if disc != nil {
			disc[i] = synthBeta(urng, 0.25*cfg.UserDiscount, 0.75*cfg.UserDiscount)
		}
		if pf != nil {
			pf[i] = math.Exp(cfg.UserPriceSD * urng.NormFloat64())
		}
		if ub == nil {
			continue
		}
		line = append(line[:0], `{"id":"`...)
		line = synthUser(line, i)
		line = append(line, `","tags":["loyalty:`...)
		line = append(line, SynthTier(int(tier[i]))...)
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
	// Activity: cumulative weights to draw users by (nil: uniform).
	var cum []float64
	if cfg.Activity > 0 || cfg.OffActivity > 0 {
		order := urng.Perm(cfg.Users)
		cum = make([]float64, cfg.Users)
		total := 0.0
		for u := range cfg.Users {
			w := math.Pow(float64(order[u]+1), -cfg.Activity)
			if off[u] && cfg.OffActivity > 0 {
				w *= cfg.OffActivity
			}
			total += w
			cum[u] = total
		}
	}
	base := make([]float64, cfg.Items)
	phase := make([]float64, cfg.Items)
	for i := range base {
		base[i] = 10 * math.Exp(rng.Float64()*math.Log(50))
		phase[i] = rng.Float64() * 2 * math.Pi
	}
	// Item classes: the most expensive PremiumItems share is premium.
	var premium []bool
	var premiumIDs, standardIDs []int
	if cfg.PremiumItems > 0 {
		byPrice := make([]int, cfg.Items)
		for i := range byPrice {
			byPrice[i] = i
		}
		slices.SortStableFunc(byPrice, func(a, b int) int { return cmp.Compare(base[b], base[a]) })
		n := min(cfg.Items-1, max(1, int(math.Round(cfg.PremiumItems*float64(cfg.Items)))))
		premium = make([]bool, cfg.Items)
		for _, it := range byPrice[:n] {
			premium[it] = true
		}
		for i := range cfg.Items {
			if premium[i] {
				premiumIDs = append(premiumIDs, i)
			} else {
				standardIDs = append(standardIDs, i)
			}
		}
	}
	premiumFactor := math.Max(0, cfg.PremiumDiscount) / 0.25
	eb := bufio.NewWriterSize(events, 1<<20)
	spanSecs := int64(cfg.Span / time.Second)
	if spanSecs < 1 {
		spanSecs = 1
	}
	start := cfg.Start.UTC().Truncate(time.Second)
	step := max(1, spanSecs/int64(cfg.Events))
	for i := range cfg.Events {
		var u int
		if cum == nil {
			u = rng.IntN(cfg.Users)
		} else {
			x := rng.Float64() * cum[len(cum)-1]
			u = min(cfg.Users-1, sort.SearchFloat64s(cum, x))
		}
		loyal := tier[u] == 1
		var item int
		if loyal && cfg.LoyalPremium > 0 {
			if rng.Float64() < cfg.LoyalPremium {
				item = premiumIDs[rng.IntN(len(premiumIDs))]
			} else {
				item = standardIDs[rng.IntN(len(standardIDs))]
			}
		} else {
			item = rng.IntN(cfg.Items)
		}
		// Times increase through the span, as in a log.
		sec := min(spanSecs-1, int64(float64(i)*float64(spanSecs)/float64(cfg.Events))+rng.Int64N(step))
		t := start.Add(time.Duration(sec) * time.Second)
		rank := 1
		for rank < 50 && rng.Float64() >= 0.25 {
			rank++
		}
		if off[u] && cfg.OffRankShift > 0 {
			rank = min(50, rank+cfg.OffRankShift)
		}
		hour := float64(sec/3600) + float64(start.Hour())
		price := base[item] * (1 + 0.15*math.Sin(2*math.Pi*hour/24+phase[item])) * (1 + 0.02*rng.NormFloat64())
		if pf != nil {
			price *= pf[u]
		}
		if loyal {
			price *= 1 + cfg.PriceGap
		}
		price = math.Max(0.01, math.Round(price*100)/100)
		pd := 0.25
		if disc != nil {
			pd = disc[u]
		}
		if premium != nil && premium[item] {
			pd *= premiumFactor
		}
		if loyal {
			pd += cfg.DiscountGap
		}
		discount := 0.0
		if rng.Float64() < pd {
			discount = math.Round(price*(0.05+0.15*rng.Float64())*100) / 100
		}
		c := 0.12
		if click != nil {
			c = click[u]
		}
		if off[u] && cfg.OffClick > 0 {
			c *= cfg.OffClick
		}
		pc := c / math.Sqrt(float64(rank))
		if loyal {
			pc += cfg.ClickGap
		}
		clicked := rng.Float64() < pc
		converted := clicked && rng.Float64() < 0.15
		latency := math.Round((20+math.Exp(2+0.5*rng.NormFloat64()))*10) / 10
		mode := ModePersonalized
		if off[u] {
			mode = ModeNonPersonalized
			if cfg.OffLatencyMS != 0 {
				latency = math.Max(0, math.Round((latency+cfg.OffLatencyMS)*10)/10)
			}
		}
		device := "ios"
		if rng.IntN(2) == 1 {
			device = "android"
		}
		line = append(line[:0], `{"user":"`...)
		line = synthUser(line, u)
		line = append(line, `","item":"i`...)
		line = strconv.AppendInt(line, int64(item), 10)
		line = AppendEventFields(line, t, mode, rank, price, discount, clicked, converted, latency, device)
		line = append(line, '\n')
		if _, err := eb.Write(line); err != nil {
			return err
		}
	}
	return eb.Flush()
}

// synthBeta draws from Beta(a, b) as X / (X + Y) of two gamma variates.
func synthBeta(r *rand.Rand, a, b float64) float64 {
	x, y := synthGamma(r, a), synthGamma(r, b)
	if x+y == 0 {
		return a / (a + b)
	}
	return x / (x + y)
}

// synthGamma draws from Gamma(a, 1) (Marsaglia and Tsang; for a < 1,
// Gamma(a+1) * U^(1/a)).
func synthGamma(r *rand.Rand, a float64) float64 {
	if a < 1 {
		return synthGamma(r, a+1) * math.Pow(1-r.Float64(), 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := 1 - r.Float64() // (0, 1]
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// AppendEventFields appends the rest of an events-file line after its
// "user" and "item" members (b ends just after the item's text, before its
// closing quote): time, mode, rank, price, discount, shown, clicked,
// converted, latency_ms and a device attribute, and the closing brace; no
// newline. Synthesize and recguard seed write their events with it, without
// encoding/json, so that millions of lines are cheap; mode and device must
// need no JSON escaping.
func AppendEventFields(b []byte, t time.Time, mode string, rank int, price, discount float64, clicked, converted bool, latency float64, device string) []byte {
	b = append(b, `","time":"`...)
	b = t.AppendFormat(b, time.RFC3339)
	b = append(b, `","mode":"`...)
	b = append(b, mode...)
	b = append(b, `","rank":`...)
	b = strconv.AppendInt(b, int64(rank), 10)
	b = append(b, `,"price":`...)
	b = strconv.AppendFloat(b, price, 'f', -1, 64)
	b = append(b, `,"discount":`...)
	b = strconv.AppendFloat(b, discount, 'f', -1, 64)
	b = append(b, `,"shown":true,"clicked":`...)
	b = strconv.AppendBool(b, clicked)
	b = append(b, `,"converted":`...)
	b = strconv.AppendBool(b, converted)
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendFloat(b, latency, 'f', -1, 64)
	b = append(b, `,"attrs":["device:`...)
	b = append(b, device...)
	return append(b, `"]}`...)
}

func synthUser(b []byte, i int) []byte {
	b = append(b, 'u')
	s := strconv.Itoa(i)
	for range 7 - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}
