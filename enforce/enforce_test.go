package enforce_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/enforce"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

// genSeeds are the histories every store is audited on.
var genSeeds = []uint64{1, 2, 3, 0x5eed, 0xfeed}

const (
	genUsers = 40
	genSpan  = 72 * time.Hour
)

// reportNow stamps the reports.
func reportNow() time.Time { return genBase.Add(30 * 24 * time.Hour) }

// newMemory returns an embedded store (no data directory) on clk.
func newMemory(tb testing.TB, clk *fakeClock) store.Store {
	tb.Helper()
	st, err := memory.Open(context.Background(), memory.Options{Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// newRedis returns a Redis store on the shared test server, in a key
// prefix of its own, on clk.
func newRedis(tb testing.TB, clk *fakeClock) store.Store {
	tb.Helper()
	c := redistest.Client(tb)
	st, err := rs.New(context.Background(), c, rs.Options{Prefix: redistest.Prefix(tb, c), Init: true, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

type storeMaker struct {
	name string
	open func(testing.TB, *fakeClock) store.Store
}

var storeMakers = []storeMaker{{"memory", newMemory}, {"redis", newRedis}}

// TestPlantedViolations is the property test of issue 14: for every seed,
// a randomized compliant history with planted violations of every kind,
// near misses inside the allowance and compliant entries just after a
// change lifted a restriction; the audit must find exactly the planted
// violations, with their evidence, on the embedded store and on Redis;
// with no allowance, the near misses too; in a window, those in it.
func TestPlantedViolations(t *testing.T) {
	for _, mk := range storeMakers {
		t.Run(mk.name, func(t *testing.T) {
			for _, seed := range genSeeds {
				t.Run(fmt.Sprint(seed), func(t *testing.T) {
					t.Parallel()
					h := generate(seed, genUsers, genSpan)
					clk := newFakeClock(genBase)
					st := mk.open(t, clk)
					ctx := context.Background()
					load(ctx, t, st, clk, h)

					rep, err := enforce.Run(ctx, st, enforce.Options{Now: reportNow})
					if err != nil {
						t.Fatal(err)
					}
					checkReport(t, rep, h, time.Time{}, time.Time{}, false)

					// With no allowance the near misses are violations.
					rep, err = enforce.Run(ctx, st, enforce.Options{Now: reportNow, Allowance: -1, SettingsAllowance: -1, Workers: 3})
					if err != nil {
						t.Fatal(err)
					}
					checkReport(t, rep, h, time.Time{}, time.Time{}, true)

					// A window: only the entries in [from, to) are audited.
					from := genBase.Add(genSpan / 4).Add(123 * time.Millisecond)
					to := genBase.Add(genSpan * 2 / 3)
					rep, err = enforce.Run(ctx, st, enforce.Options{Now: reportNow, From: from, To: to, Workers: 1})
					if err != nil {
						t.Fatal(err)
					}
					checkReport(t, rep, h, from, to, false)
				})
			}
		})
	}
}

// TestGeneratorPlantsEveryKind checks the generator itself: across the
// seeds every kind is planted, both with and without a receipt where the
// kind has both forms, with near misses of the kinds that have an
// allowance, on users that are erased too; a test that plants nothing
// would pass whatever the audit does.
func TestGeneratorPlantsEveryKind(t *testing.T) {
	byKind := map[enforce.Kind]int{}
	noReceipt := map[enforce.Kind]int{}
	settings := map[enforce.Kind]int{}
	missed := map[enforce.Kind]int{}
	erased, lifted, returned, again, decided := 0, 0, 0, 0, 0
	for _, seed := range genSeeds {
		h := generate(seed, genUsers, genSpan)
		returned += len(h.returned)
		for _, m := range h.misses {
			if m.decided {
				decided++
			}
		}
		for _, p := range h.plants {
			if p.cause != nil && p.cause.ch != nil && p.at.Sub(p.cause.at) <= enforce.DefaultAllowance {
				t.Errorf("seed %d: planted %s %s at %v only %v after its cause", seed, p.kind, p.user, p.at, p.at.Sub(p.cause.at))
			}
			if p.cause != nil && p.cause.ch != nil && p.cause.ch.Op == consent.OpSetPersonalization {
				for _, s := range h.steps {
					if s.ch != nil && s.ch.UserID == p.user && s.ch.Op == consent.OpSetPersonalization && !s.ch.Value && s.at.After(p.cause.at) && s.at.Before(p.at) {
						again++ // a repeated "no" between the cause and the entry
						break
					}
				}
			}
			byKind[p.kind]++
			switch {
			case p.cause == nil:
				noReceipt[p.kind]++
			case p.cause.ch == nil:
				settings[p.kind]++
			}
		}
		for _, m := range h.misses {
			missed[m.kind]++
		}
		erased += len(h.erased)
		for _, s := range h.steps {
			if s.ch != nil && !s.ch.Restrictive() && s.ch.Op != consent.OpDeclareTag {
				lifted++
			}
		}
		// The same seed gives the same history.
		if h2 := generate(seed, genUsers, genSpan); len(h2.entries) != len(h.entries) || len(h2.plants) != len(h.plants) {
			t.Fatalf("seed %d: not deterministic", seed)
		}
	}
	for _, k := range enforce.Kinds() {
		if byKind[k] < 3 {
			t.Errorf("kind %s planted %d times", k, byKind[k])
		}
	}
	for _, k := range []enforce.Kind{enforce.SensitiveWithoutConsent, enforce.ModeContradictsDecision, enforce.PushOnRefusedChannel, enforce.WhileSuspended} {
		if noReceipt[k] == 0 {
			t.Errorf("kind %s never planted without a receipt", k)
		}
	}
	for _, k := range []enforce.Kind{enforce.WhileSuspended, enforce.SensitiveWithoutConsent, enforce.MinorWithoutGuardian} {
		if settings[k] == 0 {
			t.Errorf("kind %s never planted after a settings change", k)
		}
	}
	for _, k := range []enforce.Kind{enforce.PersonalizedAfterOptOut, enforce.PushOnRefusedChannel, enforce.TargetedPushAfterOptOut,
		enforce.WhileSuspended, enforce.WhileRestricted, enforce.MinorWithoutGuardian, enforce.TagAfterDeletion, enforce.SensitiveWithoutConsent} {
		if missed[k] == 0 {
			t.Errorf("kind %s has no near miss", k)
		}
	}
	if erased == 0 || lifted < 50 || returned == 0 || again == 0 || decided == 0 {
		t.Errorf("%d erased users, %d lifting changes, %d users back after an erasure, %d violations after a repeated no, %d decided near misses",
			erased, lifted, returned, again, decided)
	}
	t.Logf("planted %v; without receipt %v; after settings %v; near misses %v; %d erased users", byKind, noReceipt, settings, missed, erased)
}

type vkey struct {
	kind enforce.Kind
	user string
	at   int64
	tag  string
}

// checkReport checks rep against what h planted, for the window [from,
// to) (zero: open). strict: run with no allowance (the near misses are
// violations).
func checkReport(t *testing.T, rep *enforce.Report, h *history, from, to time.Time, strict bool) {
	t.Helper()
	in := func(at time.Time) bool {
		return (from.IsZero() || !at.Before(from)) && (to.IsZero() || at.Before(to))
	}
	type wantV struct {
		plant
		lag time.Duration
	}
	want := map[vkey][]wantV{}
	wantByKind := map[enforce.Kind]int64{}
	add := func(p plant) {
		if !in(p.at) {
			return
		}
		w := wantV{plant: p}
		if p.cause != nil {
			w.lag = p.at.Sub(p.cause.at)
		}
		k := vkey{p.kind, p.user, p.at.UnixNano(), string(p.tag)}
		want[k] = append(want[k], w)
		wantByKind[p.kind]++
	}
	for _, p := range h.plants {
		add(p)
	}
	withinByKind := map[enforce.Kind]int64{}
	var withinAll int64
	var maxLag float64
	for _, m := range h.misses {
		switch {
		case strict:
			add(m.plant)
		case in(m.at):
			withinByKind[m.kind]++
			withinAll++
			maxLag = max(maxLag, float64(m.lag)/1e6)
			if m.decided {
				// Its own decision refused it: a violation all the same.
				p := m.plant
				p.cause = nil
				add(p)
			}
		}
	}

	got := map[vkey][]enforce.Violation{}
	for _, v := range rep.Violations {
		k := vkey{v.Kind, v.User, v.At.UnixNano(), ""}
		if v.Kind == enforce.TagAfterDeletion || v.Kind == enforce.SensitiveWithoutConsent {
			k.tag = v.Tag
		}
		got[k] = append(got[k], v)
	}
	var problems []string
	for k, ws := range want {
		gs := got[k]
		if len(gs) != len(ws) {
			problems = append(problems, fmt.Sprintf("missed: %s %s at %s tag %q (want %d, got %d)", k.kind, k.user, time.Unix(0, k.at).UTC().Format(time.RFC3339Nano), k.tag, len(ws), len(gs)))
			continue
		}
		for i, w := range ws {
			v := gs[i]
			rid, lag, rat := "", 0.0, time.Time{}
			if w.cause != nil {
				rid, lag, rat = w.cause.rid, float64(w.lag)/1e6, w.cause.at.UTC()
			}
			if v.ReceiptID != rid || v.LagMS != lag || !v.ReceiptAt.Equal(rat) {
				problems = append(problems, fmt.Sprintf("evidence of %s %s at %v: receipt %q at %v lag %v ms, want %q at %v lag %v ms",
					k.kind, k.user, v.At, v.ReceiptID, v.ReceiptAt, v.LagMS, rid, rat, lag))
			}
			if e := w.entry; !entryMatches(v, e) {
				problems = append(problems, fmt.Sprintf("entry of %s %s at %v: %+v, want from %+v", k.kind, k.user, v.At, v, e))
			}
			if v.Detail == "" || !v.At.Equal(w.at) || v.At.Location() != time.UTC {
				problems = append(problems, fmt.Sprintf("violation %s %s at %v: detail %q", k.kind, k.user, v.At, v.Detail))
			}
		}
	}
	for k, gs := range got {
		if _, ok := want[k]; !ok {
			problems = append(problems, fmt.Sprintf("false positive: %s %s at %s tag %q (%d): receipt %s: %s", k.kind, k.user,
				time.Unix(0, k.at).UTC().Format(time.RFC3339Nano), k.tag, len(gs), gs[0].ReceiptID, gs[0].Detail))
		}
	}
	sort.Strings(problems)
	for i, p := range problems {
		if i == 25 {
			t.Errorf("... and %d more", len(problems)-i)
			break
		}
		t.Error(p)
	}

	// Totals.
	var all int64
	for _, n := range wantByKind {
		all += n
	}
	if rep.Totals.All != all || len(rep.Violations) != int(all) || rep.ViolationsOmitted != 0 {
		t.Errorf("totals: all %d, listed %d, omitted %d; want %d", rep.Totals.All, len(rep.Violations), rep.ViolationsOmitted, all)
	}
	if !equalCounts(rep.Totals.ByKind, wantByKind) {
		t.Errorf("totals by kind %v, want %v", rep.Totals.ByKind, wantByKind)
	}
	var days, surfaces int64
	for i, d := range rep.Totals.ByDay {
		days += d.All
		if i > 0 && d.Day <= rep.Totals.ByDay[i-1].Day {
			t.Errorf("by_day not in order: %v", rep.Totals.ByDay)
		}
	}
	for _, m := range rep.Totals.BySurface {
		for _, n := range m {
			surfaces += n
		}
	}
	if days != all || surfaces != all {
		t.Errorf("by_day sums to %d, by_surface to %d, want %d", days, surfaces, all)
	}
	for i := 1; i < len(rep.Violations); i++ {
		if rep.Violations[i].At.Before(rep.Violations[i-1].At) {
			t.Fatalf("violations not oldest first at %d", i)
		}
	}

	// Within the allowance.
	if rep.WithinAllowance.All != withinAll || !equalCounts(rep.WithinAllowance.ByKind, withinByKind) || rep.WithinAllowance.MaxLagMS != maxLag {
		t.Errorf("within allowance: all %d by kind %v max lag %v ms; want %d %v %v ms", rep.WithinAllowance.All, rep.WithinAllowance.ByKind,
			rep.WithinAllowance.MaxLagMS, withinAll, withinByKind, maxLag)
	}

	// Counts of what was audited.
	var entries, exposures, pushes, provisions, unattributed, expDecided, pushDecided, receipts int64
	users := map[string]bool{}
	for _, e := range h.entries {
		if !in(e.At) {
			continue
		}
		entries++
		switch e.Kind {
		case store.LedgerProvision:
			provisions++
			continue
		case store.LedgerExposure:
			exposures++
			if e.Decided {
				expDecided++
			}
		case store.LedgerPush:
			pushes++
			if e.Decided {
				pushDecided++
			}
		}
		if back, ok := h.returned[e.UserID]; h.erased[e.UserID] || ok && e.At.Before(back) {
			unattributed++
		} else if !users[e.UserID] {
			users[e.UserID] = true
			receipts += int64(h.receipts[e.UserID])
		}
	}
	if rep.Entries != entries || rep.Exposures != exposures || rep.Pushes != pushes || rep.Provisions != provisions ||
		rep.Unattributed != unattributed || rep.Users != int64(len(users)) || rep.Receipts != receipts {
		t.Errorf("counts: entries %d exposures %d pushes %d provisions %d unattributed %d users %d receipts %d; want %d %d %d %d %d %d %d",
			rep.Entries, rep.Exposures, rep.Pushes, rep.Provisions, rep.Unattributed, rep.Users, rep.Receipts,
			entries, exposures, pushes, provisions, unattributed, len(users), receipts)
	}
	if rep.Coverage.ExposuresDecided != expDecided || rep.Coverage.PushesDecided != pushDecided {
		t.Errorf("coverage %+v, want %d exposures and %d pushes decided", rep.Coverage, expDecided, pushDecided)
	}
	var provUsers, provExports int64
	for _, p := range rep.ProvisionsBy {
		provExports += p.Exports
		provUsers += p.Users
	}
	if provExports != provisions {
		t.Errorf("provisions_by counts %d exports, want %d", provExports, provisions)
	}
	if unattributed == 0 && from.IsZero() {
		t.Errorf("seed %d: no erased user's entry: the test does not test erasure", h.seed)
	}
	if unattributed > 0 && !hasNote(rep, "name no user") {
		t.Errorf("no note about the unattributed entries: %q", rep.Notes)
	}
	if !rep.Generated.Equal(reportNow()) || !rep.From.Equal(from) || !rep.To.Equal(to) {
		t.Errorf("report stamped %v, window [%v, %v)", rep.Generated, rep.From, rep.To)
	}
	if t.Failed() {
		t.Logf("seed %d: %d plants, %d near misses, %d entries, %d users' steps", h.seed, len(h.plants), len(h.misses), len(h.entries), len(h.steps))
	}
}

// entryMatches reports whether v carries e's evidence.
func entryMatches(v enforce.Violation, e store.LedgerEntry) bool {
	reason, id := "", ""
	if e.Decided || e.Contradicted {
		reason = e.Reason.String()
	}
	if !e.DecisionID.IsZero() {
		id = e.DecisionID.String()
	}
	return v.Event == e.Kind.String() && v.Surface == e.Surface && v.Mode == e.Mode && v.Decided == e.Decided &&
		v.DecisionReason == reason && v.DecisionID == id && v.RecordVersion == e.RecordVersion && v.SettingsVersion == e.SettingsVersion &&
		v.Channel == e.Channel && v.Campaign == e.Campaign && !v.Logged.IsZero()
}

func equalCounts(a, b map[enforce.Kind]int64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func hasNote(rep *enforce.Report, s string) bool {
	for _, n := range rep.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// small is a hand-made history on the embedded store: one user who opted
// out at t0, on a fake clock.
func small(t *testing.T) (store.Store, *fakeClock, string) {
	t.Helper()
	clk := newFakeClock(genBase)
	st := newMemory(t, clk)
	ch := consent.SetPersonalization("alice", false)
	ch.At = genBase
	a, err := st.Apply(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	return st, clk, a.Receipt.ID
}

func exposureAt(user string, at time.Time) store.LedgerEntry {
	return store.LedgerEntry{Kind: store.LedgerExposure, UserID: user, At: at, Mode: store.ModePersonalized, Reason: consent.ReasonPersonalized, Surface: "sdk"}
}

func appendAll(t *testing.T, st store.Store, es ...store.LedgerEntry) {
	t.Helper()
	if err := st.(store.Ledger).AppendLedger(context.Background(), es); err != nil {
		t.Fatal(err)
	}
}

// TestWindowBounds: From <= At < To, to the nanosecond.
func TestWindowBounds(t *testing.T) {
	st, _, rid := small(t)
	from, to := genBase.Add(time.Hour), genBase.Add(2*time.Hour)
	appendAll(t, st, exposureAt("alice", from.Add(-time.Nanosecond)), exposureAt("alice", from),
		exposureAt("alice", to.Add(-time.Nanosecond)), exposureAt("alice", to), exposureAt("alice", to.Add(time.Hour)))
	rep, err := enforce.Run(context.Background(), st, enforce.Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 2 || len(rep.Violations) != 2 {
		t.Fatalf("%d entries, violations %+v; want the 2 in the window", rep.Entries, rep.Violations)
	}
	for i, at := range []time.Time{from, to.Add(-time.Nanosecond)} {
		v := rep.Violations[i]
		if v.Kind != enforce.PersonalizedAfterOptOut || v.User != "alice" || !v.At.Equal(at) || v.ReceiptID != rid || v.LagMS != float64(at.Sub(genBase))/1e6 {
			t.Errorf("violation %d: %+v; want at %v after %s", i, v, at, rid)
		}
	}
	// Open bounds: all five.
	rep, err = enforce.Run(context.Background(), st, enforce.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 5 || rep.Totals.All != 5 {
		t.Errorf("open window: %d entries, %d violations; want 5, 5", rep.Entries, rep.Totals.All)
	}
}

// TestErasedUnattributed: an erased user's entries, violations before the
// erasure included, name no one: counted, not checked.
func TestErasedUnattributed(t *testing.T) {
	st, _, _ := small(t)
	ctx := context.Background()
	appendAll(t, st, exposureAt("alice", genBase.Add(time.Minute)), exposureAt("bob", genBase.Add(time.Minute)))
	ch := consent.Erase("alice")
	ch.At = genBase.Add(time.Hour)
	if _, err := st.Apply(ctx, ch); err != nil {
		t.Fatal(err)
	}
	appendAll(t, st, exposureAt("alice", genBase.Add(2*time.Hour)))
	rep, err := enforce.Run(ctx, st, enforce.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Violations) != 0 || rep.Unattributed != 2 || rep.Users != 1 || rep.Entries != 3 || rep.Receipts != 0 {
		t.Fatalf("violations %+v, unattributed %d, users %d, entries %d, receipts %d; want none, 2, 1 (bob), 3, 0",
			rep.Violations, rep.Unattributed, rep.Users, rep.Entries, rep.Receipts)
	}
	if !hasNote(rep, "2 exposures and pushes name no user") {
		t.Errorf("notes %q", rep.Notes)
	}
}

// TestEmptyLedger: a ledger with no entries gives an empty, well-formed
// report.
func TestEmptyLedger(t *testing.T) {
	for _, mk := range storeMakers {
		t.Run(mk.name, func(t *testing.T) {
			st := mk.open(t, newFakeClock(genBase))
			rep, err := enforce.Run(context.Background(), st, enforce.Options{Now: reportNow})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Entries != 0 || rep.Users != 0 || rep.Totals.All != 0 || rep.Violations == nil || len(rep.Violations) != 0 {
				t.Fatalf("report %+v", rep)
			}
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{`"violations":[]`, `"by_kind":{}`, `"by_day":[]`, `"by_surface":{}`, `"provisions_by":[]`, `"drops":{}`,
				`"allowance":"2s"`, `"settings_allowance":"30s"`, `"entries":0`} {
				if !strings.Contains(string(b), want) {
					t.Errorf("JSON lacks %s: %s", want, b)
				}
			}
			if strings.Contains(string(b), "null") {
				t.Errorf("JSON has a null: %s", b)
			}
		})
	}
}

// TestInvalidOptions: options out of range are errors wrapping
// ErrInvalidOptions, before anything is read.
func TestInvalidOptions(t *testing.T) {
	st, _, _ := small(t)
	for name, o := range map[string]enforce.Options{
		"to before from":          {From: genBase, To: genBase.Add(-time.Second)},
		"to equals from":          {From: genBase, To: genBase},
		"allowance over 24h":      {Allowance: enforce.MaxAllowance + time.Nanosecond},
		"settings allowance 25h":  {SettingsAllowance: 25 * time.Hour},
		"both allowances too big": {Allowance: 48 * time.Hour, SettingsAllowance: 48 * time.Hour},
	} {
		rep, err := enforce.Run(context.Background(), st, o)
		if !errors.Is(err, enforce.ErrInvalidOptions) || rep != nil {
			t.Errorf("%s: %v, %v; want ErrInvalidOptions", name, rep, err)
		}
	}
	// The bounds themselves are valid.
	if _, err := enforce.Run(context.Background(), st, enforce.Options{Allowance: enforce.MaxAllowance, SettingsAllowance: enforce.MaxAllowance,
		From: genBase, To: genBase.Add(time.Nanosecond)}); err != nil {
		t.Errorf("allowances of exactly 24h: %v", err)
	}
}

// TestAllowanceOption: the allowance decides what is reported, and a
// negative one means none.
func TestAllowanceOption(t *testing.T) {
	st, _, _ := small(t)
	appendAll(t, st, exposureAt("alice", genBase.Add(2*time.Second)), exposureAt("alice", genBase.Add(5*time.Second)))
	for _, c := range []struct {
		allow          time.Duration
		listed, within int64
		name           string
	}{{0, 1, 1, "2s"}, {-1, 2, 0, "0s"}, {5 * time.Second, 0, 2, "5s"}, {4999 * time.Millisecond, 1, 1, "4.999s"}} {
		rep, err := enforce.Run(context.Background(), st, enforce.Options{Allowance: c.allow})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Totals.All != c.listed || rep.WithinAllowance.All != c.within || rep.Allowance != c.name {
			t.Errorf("allowance %v: %d listed, %d within, %q; want %d, %d, %q", c.allow, rep.Totals.All, rep.WithinAllowance.All, rep.Allowance, c.listed, c.within, c.name)
		}
	}
}

// TestMaxViolations: the list keeps the oldest; the totals count all.
func TestMaxViolations(t *testing.T) {
	st, _, _ := small(t)
	var es []store.LedgerEntry
	for i := 10; i > 0; i-- {
		es = append(es, exposureAt("alice", genBase.Add(time.Duration(i)*time.Minute)))
	}
	appendAll(t, st, es...)
	rep, err := enforce.Run(context.Background(), st, enforce.Options{MaxViolations: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.All != 10 || len(rep.Violations) != 3 || rep.ViolationsOmitted != 7 || !rep.Violations[0].At.Equal(genBase.Add(time.Minute)) ||
		!rep.Violations[2].At.Equal(genBase.Add(3*time.Minute)) || !hasNote(rep, "7 violations") {
		t.Errorf("totals %d, listed %d, omitted %d, first %v, notes %q", rep.Totals.All, len(rep.Violations), rep.ViolationsOmitted, rep.Violations, rep.Notes)
	}
}

// notLedger is a store without a ledger.
type notLedger struct{ store.Store }

func TestNotALedger(t *testing.T) {
	st, _, _ := small(t)
	_, err := enforce.Run(context.Background(), notLedger{st}, enforce.Options{})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("%v; want errors.ErrUnsupported", err)
	}
}

// hooked is a store whose Receipts calls a hook first.
type hooked struct {
	store.Store
	store.Ledger
	receipts func() error
}

func (h hooked) Receipts(ctx context.Context, user string) ([]consent.Receipt, error) {
	if err := h.receipts(); err != nil {
		return nil, err
	}
	return h.Store.Receipts(ctx, user)
}

// TestCancelled: a cancelled context ends the run with its error, before
// it starts and while the users are replayed; a store error ends it too.
func TestCancelled(t *testing.T) {
	st, _, _ := small(t)
	var es []store.LedgerEntry
	for i := 0; i < 2000; i++ {
		es = append(es, exposureAt(fmt.Sprintf("user-%d", i), genBase.Add(time.Minute)))
	}
	appendAll(t, st, es...)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if rep, err := enforce.Run(ctx, st, enforce.Options{}); !errors.Is(err, context.Canceled) || rep != nil {
		t.Errorf("cancelled before: %v, %v", rep, err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	h := hooked{Store: st, Ledger: st.(store.Ledger), receipts: func() error {
		calls++
		if calls == 10 {
			cancel()
		}
		return nil
	}}
	if rep, err := enforce.Run(ctx, h, enforce.Options{Workers: 1}); !errors.Is(err, context.Canceled) || rep != nil {
		t.Errorf("cancelled during: %v, %v", rep, err)
	}
	if calls >= 2000 {
		t.Errorf("the run read all %d users' receipts after its context ended", calls)
	}

	boom := errors.New("boom")
	h.receipts = func() error { return boom }
	if rep, err := enforce.Run(context.Background(), h, enforce.Options{}); !errors.Is(err, boom) || rep != nil {
		t.Errorf("store error: %v, %v", rep, err)
	}
	// The wrapper itself is fine.
	h.receipts = func() error { return nil }
	if rep, err := enforce.Run(context.Background(), h, enforce.Options{}); err != nil || rep.Users != 2000 {
		t.Errorf("through the wrapper: %v", err)
	}
}
