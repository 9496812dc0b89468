package audit

import (
	"fmt"
	"math/bits"
	"slices"
)

// Differencing: a report shows each group's size and figures only when
// the group has at least MinGroupSize users, but two groups that are each
// large enough can still give away a small one by subtraction. With groups
// "*" (everyone) and "!loyalty:vip" (everyone but the 30 VIPs), the
// difference of their user counts is the number of VIPs, and the
// difference of their successes (rate x n) and of their n is the VIPs'
// click rate, to the unit: the 30-user group suppressed on its own comes
// back exactly. SuppressForDifferencing chooses the groups (and, as one
// unit, the parity check) to suppress so that no such pair is left.
//
// Populations. A report releases figures for these populations of events
// (each with its users):
//
//   - each group not suppressed: the events counted in it;
//   - when the parity check is reported: the personalized events, the
//     non-personalized events, and, as their sum can be formed from the two,
//     every event in the window ("everyone": complements such as "!x" are
//     differenced against it even when no group is "*").
//
// The rule. Every released population has at least floor users, and for
// every two released populations A and B, the users with an event in A and
// not in B, and those with an event in B and not in A, are not both under
// the floor unless both are none (A and B are the same users). When one
// side has floor users or more, figure(A) - figure(B) = figure(A\B) -
// figure(B\A) mixes them in and singles nobody out; when both are small
// (a group and its complement against everyone, "*" and "!vip"), it gives
// the small side away. The floor is the audit's MinGroupSize (after the
// privacy floor, see ApplyMinGroupSizeFloor).
//
// What it guarantees: no difference of two released figures (counts,
// sums, rates times n, means times n) describes fewer than floor users,
// among the populations of one report. For groups whose segments name only
// the users' facts (tags, flags) the users of A\B are counted exactly. For
// segments over the events' attributes (device:ios), a user may have
// events on both sides: a user all of whose events are in A and some not
// in B (or some in A, none in B) surely has an event in A\B; a user with
// some events in each is undecided, and a pair is kept only when the sure
// users already reach the floor or no user can have an event in A\B. That
// is conservative: it may suppress a group that was safe, never keep one
// that was not.
//
// Limits, which it does not claim to stop:
//
//   - Combinations of three or more populations: with A = B + C + S for
//     disjoint B, C and a small S, every pair differs by many users, yet
//     A - B - C gives away S. Spec authors should not list groups that
//     partition others; an auditor asking for such groups gets them.
//   - Figures across reports: two audits over windows a day apart, or
//     with a segment changed by one tag, can be subtracted. Each report is
//     checked on its own.
//   - The report's totals (events read, used, skipped, excluded, events
//     that matched no group) are event counts over everyone; subtracted
//     from a group's event count they give the event count (not the
//     outcomes) of the rest.
//   - That a group was suppressed for differencing says that some
//     difference was small (never which size).
//
// Cost: the users are given as classes of equal membership (UserClass,
// see ClassCounter), and the work is O(classes x sets in a class) plus at
// most (sets)^2 x floor steps, whatever the number of users.

// UserClass is a class of users with the same membership in an audit's
// populations, and how many users share it.
type UserClass struct {
	// Any has bit g set when at least one of the users' events in the
	// window counted in group g (the engine's userState.seen).
	Any uint64
	// All has bit g set when every one of the users' events in the window
	// counted in group g (events that matched no group included). For a
	// segment over users' facts only, the bit of All is the bit of Any.
	// Bits not in Any are ignored.
	All uint64
	// Modes has bit 0 set when some of the users' events in the window
	// were personalized and bit 1 when some were non-personalized (the
	// engine's userState.modes).
	Modes uint8
	// Users is how many users have this membership; a class of none is
	// ignored.
	Users int64
}

// ClassCounter gathers users into UserClasses: the engine calls Add once
// per user in the window who is not excluded, then Classes.
type ClassCounter struct {
	m map[UserClass]int64 // keyed with Users 0
}

// Add counts one user with these memberships.
func (c *ClassCounter) Add(anyGroups, allGroups uint64, modes uint8) {
	if c.m == nil {
		c.m = map[UserClass]int64{}
	}
	c.m[UserClass{Any: anyGroups, All: allGroups & anyGroups, Modes: modes}]++
}

// Classes returns the classes counted, in a fixed order.
func (c *ClassCounter) Classes() []UserClass {
	out := make([]UserClass, 0, len(c.m))
	for k, n := range c.m {
		k.Users = n
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b UserClass) int {
		switch {
		case a.Any != b.Any:
			return cmpU64(a.Any, b.Any)
		case a.All != b.All:
			return cmpU64(a.All, b.All)
		}
		return int(a.Modes) - int(b.Modes)
	})
	return out
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

// DifferencingInput is what SuppressForDifferencing needs.
type DifferencingInput struct {
	// Classes are the users in the window who are not excluded, by
	// membership.
	Classes []UserClass
	// Names are the groups' names, in spec order (at most MaxGroups); they
	// number the bits of UserClass.Any and All and name groups in reasons.
	Names []string
	// Reference is the index of the reference group in Names, kept as long
	// as suppressing others resolves the same conflicts (-1: none).
	Reference int
	// Floor is the smallest population released and the smallest
	// difference allowed between two: the spec's MinGroupSize (at least 1).
	Floor int
	// Parity says the report would show the parity check (both modes
	// present): its populations then take part.
	Parity bool
}

// Suppression is SuppressForDifferencing's answer.
type Suppression struct {
	// Groups says, per group in spec order, whether to suppress it;
	// Reasons why, in words for a Finding ("" for a kept group). A reason
	// never gives the size of the population it protects.
	Groups  []bool
	Reasons []string
	// Parity says whether to suppress the parity check, ParityReason why.
	Parity       bool
	ParityReason string
}

// Kinds of population besides the groups (set numbers after the groups).
const (
	popPersonalized = iota
	popNonPersonalized
	popEveryone
	popExtra
)

// set128 is a set of population numbers (groups 0..63, then the parity
// populations).
type set128 [2]uint64

func (s *set128) add(i int)     { s[i>>6] |= 1 << (i & 63) }
func (s set128) has(i int) bool { return s[i>>6]&(1<<(i&63)) != 0 }
func (s set128) and(t set128) set128 {
	return set128{s[0] & t[0], s[1] & t[1]}
}
func (s set128) andNot(t set128) set128 {
	return set128{s[0] &^ t[0], s[1] &^ t[1]}
}
func (s set128) not() set128 { return set128{^s[0], ^s[1]} }

// each calls f with every member, in increasing order.
func (s set128) each(f func(int)) {
	for w := range 2 {
		for m := s[w]; m != 0; m &= m - 1 {
			f(w<<6 | bits.TrailingZeros64(m))
		}
	}
}

// SuppressForDifferencing returns the groups, and whether the parity
// check, to suppress so that the report's released populations obey the
// rule above: each has at least in.Floor users, and no two differ by
// between 1 and in.Floor-1 users (either way).
//
// A group under the floor is suppressed first (as Run does). Then, while
// two released populations conflict, one unit is suppressed: a group, or
// the parity check (its three populations together). The unit in the most
// conflicts goes first; on a tie a group other than the reference goes
// before the parity check, which goes before the reference, and among
// groups the one with fewer users, then the later one in the spec. The
// result is deterministic, and it is a small set of suppressions (not
// always the smallest possible: that is a vertex cover).
func SuppressForDifferencing(in DifferencingInput) Suppression {
	ng := min(len(in.Names), 64)
	floor := int64(max(in.Floor, 1))
	out := Suppression{Groups: make([]bool, len(in.Names)), Reasons: make([]string, len(in.Names))}
	for g := ng; g < len(in.Names); g++ {
		out.Groups[g], out.Reasons[g] = true, "it is beyond the 64 groups an audit compares"
	}
	nsets := ng
	if in.Parity {
		nsets = ng + popExtra
	}
	parity := func(k int) int { return ng + k }

	// Per class, the populations with at least one of its users' events
	// (anyS) and with all of them (allS).
	type cls struct {
		anyS, allS set128
		users      int64
	}
	classes := make([]cls, 0, len(in.Classes))
	size := make([]int64, nsets)
	for _, c := range in.Classes {
		if c.Users <= 0 {
			continue
		}
		var mask uint64 = 1<<ng - 1
		if ng == 64 {
			mask = ^uint64(0)
		}
		k := cls{anyS: set128{c.Any & mask}, allS: set128{c.All & c.Any & mask}, users: c.Users}
		if in.Parity && c.Modes&3 != 0 {
			if c.Modes&1 != 0 {
				k.anyS.add(parity(popPersonalized))
				if c.Modes == 1 {
					k.allS.add(parity(popPersonalized))
				}
			}
			if c.Modes&2 != 0 {
				k.anyS.add(parity(popNonPersonalized))
				if c.Modes == 2 {
					k.allS.add(parity(popNonPersonalized))
				}
			}
			k.anyS.add(parity(popEveryone))
			k.allS.add(parity(popEveryone))
		}
		k.anyS.each(func(i int) { size[i] += c.Users })
		classes = append(classes, k)
	}

	// Units: groups 0..ng-1, and the parity check as unit ng.
	unitOf := func(set int) int { return min(set, ng) }
	nunits := ng
	if in.Parity {
		nunits = ng + 1
	}
	suppressed := make([]bool, nunits)
	name := func(set int) string {
		if set < ng {
			return "group " + in.Names[set]
		}
		switch set - ng {
		case popPersonalized:
			return "the personalized results of the parity check"
		case popNonPersonalized:
			return "the non-personalized results of the parity check"
		}
		return "everyone in the window (the parity check's two modes together)"
	}
	for s := range nsets {
		if size[s] >= floor {
			continue
		}
		u := unitOf(s)
		if suppressed[u] {
			continue
		}
		suppressed[u] = true
		if u == ng {
			out.Parity = true
			out.ParityReason = fmt.Sprintf("%s has fewer than %d users", name(s), floor)
		} else {
			out.Reasons[u] = fmt.Sprintf("it has fewer than %d users", floor)
		}
	}
	var released set128
	for s := range nsets {
		if !suppressed[unitOf(s)] {
			released.add(s)
		}
	}

	// lower[a][b]: users surely with an event in a and not in b (counted
	// up to the floor); upper[a]: the b for which some user may have one.
	lower := make([][]int64, nsets)
	upper := make([]set128, nsets)
	done := make([]set128, nsets)
	for a := range lower {
		lower[a] = make([]int64, nsets)
	}
	for _, k := range classes {
		notAll := k.allS.not().and(released)
		notAny := k.anyS.not().and(released)
		k.anyS.and(released).each(func(a int) {
			upper[a] = set128{upper[a][0] | notAll[0], upper[a][1] | notAll[1]}
			sure := notAny // some events in a, none in b
			if k.allS.has(a) {
				sure = notAll // every event in a, some not in b
			}
			sure.andNot(done[a]).each(func(b int) {
				lower[a][b] += k.users
				if lower[a][b] >= floor {
					done[a].add(b)
				}
			})
		})
	}
	// conflict reports whether a and b may differ by 1..floor-1 users in
	// all: each side of their difference may be under the floor and one
	// may be non-empty. When one side surely has floor users or more, the
	// difference of the two figures mixes them in and gives away no small
	// set (on its own: see the limits above).
	conflict := func(a, b int) bool {
		return lower[a][b] < floor && lower[b][a] < floor && (upper[a].has(b) || upper[b].has(a))
	}
	// pairs holds, per two units in conflict (both orders), the pair of
	// populations through which they conflict (for the reason).
	type edge struct{ a, b int } // populations: a of the first unit, b of the other
	pairs := map[[2]int]edge{}
	released.each(func(a int) {
		released.each(func(b int) {
			ua, ub := unitOf(a), unitOf(b)
			if ua >= ub || !conflict(a, b) {
				return
			}
			if _, ok := pairs[[2]int{ua, ub}]; !ok {
				pairs[[2]int{ua, ub}] = edge{a, b}
				pairs[[2]int{ub, ua}] = edge{b, a}
			}
		})
	})
	rank := func(u int) int { // lower goes first on a tie
		switch {
		case u == ng:
			return 1
		case u == in.Reference:
			return 2
		}
		return 0
	}
	for {
		degree := make([]int, nunits)
		for p := range pairs {
			if !suppressed[p[0]] && !suppressed[p[1]] {
				degree[p[0]]++
			}
		}
		best := -1
		for u := range nunits {
			if suppressed[u] || degree[u] == 0 {
				continue
			}
			if best < 0 || better(u, best, degree, rank, size, ng) {
				best = u
			}
		}
		if best < 0 {
			break
		}
		suppressed[best] = true
		// The reason names a population it conflicted with that stays (one
		// does: best had a conflict with a unit still released).
		var other edge
		for v := range nunits {
			if e, ok := pairs[[2]int{best, v}]; ok && !suppressed[v] {
				other = e
				break
			}
		}
		if best == ng {
			out.Parity = true
			out.ParityReason = fmt.Sprintf("set against %s, %s would give away the figures of fewer than %d users (those in one and not the other)",
				name(other.b), name(other.a), floor)
		} else {
			out.Reasons[best] = fmt.Sprintf("set against %s, it would give away the figures of fewer than %d users (those in one and not the other)",
				name(other.b), floor)
		}
	}
	for g := range ng {
		out.Groups[g] = suppressed[g]
	}
	return out
}

// better says whether unit u should be suppressed before unit v.
func better(u, v int, degree []int, rank func(int) int, size []int64, ng int) bool {
	if degree[u] != degree[v] {
		return degree[u] > degree[v]
	}
	if rank(u) != rank(v) {
		return rank(u) < rank(v)
	}
	if u < ng && v < ng && size[u] != size[v] {
		return size[u] < size[v]
	}
	return u > v
}
