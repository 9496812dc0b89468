package chaos_test

import (
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
)

// The checker is tested on hand-made histories: a check that cannot see a
// planted violation proves nothing.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(msec int) time.Time { return t0.Add(time.Duration(msec) * time.Millisecond) }

func op(user string, off bool, invoke, complete int, acked bool, hash string) Op {
	return Op{Inst: "a", User: user, Off: off, Invoke: at(invoke), Complete: at(complete), Acked: acked, Hash: hash}
}

func ans(inst, user string, start int, personalized bool, r consent.Reason) Answer {
	return Answer{Inst: inst, User: user, Start: at(start), End: at(start + 1), Personalized: personalized, Reason: r}
}

func TestCheckViolations(t *testing.T) {
	h := &History{
		Ops: []Op{
			op("u", true, 10, 20, true, "h1"),   // acknowledged opt-out at 20
			op("u", false, 100, 110, false, ""), // opt-in asked at 100 (not acknowledged)
			op("v", true, 10, 20, false, ""),    // opt-out not acknowledged
		},
		Answers: []Answer{
			ans("b", "u", 15, true, consent.ReasonPersonalized),  // before the acknowledgement: fine
			ans("b", "u", 50, true, consent.ReasonPersonalized),  // VIOLATION
			ans("b", "u", 60, false, consent.ReasonOptedOut),     // fine
			ans("b", "u", 99, true, consent.ReasonPersonalized),  // ends at 100 = the opt-in's invoke: VIOLATION (not after)
			ans("b", "u", 105, true, consent.ReasonPersonalized), // the opt-in may have taken effect: fine
			ans("b", "v", 50, true, consent.ReasonPersonalized),  // v's opt-out was never acknowledged: fine
			ans("b", "w", 50, true, consent.ReasonPersonalized),  // no ops: fine
		},
	}
	vs := h.Violations()
	if len(vs) != 2 || !vs[0].Answer.Start.Equal(at(50)) || !vs[1].Answer.Start.Equal(at(99)) {
		t.Fatalf("violations = %v, want the answers at 50 and 99", vs)
	}
	if vs[0].String() == "" {
		t.Fatal("empty violation text")
	}
}

func TestCheckLost(t *testing.T) {
	h := &History{Ops: []Op{
		op("kept", true, 0, 1, true, "k1"),
		op("gone", true, 0, 1, true, "g1"),       // receipt missing, state reverted: lost
		op("doubt", true, 0, 1, true, "d1"),      // acknowledged opt-out
		op("doubt", false, 2, 3, false, ""),      // then an opt-in that failed: may or may not be there
		op("never", true, 0, 1, false, ""),       // never acknowledged: anything goes
		op("flip", false, 0, 1, true, "f1"),      // acknowledged opt-in, but the store says off
		op("noop", true, 0, 1, true, ""),         // acknowledged no-op: no receipt to look for
		op("twice", true, 0, 1, true, "t1"),      // an older receipt lost...
		op("twice", false, 2, 3, true, "t2"),     // ...while the newer one is there
		op("twice", true, 4, 5, false, "t3-bad"), // not acknowledged: not looked for
	}}
	truth := map[string]Truth{
		"kept":  {Off: true, Hashes: map[string]bool{"k1": true}},
		"gone":  {Off: false, Hashes: map[string]bool{}},
		"doubt": {Off: false, Hashes: map[string]bool{"d1": true}},
		"never": {Off: true},
		"flip":  {Off: true, Hashes: map[string]bool{"f1": true}},
		"noop":  {Off: true},
		"twice": {Off: true, Hashes: map[string]bool{"t2": true}},
	}
	ls := h.Lost(truth)
	got := map[string]int{}
	for _, l := range ls {
		got[l.Op.User]++
	}
	want := map[string]int{"gone": 2, "flip": 1, "twice": 1}
	if len(got) != len(want) {
		t.Fatalf("losses %v, want users %v", ls, want)
	}
	for u, n := range want {
		if got[u] != n {
			t.Fatalf("losses for %s: %d, want %d (all: %v)", u, got[u], n, ls)
		}
	}
	if n := LostOps(ls); n != 3 {
		t.Fatalf("LostOps = %d, want 3 (gone, flip, twice's first)", n)
	}
	if n := LostOptOuts(ls); n != 2 {
		t.Fatalf("LostOptOuts = %d, want 2", n)
	}
}

func TestCheckWindow(t *testing.T) {
	u, ok := consent.ReasonUnverified, consent.ReasonPersonalized
	h := &History{Answers: []Answer{
		ans("b", "x", 900, true, ok),                       // before the fault
		ans("b", "x", 1100, true, ok),                      // trusted during the lease
		ans("b", "x", 2300, true, ok),                      // last trusted: 1300 ms after the fault started at 1000
		ans("b", "x", 2400, false, u),                      // failed closed
		ans("b", "x", 3000, false, u),                      //
		ans("b", "x", 4000, false, u),                      // after the heal at 3500: last fail-closed at 4000
		ans("b", "x", 4100, true, ok),                      // recovered
		ans("c", "x", 2400, true, ok),                      // another instance
		ans("b", "x", 4200, false, consent.ReasonOptedOut), // a trusted restrictive answer
	}}
	w := h.Window("b", at(1000), at(3500), nil)
	if w.FailClosed != 1300*time.Millisecond || w.Recover != 500*time.Millisecond || w.During != 4 || w.After != 3 || w.FailedClosed != 2 {
		t.Fatalf("window = %+v, want FailClosed 1.3s, Recover 500ms, During 4, After 3, FailedClosed 2", w)
	}
	if w := h.Window("c", at(1000), at(3500), nil); w.FailClosed != -1 || w.Recover != 0 {
		t.Fatalf("instance c never failed closed: %+v", w)
	}
	stuck := &History{Answers: []Answer{ans("b", "x", 1500, false, u), ans("b", "x", 4000, false, consent.ReasonDataLoss)}}
	if w := stuck.Window("b", at(1000), at(3500), nil); w.FailClosed != 0 || w.Recover != -1 {
		t.Fatalf("an instance that never recovers: %+v, want FailClosed 0 and Recover -1", w)
	}
}
