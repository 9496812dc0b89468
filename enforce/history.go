package enforce

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// The consent history of one user (and of the settings), rebuilt from the
// receipts: for every fact an enforcement rule reads, the times its value
// changed and the receipt that changed it. A fact's value at time t is the
// value of its last change at or before t (receipts at the same instant in
// sequence order); before its first change it has its default.

// change is one change of a fact: from at on, the fact has value v, set by
// the receipt rid (empty for a settings value older than every settings
// receipt kept). settings says the receipt is a settings receipt (its
// allowance is the settings allowance).
type change[V comparable] struct {
	at       int64 // Unix nanoseconds
	v        V
	rid      string
	settings bool
}

// series is one fact's changes, oldest first.
type series[V comparable] struct {
	def V
	cs  []change[V]
}

// set appends a change, dropping it when it does not change the value (a
// repeated "no" keeps the run's start where it was).
func (s *series[V]) set(at int64, v V, rid string, settings bool) {
	cur := s.def
	if n := len(s.cs); n > 0 {
		cur = s.cs[n-1].v
	}
	if cur == v {
		return
	}
	s.cs = append(s.cs, change[V]{at: at, v: v, rid: rid, settings: settings})
}

// at returns the value at t and the index of the change that set it (-1:
// the default).
func (s *series[V]) at(t int64) (V, int) {
	i := sort.Search(len(s.cs), func(i int) bool { return s.cs[i].at > t }) - 1
	if i < 0 {
		return s.def, -1
	}
	return s.cs[i].v, i
}

// grant is what a separate consent (sensitive, or the guardian's) is at a
// time: given or not, for which purpose, under which policy version, and
// by the guardian.
type grant struct {
	granted    bool
	purpose    string
	pv         int
	byGuardian bool
}

// userHistory is one user's facts.
type userHistory struct {
	off        series[bool]
	restricted series[bool]
	minor      series[bool]
	guardian   series[grant]
	channels   map[string]*series[bool]
	sensitive  map[tags.Category]*series[grant]
	deleted    map[tags.Tag]*series[bool]
}

func (h *userHistory) channel(c string) *series[bool] {
	s := h.channels[c]
	if s == nil {
		if h.channels == nil {
			h.channels = map[string]*series[bool]{}
		}
		s = &series[bool]{}
		h.channels[c] = s
	}
	return s
}

func (h *userHistory) sens(c tags.Category) *series[grant] {
	s := h.sensitive[c]
	if s == nil {
		if h.sensitive == nil {
			h.sensitive = map[tags.Category]*series[grant]{}
		}
		s = &series[grant]{}
		h.sensitive[c] = s
	}
	return s
}

func (h *userHistory) del(t tags.Tag) *series[bool] {
	s := h.deleted[t]
	if s == nil {
		if h.deleted == nil {
			h.deleted = map[tags.Tag]*series[bool]{}
		}
		s = &series[bool]{}
		h.deleted[t] = s
	}
	return s
}

// grantRe reads a receipt's grant: "granted for P under policy vN" or
// "granted by guardian for P under policy vN".
var grantRe = regexp.MustCompile(`^granted (by guardian )?for (\S+) under policy v(\d+)$`)

func parseGrant(s string) grant {
	m := grantRe.FindStringSubmatch(s)
	if m == nil {
		return grant{}
	}
	pv, _ := strconv.Atoi(m[3])
	return grant{granted: true, purpose: m[2], pv: pv, byGuardian: m[1] != ""}
}

// buildUser rebuilds a user's history from their receipts (oldest first).
// Redacted receipts (the user was erased since) say nothing and are
// skipped: the erasure that redacted them resets every fact.
func buildUser(rs []consent.Receipt) *userHistory {
	h := &userHistory{}
	for i := range rs {
		r := &rs[i]
		at := r.At.UnixNano()
		if r.Op == consent.OpErase {
			h.off.set(at, false, r.ID, false)
			h.restricted.set(at, false, r.ID, false)
			h.minor.set(at, false, r.ID, false)
			h.guardian.set(at, grant{}, r.ID, false)
			for _, s := range h.channels {
				s.set(at, false, r.ID, false)
			}
			for _, s := range h.sensitive {
				s.set(at, grant{}, r.ID, false)
			}
			for _, s := range h.deleted {
				s.set(at, false, r.ID, false)
			}
			continue
		}
		if r.Redacted {
			continue
		}
		switch r.Op {
		case consent.OpSetPersonalization:
			switch r.New {
			case "off", "declined":
				h.off.set(at, true, r.ID, false)
			case "on":
				h.off.set(at, false, r.ID, false)
			}
		case consent.OpSetChannel:
			switch r.New {
			case "refused", "declined":
				h.channel(r.Subject).set(at, true, r.ID, false)
			case "allowed":
				h.channel(r.Subject).set(at, false, r.ID, false)
			}
		case consent.OpRestrict:
			h.restricted.set(at, r.New == "restricted", r.ID, false)
		case consent.OpSetMinor:
			h.minor.set(at, r.New == "minor", r.ID, false)
		case consent.OpSetGuardian:
			if r.New != "declined" {
				h.guardian.set(at, parseGrant(r.New), r.ID, false)
			}
		case consent.OpSetSensitive:
			if r.New != "declined" {
				h.sens(tags.Category(r.Subject)).set(at, parseGrant(r.New), r.ID, false)
			}
		case consent.OpDeleteTag:
			h.del(tags.Tag(r.Subject)).set(at, true, r.ID, false)
		case consent.OpCorrectTag:
			h.del(tags.Tag(r.Subject)).set(at, true, r.ID, false)
			if right, ok := strings.CutPrefix(r.New, "corrected to "); ok {
				right, _, _ = strings.Cut(right, " ")
				h.del(tags.Tag(right)).set(at, false, r.ID, false)
			}
		case consent.OpDeclareTag:
			// Only the user's re-declaration lifts a suppression.
			if strings.Contains(r.New, "suppression lifted") {
				h.del(tags.Tag(r.Subject)).set(at, false, r.ID, false)
			}
		}
	}
	return h
}

// settingsHistory is the history of the settings the rules read: the
// suspension (Art. 51), the policy version of each purpose, and the
// purposes whose consents survive a policy bump (keep_on_bump). It is
// rebuilt backwards from the current settings through the settings
// receipts' diffs, so the value before the oldest receipt kept is the
// oldest receipt's "before".
type settingsHistory struct {
	suspended series[bool]
	policies  map[string]*series[int]
	keep      map[string]*series[bool]
	// taxonomy is the current one: a tag's sensitive category is judged
	// under today's taxonomy.
	taxonomy tags.Taxonomy
}

var (
	suspendedRe = regexp.MustCompile(`^suspended: (true|false) -> (true|false)$`)
	policyRe    = regexp.MustCompile(`^policies (\S+): v(\d+) -> v(\d+)$`)
	policyAddRe = regexp.MustCompile(`^policies (\S+): added at v(\d+)$`)
	policyDelRe = regexp.MustCompile(`^policies (\S+): removed \(was v(\d+)\)$`)
	keepRe      = regexp.MustCompile(`^keep_on_bump: ([+-])(\S+)$`)
)

// buildSettings rebuilds the settings history from the current settings
// and the settings receipts (oldest first).
func buildSettings(cur consent.Settings, rs []consent.Receipt) *settingsHistory {
	type snap struct {
		at   int64
		rid  string
		susp bool
		pol  map[string]int
		keep map[string]bool
	}
	// Walk back from now: after receipt i the settings were state_i; the
	// diff of receipt i turns state_i into state_{i-1}.
	state := snap{susp: cur.Suspended, pol: map[string]int{}, keep: map[string]bool{}}
	for p, v := range cur.Policies {
		state.pol[p] = v
	}
	for _, p := range cur.KeepOnBump {
		state.keep[p] = true
	}
	copyPoint := func(p snap) snap {
		q := snap{at: p.at, rid: p.rid, susp: p.susp, pol: make(map[string]int, len(p.pol)), keep: make(map[string]bool, len(p.keep))}
		for k, v := range p.pol {
			q.pol[k] = v
		}
		for k, v := range p.keep {
			q.keep[k] = v
		}
		return q
	}
	after := make([]snap, len(rs))
	for i := len(rs) - 1; i >= 0; i-- {
		r := &rs[i]
		state.at, state.rid = r.At.UnixNano(), r.ID
		after[i] = copyPoint(state)
		for _, line := range r.Diff {
			if m := suspendedRe.FindStringSubmatch(line); m != nil {
				state.susp = m[1] == "true"
			} else if m := policyRe.FindStringSubmatch(line); m != nil {
				state.pol[m[1]], _ = strconv.Atoi(m[2])
			} else if m := policyAddRe.FindStringSubmatch(line); m != nil {
				delete(state.pol, m[1])
			} else if m := policyDelRe.FindStringSubmatch(line); m != nil {
				state.pol[m[1]], _ = strconv.Atoi(m[2])
			} else if m := keepRe.FindStringSubmatch(line); m != nil {
				state.keep[m[2]] = m[1] == "-"
			}
		}
	}
	// state is now the settings before the oldest receipt kept.
	h := &settingsHistory{policies: map[string]*series[int]{}, keep: map[string]*series[bool]{}, taxonomy: cur.Taxonomy}
	h.suspended.def = state.susp
	purposes := map[string]bool{}
	for p := range state.pol {
		purposes[p] = true
	}
	for _, a := range after {
		for p := range a.pol {
			purposes[p] = true
		}
		for p := range a.keep {
			purposes[p] = true
		}
	}
	for p := range state.keep {
		purposes[p] = true
	}
	for p := range purposes {
		h.policies[p] = &series[int]{def: state.pol[p]}
		h.keep[p] = &series[bool]{def: state.keep[p]}
	}
	for _, a := range after {
		h.suspended.set(a.at, a.susp, a.rid, true)
		for p := range purposes {
			h.policies[p].set(a.at, a.pol[p], a.rid, true)
			h.keep[p].set(a.at, a.keep[p], a.rid, true)
		}
	}
	return h
}

// current reports whether a grant under policy version pv for purpose
// counts at t (consent.Settings.GrantCurrent at t).
func (h *settingsHistory) current(purpose string, pv int, t int64) bool {
	cur := 0
	if s := h.policies[purpose]; s != nil {
		cur, _ = s.at(t)
	}
	if pv >= cur {
		return true
	}
	if s := h.keep[purpose]; s != nil {
		k, _ := s.at(t)
		return k
	}
	return false
}

// changeTimes appends the change times of s at or before t to ts.
func changeTimes[V comparable](ts []point, s *series[V], t int64) []point {
	if s == nil {
		return ts
	}
	for i := range s.cs {
		if s.cs[i].at > t {
			break
		}
		ts = append(ts, point{at: s.cs[i].at, rid: s.cs[i].rid, settings: s.cs[i].settings})
	}
	return ts
}

// point is a moment a fact changed, and the receipt that changed it.
type point struct {
	at       int64
	rid      string
	settings bool
}

// since finds when the run of pred that holds at t began: walking back
// over the change points of the facts pred reads (pts, at or before t),
// the earliest point from which pred held without a break. It returns
// that point (ok false when pred does not hold at t) and whether pred held
// from before every change kept (always true: never consented, say).
func since(pts []point, t int64, pred func(t int64) bool) (p point, fromStart, ok bool) {
	if !pred(t) {
		return point{}, false, false
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].at < pts[j].at })
	for i := len(pts) - 1; i >= 0; i-- {
		// Just before pts[i] the facts had their earlier values.
		if !pred(pts[i].at - 1) {
			return pts[i], false, true
		}
	}
	return point{}, true, true
}

// The reasons a decided push's own decision refused it, that name the
// user's consent or the suspension (fail-closed reasons, which say nothing
// about consent, are not among them).
func consentReason(r consent.Reason) bool {
	switch r {
	case consent.ReasonOptedOut, consent.ReasonMinorNoGuardian, consent.ReasonSuspended,
		consent.ReasonChannelRefused, consent.ReasonRestricted, consent.ReasonErased:
		return true
	}
	return false
}
