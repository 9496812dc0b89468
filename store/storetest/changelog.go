package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// Timing of the blocking-read tests.
const (
	longBlock  = 2 * time.Second        // a block the test must not wait out
	shortBlock = 200 * time.Millisecond // a block the test waits out
	writeDelay = 100 * time.Millisecond // how long a concurrent writer waits before writing
	prompt     = 1500 * time.Millisecond
)

// fillShard applies n effective changes spread over three users of shard
// and returns what Apply returned, in order.
func fillShard(tb testing.TB, s store.Store, shard, n int) []store.Applied {
	tb.Helper()
	users := usersInShard(fmt.Sprintf("fill%d", shard), shard, s.Shards(), 3)
	var out []store.Applied
	for i := range n {
		u := users[i%len(users)]
		ch := consent.RedeclareTag(u, tagSki)
		if (i/len(users))%2 == 1 {
			ch = consent.DeleteTag(u, tagSki)
		}
		out = append(out, mustApplyEffective(tb, s, ch))
	}
	return out
}

func testChangelog(t *testing.T, newStore newStoreFunc) {
	parallel(t, "events match Apply", newStore, func(t *testing.T, s store.Store) {
		var applied []store.Applied
		for i := range 6 {
			u := fmt.Sprintf("match-%d", i)
			for _, ch := range []consent.Change{
				consent.SetPersonalization(u, false),
				consent.RefuseChannel(u, "sms"),
				consent.DeclareTag(u, tagSki),
			} {
				applied = append(applied, mustApplyEffective(t, s, ch))
			}
		}
		logs := map[int][]store.Event{}
		for _, a := range applied {
			if _, ok := logs[a.Shard]; !ok {
				logs[a.Shard] = mustReadAll(t, s, a.Shard)
			}
			i := slices.IndexFunc(logs[a.Shard], func(ev store.Event) bool { return ev.Pos == a.Pos })
			if i < 0 {
				t.Errorf("change %s of %q at %q: not in changelog %d", a.Receipt.Op, a.Record.UserID, a.Pos, a.Shard)
				continue
			}
			checkEvent(t, logs[a.Shard][i], a)
		}
	})

	parallel(t, "positions increase and each user's events run in version order", newStore, func(t *testing.T, s store.Store) {
		applied := fillShard(t, s, 0, 12)
		evs := mustReadAll(t, s, 0)
		if len(evs) != len(applied) {
			t.Fatalf("changelog 0 has %d events, want %d", len(evs), len(applied))
		}
		for i, ev := range evs {
			if ev.Log != 0 {
				t.Errorf("event %d: Log = %d, want 0", i, ev.Log)
			}
			if i > 0 && ev.Pos.Compare(evs[i-1].Pos) <= 0 {
				t.Errorf("event %d at %q is not after event %d at %q", i, ev.Pos, i-1, evs[i-1].Pos)
			}
			checkEvent(t, ev, applied[i])
		}
		for _, u := range usersInShard("fill0", 0, s.Shards(), 3) {
			var versions []uint64
			for _, ev := range eventsOf(evs, u) {
				versions = append(versions, ev.Record.Version)
			}
			checkEqual(t, "versions of "+u+" in the changelog", versions, []uint64{1, 2, 3, 4})
		}
	})

	parallel(t, "Tail is the last position", newStore, func(t *testing.T, s store.Store) {
		if got := mustTail(t, s, 0); !got.IsZero() {
			t.Errorf("Tail of an empty shard log = %q, want the zero Position", got)
		}
		if evs := mustRead(t, s, 0, "", 10, 0); len(evs) != 0 {
			t.Errorf("ReadChangelog of an empty shard log: got %d events, want none", len(evs))
		}
		applied := fillShard(t, s, 0, 5)
		tail := mustTail(t, s, 0)
		if last := applied[len(applied)-1].Pos; tail != last {
			t.Errorf("Tail = %q, want the last Applied.Pos %q", tail, last)
		}
		if evs := mustReadAll(t, s, 0); len(evs) == 0 || evs[len(evs)-1].Pos != tail {
			t.Errorf("Tail = %q is not the position of the last event read", tail)
		}
		if evs := mustRead(t, s, 0, tail, 10, 0); len(evs) != 0 {
			t.Errorf("ReadChangelog after Tail: got %s, want nothing", show(evs))
		}
		if evs := mustRead(t, s, 0, tail, 10, 50*time.Millisecond); len(evs) != 0 {
			t.Errorf("blocking ReadChangelog after Tail: got %s, want nothing", show(evs))
		}
		a := mustApplyEffective(t, s, consent.SetPersonalization(usersInShard("fill0", 0, s.Shards(), 1)[0], false))
		evs := mustRead(t, s, 0, tail, 10, 0)
		if len(evs) != 1 {
			t.Fatalf("ReadChangelog after the old Tail: got %d events, want the 1 written since", len(evs))
		}
		checkEvent(t, evs[0], a)
	})

	parallel(t, "count limits the batch", newStore, func(t *testing.T, s store.Store) {
		fillShard(t, s, 0, 5)
		all := mustReadAll(t, s, 0)
		for _, count := range []int{1, 2, 4, 5, 10} {
			got := mustRead(t, s, 0, "", count, 0)
			checkEqual(t, fmt.Sprintf("ReadChangelog with count %d", count), got, all[:min(count, len(all))])
		}
	})

	parallel(t, "reading in batches yields every event once", newStore, func(t *testing.T, s store.Store) {
		fillShard(t, s, 0, 7)
		all := mustReadAll(t, s, 0)
		if len(all) != 7 {
			t.Fatalf("changelog 0 has %d events, want 7", len(all))
		}
		var got []store.Event
		var after store.Position
		for range 10 {
			evs := mustRead(t, s, 0, after, 3, 0)
			if len(evs) == 0 {
				break
			}
			got = append(got, evs...)
			after = evs[len(evs)-1].Pos
		}
		checkEqual(t, "events read in batches of 3", got, all)
		checkEqual(t, "events after the third", mustRead(t, s, 0, all[2].Pos, 100, 0), all[3:])
	})

	parallel(t, "blocking read returns waiting events at once", newStore, func(t *testing.T, s store.Store) {
		applied := fillShard(t, s, 0, 2)
		start := time.Now()
		evs := mustRead(t, s, 0, "", 10, longBlock)
		if d := time.Since(start); d > prompt {
			t.Errorf("blocking read with events waiting took %v, want at once", d)
		}
		if len(evs) != 2 {
			t.Fatalf("got %d events, want 2", len(evs))
		}
		checkEvent(t, evs[1], applied[1])
	})

	parallel(t, "blocking read wakes for a new event", newStore, func(t *testing.T, s store.Store) {
		u := usersInShard("wake", 0, s.Shards(), 1)[0]
		tail := mustTail(t, s, 0)
		done := make(chan store.Applied, 1)
		go func() {
			time.Sleep(writeDelay)
			a, err := s.Apply(t.Context(), consent.SetPersonalization(u, false))
			if err != nil {
				t.Errorf("concurrent Apply: %v", err)
			}
			done <- a
		}()
		start := time.Now()
		evs, err := s.ReadChangelog(t.Context(), 0, tail, 10, longBlock)
		d := time.Since(start)
		a := <-done
		if err != nil {
			t.Fatalf("blocking ReadChangelog: %v", err)
		}
		if d > prompt {
			t.Errorf("blocking read returned after %v, want soon after the write at %v (block %v)", d, writeDelay, longBlock)
		}
		if len(evs) != 1 {
			t.Fatalf("blocking read got %d events, want the 1 written concurrently", len(evs))
		}
		checkEvent(t, evs[0], a)
	})

	parallel(t, "blocking read times out empty", newStore, func(t *testing.T, s store.Store) {
		fillShard(t, s, 0, 1)
		for _, log := range []int{0, store.SettingsLog} {
			tail := mustTail(t, s, log)
			start := time.Now()
			evs, err := s.ReadChangelog(t.Context(), log, tail, 10, shortBlock)
			d := time.Since(start)
			if err != nil || len(evs) != 0 {
				t.Errorf("blocking read of log %d with nothing new = %s, %v; want nothing, nil", log, show(evs), err)
			}
			if d < shortBlock*3/4 || d > shortBlock+prompt {
				t.Errorf("blocking read of log %d with nothing new returned after %v, want about the block %v", log, d, shortBlock)
			}
		}
	})

	parallel(t, "blocking read of the settings log wakes for SetSettings", newStore, func(t *testing.T, s store.Store) {
		tail := mustTail(t, s, store.SettingsLog)
		cur := mustSettings(t, s)
		type result struct {
			set consent.Settings
			rc  consent.Receipt
		}
		done := make(chan result, 1)
		go func() {
			time.Sleep(writeDelay)
			next := cur.Clone()
			next.Suspended, next.SuspendReason = true, "regulator order"
			set, rc, err := s.SetSettings(t.Context(), next, consent.ActorAdmin, consent.SurfaceAdminConsole)
			if err != nil {
				t.Errorf("concurrent SetSettings: %v", err)
			}
			done <- result{set, rc}
		}()
		start := time.Now()
		evs, err := s.ReadChangelog(t.Context(), store.SettingsLog, tail, 10, longBlock)
		d := time.Since(start)
		r := <-done
		if err != nil {
			t.Fatalf("blocking ReadChangelog(SettingsLog): %v", err)
		}
		if d > prompt {
			t.Errorf("blocking read returned after %v, want soon after the write at %v (block %v)", d, writeDelay, longBlock)
		}
		if len(evs) != 1 {
			t.Fatalf("blocking read got %d events, want the 1 written concurrently", len(evs))
		}
		checkSettingsEvent(t, evs[0], r.set, r.rc)
	})

	parallel(t, "invalid log number", newStore, func(t *testing.T, s store.Store) {
		n := s.Shards()
		for _, log := range []int{n, n + 1, -2, -100} {
			_, err := s.ReadChangelog(t.Context(), log, "", 10, 0)
			checkErr(t, fmt.Sprintf("ReadChangelog(log %d)", log), err, store.ErrInvalidPosition)
			start := time.Now()
			_, err = s.ReadChangelog(t.Context(), log, "", 10, longBlock)
			checkErr(t, fmt.Sprintf("blocking ReadChangelog(log %d)", log), err, store.ErrInvalidPosition)
			if d := time.Since(start); d > prompt {
				t.Errorf("blocking ReadChangelog(log %d) took %v to fail, want at once", log, d)
			}
			_, err = s.Tail(t.Context(), log)
			checkErr(t, fmt.Sprintf("Tail(%d)", log), err, store.ErrInvalidPosition)
		}
	})

	parallel(t, "malformed position", newStore, func(t *testing.T, s store.Store) {
		fillShard(t, s, 0, 1)
		for _, p := range []store.Position{"abc", "1-x", "-1", "1-2-3"} {
			_, err := s.ReadChangelog(t.Context(), 0, p, 10, 0)
			checkErr(t, fmt.Sprintf("ReadChangelog(0, %q)", p), err, store.ErrInvalidPosition)
		}
	})
}

// checkSettingsEvent checks that ev is the settings changelog entry of a
// SetSettings that returned set and rc.
func checkSettingsEvent(tb testing.TB, ev store.Event, set consent.Settings, rc consent.Receipt) {
	tb.Helper()
	if ev.Log != store.SettingsLog {
		tb.Errorf("settings event Log = %d, want SettingsLog (%d)", ev.Log, store.SettingsLog)
	}
	if ev.Pos.IsZero() {
		tb.Errorf("settings event Pos is zero")
	}
	if ev.Record != nil {
		tb.Errorf("settings event has Record %s, want nil", show(ev.Record))
	}
	if ev.Settings == nil {
		tb.Errorf("settings event Settings is nil, want the saved settings")
	} else {
		checkEqual(tb, "settings event Settings", *ev.Settings, set)
	}
	checkEqual(tb, "settings event Receipt", ev.Receipt, rc)
}

func testShards(t *testing.T, newStore newStoreFunc) {
	parallel(t, "each shard log holds exactly its users' events", newStore, func(t *testing.T, s store.Store) {
		n := s.Shards()
		if n <= 0 {
			t.Fatalf("Shards() = %d, want > 0", n)
		}
		if s.Shards() != n {
			t.Fatalf("Shards() changed between calls")
		}
		type key struct {
			user    string
			version uint64
		}
		want := map[int][]key{}
		used := map[int]bool{}
		for i := range 64 {
			u := fmt.Sprintf("spread-%d", i)
			changes := []consent.Change{consent.SetPersonalization(u, false)}
			if i%2 == 0 {
				changes = append(changes, consent.DeclareTag(u, tagSki))
			}
			for _, ch := range changes {
				a := mustApplyEffective(t, s, ch)
				if sh := store.ShardOf(u, n); a.Shard != sh {
					t.Errorf("Applied.Shard of %q = %d, want ShardOf = %d", u, a.Shard, sh)
				}
				want[a.Shard] = append(want[a.Shard], key{u, a.Record.Version})
				used[a.Shard] = true
			}
		}
		if n > 1 && len(used) < 2 {
			t.Errorf("64 users fell into %d shards of %d", len(used), n)
		}
		for sh := range n {
			var got []key
			for _, ev := range mustReadAll(t, s, sh) {
				if ev.Log != sh {
					t.Errorf("event in log %d has Log = %d", sh, ev.Log)
				}
				if ev.Record == nil {
					t.Errorf("event in log %d has no Record", sh)
					continue
				}
				got = append(got, key{ev.Record.UserID, ev.Record.Version})
			}
			if !slices.Equal(got, want[sh]) {
				t.Errorf("shard log %d holds (user, version) %v, want %v", sh, got, want[sh])
			}
		}
	})
}
