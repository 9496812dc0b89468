package enforce_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/enforce"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// The generator: from a seed, a randomized history that is compliant by
// construction (every exposure and push fits the user's consent and the
// settings as they stand at its time, with no allowance needed), into
// which it plants violations of every kind beyond the allowance, near
// misses inside it, and compliant entries just after a user lifts a
// restriction. It keeps its own model of each user's consent (the facts
// the rules read) to decide what is compliant; the store's Apply checks
// the model (a change the model thinks valid but the store refuses, or
// finds a no-op, fails the test).

// genBase is the start of every generated history (a fake clock: nothing
// reads time.Now).
var genBase = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// fakeClock is the store's clock (it stamps the settings receipts).
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.Set(t)
	return c
}

func (c *fakeClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// step is one change to apply at its time: a user's change or a settings
// change. rid is its receipt's ID once applied.
type step struct {
	at  time.Time
	ch  *consent.Change
	set func(*consent.Settings)
	rid string
}

// plant is a violation the audit must report.
type plant struct {
	kind  enforce.Kind
	user  string
	at    time.Time
	cause *step // the receipt that made the entry wrong; nil for none
	tag   tags.Tag
	entry store.LedgerEntry
}

// miss is an entry that breaks a change inside its allowance: counted in
// within_allowance, not reported. With no allowance it is a violation.
type miss struct {
	plant
	lag time.Duration
	// decided says the entry is a push its own decision refused: inside
	// the allowance it is still a violation (with no receipt); with no
	// allowance it is one violation, with the receipt.
	decided bool
}

// history is a generated history and what the audit must find in it.
type history struct {
	seed    uint64
	start   time.Time
	end     time.Time // the users' timelines end before it (erasures and what follows them aside)
	steps   []*step
	entries []store.LedgerEntry
	plants  []plant
	misses  []miss
	erased  map[string]bool
	// returned: users erased at that time who came back later (their
	// entries before it name no one)
	returned map[string]time.Time
	// users' receipts planned, by user
	receipts map[string]int
	// the settings changes
	suspend, resume, bump, gbump, noise *step
}

// Tags the generator uses: ordinary ones, and sensitive ones (their
// namespace is a sensitive category of consent.DefaultSettings' taxonomy).
var (
	plainTags = []tags.Tag{"interest:sports", "interest:music", "interest:travel", "genre:jazz", "genre:rock", "brand:acme", "brand:globex"}
	sensTags  = []tags.Tag{"medical_health:diabetes", "medical_health:asthma", "religion:buddhism", "whereabouts:home", "financial_account:loan"}
	channels  = []string{"email", "in_app", "push", "sms"}
)

func category(t tags.Tag) tags.Category {
	if c := tags.Category(t.Namespace()); c.Valid() {
		return c
	}
	return ""
}

// grantM is the model of a separate consent.
type grantM struct {
	granted    bool
	purpose    string
	pv         int
	byGuardian bool
	everPers   bool // a consent for personalization was given once
}

// userM is the model of one user.
type userM struct {
	id                              string
	off, restricted, minor, guarded bool
	guardPV                         int       // the guardian policy version of the guardian's consent
	offStep                         *step     // the opt-out that began the current "off"
	lastOff                         time.Time // the last "no" to personalization (re-ask cooldown)
	refused                         map[string]bool
	deleted, held                   map[tags.Tag]bool
	sens                            map[tags.Category]*grantM
}

// gen generates one history.
type gen struct {
	r *rand.Rand
	h *history
	// the settings timeline: suspended in [s1, s2), the personalization
	// policy bumped from v1 to v2 at b
	s1, s2, b time.Time
	// the guardian policy bumped from v1 to v2 at bg; personalization
	// put in keep_on_bump at k (consents under v1 count again)
	bg, k    time.Time
	u        *userM
	drop     bool // the user will be erased: nothing of theirs is reported
	allow    time.Duration
	setAllow time.Duration
}

func (g *gen) dur(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	// Whole milliseconds (lo and hi are): receipts keep them exactly.
	return (lo + time.Duration(g.r.Int64N(int64(hi-lo)+1))).Truncate(time.Millisecond)
}

func (g *gen) coin(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

func (g *gen) suspended(t time.Time) bool { return !t.Before(g.s1) && t.Before(g.s2) }

func (g *gen) policy(t time.Time) int {
	if t.Before(g.b) {
		return 1
	}
	return 2
}

// gpolicy is the guardian policy version at t.
func (g *gen) gpolicy(t time.Time) int {
	if t.Before(g.bg) {
		return 1
	}
	return 2
}

// ppolicy is the push policy version at t.
func (g *gen) ppolicy(t time.Time) int {
	if t.Before(g.h.noise.at) {
		return 1
	}
	return 2
}

// quiet reports whether no settings change falls within an hour of t.
func (g *gen) quiet(t time.Time) bool {
	for _, e := range []time.Time{g.s1, g.s2, g.b, g.bg, g.k} {
		if d := t.Sub(e); d > -time.Hour && d < time.Hour {
			return false
		}
	}
	return true
}

// guardianOK: not a minor, or a minor with current guardian consent.
func (g *gen) guardianOK(t time.Time) bool { return !g.u.minor || g.guarded(t) }

// guarded: the guardian's consent is given and current.
func (g *gen) guarded(t time.Time) bool { return g.u.guarded && g.u.guardPV >= g.gpolicy(t) }

// consentGuardian records the guardian's consent at t.
func (g *gen) consentGuardian(t time.Time) {
	g.change(t, consent.GuardianConsent(g.u.id, "guardian-"+g.u.id))
	g.u.guarded, g.u.guardPV = true, g.gpolicy(t)
}

// persOK: a personalized exposure (or a targeted push, on an allowed
// channel) is compliant at t, the suspension aside.
func (g *gen) persOKNow(t time.Time) bool {
	u := g.u
	return !u.off && !u.restricted && g.guardianOK(t)
}

func (g *gen) persOK(t time.Time) bool { return g.persOKNow(t) && !g.suspended(t) }

func (g *gen) pushOK(c string, targeted bool, t time.Time) bool {
	u := g.u
	return !u.refused[c] && !u.restricted && !g.suspended(t) && (!targeted || !u.off && g.guardianOK(t))
}

func (g *gen) sensOK(c tags.Category, t time.Time) bool {
	s := g.u.sens[c]
	return s != nil && s.purpose == consent.PurposePersonalization && g.heldOK(c, t)
}

// heldOK: the category's consent counts now for its own purpose (its tags
// may be declared).
func (g *gen) heldOK(c tags.Category, t time.Time) bool {
	s := g.u.sens[c]
	if s == nil || !s.granted || g.u.minor && !s.byGuardian {
		return false
	}
	if s.purpose == consent.PurposePush {
		return s.pv >= g.ppolicy(t)
	}
	// From k on, the personalization policy keeps consents on a bump.
	return s.pv >= g.policy(t) || !t.Before(g.k)
}

func (g *gen) tagOK(tg tags.Tag, t time.Time) bool {
	if g.u.deleted[tg] {
		return false
	}
	if c := category(tg); c != "" {
		return g.sensOK(c, t)
	}
	return true
}

// okTags returns up to n random tags compliant at t.
func (g *gen) okTags(t time.Time, n int) []tags.Tag {
	var out []tags.Tag
	seen := map[tags.Tag]bool{}
	for i := 0; i < 2*n && len(out) < n; i++ {
		tg := pick(g, plainTags)
		if g.coin(0.3) {
			tg = pick(g, sensTags)
		}
		if !seen[tg] && g.tagOK(tg, t) {
			seen[tg] = true
			out = append(out, tg)
		}
	}
	return out
}

func (g *gen) allowedChannels(targeted bool, t time.Time) []string {
	var out []string
	for _, c := range channels {
		if g.pushOK(c, targeted, t) {
			out = append(out, c)
		}
	}
	return out
}

// change plans a change of the current user at t.
func (g *gen) change(t time.Time, ch consent.Change) *step {
	s := &step{at: t, ch: &ch}
	g.h.steps = append(g.h.steps, s)
	g.h.receipts[g.u.id]++
	return s
}

func (g *gen) add(e store.LedgerEntry) store.LedgerEntry {
	if e.Surface == "" && e.Kind != store.LedgerProvision {
		e.Surface = pick(g, []string{"sdk", "http"})
	}
	g.h.entries = append(g.h.entries, e)
	return e
}

func (g *gen) exposure(t time.Time, personalized bool, tg ...tags.Tag) store.LedgerEntry {
	e := store.LedgerEntry{Kind: store.LedgerExposure, UserID: g.u.id, At: t, Items: 1 + g.r.IntN(20), Tags: tg,
		RecordVersion: uint64(1 + g.r.IntN(9)), SettingsVersion: uint64(1 + g.r.IntN(4))}
	if personalized {
		e.Mode, e.Reason = store.ModePersonalized, consent.ReasonPersonalized
	} else {
		e.Mode, e.Reason = store.ModeNonPersonalized, consent.ReasonOptedOut
	}
	e.Decided = g.coin(0.5)
	return e
}

func (g *gen) push(t time.Time, c string, targeted bool, tg ...tags.Tag) store.LedgerEntry {
	e := store.LedgerEntry{Kind: store.LedgerPush, UserID: g.u.id, At: t, Channel: c, Targeted: targeted, Tags: tg}
	if g.coin(0.5) {
		e.Decided, e.Mode, e.Reason = true, store.ModeAllowed, consent.ReasonAllowed
	}
	if g.coin(0.3) {
		e.Campaign = "spring-sale"
	}
	return e
}

// clean adds one compliant entry at t.
func (g *gen) clean(t time.Time) {
	switch x := g.r.IntN(100); {
	case x < 4:
		g.add(store.LedgerEntry{Kind: store.LedgerProvision, At: t, Recipient: pick(g, []string{"adnet", "analytics"}),
			Purpose: "marketing", Segment: "interest:sports", Count: 1 + g.r.IntN(500)})
	case x < 40:
		targeted := g.coin(0.5)
		cs := g.allowedChannels(targeted, t)
		if len(cs) == 0 {
			g.add(g.exposure(t, false))
			return
		}
		var tg []tags.Tag
		if targeted {
			tg = g.okTags(t, g.r.IntN(3))
		}
		e := g.push(t, pick(g, cs), targeted, tg...)
		if g.coin(0.1) {
			// Sent although its decision refused it, for a reason that
			// says nothing about consent (fail closed): not a violation.
			e.Decided, e.Mode = true, store.ModeRefused
			e.Reason = pick(g, []consent.Reason{consent.ReasonUnverified, consent.ReasonUnavailable, consent.ReasonDataLoss, consent.ReasonUnknown})
		}
		g.add(e)
	default:
		if g.persOK(t) && g.coin(0.8) {
			g.add(g.exposure(t, true, g.okTags(t, g.r.IntN(4))...))
		} else {
			g.add(g.exposure(t, false))
		}
	}
}

// lifted adds, just after a change that lifted a restriction, an entry
// that uses what it allows (when the rest of the state allows it).
func (g *gen) lifted(t time.Time, tg tags.Tag, channel string) time.Time {
	at := t.Add(g.dur(time.Millisecond, 200*time.Millisecond))
	switch {
	case channel != "":
		if !g.pushOK(channel, false, at) {
			return t
		}
		g.add(g.push(at, channel, false))
	case tg != "":
		if !g.tagOK(tg, at) {
			return t
		}
		g.add(g.exposure(at, g.persOK(at), tg))
	default:
		if !g.persOK(at) {
			return t
		}
		g.add(g.exposure(at, true))
	}
	return at
}

// randomChange applies a random valid change at t and returns the time
// of the last thing it added.
func (g *gen) randomChange(t time.Time) time.Time {
	u := g.u
	type opt func() time.Time
	var opts []opt
	opts = append(opts, func() time.Time {
		if u.off {
			g.change(t, consent.SetPersonalization(u.id, true))
			u.off = false
			return g.lifted(t, "", "")
		}
		g.optOut(t)
		return t
	})
	if u.off && t.Sub(u.lastOff) >= consent.MinReaskCooldown {
		// A repeated "no" after the re-ask cooldown: a receipt
		// ("declined") that does not move the opt-out's start.
		opts = append(opts, func() time.Time {
			g.change(t, consent.SetPersonalization(u.id, false))
			u.lastOff = t
			return t
		})
	}
	c := pick(g, channels)
	opts = append(opts, func() time.Time {
		if u.refused[c] {
			g.change(t, consent.AllowChannel(u.id, c))
			u.refused[c] = false
			return g.lifted(t, "", c)
		}
		g.change(t, consent.RefuseChannel(u.id, c))
		u.refused[c] = true
		return t
	})
	opts = append(opts, func() time.Time {
		g.change(t, consent.Change{UserID: u.id, Op: consent.OpRestrict, Value: !u.restricted, Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings})
		u.restricted = !u.restricted
		if !u.restricted {
			return g.lifted(t, "", "")
		}
		return t
	})
	// Declare (or re-declare) a tag.
	tg := pick(g, plainTags)
	if g.coin(0.4) {
		tg = pick(g, sensTags)
	}
	if !u.held[tg] && g.guardianOK(t) && (category(tg) == "" || g.heldOK(category(tg), t)) {
		opts = append(opts, func() time.Time {
			if u.deleted[tg] {
				g.change(t, consent.RedeclareTag(u.id, tg))
				u.deleted[tg], u.held[tg] = false, true
				return g.lifted(t, tg, "")
			}
			g.change(t, consent.DeclareTag(u.id, tg))
			u.held[tg] = true
			return t
		})
	}
	if u.held[tg] || !u.deleted[tg] {
		opts = append(opts, func() time.Time {
			g.change(t, consent.DeleteTag(u.id, tg))
			u.deleted[tg], u.held[tg] = true, false
			return t
		})
	}
	if right := pick(g, plainTags); u.held[tg] && category(tg) == "" && right != tg && g.guardianOK(t) {
		opts = append(opts, func() time.Time {
			g.change(t, consent.CorrectTag(u.id, tg, right))
			u.deleted[tg], u.held[tg] = true, false
			u.deleted[right], u.held[right] = false, true
			return g.lifted(t, right, "")
		})
	}
	cat := category(pick(g, sensTags))
	if s := u.sens[cat]; s != nil && s.granted {
		opts = append(opts, func() time.Time {
			g.change(t, consent.WithdrawSensitive(u.id, cat))
			g.withdraw(cat)
			return t
		})
	}
	if s := u.sens[cat]; (s == nil || !s.granted || s.pv < g.policy(t) || s.purpose != consent.PurposePersonalization) && (!u.minor || u.guarded) {
		opts = append(opts, func() time.Time { return g.grant(t, cat, consent.PurposePersonalization) })
	}
	if s := u.sens[cat]; (s == nil || !s.granted || s.purpose != consent.PurposePush) && !u.minor {
		// A consent for another purpose: it does not count for
		// personalization.
		opts = append(opts, func() time.Time { return g.grant(t, cat, consent.PurposePush) })
	}
	if !u.minor {
		opts = append(opts, func() time.Time {
			g.change(t, consent.SetMinor(u.id, true))
			u.minor = true
			return t
		})
	} else {
		opts = append(opts, func() time.Time {
			g.change(t, consent.SetMinor(u.id, false).By(consent.ActorUser, consent.SurfaceAppSettings))
			u.minor = false
			return g.lifted(t, "", "")
		})
		if u.guarded {
			opts = append(opts, func() time.Time {
				g.change(t, consent.SetGuardian(u.id, false))
				u.guarded = false
				return t
			})
		}
		if !g.guarded(t) {
			opts = append(opts, func() time.Time {
				g.consentGuardian(t)
				return g.lifted(t, "", "")
			})
		}
	}
	return pick(g, opts)()
}

// optOut turns the user's personalization off at t.
func (g *gen) optOut(t time.Time) *step {
	s := g.change(t, consent.SetPersonalization(g.u.id, false))
	g.u.off, g.u.offStep, g.u.lastOff = true, s, t
	return s
}

// grant grants the separate consent for cat at t (by the guardian for a
// minor).
func (g *gen) grant(t time.Time, cat tags.Category, purpose string) time.Time {
	u := g.u
	ch := consent.GrantSensitive(u.id, cat, purpose)
	if u.minor {
		ch = ch.By(consent.ActorGuardian, consent.SurfaceAppSettings)
	}
	g.change(t, ch)
	pv, ever := g.policy(t), purpose == consent.PurposePersonalization
	if !ever {
		pv = g.ppolicy(t)
	}
	if s := u.sens[cat]; s != nil {
		ever = ever || s.everPers
	}
	u.sens[cat] = &grantM{granted: true, purpose: purpose, pv: pv, byGuardian: u.minor, everPers: ever}
	for _, tg := range sensTags {
		if category(tg) == cat && !u.deleted[tg] {
			return g.lifted(t, tg, "")
		}
	}
	return t
}

// withdraw models a withdrawn consent: the category's tags go too.
func (g *gen) withdraw(cat tags.Category) {
	g.u.sens[cat].granted = false
	for tg := range g.u.held {
		if category(tg) == cat {
			delete(g.u.held, tg)
		}
	}
}

// record notes a planted violation (or a near miss) of the current user.
func (g *gen) violation(k enforce.Kind, e store.LedgerEntry, cause *step, tg tags.Tag) {
	e = g.add(e)
	if !g.drop {
		g.h.plants = append(g.h.plants, plant{kind: k, user: g.u.id, at: e.At, cause: cause, tag: tg, entry: e})
	}
}

func (g *gen) nearMiss(k enforce.Kind, e store.LedgerEntry, cause *step, tg tags.Tag, decided bool) {
	e = g.add(e)
	if !g.drop {
		g.h.misses = append(g.h.misses, miss{plant: plant{kind: k, user: g.u.id, at: e.At, cause: cause, tag: tg, entry: e}, lag: e.At.Sub(cause.at), decided: decided})
	}
}

// plantOne plants one violation at t, with a near miss before it half
// the time, and the change that lifts it after it half the time; it
// returns the time of the last thing it added (t when it planted
// nothing).
func (g *gen) plantOne(t time.Time) time.Time {
	u := g.u
	if !g.quiet(t) {
		return t
	}
	// shape builds the entry that breaks the rule at some time.
	type plan struct {
		kind   enforce.Kind
		change func() *step                      // the restrictive change at t (nil: none)
		shape  func(time.Time) store.LedgerEntry // the entry
		tag    tags.Tag
		lift   func(time.Time) time.Time // the change that lifts it, and an entry just after
		// again: the change repeats a "no" that began earlier; every
		// entry after it is a violation of the earlier change (none is
		// inside the allowance).
		again bool
		// decided: the entry is a push its decision refused (see miss).
		decided bool
	}
	var plans []plan
	okCh := g.allowedChannels(false, t)
	if g.persOK(t) {
		plans = append(plans, plan{
			kind:   enforce.PersonalizedAfterOptOut,
			change: func() *step { return g.optOut(t) },
			shape:  func(at time.Time) store.LedgerEntry { return g.exposure(at, true, g.plainOK(at)...) },
			lift: func(at time.Time) time.Time {
				g.change(at, consent.SetPersonalization(u.id, true))
				u.off = false
				return g.lifted(at, "", "")
			},
		})
		plans = append(plans, plan{
			kind: enforce.ModeContradictsDecision,
			shape: func(at time.Time) store.LedgerEntry {
				e := g.exposure(at, true)
				e.Decided, e.Contradicted, e.Reason = true, true, pick(g, []consent.Reason{consent.ReasonOptedOut, consent.ReasonUnverified, consent.ReasonRestricted})
				e.DecisionID = consent.DecisionID{1, byte(g.r.IntN(256)), 3}
				return e
			},
		})
		if len(okCh) > 0 {
			c := pick(g, okCh)
			plans = append(plans, plan{
				kind:   enforce.TargetedPushAfterOptOut,
				change: func() *step { return g.optOut(t) },
				shape:  func(at time.Time) store.LedgerEntry { return g.push(at, c, true) },
				lift: func(at time.Time) time.Time {
					g.change(at, consent.SetPersonalization(u.id, true))
					u.off = false
					return g.lifted(at, "", "")
				},
			})
		}
		if !u.minor && !g.guarded(t) {
			plans = append(plans, plan{
				kind: enforce.MinorWithoutGuardian,
				change: func() *step {
					u.minor = true
					return g.change(t, consent.SetMinor(u.id, true))
				},
				shape: func(at time.Time) store.LedgerEntry { return g.exposure(at, true) },
				lift: func(at time.Time) time.Time {
					g.consentGuardian(at)
					return g.lifted(at, "", "")
				},
			})
		}
		if u.minor && g.guarded(t) && len(g.allowedChannels(true, t)) > 0 {
			c := pick(g, g.allowedChannels(true, t))
			plans = append(plans, plan{
				kind: enforce.MinorWithoutGuardian,
				change: func() *step {
					u.guarded = false
					return g.change(t, consent.SetGuardian(u.id, false))
				},
				shape: func(at time.Time) store.LedgerEntry { return g.push(at, c, true) },
				lift: func(at time.Time) time.Time {
					g.change(at, consent.SetMinor(u.id, false).By(consent.ActorUser, consent.SurfaceAppSettings))
					u.minor = false
					return g.lifted(at, "", "")
				},
			})
		}
	}
	if len(okCh) > 0 {
		c := pick(g, okCh)
		decided := g.coin(0.4)
		plans = append(plans, plan{
			kind: enforce.PushOnRefusedChannel, decided: decided,
			change: func() *step {
				u.refused[c] = true
				return g.change(t, consent.RefuseChannel(u.id, c))
			},
			shape: func(at time.Time) store.LedgerEntry {
				e := g.push(at, c, false)
				if decided {
					e.Decided, e.Mode, e.Reason = true, store.ModeRefused, consent.ReasonChannelRefused
				}
				return e
			},
			lift: func(at time.Time) time.Time {
				g.change(at, consent.AllowChannel(u.id, c))
				u.refused[c] = false
				return g.lifted(at, "", c)
			},
		})
		// A push its own decision refused for the user's consent or the
		// suspension: a violation whatever the history says.
		reason := pick(g, []consent.Reason{consent.ReasonChannelRefused, consent.ReasonOptedOut, consent.ReasonMinorNoGuardian,
			consent.ReasonSuspended, consent.ReasonRestricted, consent.ReasonErased})
		k := map[consent.Reason]enforce.Kind{consent.ReasonChannelRefused: enforce.PushOnRefusedChannel, consent.ReasonOptedOut: enforce.TargetedPushAfterOptOut,
			consent.ReasonMinorNoGuardian: enforce.MinorWithoutGuardian, consent.ReasonSuspended: enforce.WhileSuspended,
			consent.ReasonRestricted: enforce.WhileRestricted, consent.ReasonErased: enforce.WhileRestricted}[reason]
		plans = append(plans, plan{
			kind: k,
			shape: func(at time.Time) store.LedgerEntry {
				e := g.push(at, c, false)
				e.Decided, e.Mode, e.Reason = true, store.ModeRefused, reason
				return e
			},
		})
	}
	if u.off && t.Sub(u.lastOff) >= consent.MinReaskCooldown && !u.restricted && g.guardianOK(t) && !g.suspended(t) {
		cause := u.offStep
		plans = append(plans, plan{
			kind: enforce.PersonalizedAfterOptOut, again: true,
			change: func() *step {
				g.change(t, consent.SetPersonalization(u.id, false))
				u.lastOff = t
				return cause
			},
			shape: func(at time.Time) store.LedgerEntry { return g.exposure(at, true) },
		})
	}
	for _, tg := range sensTags {
		cat := category(tg)
		if u.minor || u.deleted[tg] || !g.sensOK(cat, t) || u.sens[cat].byGuardian {
			continue
		}
		// A minor's separate consent must be the guardian's: the user's
		// own stops counting when they are found to be a minor.
		plans = append(plans, plan{
			kind: enforce.SensitiveWithoutConsent, tag: tg,
			change: func() *step {
				u.minor = true
				return g.change(t, consent.SetMinor(u.id, true))
			},
			shape: func(at time.Time) store.LedgerEntry { return g.exposure(at, g.persOK(at), tg) },
			lift: func(at time.Time) time.Time {
				g.change(at, consent.SetMinor(u.id, false).By(consent.ActorUser, consent.SurfaceAppSettings))
				u.minor = false
				return g.lifted(at, tg, "")
			},
		})
		break
	}
	if !u.restricted && (g.persOK(t) || len(okCh) > 0) {
		pers := g.persOK(t) && (len(okCh) == 0 || g.coin(0.5))
		var c string
		if !pers {
			c = pick(g, okCh)
		}
		plans = append(plans, plan{
			kind: enforce.WhileRestricted,
			change: func() *step {
				u.restricted = true
				return g.change(t, consent.Restrict(u.id))
			},
			shape: func(at time.Time) store.LedgerEntry {
				if pers {
					return g.exposure(at, true)
				}
				return g.push(at, c, false)
			},
			lift: func(at time.Time) time.Time {
				g.change(at, consent.Unrestrict(u.id))
				u.restricted = false
				if pers {
					return g.lifted(at, "", "")
				}
				return g.lifted(at, "", c)
			},
		})
	}
	// Tags: a deletion, or a correction (the right tag is fine).
	if tg := pick(g, plainTags); !u.deleted[tg] {
		pers := g.persOK(t)
		plans = append(plans, plan{
			kind: enforce.TagAfterDeletion, tag: tg,
			change: func() *step {
				u.deleted[tg], u.held[tg] = true, false
				return g.change(t, consent.DeleteTag(u.id, tg))
			},
			shape: func(at time.Time) store.LedgerEntry { return g.exposure(at, pers, tg) },
			lift: func(at time.Time) time.Time {
				if !g.guardianOK(at) {
					return at
				}
				g.change(at, consent.RedeclareTag(u.id, tg))
				u.deleted[tg], u.held[tg] = false, true
				return g.lifted(at, tg, "")
			},
		})
	}
	for _, tg := range plainTags {
		right := pick(g, plainTags)
		if !u.held[tg] || right == tg || !g.guardianOK(t) {
			continue
		}
		pers := g.persOK(t)
		plans = append(plans, plan{
			kind: enforce.TagAfterDeletion, tag: tg,
			change: func() *step {
				u.deleted[tg], u.held[tg] = true, false
				u.deleted[right], u.held[right] = false, true
				return g.change(t, consent.CorrectTag(u.id, tg, right))
			},
			// The entry names the right tag too: it is not a violation.
			shape: func(at time.Time) store.LedgerEntry { return g.exposure(at, pers, right, tg) },
		})
		break
	}
	// Sensitive tags: never consented (no receipt, no allowance), or
	// after a withdrawal.
	if tg := pick(g, sensTags); !u.deleted[tg] {
		cat := category(tg)
		pers := g.persOK(t)
		switch s := u.sens[cat]; {
		case s == nil || !s.everPers:
			// Never consented for personalization (perhaps for
			// another purpose): no receipt, no allowance.
			plans = append(plans, plan{
				kind: enforce.SensitiveWithoutConsent, tag: tg,
				shape: func(at time.Time) store.LedgerEntry { return g.exposure(at, pers, tg) },
			})
		case g.sensOK(cat, t):
			other := !u.minor && g.coin(0.3)
			plans = append(plans, plan{
				kind: enforce.SensitiveWithoutConsent, tag: tg,
				change: func() *step {
					if other {
						// Replaced by a consent for another purpose.
						s := g.change(t, consent.GrantSensitive(u.id, cat, consent.PurposePush))
						u.sens[cat] = &grantM{granted: true, purpose: consent.PurposePush, pv: g.ppolicy(t), everPers: true}
						return s
					}
					g.withdraw(cat)
					return g.change(t, consent.WithdrawSensitive(u.id, cat))
				},
				shape: func(at time.Time) store.LedgerEntry { return g.exposure(at, pers, tg) },
				lift: func(at time.Time) time.Time {
					if u.minor && !u.guarded {
						return at
					}
					return g.grant(at, cat, consent.PurposePersonalization)
				},
			})
		}
	}
	if len(plans) == 0 {
		return t
	}
	// A kind first (each as likely), then one of its plans.
	var kinds []enforce.Kind
	for _, p := range plans {
		if !slices.Contains(kinds, p.kind) {
			kinds = append(kinds, p.kind)
		}
	}
	k := pick(g, kinds)
	var mine []plan
	for _, p := range plans {
		if p.kind == k {
			mine = append(mine, p)
		}
	}
	p := pick(g, mine)
	if p.change == nil {
		g.violation(p.kind, p.shape(t), nil, p.tag)
		return t
	}
	cause := p.change()
	last := t
	if p.again {
		last = t.Add(g.dur(time.Millisecond, g.allow))
		g.violation(p.kind, p.shape(last), cause, p.tag)
		return last
	}
	if g.coin(0.5) {
		lag := g.allow
		if g.coin(0.7) {
			lag = g.dur(time.Millisecond, g.allow)
		}
		last = t.Add(lag)
		g.nearMiss(p.kind, p.shape(last), cause, p.tag, p.decided)
	}
	lag := g.allow + time.Millisecond
	if g.coin(0.7) {
		lag = g.dur(g.allow+time.Millisecond, g.allow+30*time.Minute)
	}
	if t.Add(lag).After(last) {
		last = t.Add(lag)
		g.violation(p.kind, p.shape(last), cause, p.tag)
	}
	if p.lift != nil && g.coin(0.5) {
		last = p.lift(last.Add(g.dur(time.Second, time.Minute)))
	}
	return last
}

// plainOK returns a few compliant ordinary tags at t.
func (g *gen) plainOK(t time.Time) []tags.Tag {
	var out []tags.Tag
	for _, tg := range g.okTags(t, g.r.IntN(3)) {
		if category(tg) == "" {
			out = append(out, tg)
		}
	}
	return out
}

// cross handles the settings changes between prev and t (exclusive,
// inclusive): near misses and violations right after the suspension and
// the policy bump, compliant entries right after the service resumes. It
// returns the time of the last entry it added (prev when none).
func (g *gen) cross(prev, t time.Time) time.Time {
	last := prev
	u := g.u
	for _, e := range []time.Time{g.s1, g.s2, g.b, g.bg} {
		if !e.After(prev) || e.After(t) {
			continue
		}
		switch e {
		case g.s1:
			// A push (or a personalized exposure) the suspension forbids.
			cs := g.allowedChannelsIgnoringSuspension()
			shape := func(at time.Time) store.LedgerEntry { return g.exposure(at, true) }
			if len(cs) > 0 && (!g.persOKNow(e) || g.coin(0.5)) {
				c := pick(g, cs)
				shape = func(at time.Time) store.LedgerEntry { return g.push(at, c, false) }
			} else if !g.persOKNow(e) {
				continue
			}
			if g.coin(0.4) {
				last = e.Add(g.dur(time.Second, g.setAllow))
				g.nearMiss(enforce.WhileSuspended, shape(last), g.h.suspend, "", false)
			}
			if g.coin(0.4) {
				last = e.Add(g.dur(g.setAllow+time.Millisecond, 20*time.Minute))
				g.violation(enforce.WhileSuspended, shape(last), g.h.suspend, "")
			}
		case g.s2:
			if g.persOKNow(e) && g.coin(0.5) {
				last = e.Add(g.dur(time.Millisecond, 3*time.Second))
				g.add(g.exposure(last, true, g.plainOK(last)...))
			}
		case g.b:
			// A sensitive tag whose consent the bump made stale.
			for _, tg := range sensTags {
				s := u.sens[category(tg)]
				if s == nil || !s.granted || s.purpose != consent.PurposePersonalization || s.pv != 1 || u.minor && !s.byGuardian || u.deleted[tg] {
					continue
				}
				pers := g.persOKNow(e)
				if g.coin(0.5) {
					last = e.Add(g.dur(time.Second, g.setAllow))
					g.nearMiss(enforce.SensitiveWithoutConsent, g.exposure(last, pers, tg), g.h.bump, tg, false)
				}
				if g.coin(0.5) {
					last = e.Add(g.dur(g.setAllow+time.Millisecond, 20*time.Minute))
					g.violation(enforce.SensitiveWithoutConsent, g.exposure(last, pers, tg), g.h.bump, tg)
				}
				break
			}
		case g.bg:
			// A minor whose guardian consent the bump made stale.
			if !u.minor || !u.guarded || u.guardPV != 1 || u.off || u.restricted {
				continue
			}
			shape := func(at time.Time) store.LedgerEntry { return g.exposure(at, true) }
			if cs := g.allowedChannelsIgnoringSuspension(); len(cs) > 0 && g.coin(0.5) {
				c := pick(g, cs)
				shape = func(at time.Time) store.LedgerEntry { return g.push(at, c, true) }
			}
			if g.coin(0.5) {
				last = e.Add(g.dur(time.Second, g.setAllow))
				g.nearMiss(enforce.MinorWithoutGuardian, shape(last), g.h.gbump, "", false)
			}
			if g.coin(0.7) {
				last = e.Add(g.dur(g.setAllow+time.Millisecond, 20*time.Minute))
				g.violation(enforce.MinorWithoutGuardian, shape(last), g.h.gbump, "")
			}
		}
	}
	return last
}

func (g *gen) allowedChannelsIgnoringSuspension() []string {
	if g.u.restricted {
		return nil
	}
	var out []string
	for _, c := range channels {
		if !g.u.refused[c] {
			out = append(out, c)
		}
	}
	return out
}

// walk generates one user's history.
func newUserM(id string) *userM {
	return &userM{id: id, refused: map[string]bool{}, deleted: map[tags.Tag]bool{}, held: map[tags.Tag]bool{}, sens: map[tags.Category]*grantM{}}
}

func (g *gen) walk(id string) {
	g.u = newUserM(id)
	g.drop = g.coin(0.12)
	comeback := !g.drop && g.coin(0.12)
	end := g.h.end.Add(-2 * time.Hour)
	t := g.h.start.Add(g.dur(0, 3*time.Hour))
	prev := g.h.start
	for t.Before(end) {
		if comeback && t.After(g.h.start.Add(g.h.end.Sub(g.h.start)/2)) && g.quiet(t) {
			// Erased, then back by their own change: what came before
			// names no one (the receipts are redacted, the ledger's
			// link is gone), and the consent starts afresh.
			comeback = false
			t = g.comeback(t)
			prev = t
			t = t.Add(g.gap())
			continue
		}
		if last := g.cross(prev, t); last.After(prev) {
			t = maxTime(t, last.Add(time.Second).Truncate(time.Millisecond))
		}
		last := t
		switch x := g.r.IntN(100); {
		case x < 55:
			g.clean(t)
		case x < 85:
			last = g.randomChange(t)
		default:
			if last = g.plantOne(t); !last.After(t) {
				g.clean(t)
			}
		}
		prev = last
		t = last.Add(g.gap())
	}
	if g.drop {
		// Erased at the end: every entry of theirs, before and after,
		// names no one.
		g.change(t, consent.Erase(id))
		g.h.erased[id] = true
		g.clean(t.Add(time.Minute))
	}
}

// comeback erases the current user at t, with every fact a rule reads
// set first (a minor with the guardian's consent and a separate consent,
// restricted, opted out, every channel refused, a tag deleted), and
// brings them back with their own change: the erasure resets every fact,
// so that what follows is judged afresh; a minor again, they have no
// guardian consent (planted). It returns the time of the last thing it
// added.
func (g *gen) comeback(t time.Time) time.Time {
	u := g.u
	next := func() time.Time {
		t = t.Add(time.Second)
		return t
	}
	if !u.minor {
		g.change(next(), consent.SetMinor(u.id, true))
		u.minor = true
	}
	if !g.guarded(t) {
		g.consentGuardian(next())
	}
	cat := category(pick(g, sensTags))
	if s := u.sens[cat]; s == nil || !s.granted || s.pv < g.policy(t) || s.purpose != consent.PurposePersonalization {
		g.grant(next(), cat, consent.PurposePersonalization)
	}
	if !u.restricted {
		g.change(next(), consent.Restrict(u.id))
		u.restricted = true
	}
	if !u.off {
		g.optOut(next())
	}
	for _, c := range channels {
		if !u.refused[c] {
			g.change(next(), consent.RefuseChannel(u.id, c))
			u.refused[c] = true
		}
	}
	tg := pick(g, plainTags)
	if !u.deleted[tg] {
		g.change(next(), consent.DeleteTag(u.id, tg))
		u.deleted[tg] = true
	}
	g.change(next(), consent.Erase(u.id))
	g.h.returned[u.id] = t
	g.h.plants = slices.DeleteFunc(g.h.plants, func(p plant) bool { return p.user == u.id })
	g.h.misses = slices.DeleteFunc(g.h.misses, func(m miss) bool { return m.user == u.id })
	g.u = newUserM(u.id)
	u = g.u
	t = t.Add(g.gap())
	g.change(t, consent.SetPersonalization(u.id, true))
	// Compliant now: a targeted push on every channel, with the deleted
	// tag and a tag of the category (not sensitive... no consent: plain
	// only).
	t = t.Add(time.Second)
	for _, c := range channels {
		g.add(g.push(t, c, true, tg))
	}
	t = t.Add(g.gap())
	s := g.change(t, consent.SetMinor(u.id, true))
	u.minor = true
	at := t.Add(g.dur(g.allow+time.Millisecond, 10*time.Minute))
	g.violation(enforce.MinorWithoutGuardian, g.exposure(at, true), s, "")
	// A sensitive tag: never consented since the erasure.
	at = at.Add(time.Minute)
	for _, st := range sensTags {
		if category(st) == cat {
			g.violation(enforce.SensitiveWithoutConsent, g.exposure(at, false, st), nil, st)
			break
		}
	}
	return at
}

func (g *gen) gap() time.Duration {
	if g.coin(0.3) {
		return g.dur(time.Second, 2*time.Minute)
	}
	return g.dur(2*time.Minute, 4*time.Hour)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// generate builds the history of seed: users users over span.
func generate(seed uint64, users int, span time.Duration) *history {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x3e1f)), allow: enforce.DefaultAllowance, setAllow: enforce.DefaultSettingsAllowance}
	h := &history{seed: seed, start: genBase, end: genBase.Add(span), erased: map[string]bool{}, returned: map[string]time.Time{}, receipts: map[string]int{}}
	g.h = h
	// Whole seconds plus 500 µs: no user's change (whole milliseconds)
	// falls on a settings change.
	odd := func(d time.Duration) time.Time {
		return genBase.Add(d.Truncate(time.Second) + 500*time.Microsecond)
	}
	g.s1 = odd(g.dur(span/4, span*2/5))
	g.s2 = g.s1.Add(g.dur(time.Hour, 3*time.Hour)).Truncate(time.Second).Add(500 * time.Microsecond)
	g.b = odd(g.dur(span*3/5, span*4/5))
	g.bg = odd(g.dur(span/2, span*11/20))
	g.k = odd(g.dur(span*17/20, span*9/10))
	keep := &step{at: g.k, set: func(s *consent.Settings) { s.KeepOnBump = append(s.KeepOnBump, consent.PurposePersonalization) }}
	h.suspend = &step{at: g.s1, set: func(s *consent.Settings) { s.Suspended, s.SuspendReason = true, "regulator order" }}
	h.resume = &step{at: g.s2, set: func(s *consent.Settings) { s.Suspended, s.SuspendReason = false, "" }}
	h.bump = &step{at: g.b, set: func(s *consent.Settings) { s.Policies[consent.PurposePersonalization]++ }}
	h.gbump = &step{at: g.bg, set: func(s *consent.Settings) { s.Policies[consent.PurposeGuardian]++ }}
	// A change no rule reads: a push policy bump.
	h.noise = &step{at: odd(g.dur(span/10, span/5)), set: func(s *consent.Settings) { s.Policies[consent.PurposePush]++ }}
	noise := h.noise
	// The re-ask cooldown at its minimum, so that a repeated "no" is
	// recorded within the span.
	cooldown := &step{at: genBase.Add(-time.Minute), set: func(s *consent.Settings) { s.ReaskCooldown = consent.MinReaskCooldown }}
	h.steps = append(h.steps, cooldown, h.suspend, h.resume, h.bump, h.gbump, noise, keep)
	for i := 0; i < users; i++ {
		g.walk(fmt.Sprintf("user-%d-%03d", seed, i))
	}
	// Times are whole milliseconds (receipts keep them exactly).
	for _, s := range h.steps {
		if s.ch != nil && s.at.Truncate(time.Millisecond) != s.at {
			panic("generator: a change at a sub-millisecond time")
		}
	}
	sort.SliceStable(h.steps, func(i, j int) bool { return h.steps[i].at.Before(h.steps[j].at) })
	sort.SliceStable(h.entries, func(i, j int) bool { return h.entries[i].At.Before(h.entries[j].At) })
	return h
}

// load applies h to st (in time order, the clock following) and appends
// its ledger.
func load(ctx context.Context, tb testing.TB, st store.Store, clk *fakeClock, h *history) {
	tb.Helper()
	lg := st.(store.Ledger)
	// The ledger is appended as time goes: every entry before a change
	// is in before the change is made (an erasure unlinks the entries
	// before it).
	next := 0
	flush := func(before time.Time) {
		for next < len(h.entries) && (before.IsZero() || h.entries[next].At.Before(before)) {
			n := next
			for n < len(h.entries) && n-next < 500 && (before.IsZero() || h.entries[n].At.Before(before)) {
				n++
			}
			if err := lg.AppendLedger(ctx, h.entries[next:n]); err != nil {
				tb.Fatalf("seed %d: append: %v", h.seed, err)
			}
			next = n
		}
	}
	for _, s := range h.steps {
		flush(s.at)
		clk.Set(s.at)
		if s.ch != nil {
			ch := *s.ch
			ch.At = s.at
			a, err := st.Apply(ctx, ch)
			if err != nil {
				tb.Fatalf("seed %d: apply %s %s at %v: %v", h.seed, ch.Op, ch.UserID, s.at, err)
			}
			if a.Receipt == nil {
				tb.Fatalf("seed %d: apply %s %+v at %v: a no-op (the generator's model is wrong)", h.seed, ch.Op, ch, s.at)
			}
			s.rid = a.Receipt.ID
			continue
		}
		cur, err := st.Settings(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		next := cur.Clone()
		s.set(&next)
		_, rc, err := st.SetSettings(ctx, next, consent.ActorAdmin, consent.SurfaceAdminConsole)
		if err != nil {
			tb.Fatalf("seed %d: settings at %v: %v", h.seed, s.at, err)
		}
		if !rc.At.Equal(s.at) {
			tb.Fatalf("seed %d: settings receipt at %v, want %v", h.seed, rc.At, s.at)
		}
		s.rid = rc.ID
	}
	flush(time.Time{})
}
