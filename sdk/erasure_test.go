package sdk_test

// Restriction of processing (Art. 23) and erasure (Art. 24) as the SDK
// answers them: never personalized, no push, in no audience, nothing
// recorded for audits, and a cached view of an erased user never outlives
// the erasure (Shredded changelog entries drop it).

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

func memoryStore(t *testing.T) *memory.Store {
	t.Helper()
	st, err := memory.Open(context.Background(), memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// exposures collects what Recommend hands the exposure sink.
type exposures struct {
	mu  sync.Mutex
	got []sdk.Exposure
}

func (e *exposures) sink(_ context.Context, batch []sdk.Exposure) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, batch...)
	return nil
}

func (e *exposures) users() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, x := range e.got {
		out = append(out, x.UserID)
	}
	return out
}

// audienceIDs pages a whole audience.
func audienceIDs(t *testing.T, c *sdk.Client, seg, ch string, targeted bool) []string {
	t.Helper()
	a, err := c.Audience(context.Background(), seg, ch, targeted)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := a.Page(0, 1000)
	slices.Sort(ids)
	return ids
}

// notServed checks that every answer for user is the one for reason: not
// personalized, no tags, every push refused with reason, Recommend on the
// fallback with no tags.
func notServed(t *testing.T, c *sdk.Client, user string, reason consent.Reason) {
	t.Helper()
	ctx := context.Background()
	d := mustDecide(t, c, user)
	if d.Personalized || d.Reason != reason || len(d.Tags) != 0 || d.PushBlock != reason {
		t.Fatalf("Decide(%s) = %+v; want not personalized, no tags, reason and push block %s", user, d, reason)
	}
	for _, ch := range []string{"push", "sms", "email"} {
		for _, targeted := range []bool{false, true} {
			if ok, why, err := c.CanPush(ctx, user, ch, targeted); ok || why != reason || err != nil {
				t.Fatalf("CanPush(%s, %s, targeted %t) = %t %s %v; want false %s", user, ch, targeted, ok, why, err, reason)
			}
		}
	}
	ran := ""
	rank := func(name string) sdk.Ranker {
		return func(_ context.Context, req sdk.RankRequest) ([]string, error) {
			ran = name
			if len(req.Tags) != 0 {
				t.Errorf("the %s ranker got tags %v", name, req.Tags)
			}
			return []string{"item1"}, nil
		}
	}
	res, err := c.Recommend(ctx, user, rank("personalized"), rank("fallback"))
	if err != nil || ran != "fallback" || res.Personalized || res.Reason != reason {
		t.Fatalf("Recommend(%s) = %+v, %v, ran %s; want the fallback, reason %s", user, res, err, ran, reason)
	}
}

// A user who restricts processing is answered non-personalized with reason
// restricted, refused every push, left out of every audience and of the
// exposures, on the client that wrote the change and on another one; their
// profile shows their data with nothing usable. Lifting it brings all back.
func TestRestrictedUser(t *testing.T) {
	ctx := context.Background()
	st := memoryStore(t)
	var exp exposures
	c := newClient(t, st, sdk.Config{Audiences: true, ExposureSink: exp.sink})
	other := newClient(t, st, sdk.Config{Audiences: true})
	for _, u := range []string{"rita", "sam"} {
		mustApply(t, c, consent.DeclareTag(u, "interest:ski"))
	}
	if d := mustDecide(t, other, "rita"); !d.Personalized {
		t.Fatalf("before: %+v", d) // cached on the other client
	}
	mustApply(t, c, consent.Restrict("rita"))

	notServed(t, c, "rita", consent.ReasonRestricted)
	eventually(t, 2*time.Second, "the restriction reaching the other client", func() bool {
		return mustDecide(t, other, "rita").Reason == consent.ReasonRestricted
	})
	notServed(t, other, "rita", consent.ReasonRestricted)
	for _, cl := range []*sdk.Client{c, other} {
		eventually(t, 2*time.Second, "the restriction reaching the index", func() bool {
			return len(audienceIDs(t, cl, "*", "push", false)) == 1
		})
		for _, seg := range []string{"*", "interest:ski", "!interest:ski", "!erased"} {
			for _, targeted := range []bool{false, true} {
				if got := audienceIDs(t, cl, seg, "sms", targeted); !slices.Equal(got, []string{"sam"}) && !(seg == "!interest:ski" && len(got) == 0) {
					t.Fatalf("audience %q (targeted %t) = %v; want only sam", seg, targeted, got)
				}
			}
		}
	}
	p, err := c.Profile(ctx, "rita")
	if err != nil {
		t.Fatal(err)
	}
	if !p.State.Restricted || p.Decision.Reason != consent.ReasonRestricted || len(p.Tags) != 1 || p.Tags[0].Usable {
		t.Fatalf("profile %+v; want restricted, the tag kept and not usable", p)
	}

	// Exposures: sam's recorded, rita's never.
	rank := func(context.Context, sdk.RankRequest) ([]string, error) { return []string{"i"}, nil }
	if _, err := c.Recommend(ctx, "sam", rank, rank); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "sam's exposure", func() bool { return slices.Contains(exp.users(), "sam") })
	for _, u := range exp.users() {
		if u == "rita" {
			t.Fatal("an exposure of a restricted user was recorded")
		}
	}

	mustApply(t, c, consent.Unrestrict("rita"))
	for _, cl := range []*sdk.Client{c, other} {
		eventually(t, 2*time.Second, "lifting the restriction", func() bool {
			d := mustDecide(t, cl, "rita")
			return d.Personalized && len(d.Tags) == 1 && len(audienceIDs(t, cl, "interest:ski", "push", true)) == 2
		})
	}
}

// An erased user: answered non-personalized with reason erased on every
// client, in no audience, nothing recorded, and no view of them holds
// their data any more.
func TestErasedUser(t *testing.T) {
	ctx := context.Background()
	st := memoryStore(t)
	var exp exposures
	c := newClient(t, st, sdk.Config{Audiences: true, ExposureSink: exp.sink})
	other := newClient(t, st, sdk.Config{Audiences: true})
	for _, u := range []string{"eve", "sam"} {
		mustApply(t, c, consent.DeclareTag(u, "interest:ski"))
	}
	mustApply(t, c, consent.RefuseChannel("eve", "sms"))
	if d := mustDecide(t, other, "eve"); !d.Personalized || len(d.Tags) != 1 {
		t.Fatalf("before: %+v", d)
	}
	mustApply(t, c, consent.Erase("eve"))
	notServed(t, c, "eve", consent.ReasonErased)
	eventually(t, 2*time.Second, "the erasure reaching the other client", func() bool {
		return mustDecide(t, other, "eve").Reason == consent.ReasonErased
	})
	notServed(t, other, "eve", consent.ReasonErased)
	for _, cl := range []*sdk.Client{c, other} {
		eventually(t, 2*time.Second, "the erasure reaching the index", func() bool {
			return slices.Equal(audienceIDs(t, cl, "*", "push", false), []string{"sam"})
		})
		if got := audienceIDs(t, cl, "erased | refused:sms | interest:ski", "push", false); !slices.Equal(got, []string{"sam"}) {
			t.Fatalf("audience %v, want [sam]", got)
		}
		// The view is the tombstone: the refusal is gone with the rest.
		if d := mustDecide(t, cl, "eve"); len(d.Refused) != 0 || len(d.Tags) != 0 {
			t.Fatalf("the erased user's view still holds data: %+v", d)
		}
	}
	p, err := c.Profile(ctx, "eve")
	if err != nil {
		t.Fatal(err)
	}
	if !p.State.Erased || len(p.Tags) != 0 || len(p.Suppressed) != 0 || p.Decision.Reason != consent.ReasonErased {
		t.Fatalf("profile %+v; want the tombstone", p)
	}
	rank := func(context.Context, sdk.RankRequest) ([]string, error) { return []string{"i"}, nil }
	if _, err := c.Recommend(ctx, "sam", rank, rank); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "sam's exposure", func() bool { return slices.Contains(exp.users(), "sam") })
	if slices.Contains(exp.users(), "eve") {
		t.Fatal("an exposure of an erased user was recorded")
	}
	// The user's own change brings them back.
	mustApply(t, c, consent.DeclareTag("eve", "interest:golf"))
	eventually(t, 2*time.Second, "the user back on the other client", func() bool {
		d := mustDecide(t, other, "eve")
		return d.Personalized && slices.Equal(d.Channels, c.Settings().Channels) && len(audienceIDs(t, other, "interest:golf", "sms", true)) == 1
	})
}

// OutcomeSink records nothing of an exposure made for a restricted or an
// erased user, whoever hands it the exposure.
func TestOutcomeSinkSkipsRestrictedAndErased(t *testing.T) {
	ctx := context.Background()
	st := memoryStore(t)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	err := sdk.OutcomeSink(st)(ctx, []sdk.Exposure{
		{UserID: "rita", At: at, Reason: consent.ReasonRestricted, Items: []string{"a"}},
		{UserID: "eve", At: at, Reason: consent.ReasonErased, Items: []string{"a", "b"}},
		{UserID: "sam", At: at, Personalized: true, Reason: consent.ReasonPersonalized, Items: []string{"a"}},
		{UserID: "olive", At: at, Reason: consent.ReasonOptedOut, Items: []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	st.ReadOutcomes(ctx, func(b []byte) error {
		var e struct{ User string }
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		users = append(users, e.User)
		return nil
	})
	slices.Sort(users)
	if !slices.Equal(users, []string{"olive", "sam"}) {
		t.Fatalf("outcome events of %v; want olive and sam only", users)
	}
	for r := consent.Reason(0); r < 32; r++ {
		if want := r != consent.ReasonRestricted && r != consent.ReasonErased; sdk.Recorded(r) != want {
			t.Errorf("Recorded(%s) = %t, want %t", r, !want, want)
		}
	}
}

// shredding is a store whose changelog gives the entries of the users in
// shred Shredded (their content gone: the user was erased after the
// change) and, while holdErase is set, holds back their erase entry and
// what follows it: what a follower sees when it reads the changes of a
// user erased meanwhile before it reads the erasure. Embedding the
// interface hides the multi-log and batch readers: one follower per log,
// and reads one by one, counted.
type shredding struct {
	store.Store
	gate      sync.RWMutex
	shred     sync.Map // user ID -> struct{}
	holdErase atomic.Bool
	gets      sync.Map // user ID -> *atomic.Int64
}

func (s *shredding) ReadChangelog(ctx context.Context, log int, after store.Position, count int, block time.Duration) ([]store.Event, error) {
	s.gate.RLock()
	defer s.gate.RUnlock()
	evs, err := s.Store.ReadChangelog(ctx, log, after, count, block)
	out := make([]store.Event, 0, len(evs))
	for _, ev := range evs {
		if ev.Record != nil {
			if _, ok := s.shred.Load(ev.Record.UserID); ok {
				if ev.Record.State.Erased && s.holdErase.Load() {
					break
				}
				if !ev.Record.State.Erased && !ev.Shredded {
					r := ev.Record
					ev.Record = &consent.Record{UserID: r.UserID, Number: r.Number, Version: r.Version, LastHash: r.LastHash}
					ev.Prev, ev.Receipt, ev.Shredded = nil, ev.Receipt.Redact(), true
				}
			}
		}
		out = append(out, ev)
	}
	return out, err
}

func (s *shredding) Get(ctx context.Context, userID string) (consent.Record, error) {
	n, _ := s.gets.LoadOrStore(userID, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	return s.Store.Get(ctx, userID)
}

func (s *shredding) reads(id string) int64 {
	if n, ok := s.gets.Load(id); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// A Shredded changelog entry drops the user's cached view: the next answer
// reads the store (the tombstone) instead of serving the view, and the
// shredded record (which looks like a user with no refusal at all) is
// never installed, even while the erase entry is still to come.
func TestShreddedEntriesDropTheView(t *testing.T) {
	ctx := context.Background()
	st := memoryStore(t)
	w := &shredding{Store: st}
	c := newClient(t, w, sdk.Config{})
	if _, err := st.Apply(ctx, consent.DeclareTag("sue", "interest:ski")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, consent.RefuseChannel("sue", "sms")); err != nil {
		t.Fatal(err)
	}
	if d := mustDecide(t, c, "sue"); !d.Personalized || len(d.Tags) != 1 {
		t.Fatalf("before: %+v", d)
	}
	// The follower stalls; meanwhile the user changes something and is
	// erased, by another instance.
	w.gate.Lock()
	w.shred.Store("sue", struct{}{})
	w.holdErase.Store(true)
	if _, err := st.Apply(ctx, consent.DeclareTag("sue", "interest:golf")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, consent.Erase("sue")); err != nil {
		t.Fatal(err)
	}
	reads := w.reads("sue")
	w.gate.Unlock()
	// The shredded entry drops the view; the next answer reads the
	// tombstone (installing the shredded record would answer personalized
	// until the erase entry came).
	eventually(t, 2*time.Second, "the shredded entry dropping the view", func() bool {
		return mustDecide(t, c, "sue").Reason == consent.ReasonErased
	})
	if w.reads("sue") == reads {
		t.Fatal("the erasure was seen without reading the store")
	}
	for range 50 {
		d := mustDecide(t, c, "sue")
		if d.Reason != consent.ReasonErased {
			t.Fatalf("after the shredded entry: %+v; want reason erased", d)
		}
		time.Sleep(time.Millisecond)
	}
	// The erase entry arrives: nothing changes, no regression is seen.
	w.holdErase.Store(false)
	time.Sleep(50 * time.Millisecond)
	notServed(t, c, "sue", consent.ReasonErased)
	if s := c.Stats(); s.Regressions != 0 {
		t.Fatalf("%d regressions", s.Regressions)
	}

	// A client that erased the user itself keeps its tombstone through the
	// shredded entries: no read.
	if _, err := st.Apply(ctx, consent.DeclareTag("sam", "interest:ski")); err != nil {
		t.Fatal(err)
	}
	w.shred.Store("sam", struct{}{})
	mustDecide(t, c, "sam")
	w.gate.Lock()
	if _, err := st.Apply(ctx, consent.DeclareTag("sam", "interest:golf")); err != nil {
		t.Fatal(err)
	}
	reads = w.reads("sam")
	w.gate.Unlock()
	mustApply(t, c, consent.Erase("sam"))
	time.Sleep(100 * time.Millisecond) // the follower reads the shredded entries
	notServed(t, c, "sam", consent.ReasonErased)
	if n := w.reads("sam"); n != reads {
		t.Fatalf("the tombstone this client wrote was dropped: %d reads after it", n-reads)
	}
}

// TestCheckpointSoonAfterErasure: a checkpoint saved before an erasure
// held the user; the index is saved again within ErasureCheckpointDelay,
// long before CheckpointEvery, and the new one holds nothing of the user.
func TestCheckpointSoonAfterErasure(t *testing.T) {
	ctx := context.Background()
	st := memoryStore(t)
	c := newClient(t, st, sdk.Config{Audiences: true, CheckpointEvery: time.Hour, ErasureCheckpointDelay: 50 * time.Millisecond})
	mustApply(t, c, consent.DeclareTag("erin-ckpt", "interest:erinskiing"))
	mustApply(t, c, consent.DeclareTag("sam", "interest:ski"))
	eventually(t, 2*time.Second, "both users in the index", func() bool {
		return len(audienceIDs(t, c, "*", "push", false)) == 2
	})
	if err := c.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	load := func() []byte {
		b, err := st.LoadCheckpoint(ctx, "audience")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Contains(load(), []byte("erin-ckpt")) {
		t.Fatal("setup: the first checkpoint does not hold the user")
	}
	mustApply(t, c, consent.Erase("erin-ckpt"))
	eventually(t, 5*time.Second, "a checkpoint without the erased user", func() bool {
		b := load()
		return !bytes.Contains(b, []byte("erin-ckpt")) && !bytes.Contains(b, []byte("erinskiing"))
	})
	if !bytes.Contains(load(), []byte("sam")) {
		t.Error("the new checkpoint lost the other user")
	}
}
