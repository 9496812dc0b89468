package audit

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// pEvent is one event of a simulated user: the groups it counts in and its
// mode (0 personalized, 1 non-personalized).
type pEvent struct {
	groups uint64
	mode   int
}

// pUsers are simulated users, each a list of events.
type pUsers [][]pEvent

// classes gathers the users into UserClasses as the engine would: Any the
// union of their events' groups, All the intersection, Modes the modes
// seen.
func (us pUsers) classes() []UserClass {
	var c ClassCounter
	for _, evs := range us {
		var anyG, allG uint64 = 0, ^uint64(0)
		var modes uint8
		for _, e := range evs {
			anyG |= e.groups
			allG &= e.groups
			modes |= 1 << e.mode
		}
		c.Add(anyG, allG, modes)
	}
	return c.Classes()
}

// populations lists the released populations of a report under sup: per
// population, per user, whether the user has an event in it (by event:
// inPop(user, event)).
func (us pUsers) populations(ng int, sup Suppression, parity bool) (names []string, in []func(e pEvent) bool) {
	for g := range ng {
		if !sup.Groups[g] {
			names = append(names, fmt.Sprintf("g%d", g))
			in = append(in, func(e pEvent) bool { return e.groups&(1<<g) != 0 })
		}
	}
	if parity && !sup.Parity {
		names = append(names, "personalized", "non_personalized", "everyone")
		in = append(in,
			func(e pEvent) bool { return e.mode == 0 },
			func(e pEvent) bool { return e.mode == 1 },
			func(e pEvent) bool { return true })
	}
	return names, in
}

// checkRule asserts, user by user, what SuppressForDifferencing promises:
// every released population has at least floor users, and for every two,
// the users with an event in one and not in the other number 0 or at least
// floor.
func (us pUsers) checkRule(t *testing.T, ng, floor int, sup Suppression, parity bool) {
	t.Helper()
	for _, v := range us.violations(ng, floor, sup, parity) {
		t.Error(v)
	}
}

func (us pUsers) violations(ng, floor int, sup Suppression, parity bool) []string {
	var out []string
	names, in := us.populations(ng, sup, parity)
	count := func(f func(e pEvent) bool) int {
		n := 0
		for _, evs := range us {
			for _, e := range evs {
				if f(e) {
					n++
					break
				}
			}
		}
		return n
	}
	for a := range in {
		if n := count(in[a]); n < floor {
			out = append(out, fmt.Sprintf("released %s has %d users, under the floor %d", names[a], n, floor))
		}
		for b := range in {
			if a == b {
				continue
			}
			d := count(func(e pEvent) bool { return in[a](e) && !in[b](e) })
			back := count(func(e pEvent) bool { return in[b](e) && !in[a](e) })
			if d > 0 && d < floor && back < floor {
				out = append(out, fmt.Sprintf("released %s and %s: %d users have events in the first and not the second, %d the other way (floor %d)", names[a], names[b], d, back, floor))
			}
		}
	}
	return out
}

// userLevel makes n users with one event each (in mode) whose groups are
// those of mask.
func userLevel(n int, mask uint64, mode int) pUsers {
	us := make(pUsers, n)
	for i := range us {
		us[i] = []pEvent{{groups: mask, mode: mode}}
	}
	return us
}

// bothModes makes n users with two events whose groups are those of mask,
// one in each mode.
func bothModes(n int, mask uint64) pUsers {
	us := make(pUsers, n)
	for i := range us {
		us[i] = []pEvent{{groups: mask}, {groups: mask, mode: 1}}
	}
	return us
}

// TestPrivacyDifferencingVIPAttack is the attack: "*" and "!loyalty:vip"
// are each large, and their difference is the 30 VIPs, whose own group is
// suppressed. One of the two must go, and it is not the reference.
func TestPrivacyDifferencingVIPAttack(t *testing.T) {
	const (
		all    = 1 << 0 // "*", the reference
		notVIP = 1 << 1 // "!loyalty:vip"
		vip    = 1 << 2 // "loyalty:vip"
	)
	var us pUsers
	us = append(us, bothModes(970, all|notVIP)...)
	us = append(us, bothModes(30, all|vip)...)
	names := []string{"all", "not_vip", "vip"}

	// The attack as it stands today: the VIPs' click count comes back to
	// the unit from the two reported groups. Every VIP clicked, half of
	// the others did.
	clicks := func(mask uint64) (x, n int) {
		for i, evs := range us {
			if evs[0].groups&mask != 0 {
				n++
				if evs[0].groups&vip != 0 || i%2 == 0 {
					x++
				}
			}
		}
		return x, n
	}
	xa, na := clicks(all)
	xn, nn := clicks(notVIP)
	if xa-xn != 30 || na-nn != 30 {
		t.Fatalf("the attack's premise: %d clicks of %d events recovered", xa-xn, na-nn)
	}

	for _, parity := range []bool{false, true} {
		sup := SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: names, Reference: 0, Floor: 50, Parity: parity})
		if sup.Groups[0] || !sup.Groups[1] || !sup.Groups[2] {
			t.Fatalf("parity %v: suppressed %v, want not_vip and vip (the reference kept)", parity, sup.Groups)
		}
		if !strings.Contains(sup.Reasons[2], "fewer than 50 users") {
			t.Errorf("vip reason %q", sup.Reasons[2])
		}
		if !strings.Contains(sup.Reasons[1], "group all") || !strings.Contains(sup.Reasons[1], "fewer than 50 users") || strings.Contains(sup.Reasons[1], "30") {
			t.Errorf("not_vip reason %q: want the group it conflicts with, the floor, never the size", sup.Reasons[1])
		}
		if sup.Parity || sup.Reasons[0] != "" || sup.ParityReason != "" {
			t.Errorf("parity %v: %+v", parity, sup)
		}
		us.checkRule(t, 3, 50, sup, parity)
	}

	// Without "*" among the groups, the parity check's populations are
	// everyone: "!loyalty:vip" set against them gives the VIPs back.
	us = append(bothModes(970, 1), bothModes(30, 0)...)
	sup := SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: []string{"not_vip"}, Reference: 0, Floor: 50, Parity: true})
	if sup.Groups[0] == sup.Parity {
		t.Fatalf("!vip against the parity check's everyone: %+v, want exactly one suppressed", sup)
	}
	// The reference goes after the parity check.
	if !sup.Parity || !strings.Contains(sup.ParityReason, "group not_vip") {
		t.Errorf("want the parity check suppressed (the reference stays): %+v", sup)
	}
	us.checkRule(t, 1, 50, sup, true)
	// Without a parity check, "!vip" alone is safe.
	sup = SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: []string{"not_vip"}, Reference: 0, Floor: 50})
	if sup.Groups[0] {
		t.Errorf("a lone group suppressed: %+v", sup)
	}
}

// TestPrivacyDifferencingComplements: a group and its complement, and nested
// groups, are fine when every difference is large, and caught when one is
// small; a group inside another (difference empty one way) is fine.
func TestPrivacyDifferencingComplements(t *testing.T) {
	const floor = 50
	for _, c := range []struct {
		name    string
		users   pUsers
		groups  []string
		ref     int
		want    []bool
		wantWhy map[int]string
	}{{
		// x (100 users) and !x (900), "*": every difference is 100 or 900.
		name:   "large complement",
		users:  append(userLevel(100, 0b101, 0), userLevel(900, 0b110, 0)...),
		groups: []string{"all", "not_x", "x"},
		want:   []bool{false, false, false},
	}, {
		// gold (60) inside loyal (100): loyal \ gold is 40 users.
		name:    "nested, small difference",
		users:   append(append(userLevel(60, 0b111, 0), userLevel(40, 0b011, 0)...), userLevel(500, 0b001, 0)...),
		groups:  []string{"all", "loyal", "gold"},
		want:    []bool{false, false, true},
		wantWhy: map[int]string{2: "group loyal"},
	}, {
		// The same with the reference the smaller group: the other one goes.
		name:    "nested, reference kept",
		users:   append(append(userLevel(60, 0b111, 0), userLevel(40, 0b011, 0)...), userLevel(500, 0b001, 0)...),
		groups:  []string{"all", "loyal", "gold"},
		ref:     2,
		want:    []bool{false, true, false},
		wantWhy: map[int]string{1: "group gold"},
	}, {
		// Identical groups: no difference at all.
		name:   "identical",
		users:  userLevel(80, 0b11, 0),
		groups: []string{"a", "b"},
		want:   []bool{false, false},
	}, {
		// Overlapping, neither inside the other, one side small: a \ b is
		// 10 users but b \ a is 70, so a - b mixes the 10 with the 70.
		name:   "overlap, the other side large",
		users:  append(append(userLevel(10, 0b01, 0), userLevel(100, 0b11, 0)...), userLevel(70, 0b10, 0)...),
		groups: []string{"a", "b"},
		want:   []bool{false, false},
	}, {
		// Both sides small: a - b is the 10 minus the 20.
		name:   "overlap, both sides small",
		users:  append(append(userLevel(10, 0b01, 0), userLevel(100, 0b11, 0)...), userLevel(20, 0b10, 0)...),
		groups: []string{"a", "b"},
		want:   []bool{false, true},
	}, {
		name:   "under the floor",
		users:  append(userLevel(49, 0b11, 0), userLevel(200, 0b01, 0)...),
		groups: []string{"all", "few"},
		want:   []bool{false, true},
		wantWhy: map[int]string{
			1: "fewer than 50 users",
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			sup := SuppressForDifferencing(DifferencingInput{Classes: c.users.classes(), Names: c.groups, Reference: c.ref, Floor: floor})
			for g := range c.want {
				if sup.Groups[g] != c.want[g] {
					t.Fatalf("suppressed %v, want %v (%q)", sup.Groups, c.want, sup.Reasons)
				}
				if sup.Groups[g] != (sup.Reasons[g] != "") {
					t.Errorf("group %d: suppressed %v, reason %q", g, sup.Groups[g], sup.Reasons[g])
				}
			}
			for g, frag := range c.wantWhy {
				if !strings.Contains(sup.Reasons[g], frag) {
					t.Errorf("reason %q lacks %q", sup.Reasons[g], frag)
				}
			}
			c.users.checkRule(t, len(c.groups), floor, sup, false)
		})
	}
}

// TestPrivacyDifferencingEventAttributes: with a segment over the events'
// attributes a user may be on both sides. "*" against "device:ios" differs
// by the users with an event not on iOS, known exactly; two such segments
// with users on both sides are undecided and treated as unsafe.
func TestPrivacyDifferencingEventAttributes(t *testing.T) {
	const floor = 50
	// 200 users on iOS only, 30 with one event on Android too: "*" \ ios
	// is those 30.
	var us pUsers
	us = append(us, userLevel(200, 0b11, 0)...)
	for range 30 {
		us = append(us, []pEvent{{groups: 0b11}, {groups: 0b01}})
	}
	sup := SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: []string{"all", "ios"}, Floor: floor})
	if !sup.Groups[1] || sup.Groups[0] {
		t.Fatalf("all vs ios with 30 users off iOS: %+v", sup)
	}
	us.checkRule(t, 2, floor, sup, false)
	// With 60 such users the difference is large: both stay.
	for range 30 {
		us = append(us, []pEvent{{groups: 0b11}, {groups: 0b01}})
	}
	sup = SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: []string{"all", "ios"}, Floor: floor})
	if sup.Groups[0] || sup.Groups[1] {
		t.Fatalf("all vs ios with 60 users off iOS: %+v", sup)
	}

	// Undecided: "ios" and "ios | vip" where the users have events of
	// both kinds; nobody is in one and not the other, but the classes
	// cannot tell, so one is suppressed (conservative, never unsafe).
	us = nil
	for range 100 {
		us = append(us, []pEvent{{groups: 0b011}, {groups: 0b100}})
	}
	sup = SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: []string{"ios", "ios_or_vip", "other"}, Floor: floor})
	if !sup.Groups[0] && !sup.Groups[1] {
		t.Errorf("undecided pair kept: %+v", sup)
	}
	us.checkRule(t, 3, floor, sup, false)
}

// TestPrivacyDifferencingParity: the parity check's populations take part, and
// the check is suppressed as one unit when it alone conflicts.
func TestPrivacyDifferencingParity(t *testing.T) {
	const floor = 50
	// 500 users personalized only, 40 with a non-personalized event too:
	// the non-personalized population is under the floor.
	var us pUsers
	us = append(us, userLevel(500, 0b1, 0)...)
	for range 40 {
		us = append(us, []pEvent{{groups: 0b1}, {groups: 0b1, mode: 1}})
	}
	sup := SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: []string{"all"}, Floor: floor, Parity: true})
	if !sup.Parity || !strings.Contains(sup.ParityReason, "non-personalized") || sup.Groups[0] {
		t.Fatalf("parity with 40 non-personalized users: %+v", sup)
	}
	us.checkRule(t, 1, floor, sup, true)
	// 100 of them: the parity check stays.
	for range 60 {
		us = append(us, []pEvent{{groups: 0b1}, {groups: 0b1, mode: 1}})
	}
	sup = SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: []string{"all"}, Floor: floor, Parity: true})
	if sup.Parity || sup.Groups[0] {
		t.Fatalf("parity with 100 non-personalized users: %+v", sup)
	}
	us.checkRule(t, 1, floor, sup, true)
}

// TestPrivacyDifferencingRandom checks the rule user by user over random users
// and groups, user-level and event-level, and that with user-level groups
// nothing is suppressed without a real conflict.
func TestPrivacyDifferencingRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	diffSupp := 0 // groups suppressed for differencing: the test must meet some
	for iter := range 300 {
		ng := 1 + rng.IntN(6)
		floor := 1 + rng.IntN(40)
		nu := rng.IntN(400)
		eventLevel := iter%2 == 1
		parity := rng.IntN(2) == 0
		// Groups are unions of a few "atoms" the users hold, so that
		// groups nest and overlap as real segments do.
		atoms := make([]uint64, ng)
		for g := range atoms {
			atoms[g] = rng.Uint64() & 0xff
		}
		groupsOf := func(a uint64) uint64 {
			var m uint64
			for g, ga := range atoms {
				if a&ga != 0 || ga == 0 {
					m |= 1 << g
				}
			}
			return m
		}
		var us pUsers
		for range nu {
			// Skewed: some atoms are rare, making small differences.
			a := uint64(1) << (rng.IntN(8) * rng.IntN(2))
			if rng.IntN(3) == 0 {
				a |= 1 << rng.IntN(8)
			}
			var evs []pEvent
			for k := range 1 + rng.IntN(3) {
				ea := a
				if eventLevel && k > 0 {
					ea = 1 << rng.IntN(8)
				}
				evs = append(evs, pEvent{groups: groupsOf(ea), mode: rng.IntN(10) / 9})
			}
			us = append(us, evs)
		}
		names := make([]string, ng)
		for g := range names {
			names[g] = fmt.Sprintf("g%d", g)
		}
		sup := SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: names, Reference: rng.IntN(ng), Floor: floor, Parity: parity})
		us.checkRule(t, ng, floor, sup, parity)
		for g := range ng {
			if sup.Groups[g] && !strings.HasPrefix(sup.Reasons[g], "it has") {
				diffSupp++
			}
		}
		if t.Failed() {
			t.Fatalf("iteration %d: %d groups, floor %d, %d users, event level %v, parity %v: %+v", iter, ng, floor, nu, eventLevel, parity, sup)
		}
		if !eventLevel {
			// Nothing suppressed for differencing when the report would
			// have been safe anyway.
			none := SuppressForDifferencing(DifferencingInput{Classes: us.classes(), Names: names, Reference: -1, Floor: floor, Parity: parity})
			allKept := Suppression{Groups: make([]bool, ng)}
			for g := range ng {
				allKept.Groups[g] = none.Groups[g] && strings.HasPrefix(none.Reasons[g], "it has fewer")
			}
			allKept.Parity = none.Parity && strings.Contains(none.ParityReason, "has fewer")
			if len(us.violations(ng, floor, allKept, parity)) == 0 {
				for g := range ng {
					if none.Groups[g] != allKept.Groups[g] {
						t.Fatalf("iteration %d: group %d suppressed (%q) though the report was safe", iter, g, none.Reasons[g])
					}
				}
				if none.Parity != allKept.Parity {
					t.Fatalf("iteration %d: parity suppressed (%q) though the report was safe", iter, none.ParityReason)
				}
			}
		}
	}
	if diffSupp < 50 {
		t.Errorf("only %d groups suppressed for differencing in 300 runs: the test does not exercise the rule", diffSupp)
	}
}

// TestPrivacyDifferencingEdges: no classes, empty classes, more groups than bits.
func TestPrivacyDifferencingEdges(t *testing.T) {
	sup := SuppressForDifferencing(DifferencingInput{Names: []string{"a", "b"}, Floor: 10, Parity: true})
	if !sup.Groups[0] || !sup.Groups[1] || !sup.Parity {
		t.Errorf("no users: %+v", sup)
	}
	sup = SuppressForDifferencing(DifferencingInput{Classes: []UserClass{{Any: 1, All: 1, Modes: 1, Users: 0}}, Names: []string{"a"}, Floor: 1})
	if !sup.Groups[0] {
		t.Errorf("a class of no users counted: %+v", sup)
	}
	sup = SuppressForDifferencing(DifferencingInput{Classes: []UserClass{{Any: 1, All: 1, Modes: 1, Users: 5}}, Names: []string{"a"}, Floor: 0})
	if sup.Groups[0] {
		t.Errorf("floor 0 counts as 1: %+v", sup)
	}
	names := make([]string, 65)
	for i := range names {
		names[i] = fmt.Sprint(i)
	}
	sup = SuppressForDifferencing(DifferencingInput{Classes: []UserClass{{Any: ^uint64(0), All: ^uint64(0), Modes: 1, Users: 100}}, Names: names, Floor: 10})
	if sup.Groups[63] || !sup.Groups[64] {
		t.Errorf("64 groups: %v", sup.Groups[60:])
	}
	var c ClassCounter
	c.Add(3, 1, 1)
	c.Add(3, 5, 1) // All outside Any is ignored
	c.Add(1, 1, 2)
	if got := c.Classes(); len(got) != 2 || got[0] != (UserClass{Any: 1, All: 1, Modes: 2, Users: 1}) || got[1] != (UserClass{Any: 3, All: 1, Modes: 1, Users: 2}) {
		t.Errorf("classes %+v", got)
	}
}
