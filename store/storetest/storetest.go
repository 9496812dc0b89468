package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// newStoreFunc returns a fresh, empty store for one subtest and arranges its
// cleanup with t.Cleanup.
type newStoreFunc = func(t *testing.T) store.Store

// Run runs the whole conformance suite against the stores newStore returns.
// newStore is called once per subtest, from parallel subtests, and must
// return a fresh, empty store that shares no state with the others; see the
// package documentation for what the suite expects beyond the Store
// contract.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Option) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.raw != nil {
		plain := newStore
		newStore = func(t *testing.T) store.Store {
			s := plain(t)
			raws.Store(s, o.raw)
			t.Cleanup(func() { raws.Delete(s) })
			return s
		}
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, newStore)
		})
	}
}

// Option adds to what the suite can check.
type Option func(*options)

type options struct {
	raw func(tb testing.TB, s store.Store) []byte
}

// raws maps each store under test made by a Run with WithRaw to its raw
// reader.
var raws sync.Map

// WithRaw gives the suite a way to read everything a store holds, as raw
// bytes (every key and stream of a Redis keyspace; an embedded store's data
// file after Compact): the Erasure group scans it for an erased user's
// personal content.
func WithRaw(raw func(tb testing.TB, s store.Store) []byte) Option {
	return func(o *options) { o.raw = raw }
}

// groups are the behaviours the suite checks, one t.Run group each.
var groups = []struct {
	name string
	run  func(t *testing.T, newStore newStoreFunc)
}{
	{"Operations", testOperations},
	{"NoOps", testNoOps},
	{"Validation", testValidation},
	{"Suppression", testSuppression},
	{"Erasure", testErasure},
	{"Restrict", testRestrict},
	{"Truncation", testTruncation},
	{"RequestCounts", testRequestCounts},
	{"NotFound", testNotFound},
	{"Changelog", testChangelog},
	{"Shards", testShards},
	{"Settings", testSettings},
	{"Retention", testRetention},
	{"Concurrency", testConcurrency},
	{"Close", testClose},
	{"Context", testContext},
	{"Optional", testOptional},
	{"Numbers", testNumbers},
	{"Checkpoints", testCheckpoints},
	{"Outcomes", testOutcomes},
	{"Ledger", testLedger},
	{"Timeline", testTimeline},
	{"KeysAndRights", testKeysAndRights},
	{"Regression", testRegression},
	{"Writes", testWrites},
}

// parallel runs fn as a parallel subtest named name with a fresh store.
func parallel(t *testing.T, name string, newStore newStoreFunc, fn func(t *testing.T, s store.Store)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		fn(t, newStore(t))
	})
}

// ---- comparison ----

// encode returns v's JSON encoding, the suite's notion of equality.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(fmt.Sprintf("unencodable %T: %v", v, err))
	}
	return b
}

func equal(a, b any) bool { return bytes.Equal(encode(a), encode(b)) }

// show renders v for a failure message.
func show(v any) string {
	b, err := json.MarshalIndent(v, "      ", "  ")
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// checkEqual reports an error when got and want differ, printing both.
func checkEqual(tb testing.TB, what string, got, want any) bool {
	tb.Helper()
	if equal(got, want) {
		return true
	}
	tb.Errorf("%s differs\n got: %s\nwant: %s", what, show(got), show(want))
	return false
}

// checkErr reports an error unless err wraps want.
func checkErr(tb testing.TB, what string, err, want error) bool {
	tb.Helper()
	if !errors.Is(err, want) {
		tb.Errorf("%s: got error %v, want one wrapping %q", what, err, want)
		return false
	}
	return true
}

// checkFieldErr is checkErr plus the requirement that err is a
// *consent.FieldError.
func checkFieldErr(tb testing.TB, what string, err, want error) bool {
	tb.Helper()
	if !checkErr(tb, what, err, want) {
		return false
	}
	var fe *consent.FieldError
	if !errors.As(err, &fe) {
		tb.Errorf("%s: error %v (%T) is not a *consent.FieldError", what, err, err)
		return false
	}
	return true
}

func describe(ch consent.Change) string {
	return string(encode(ch))
}

// ---- must helpers ----

func mustApply(tb testing.TB, s store.Store, ch consent.Change) store.Applied {
	tb.Helper()
	a, err := s.Apply(tb.Context(), ch)
	if err != nil {
		tb.Fatalf("Apply(%s): %v", describe(ch), err)
	}
	return a
}

// mustApplyEffective applies ch and fails unless it wrote a receipt.
func mustApplyEffective(tb testing.TB, s store.Store, ch consent.Change) store.Applied {
	tb.Helper()
	a := mustApply(tb, s, ch)
	if a.Receipt == nil {
		tb.Fatalf("Apply(%s): got no receipt, want an effective change", describe(ch))
	}
	return a
}

// getRecord returns the user's record and whether the store has seen the
// user; any error other than store.ErrNotFound is fatal.
func getRecord(tb testing.TB, s store.Store, userID string) (consent.Record, bool) {
	tb.Helper()
	r, err := s.Get(tb.Context(), userID)
	if errors.Is(err, store.ErrNotFound) {
		return r, false
	}
	if err != nil {
		tb.Fatalf("Get(%q): %v", userID, err)
	}
	return r, true
}

func mustGet(tb testing.TB, s store.Store, userID string) consent.Record {
	tb.Helper()
	r, ok := getRecord(tb, s, userID)
	if !ok {
		tb.Fatalf("Get(%q): got store.ErrNotFound, want the user's record", userID)
	}
	return r
}

func mustReceipts(tb testing.TB, s store.Store, userID string) []consent.Receipt {
	tb.Helper()
	rs, err := s.Receipts(tb.Context(), userID)
	if err != nil {
		tb.Fatalf("Receipts(%q): %v", userID, err)
	}
	return nilIfEmpty(rs)
}

func mustSettings(tb testing.TB, s store.Store) consent.Settings {
	tb.Helper()
	set, err := s.Settings(tb.Context())
	if err != nil {
		tb.Fatalf("Settings: %v", err)
	}
	return set
}

func mustSettingsReceipts(tb testing.TB, s store.Store) []consent.Receipt {
	tb.Helper()
	rs, err := s.SettingsReceipts(tb.Context())
	if err != nil {
		tb.Fatalf("SettingsReceipts: %v", err)
	}
	return nilIfEmpty(rs)
}

func mustSetSettings(tb testing.TB, s store.Store, set consent.Settings) (consent.Settings, consent.Receipt) {
	tb.Helper()
	saved, rc, err := s.SetSettings(tb.Context(), set, consent.ActorAdmin, consent.SurfaceAdminConsole)
	if err != nil {
		tb.Fatalf("SetSettings(%s): %v", show(set), err)
	}
	return saved, rc
}

// mustUpdateSettings reads the settings, lets edit change a clone, and saves
// the result against the version read.
func mustUpdateSettings(tb testing.TB, s store.Store, edit func(*consent.Settings)) consent.Settings {
	tb.Helper()
	next := mustSettings(tb, s).Clone()
	edit(&next)
	saved, _ := mustSetSettings(tb, s, next)
	return saved
}

func mustTail(tb testing.TB, s store.Store, log int) store.Position {
	tb.Helper()
	p, err := s.Tail(tb.Context(), log)
	if err != nil {
		tb.Fatalf("Tail(%d): %v", log, err)
	}
	return p
}

func mustRead(tb testing.TB, s store.Store, log int, after store.Position, count int, block time.Duration) []store.Event {
	tb.Helper()
	evs, err := s.ReadChangelog(tb.Context(), log, after, count, block)
	if err != nil {
		tb.Fatalf("ReadChangelog(%d, %q, %d, %v): %v", log, after, count, block, err)
	}
	if len(evs) > count {
		tb.Fatalf("ReadChangelog(%d, %q, count %d): got %d events, want at most %d", log, after, count, len(evs), count)
	}
	return nilIfEmpty(evs)
}

// mustReadAll reads log from the start, in batches, without blocking.
func mustReadAll(tb testing.TB, s store.Store, log int) []store.Event {
	tb.Helper()
	return mustReadFrom(tb, s, log, "")
}

// mustReadFrom reads everything in log after after, in batches, without
// blocking. It fails when a batch does not move forward.
func mustReadFrom(tb testing.TB, s store.Store, log int, after store.Position) []store.Event {
	tb.Helper()
	var out []store.Event
	for {
		evs := mustRead(tb, s, log, after, 100, 0)
		if len(evs) == 0 {
			return out
		}
		for _, ev := range evs {
			if ev.Pos.Compare(after) <= 0 {
				tb.Fatalf("ReadChangelog(%d) after %q returned position %q, not after it", log, after, ev.Pos)
			}
			after = ev.Pos
		}
		out = append(out, evs...)
		if len(out) > 1_000_000 {
			tb.Fatalf("ReadChangelog(%d): more than a million events in a test store", log)
		}
	}
}

// ChainKey is the receipt chain key every store under test must be opened
// with (the stores' Options.ChainKey): the suite verifies chains with it.
var ChainKey = consent.ChainKey("storetest chain key: not a secret")

// mustVerify checks a run of receipts links up under ChainKey (for settings
// receipts and for receipts read without their record).
func mustVerify(tb testing.TB, what string, rs []consent.Receipt) {
	tb.Helper()
	if err := consent.VerifyLinks(rs, ChainKey); err != nil {
		tb.Errorf("VerifyLinks(%s): %v", what, err)
	}
}

// mustVerifyUser checks the user's receipts against the user's record head
// under ChainKey at now.
func mustVerifyUser(tb testing.TB, s store.Store, user string, now time.Time) {
	tb.Helper()
	ctx := context.Background()
	rec, err := s.Get(ctx, user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		tb.Fatalf("Get(%q): %v", user, err)
	}
	rs, err := s.Receipts(ctx, user)
	if err != nil {
		tb.Fatalf("Receipts(%q): %v", user, err)
	}
	set, err := s.Settings(ctx)
	if err != nil {
		tb.Fatalf("Settings: %v", err)
	}
	if err := consent.VerifyChain(rs, consent.HeadOf(rec, &set, now), ChainKey); err != nil {
		tb.Errorf("VerifyChain(receipts of %q): %v", user, err)
	}
}

func nilIfEmpty[T any](xs []T) []T {
	if len(xs) == 0 {
		return nil
	}
	return xs
}

// eventsOf returns the events of user in evs, in order.
func eventsOf(evs []store.Event, userID string) []store.Event {
	var out []store.Event
	for _, ev := range evs {
		if ev.Record != nil && ev.Record.UserID == userID {
			out = append(out, ev)
		}
	}
	return out
}

// usersInShard returns n user IDs (prefix-0, prefix-1, ...) that fall in
// shard among shards.
func usersInShard(prefix string, shard, shards, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if store.ShardOf(id, shards) == shard {
			out = append(out, id)
		}
	}
	return out
}

// base is a second-aligned time an hour ago, for explicit Change.At values.
func base() time.Time { return time.Now().UTC().Truncate(time.Second).Add(-time.Hour) }

// at returns ch with At set.
func at(ch consent.Change, t time.Time) consent.Change {
	ch.At = t
	return ch
}

// ---- snapshots: "bad input changes nothing" ----

// snapshot is everything a store shows: the listed users' records and
// receipts, every changelog read from the start, and the settings.
type snapshot struct {
	Users            map[string]userSnapshot
	Logs             map[int][]store.Event
	Tails            map[int]store.Position
	Settings         consent.Settings
	SettingsReceipts []consent.Receipt
}

type userSnapshot struct {
	Found    bool
	Record   consent.Record
	Receipts []consent.Receipt
}

func takeSnapshot(tb testing.TB, s store.Store, users ...string) snapshot {
	tb.Helper()
	snap := snapshot{
		Users:            map[string]userSnapshot{},
		Logs:             map[int][]store.Event{},
		Tails:            map[int]store.Position{},
		Settings:         mustSettings(tb, s),
		SettingsReceipts: mustSettingsReceipts(tb, s),
	}
	for _, u := range users {
		r, found := getRecord(tb, s, u)
		snap.Users[u] = userSnapshot{Found: found, Record: r, Receipts: mustReceipts(tb, s, u)}
	}
	logs := []int{store.SettingsLog}
	for i := range s.Shards() {
		logs = append(logs, i)
	}
	for _, log := range logs {
		snap.Logs[log] = mustReadAll(tb, s, log)
		snap.Tails[log] = mustTail(tb, s, log)
	}
	return snap
}

// checkUnchanged reports every part of after that differs from before.
func checkUnchanged(tb testing.TB, before, after snapshot) {
	tb.Helper()
	for u, b := range before.Users {
		a := after.Users[u]
		if a.Found != b.Found {
			tb.Errorf("user %q: found = %t after the bad change, want %t", u, a.Found, b.Found)
		}
		checkEqual(tb, fmt.Sprintf("user %q record after the bad change", u), a.Record, b.Record)
		checkEqual(tb, fmt.Sprintf("user %q receipts after the bad change", u), a.Receipts, b.Receipts)
	}
	for log, b := range before.Logs {
		checkEqual(tb, fmt.Sprintf("changelog %d after the bad change", log), after.Logs[log], b)
		checkEqual(tb, fmt.Sprintf("Tail(%d) after the bad change", log), after.Tails[log], before.Tails[log])
	}
	checkEqual(tb, "settings after the bad change", after.Settings, before.Settings)
	checkEqual(tb, "settings receipts after the bad change", after.SettingsReceipts, before.SettingsReceipts)
}

// ---- seeded users shared by several groups ----

// The seeded users (see seed).
const (
	// alice: personalization off, sms refused, religion consent, declared
	// interest:ski and religion:buddhism, inferred interest:chess, deleted
	// interest:golf (inferred first) and interest:tennis (never had).
	alice = "alice"
	// minnie: a minor without guardian consent.
	minnie = "minnie"
	// gus: a minor with guardian consent and a declared tag.
	gus = "gus"
	// erin: erased after declaring interest:ski.
	erin = "erin"
	// nobody is never written.
	nobody = "nobody"
)

var (
	tagSki      = tags.MustParse("interest:ski")
	tagGolf     = tags.MustParse("interest:golf")
	tagTennis   = tags.MustParse("interest:tennis")
	tagChess    = tags.MustParse("interest:chess")
	tagBuddhism = tags.MustParse("religion:buddhism")
)

// seed writes the seeded users.
func seed(tb testing.TB, s store.Store) {
	tb.Helper()
	for _, ch := range []consent.Change{
		consent.GrantSensitive(alice, tags.Religion, consent.PurposePersonalization),
		consent.DeclareTag(alice, tagSki),
		consent.DeclareTag(alice, tagBuddhism),
		consent.InferTag(alice, tagChess),
		consent.InferTag(alice, tagGolf),
		consent.SetPersonalization(alice, false), // after the inferences: none are stored while off
		consent.RefuseChannel(alice, "sms"),
		consent.DeleteTag(alice, tagGolf),
		consent.DeleteTag(alice, tagTennis),
		consent.SetMinor(minnie, true),
		consent.SetMinor(gus, true),
		consent.SetGuardian(gus, true),
		consent.DeclareTag(gus, tagChess).By(consent.ActorGuardian, consent.SurfaceAppSettings),
		consent.DeclareTag(erin, tagSki),
		consent.Erase(erin),
	} {
		mustApplyEffective(tb, s, ch)
	}
}

var seededUsers = []string{alice, minnie, gus, erin, nobody}
