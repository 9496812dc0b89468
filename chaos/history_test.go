package chaos_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/recguard/recguard/consent"
)

// Op is one change a writer asked for: personalization off (an opt-out) or
// on, for one user, and what came of it.
type Op struct {
	Inst     string
	User     string
	Off      bool // true: opt-out (personalization off); false: opt-in
	Invoke   time.Time
	Complete time.Time
	// Acked: the change was acknowledged (no error). An op that is not
	// acknowledged may or may not have taken effect.
	Acked bool
	Err   string
	// Hash is the acknowledged change's receipt hash; empty for a no-op
	// (nothing written) or an op not acknowledged.
	Hash    string
	Version uint64
}

// Answer is one decision an instance gave.
type Answer struct {
	Inst         string
	User         string
	Start, End   time.Time
	Personalized bool
	Reason       consent.Reason
	Err          string
}

// failClosed reports whether the answer is a fail-closed one: the instance
// could not confirm the user's state and said so.
func (a *Answer) failClosed() bool {
	switch a.Reason {
	case consent.ReasonUnverified, consent.ReasonUnavailable, consent.ReasonDataLoss, consent.ReasonUnknown:
		return !a.Personalized
	}
	return false
}

// recorder collects one goroutine's ops and answers without locks; History
// merges them when the workload stops.
type recorder struct {
	ops     []Op
	answers []Answer
}

// History is everything a trial's workload asked and was told, plus the
// fault's schedule.
type History struct {
	Ops     []Op
	Answers []Answer
}

// merge builds a history from recorders, each sorted by start time.
func merge(recs []*recorder) *History {
	h := &History{}
	for _, r := range recs {
		h.Ops = append(h.Ops, r.ops...)
		h.Answers = append(h.Answers, r.answers...)
	}
	sort.Slice(h.Ops, func(i, j int) bool { return h.Ops[i].Invoke.Before(h.Ops[j].Invoke) })
	sort.Slice(h.Answers, func(i, j int) bool { return h.Answers[i].Start.Before(h.Answers[j].Start) })
	return h
}

// byUser returns each user's ops in invocation order. A user's ops never
// overlap in time: one writer owns each user.
func (h *History) byUser() map[string][]Op {
	m := map[string][]Op{}
	for _, o := range h.Ops {
		m[o.User] = append(m[o.User], o)
	}
	return m
}

// Acked counts the acknowledged ops, and the acknowledged opt-outs.
func (h *History) Acked() (all, optOuts int) {
	for _, o := range h.Ops {
		if o.Acked {
			all++
			if o.Off {
				optOuts++
			}
		}
	}
	return all, optOuts
}

// Violation is a personalized answer given after the user's opt-out was
// acknowledged, with no opt-in asked for since.
type Violation struct {
	Answer Answer
	OptOut Op
}

func (v Violation) String() string {
	return fmt.Sprintf("%s answered personalized=true for %s at %s (reason %v), %v after the opt-out acknowledged to %s at %s",
		v.Answer.Inst, v.Answer.User, v.Answer.Start.Format("15:04:05.000000"), v.Answer.Reason,
		v.Answer.Start.Sub(v.OptOut.Complete), v.OptOut.Inst, v.OptOut.Complete.Format("15:04:05.000000"))
}

// Violations checks property (a): no instance answers personalized=true for
// a user after an opt-out of theirs was acknowledged (the answer started
// after the acknowledgement), unless an opt-in of theirs was asked for
// (acknowledged or not) after that opt-out and before the answer ended.
func (h *History) Violations() []Violation {
	users := h.byUser()
	var out []Violation
	for _, a := range h.Answers {
		if !a.Personalized {
			continue
		}
		ops := users[a.User]
		// The last acknowledged opt-out that completed before the answer
		// started.
		k := -1
		for i := range ops {
			if ops[i].Invoke.After(a.Start) {
				break
			}
			if ops[i].Acked && ops[i].Off && ops[i].Complete.Before(a.Start) {
				k = i
			}
		}
		if k < 0 {
			continue
		}
		released := false
		for j := k + 1; j < len(ops); j++ {
			if !ops[j].Invoke.Before(a.End) {
				break
			}
			if !ops[j].Off {
				released = true
				break
			}
		}
		if !released {
			out = append(out, Violation{Answer: a, OptOut: ops[k]})
		}
	}
	return out
}

// Truth is what the store holds for one user after the trial.
type Truth struct {
	Off    bool
	Hashes map[string]bool // receipt hashes
}

// Loss is an acknowledged change the store no longer reflects.
type Loss struct {
	Op     Op
	Detail string
}

func (l Loss) String() string {
	what := "opt-in"
	if l.Op.Off {
		what = "opt-out"
	}
	return fmt.Sprintf("%s of %s acknowledged to %s at %s (version %d): %s",
		what, l.Op.User, l.Op.Inst, l.Op.Complete.Format("15:04:05.000000"), l.Op.Version, l.Detail)
}

// Lost checks property (b) against the store's truth: every acknowledged
// change's receipt is kept, and each user's final state is the value of
// their last acknowledged change or of a change asked for after it. Users
// missing from truth count as holding nothing.
func (h *History) Lost(truth map[string]Truth) []Loss {
	var out []Loss
	for u, ops := range h.byUser() {
		tr := truth[u]
		last := -1
		for i, o := range ops {
			if !o.Acked {
				continue
			}
			last = i
			if o.Hash != "" && !tr.Hashes[o.Hash] {
				out = append(out, Loss{Op: o, Detail: "its receipt is gone"})
			}
		}
		allowed := map[bool]bool{}
		if last < 0 {
			allowed[false] = true // never acknowledged anything: the initial state
			for _, o := range ops {
				allowed[o.Off] = true
			}
		} else {
			for _, o := range ops[last:] {
				allowed[o.Off] = true
			}
		}
		if !allowed[tr.Off] {
			o := ops[last]
			out = append(out, Loss{Op: o, Detail: fmt.Sprintf("the store says personalization_off=%v", tr.Off)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Op.Complete.Before(out[j].Op.Complete) })
	return out
}

// LostOptOuts counts the distinct acknowledged opt-outs among losses.
func LostOptOuts(ls []Loss) int {
	seen := map[string]bool{}
	for _, l := range ls {
		if l.Op.Off {
			seen[l.Op.User+"@"+l.Op.Complete.String()] = true
		}
	}
	return len(seen)
}

// LostOps counts the distinct acknowledged ops among losses.
func LostOps(ls []Loss) int {
	seen := map[string]bool{}
	for _, l := range ls {
		seen[l.Op.User+"@"+l.Op.Complete.String()] = true
	}
	return len(seen)
}

// Window is what one instance answered around a fault.
type Window struct {
	// FailClosed is how long after the fault started the instance gave its
	// last trusted answer (the start of the last answer that was not fail
	// closed, before the heal); -1 when it never failed closed during the
	// fault (no fail-closed answer followed its last trusted one).
	FailClosed time.Duration
	// Recover is how long after the heal the instance gave its last
	// fail-closed answer; 0 when it gave none; -1 when no trusted answer
	// followed it (it did not recover while answers were recorded).
	Recover time.Duration
	// Answers counts the instance's answers during the fault and after it.
	During, After int
	// FailedClosed counts fail-closed answers during the fault.
	FailedClosed int
}

// Window measures property (c) and (d) for instance inst: the fault started
// at start and healed at heal. Only answers about users in only count when
// only is not nil.
func (h *History) Window(inst string, start, heal time.Time, only map[string]bool) Window {
	w := Window{FailClosed: -1, Recover: 0}
	lastTrusted := start
	closedAfter := false
	var lastClosed time.Time
	trustedAfterClosed := false
	for i := range h.Answers {
		a := &h.Answers[i]
		if a.Inst != inst || a.Start.Before(start) || only != nil && !only[a.User] {
			continue
		}
		if a.Start.Before(heal) {
			w.During++
			if a.failClosed() {
				w.FailedClosed++
				closedAfter = true
			} else {
				lastTrusted = a.Start
				closedAfter = false
			}
			continue
		}
		w.After++
		if a.failClosed() {
			lastClosed = a.Start
			trustedAfterClosed = false
		} else {
			trustedAfterClosed = true
		}
	}
	if closedAfter {
		w.FailClosed = lastTrusted.Sub(start)
	}
	switch {
	case lastClosed.IsZero():
		w.Recover = 0
	case !trustedAfterClosed:
		w.Recover = -1
	default:
		w.Recover = lastClosed.Sub(heal)
	}
	return w
}

// Stats is a few order statistics of durations.
type Stats struct {
	N             int
	Min, P50, Max time.Duration
}

func statsOf(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return Stats{N: len(s), Min: s[0], P50: s[len(s)/2], Max: s[len(s)-1]}
}

func (s Stats) String() string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return ms(s.Max)
	}
	return fmt.Sprintf("%s / %s / %s", ms(s.Min), ms(s.P50), ms(s.Max))
}

func ms(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

// table collects one row per trial and prints them as a Markdown table at
// the end of a test.
type table struct {
	mu   sync.Mutex
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, cells)
}

func (t *table) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := "\n| " + strings.Join(t.head, " | ") + " |\n|" + strings.Repeat("---|", len(t.head)) + "\n"
	for _, r := range t.rows {
		s += "| " + strings.Join(r, " | ") + " |\n"
	}
	return s
}
