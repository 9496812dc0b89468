package enforce

import (
	"fmt"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// checker checks entries against histories; one per worker.
type checker struct {
	sh         *settingsHistory
	allow      int64 // ns
	setAllow   int64 // ns
	violations []Violation
	within     map[Kind]int64
	maxLag     float64
	receipts   int64
	pts        []point
}

func newChecker(sh *settingsHistory, o *Options) *checker {
	return &checker{sh: sh, allow: int64(o.Allowance), setAllow: int64(o.SettingsAllowance), within: map[Kind]int64{}}
}

// run is the start of a run of a broken rule: the change that began it
// (none when it held from before every change kept).
type run struct {
	p         point
	fromStart bool
}

// judge reports a rule broken at e.at since r: a violation beyond the
// allowance, else counted within it. It returns whether it reported a
// violation.
func (c *checker) judge(k Kind, e *entry, user string, r run, v Violation) bool {
	if !r.fromStart {
		lag := e.at - r.p.at
		allow := c.allow
		if r.p.settings {
			allow = c.setAllow
		}
		if lag <= allow {
			c.within[k]++
			c.maxLag = max(c.maxLag, float64(lag)/1e6)
			return false
		}
		v.ReceiptID, v.ReceiptAt, v.LagMS = r.p.rid, time.Unix(0, r.p.at).UTC(), float64(lag)/1e6
	}
	c.add(k, e, user, v)
	return true
}

// add lists a violation of e, filling in the entry's evidence.
func (c *checker) add(k Kind, e *entry, user string, v Violation) {
	v.Kind, v.User, v.At = k, user, time.Unix(0, e.at).UTC()
	v.Event, v.Surface, v.Mode, v.Decided = e.kind.String(), e.surface, e.mode, e.decided
	if e.logged != 0 {
		v.Logged = time.Unix(0, e.logged).UTC()
	}
	if !e.id.IsZero() {
		v.DecisionID = e.id.String()
	}
	if e.decided || e.contra {
		v.DecisionReason = e.reason.String()
	}
	v.RecordVersion, v.SettingsVersion = e.rv, e.sv
	v.Channel, v.Campaign = e.channel, e.campaign
	c.violations = append(c.violations, v)
}

// boolRun returns the run of s that holds at t, if s is true at t.
func boolRun(s *series[bool], t int64) (run, bool) {
	if s == nil {
		return run{}, false
	}
	v, i := s.at(t)
	if !v {
		return run{}, false
	}
	if i < 0 {
		return run{fromStart: true}, true
	}
	ch := s.cs[i]
	return run{p: point{at: ch.at, rid: ch.rid, settings: ch.settings}}, true
}

// check checks one entry of user against the user's history h.
func (c *checker) check(e *entry, user string, h *userHistory) {
	t := e.at
	exposure := e.kind == store.LedgerExposure
	push := e.kind == store.LedgerPush
	personalized := exposure && e.mode == store.ModePersonalized
	reported := map[Kind]bool(nil)
	mark := func(k Kind, did bool) {
		if did {
			if reported == nil {
				reported = map[Kind]bool{}
			}
			reported[k] = true
		}
	}

	if exposure && e.contra {
		c.add(ModeContradictsDecision, e, user, Violation{Detail: fmt.Sprintf("declared %s under a decision ID whose decision was not personalized (reason %s)", e.mode, e.reason)})
		mark(ModeContradictsDecision, true)
	}
	if personalized || push {
		if r, ok := boolRun(&c.sh.suspended, t); ok {
			mark(WhileSuspended, c.judge(WhileSuspended, e, user, r, Violation{Detail: what(e) + " while the service was suspended (Art. 51)"}))
		}
		if r, ok := boolRun(&h.restricted, t); ok {
			mark(WhileRestricted, c.judge(WhileRestricted, e, user, r, Violation{Detail: what(e) + " while the user had restricted processing (Art. 23)"}))
		}
	}
	if personalized || push && e.targeted {
		if r, ok := boolRun(&h.off, t); ok {
			k := PersonalizedAfterOptOut
			if push {
				k = TargetedPushAfterOptOut
			}
			mark(k, c.judge(k, e, user, r, Violation{Detail: what(e) + " after the user turned personalization off (Art. 42)"}))
		}
		if r, ok := c.minorRun(h, t); ok {
			mark(MinorWithoutGuardian, c.judge(MinorWithoutGuardian, e, user, r, Violation{Detail: what(e) + " to a minor without current guardian consent (Art. 22)"}))
		}
	}
	if push {
		if r, ok := boolRun(h.channels[e.channel], t); ok {
			mark(PushOnRefusedChannel, c.judge(PushOnRefusedChannel, e, user, r, Violation{Detail: what(e) + " after the user refused the channel (Art. 42)"}))
		}
	}
	for _, tg := range e.tags {
		if r, ok := boolRun(h.deleted[tg], t); ok {
			c.judge(TagAfterDeletion, e, user, r, Violation{Tag: string(tg), Detail: fmt.Sprintf("%s chosen by tag %s after the user deleted it (Art. 42)", what(e), tg)})
		}
		if cat := c.sh.taxonomy.Lookup(tg).Sensitive; cat != "" {
			if r, ok := c.sensitiveRun(h, cat, t); ok {
				c.judge(SensitiveWithoutConsent, e, user, r, Violation{Tag: string(tg), Detail: fmt.Sprintf("%s chosen by %s tag %s without a valid separate consent (Art. 22)", what(e), cat, tg)})
			}
		}
	}
	// A push sent although its own decision refused it, for the user's
	// consent or the suspension: no propagation to wait for.
	if push && e.decided && e.mode == store.ModeRefused && consentReason(e.reason) {
		var k Kind
		switch e.reason {
		case consent.ReasonChannelRefused:
			k = PushOnRefusedChannel
		case consent.ReasonOptedOut:
			k = TargetedPushAfterOptOut
		case consent.ReasonMinorNoGuardian:
			k = MinorWithoutGuardian
		case consent.ReasonSuspended:
			k = WhileSuspended
		case consent.ReasonRestricted, consent.ReasonErased:
			k = WhileRestricted
		}
		if !reported[k] {
			c.add(k, e, user, Violation{Detail: fmt.Sprintf("%s sent although its decision refused it (reason %s)", what(e), e.reason)})
		}
	}
}

// what names an entry in a violation's detail: made only when a rule
// holds, so that checking a compliant entry allocates nothing.
func what(e *entry) string {
	switch {
	case e.kind != store.LedgerPush:
		return "a personalized exposure"
	case e.targeted:
		return fmt.Sprintf("a targeted push on %q", e.channel)
	}
	return fmt.Sprintf("a push on %q", e.channel)
}

// minorRun returns the run in which the user is a minor without current
// guardian consent, if they are at t.
func (c *checker) minorRun(h *userHistory, t int64) (run, bool) {
	if len(h.minor.cs) == 0 && !h.minor.def {
		return run{}, false
	}
	pred := func(t int64) bool {
		m, _ := h.minor.at(t)
		if !m {
			return false
		}
		g, _ := h.guardian.at(t)
		return !(g.granted && c.sh.current(consent.PurposeGuardian, g.pv, t))
	}
	c.pts = changeTimes(c.pts[:0], &h.minor, t)
	c.pts = changeTimes(c.pts, &h.guardian, t)
	c.pts = changeTimes(c.pts, c.sh.policies[consent.PurposeGuardian], t)
	c.pts = changeTimes(c.pts, c.sh.keep[consent.PurposeGuardian], t)
	p, fromStart, ok := since(c.pts, t, pred)
	return run{p: p, fromStart: fromStart}, ok
}

// sensitiveRun returns the run in which category cat has no separate
// consent valid for personalization, if it has none at t.
func (c *checker) sensitiveRun(h *userHistory, cat tags.Category, t int64) (run, bool) {
	s := h.sensitive[cat]
	pred := func(t int64) bool {
		var g grant
		if s != nil {
			g, _ = s.at(t)
		}
		if !g.granted || g.purpose != consent.PurposePersonalization || !c.sh.current(g.purpose, g.pv, t) {
			return true
		}
		m, _ := h.minor.at(t)
		return m && !g.byGuardian
	}
	c.pts = changeTimes(c.pts[:0], s, t)
	c.pts = changeTimes(c.pts, &h.minor, t)
	c.pts = changeTimes(c.pts, c.sh.policies[consent.PurposePersonalization], t)
	c.pts = changeTimes(c.pts, c.sh.keep[consent.PurposePersonalization], t)
	p, fromStart, ok := since(c.pts, t, pred)
	return run{p: p, fromStart: fromStart}, ok
}
