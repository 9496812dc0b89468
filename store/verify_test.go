package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

var verifyKey = consent.ChainKey("verify test chain key, not a secret")

// clock is a settable clock for the memory store.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.t.Store(&t) }
func (c *clock) now() time.Time   { return *c.t.Load() }

func openVerifyStore(t *testing.T, c *clock) *memory.Store {
	t.Helper()
	o := memory.Options{ChainKey: verifyKey, Shards: 4}
	if c != nil {
		o.Now = c.now
	}
	s, err := memory.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func userID(i int) string { return fmt.Sprintf("vu%04d", i) }

// histories are the changes of user i, by i%len(histories): each leaves at
// least three receipts and a record every check allows.
var histories = []func(u string) []consent.Change{
	func(u string) []consent.Change {
		return []consent.Change{consent.SetPersonalization(u, false), consent.RefuseChannel(u, "email"), consent.DeclareTag(u, "interest:chess")}
	},
	func(u string) []consent.Change {
		return []consent.Change{consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePersonalization),
			consent.DeclareTag(u, "medical_health:diabetes"), consent.InferTag(u, "interest:golf")}
	},
	func(u string) []consent.Change {
		return []consent.Change{consent.SetMinor(u, true), consent.GuardianConsent(u, "form-1"), consent.DeclareTag(u, "interest:lego")}
	},
	func(u string) []consent.Change {
		return []consent.Change{consent.InferTag(u, "interest:golf"), consent.DeleteTag(u, "interest:golf"),
			consent.DeclareTag(u, "interest:ski"), consent.Restrict(u)}
	},
	func(u string) []consent.Change {
		return []consent.Change{consent.DeclareTag(u, "interest:a"), consent.CorrectTag(u, "interest:a", "interest:b"),
			consent.SetPersonalization(u, false), consent.SetPersonalization(u, true)}
	},
}

// populate gives n users their histories and returns how many receipts
// they have.
func populate(t *testing.T, s store.Store, n int) int {
	t.Helper()
	receipts := 0
	for i := range n {
		u := userID(i)
		for _, ch := range histories[i%len(histories)](u) {
			a, err := s.Apply(context.Background(), ch)
			if err != nil {
				t.Fatalf("%s %s: %v", u, ch.Op, err)
			}
			if a.Receipt == nil {
				t.Fatalf("%s %s: a no-op", u, ch.Op)
			}
			receipts++
		}
	}
	return receipts
}

// tamper is a store whose reads are altered per user, as if the data had
// been edited behind the store's back.
type tamper struct {
	*memory.Store
	mu       sync.Mutex
	receipts map[string]func([]consent.Receipt) []consent.Receipt
	records  map[string]func(consent.Record) consent.Record
	corrupt  map[string]bool
}

func newTamper(s *memory.Store) *tamper {
	return &tamper{Store: s, receipts: map[string]func([]consent.Receipt) []consent.Receipt{},
		records: map[string]func(consent.Record) consent.Record{}, corrupt: map[string]bool{}}
}

func (w *tamper) Receipts(ctx context.Context, id string) ([]consent.Receipt, error) {
	rs, err := w.Store.Receipts(ctx, id)
	w.mu.Lock()
	f := w.receipts[id]
	w.mu.Unlock()
	if err == nil && f != nil {
		rs = f(rs)
	}
	return rs, err
}

func (w *tamper) record(r consent.Record) consent.Record {
	w.mu.Lock()
	f := w.records[r.UserID]
	w.mu.Unlock()
	if f != nil {
		return f(r)
	}
	return r
}

func (w *tamper) Get(ctx context.Context, id string) (consent.Record, error) {
	if w.corrupt[id] {
		return consent.NewRecord(id), &store.CorruptError{UserIDs: []string{id}, Detail: "test"}
	}
	r, err := w.Store.Get(ctx, id)
	return w.record(r), err
}

func (w *tamper) GetMany(ctx context.Context, ids []string) ([]consent.Record, error) {
	rs, err := w.Store.GetMany(ctx, ids)
	if err != nil {
		return rs, err
	}
	var bad []string
	for i := range rs {
		if w.corrupt[ids[i]] {
			bad = append(bad, ids[i])
			rs[i] = consent.NewRecord(ids[i])
			continue
		}
		rs[i] = w.record(rs[i])
	}
	if len(bad) > 0 {
		return rs, &store.CorruptError{UserIDs: bad, Detail: "test"}
	}
	return rs, nil
}

func verify(t *testing.T, s store.Store, key consent.ChainKey, o store.VerifyOptions) store.VerifyReport {
	t.Helper()
	rep, err := store.Verify(context.Background(), s, key, o)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.Complete {
		t.Fatal("Verify returned no error but an incomplete report")
	}
	return rep
}

func TestVerifyCleanStore(t *testing.T) {
	s := openVerifyStore(t, nil)
	const n = 60
	receipts := populate(t, s, n)
	var calls []int64
	var total int64
	rep := verify(t, s, verifyKey, store.VerifyOptions{Workers: 3, BatchSize: 7, Progress: func(done, tot int64) {
		calls = append(calls, done)
		total = tot
	}})
	if !rep.OK() || rep.FindingsTotal != 0 || len(rep.Findings) != 0 {
		t.Fatalf("clean store: %d findings: %+v", rep.FindingsTotal, rep.Findings)
	}
	if rep.Users != n || rep.ChainsVerified != n || rep.ChainsBroken != 0 || rep.Receipts != int64(receipts) || rep.Shards != 4 {
		t.Errorf("report %+v, want %d users and chains verified, %d receipts", rep, n, receipts)
	}
	if !rep.Settings.ChainOK {
		t.Error("settings chain not ok")
	}
	if len(calls) < 2 || calls[0] != 0 || calls[len(calls)-1] != n || total != n || !slices.IsSorted(calls) {
		t.Errorf("progress calls %v (total %d), want 0 first, %d last, increasing", calls, total, n)
	}
	for _, k := range store.ChainKinds() {
		if v, ok := rep.BrokenByKind[k]; !ok || v != 0 {
			t.Errorf("broken_by_kind[%s] = %d, %v; want 0, listed", k, v, ok)
		}
	}
	for i := range n {
		uv, err := store.VerifyUser(context.Background(), s, verifyKey, userID(i), store.VerifyOptions{})
		if err != nil || !uv.OK() || !uv.ChainOK || uv.Receipts < 3 {
			t.Errorf("VerifyUser(%s) = %+v, %v", userID(i), uv, err)
		}
	}
	// A user never seen has nothing to verify.
	if uv, err := store.VerifyUser(context.Background(), s, verifyKey, "nobody", store.VerifyOptions{}); err != nil || !uv.OK() || uv.Version != 0 {
		t.Errorf("VerifyUser(nobody) = %+v, %v", uv, err)
	}
}

// TestVerifyBrokenChains: every way of removing or altering receipts, the
// record's head or its purge anchor is reported, as its own kind, and the
// other users still verify.
func TestVerifyBrokenChains(t *testing.T) {
	c := newClock(time.Now().Add(-4 * 365 * 24 * time.Hour))
	s := openVerifyStore(t, c)
	// Users 0-19 get their first receipt four years ago (past the
	// retention), the rest now.
	for i := range 20 {
		u := userID(i)
		for j, ch := range histories[0](u) {
			if j == 1 {
				c.set(time.Now())
			}
			if _, err := s.Apply(context.Background(), ch); err != nil {
				t.Fatal(err)
			}
		}
		c.set(time.Now().Add(-4 * 365 * 24 * time.Hour))
	}
	c.set(time.Now())
	w := newTamper(s)
	anchored := func(k int) func(consent.Record) consent.Record { // a purge of the first k receipts
		return func(r consent.Record) consent.Record {
			rs, _ := s.Receipts(context.Background(), r.UserID)
			r.Purged = consent.NewAnchor(rs[k-1], verifyKey)
			return r
		}
	}
	want := map[string]store.FindingKind{}
	set := func(i int, kind store.FindingKind, rf func([]consent.Receipt) []consent.Receipt, cf func(consent.Record) consent.Record) {
		u := userID(i)
		if rf != nil {
			w.receipts[u] = rf
		}
		if cf != nil {
			w.records[u] = cf
		}
		if kind != "" {
			want[u] = kind
		}
	}
	set(0, store.FindingTruncatedNewest, func(rs []consent.Receipt) []consent.Receipt { return rs[:len(rs)-1] }, nil)
	set(1, store.FindingTruncatedOldest, func(rs []consent.Receipt) []consent.Receipt { return rs[1:] }, nil)
	set(2, store.FindingGap, func(rs []consent.Receipt) []consent.Receipt { return slices.Delete(slices.Clone(rs), 1, 2) }, nil)
	set(3, store.FindingTruncatedNewest, func(rs []consent.Receipt) []consent.Receipt { return nil }, nil)
	set(4, store.FindingEdited, func(rs []consent.Receipt) []consent.Receipt {
		rs[1].Subject = "sms" // the channel refused was another
		return rs
	}, nil)
	set(5, store.FindingEdited, func(rs []consent.Receipt) []consent.Receipt {
		rs[2].At = rs[2].At.Add(time.Hour)
		return rs
	}, nil)
	set(6, store.FindingEdited, func(rs []consent.Receipt) []consent.Receipt {
		rs[1], rs[2] = rs[2], rs[1]
		return rs
	}, nil)
	// A genuine purge of the first receipt (four years old): verifies.
	set(7, "", func(rs []consent.Receipt) []consent.Receipt { return rs[1:] }, anchored(1))
	// A purge anchor over a receipt still within the retention.
	set(8, store.FindingAnchorBeforeRetention, func(rs []consent.Receipt) []consent.Receipt { return rs[2:] }, anchored(2))
	// An anchor not sealed under the key.
	set(9, store.FindingForgedAnchor, func(rs []consent.Receipt) []consent.Receipt { return rs[1:] }, func(r consent.Record) consent.Record {
		rs, _ := s.Receipts(context.Background(), r.UserID)
		r.Purged = consent.NewAnchor(rs[0], consent.ChainKey("another key entirely!"))
		return r
	})
	// An anchor past the oldest receipt kept: receipts removed after a
	// purge, at the oldest end.
	set(10, store.FindingTruncatedOldest, func(rs []consent.Receipt) []consent.Receipt { return rs[2:] }, anchored(1))
	// The record rolled back one version (a copy of the record as it was,
	// head sealed then): the newest receipt is ahead.
	set(11, store.FindingHeadMismatch, nil, func(r consent.Record) consent.Record {
		rs, _ := s.Receipts(context.Background(), r.UserID)
		r.Version, r.LastHash = r.Version-1, rs[len(rs)-2].Hash
		r.HeadMAC = r.ComputeHeadMAC(verifyKey)
		return r
	})
	// The record's head edited without the key.
	set(12, store.FindingForgedHead, nil, func(r consent.Record) consent.Record {
		r.LastHash = strings.Repeat("0", 64)
		return r
	})
	set(13, store.FindingForgedHead, nil, func(r consent.Record) consent.Record {
		rs, _ := s.Receipts(context.Background(), r.UserID)
		r.Version, r.LastHash = r.Version-1, rs[len(rs)-2].Hash
		return r
	})
	rep := verify(t, w, verifyKey, store.VerifyOptions{Workers: 2, BatchSize: 3})
	got := map[string]store.FindingKind{}
	for _, f := range rep.Findings {
		if f.Kind.Chain() {
			if got[f.UserID] != "" {
				t.Errorf("two chain findings for %s", f.UserID)
			}
			got[f.UserID] = f.Kind
		}
		if f.Detail == "" {
			t.Errorf("finding %+v has no detail", f)
		}
	}
	for u, k := range want {
		if got[u] != k {
			t.Errorf("%s: chain finding %q, want %q", u, got[u], k)
		}
	}
	for u, k := range got {
		if want[u] == "" {
			t.Errorf("%s: chain finding %q, want none", u, k)
		}
	}
	if rep.ChainsBroken != int64(len(want)) || rep.ChainsVerified != 20-int64(len(want)) || rep.Users != 20 {
		t.Errorf("users %d, verified %d, broken %d; want 20, %d, %d", rep.Users, rep.ChainsVerified, rep.ChainsBroken, 20-len(want), len(want))
	}
	byKind := map[store.FindingKind]int64{}
	for _, k := range want {
		byKind[k]++
	}
	for _, k := range store.ChainKinds() {
		if rep.BrokenByKind[k] != byKind[k] {
			t.Errorf("broken_by_kind[%s] = %d, want %d", k, rep.BrokenByKind[k], byKind[k])
		}
	}
	// Receipts four years old that no purge removed: every user but the
	// three whose oldest receipt is hidden (1, 7, 9) and 3 (all hidden),
	// 8 and 10 (two hidden).
	if rep.NotPurged.Users != 14 || rep.NotPurged.Receipts != 14 {
		t.Errorf("not purged %+v, want 14 receipts of 14 users", rep.NotPurged)
	}
	if rep.OK() || len(rep.Hints) == 0 {
		t.Errorf("ok %v, hints %q", rep.OK(), rep.Hints)
	}

	// VerifyUser says the same per user.
	for i := range 14 {
		u := userID(i)
		uv, err := store.VerifyUser(context.Background(), w, verifyKey, u, store.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var k store.FindingKind
		for _, f := range uv.Findings {
			if f.Kind.Chain() {
				k = f.Kind
			}
		}
		if k != want[u] || uv.ChainOK != (want[u] == "") {
			t.Errorf("VerifyUser(%s): chain %q ok %v, want %q", u, k, uv.ChainOK, want[u])
		}
	}
}

// TestVerifyWrongKey: under another key every chain is broken (edited), and
// the report says the key is probably wrong.
func TestVerifyWrongKey(t *testing.T) {
	s := openVerifyStore(t, nil)
	populate(t, s, 10)
	rep := verify(t, s, consent.ChainKey("not the store's key at all"), store.VerifyOptions{})
	// The record's head MAC is the first check that fails.
	if rep.ChainsBroken != 10 || rep.BrokenByKind[store.FindingForgedHead] != 10 || rep.ChainsVerified != 0 {
		t.Errorf("broken %d (forged head %d), verified %d; want 10, 10, 0", rep.ChainsBroken, rep.BrokenByKind[store.FindingForgedHead], rep.ChainsVerified)
	}
	if len(rep.Hints) == 0 || !strings.Contains(rep.Hints[0], "chain key") {
		t.Errorf("hints %q, want one about the chain key", rep.Hints)
	}
}

// TestVerifyTags: records holding tags their consent state does not allow
// are reported per kind, without tag values or categories.
func TestVerifyTags(t *testing.T) {
	s := openVerifyStore(t, nil)
	populate(t, s, 10)
	set, err := s.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set.Taxonomy["banned"] = tags.Namespace{Prohibited: true}
	if _, _, err := s.SetSettings(context.Background(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	w := newTamper(s)
	// The records below break the rules under the real key (a bug in the
	// rule engine, not a forger): only the tag checks can tell.
	resealed := func(r consent.Record) consent.Record { r.HeadMAC = r.ComputeHeadMAC(verifyKey); return r }
	w.records[userID(1)] = func(r consent.Record) consent.Record { // the sensitive consent is gone, the tag stayed
		r.State.Sensitive = nil
		return resealed(r)
	}
	w.records[userID(0)] = func(r consent.Record) consent.Record { // erased, but the tags stayed
		r.State = consent.State{Erased: true}
		return resealed(r)
	}
	w.records[userID(5)] = func(r consent.Record) consent.Record { // chess deleted, yet present
		r.Tags.Suppressed = append(r.Tags.Suppressed, tags.Suppression{Tag: "interest:chess"})
		return resealed(r)
	}
	w.records[userID(7)] = func(r consent.Record) consent.Record { // the guardian consent is gone
		r.State.Guardian = nil
		return resealed(r)
	}
	w.records[userID(4)] = func(r consent.Record) consent.Record {
		r.Tags.Entries = append([]tags.Entry{{Tag: "banned:x", Source: tags.Declared}}, r.Tags.Entries...)
		return resealed(r)
	}
	w.records[userID(9)] = func(r consent.Record) consent.Record { // a minor, never a guardian
		r.State.Minor = true
		return resealed(r)
	}
	rep := verify(t, w, verifyKey, store.VerifyOptions{})
	want := map[string]store.FindingKind{
		userID(1): store.FindingSensitiveWithoutConsent,
		userID(0): store.FindingTagsOnErased,
		userID(5): store.FindingSuppressedPresent,
		userID(7): store.FindingMinorWithoutGuardian,
		userID(4): store.FindingProhibitedTag,
		userID(9): store.FindingMinorWithoutGuardian,
	}
	got := map[string]store.FindingKind{}
	for _, f := range rep.Findings {
		if !f.Kind.Tag() {
			// User 0's record says erased but its receipts were never
			// redacted: that is a finding of its own.
			if f.UserID != userID(0) || f.Kind != store.FindingUnredacted {
				t.Errorf("unexpected finding %+v", f)
			}
			continue
		}
		got[f.UserID] = f.Kind
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tag findings %v, want %v", got, want)
	}
	if rep.Tags.Users != 6 || rep.Tags.ByKind[store.FindingMinorWithoutGuardian] != 2 || rep.ChainsVerified != 10 {
		t.Errorf("tag violations %+v, chains verified %d", rep.Tags, rep.ChainsVerified)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, personal := range []string{"diabetes", "medical_health:", "chess", "banned:", "lego", "golf"} {
		if strings.Contains(string(b), personal) {
			t.Errorf("the report holds %q: %s", personal, b)
		}
	}
}

// TestVerifyErasure: the receipts of an erased user must be redacted; a
// redacted chain verifies, an unredacted one is a finding.
func TestVerifyErasure(t *testing.T) {
	s := openVerifyStore(t, nil)
	populate(t, s, 3)
	for _, u := range []string{userID(0), userID(1)} {
		if _, err := s.Apply(context.Background(), consent.Erase(u)); err != nil {
			t.Fatal(err)
		}
	}
	// The store as it is: erased users' receipts read back redacted (the
	// Store contract), so everything verifies.
	if rep := verify(t, s, verifyKey, store.VerifyOptions{}); !rep.OK() {
		t.Errorf("store/memory after erasures: %d findings %+v (store-caused if unredacted_after_erasure)", rep.FindingsTotal, rep.Findings)
	}
	w := newTamper(s)
	redact := func(rs []consent.Receipt) []consent.Receipt {
		for i := range rs {
			rs[i] = rs[i].Redact()
		}
		return rs
	}
	unredact := func(rs []consent.Receipt) []consent.Receipt {
		// What a store that keeps the personal content gives back.
		for i := range rs {
			if rs[i].Redacted {
				rs[i].Redacted, rs[i].Salt = false, "00"
			}
		}
		return rs
	}
	w.receipts[userID(0)] = redact // whatever the store does, user 0's are redacted
	w.receipts[userID(1)] = func(rs []consent.Receipt) []consent.Receipt {
		if rs[0].Redacted {
			t.Log("store/memory redacts after erasure: user 1's receipts are shown unredacted by the test")
			return unredact(rs)
		}
		return rs
	}
	rep := verify(t, w, verifyKey, store.VerifyOptions{})
	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.UserID+" "+string(f.Kind))
	}
	// Unredacting by hand breaks the digest check too (edited); a store
	// that never redacted has an intact chain.
	if !slices.Contains(got, userID(1)+" "+string(store.FindingUnredacted)) || slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, userID(0)) }) {
		t.Errorf("findings %q, want unredacted_after_erasure for %s only", got, userID(1))
	}
	if rep.Unredacted.Users != 1 || rep.Unredacted.Receipts != 4 {
		t.Errorf("unredacted %+v, want 4 receipts of 1 user", rep.Unredacted)
	}
}

// TestVerifyBounds: findings beyond MaxFindings are counted, not listed,
// and those listed are the first by user number.
func TestVerifyBounds(t *testing.T) {
	s := openVerifyStore(t, nil)
	populate(t, s, 40)
	rep := verify(t, s, consent.ChainKey("wrong key, every chain breaks"), store.VerifyOptions{MaxFindings: 5, BatchSize: 2, Workers: 4})
	if rep.FindingsTotal != 40 || len(rep.Findings) != 5 {
		t.Fatalf("%d findings, %d listed; want 40, 5", rep.FindingsTotal, len(rep.Findings))
	}
	var nums []uint32
	for _, f := range rep.Findings {
		r, err := s.Get(context.Background(), f.UserID)
		if err != nil {
			t.Fatal(err)
		}
		nums = append(nums, r.Number)
	}
	if fmt.Sprint(nums) != "[1 2 3 4 5]" {
		t.Errorf("listed user numbers %v, want the first five", nums)
	}
	rep = verify(t, s, verifyKey, store.VerifyOptions{MaxFindings: -1, Now: time.Now().Add(10 * 365 * 24 * time.Hour)})
	if rep.FindingsTotal != 40 || len(rep.Findings) != 0 || rep.NotPurged.Users != 40 {
		t.Errorf("ten years on: %d findings (%d listed), not purged %+v", rep.FindingsTotal, len(rep.Findings), rep.NotPurged)
	}
}

// TestVerifyUnreadable: a corrupt record is a finding, not an error.
func TestVerifyUnreadable(t *testing.T) {
	s := openVerifyStore(t, nil)
	populate(t, s, 5)
	w := newTamper(s)
	w.corrupt[userID(2)] = true
	rep := verify(t, w, verifyKey, store.VerifyOptions{})
	if rep.Unreadable != 1 || rep.ChainsVerified != 4 || rep.FindingsTotal != 1 || rep.Findings[0].Kind != store.FindingUnreadable || rep.Findings[0].UserID != userID(2) {
		t.Errorf("report %+v", rep)
	}
	uv, err := store.VerifyUser(context.Background(), w, verifyKey, userID(2), store.VerifyOptions{})
	if err != nil || len(uv.Findings) != 1 || uv.Findings[0].Kind != store.FindingUnreadable {
		t.Errorf("VerifyUser = %+v, %v", uv, err)
	}
}

// TestVerifyStops: an ended context, a failing store and a store that
// cannot list its users stop Verify with an error and an incomplete report.
func TestVerifyStops(t *testing.T) {
	s := openVerifyStore(t, nil)
	populate(t, s, 20)
	ctx, cancel := context.WithCancel(context.Background())
	rep, err := store.Verify(ctx, s, verifyKey, store.VerifyOptions{BatchSize: 1, Workers: 1, Progress: func(done, _ int64) {
		if done >= 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || rep.Complete || rep.OK() || rep.Users < 3 || rep.Users >= 20 {
		t.Errorf("cancelled: users %d, complete %v, err %v", rep.Users, rep.Complete, err)
	}

	w := &failing{Store: s}
	w.after.Store(5)
	if _, err := store.Verify(context.Background(), w, verifyKey, store.VerifyOptions{}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("failing store: %v, want ErrUnavailable", err)
	}

	type plain struct{ store.Store } // none of the optional abilities
	if _, err := store.Verify(context.Background(), plain{s}, verifyKey, store.VerifyOptions{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a store that cannot list: %v, want ErrUnsupported", err)
	}
}

// failing fails every Receipts call after the first few.
type failing struct {
	*memory.Store
	after atomic.Int64
}

func (f *failing) Receipts(ctx context.Context, id string) ([]consent.Receipt, error) {
	if f.after.Add(-1) < 0 {
		return nil, fmt.Errorf("%w: test", store.ErrUnavailable)
	}
	return f.Store.Receipts(ctx, id)
}

// TestVerifyWithoutBatchGetter: a store without GetMany is read user by
// user.
func TestVerifyWithoutBatchGetter(t *testing.T) {
	s := openVerifyStore(t, nil)
	populate(t, s, 12)
	type lister struct {
		store.Store
		store.UserLister
	}
	rep := verify(t, lister{s, s}, verifyKey, store.VerifyOptions{})
	if !rep.OK() || rep.Users != 12 {
		t.Errorf("report %+v", rep)
	}
}
