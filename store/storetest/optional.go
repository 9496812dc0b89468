package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// testOptional checks the optional abilities (store/optional.go) the store
// under test has, and skips, with the reason, those it lacks.
func testOptional(t *testing.T, newStore newStoreFunc) {
	t.Run("GetMany", func(t *testing.T) {
		t.Parallel()
		if _, ok := newStore(t).(store.BatchGetter); !ok {
			t.Skip("the store does not implement store.BatchGetter")
		}
		testGetMany(t, newStore)
	})
	t.Run("ReadLogs", func(t *testing.T) {
		t.Parallel()
		probe := newStore(t)
		r, ok := probe.(store.MultiLogReader)
		if !ok {
			t.Skip("the store does not implement store.MultiLogReader")
		}
		if _, err := r.ReadLogs(t.Context(), []int{0}, []store.Position{""}, 1, 0); errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("ReadLogs is unsupported in this configuration: %v", err)
		} else if err != nil {
			t.Fatalf("ReadLogs of shard 0 from the start of a new store: %v", err)
		}
		testReadLogs(t, newStore)
	})
	t.Run("Presence", func(t *testing.T) {
		t.Parallel()
		if _, ok := newStore(t).(store.Presence); !ok {
			t.Skip("the store does not implement store.Presence")
		}
		testPresence(t, newStore)
	})
}

// ---- GetMany ----

func testGetMany(t *testing.T, newStore newStoreFunc) {
	parallel(t, "records in order, never-seen users at version 0", newStore, func(t *testing.T, s store.Store) {
		bg := s.(store.BatchGetter)
		seed(t, s)
		spread := make([]string, 12)
		for i := range spread {
			spread[i] = fmt.Sprintf("many-%d", i)
			if i%3 != 2 { // every third one is never written
				mustApplyEffective(t, s, consent.SetPersonalization(spread[i], false))
			}
		}
		ids := append([]string{gus, nobody, alice, erin, minnie, alice, "never-seen"}, spread...)
		got, err := bg.GetMany(t.Context(), ids)
		if err != nil {
			t.Fatalf("GetMany(%q): %v", ids, err)
		}
		if len(got) != len(ids) {
			t.Fatalf("GetMany of %d users returned %d records", len(ids), len(got))
		}
		for i, id := range ids {
			want, seen := getRecord(t, s, id)
			if !seen {
				want = consent.NewRecord(id)
				if got[i].Version != 0 {
					t.Errorf("GetMany record %d (%q, never seen) has Version %d, want 0", i, id, got[i].Version)
				}
			}
			checkEqual(t, fmt.Sprintf("GetMany record %d (%q, seen %t)", i, id, seen), got[i], want)
		}
	})

	parallel(t, "a single user and an empty batch", newStore, func(t *testing.T, s store.Store) {
		bg := s.(store.BatchGetter)
		mustApplyEffective(t, s, consent.DeclareTag(alice, tagSki))
		got, err := bg.GetMany(t.Context(), []string{alice})
		if err != nil {
			t.Fatalf("GetMany(alice): %v", err)
		}
		checkEqual(t, "GetMany(alice)", got, []consent.Record{mustGet(t, s, alice)})
		got, err = bg.GetMany(t.Context(), []string{})
		if err != nil || len(got) != 0 {
			t.Errorf("GetMany of no users = %s, %v; want nothing, nil", show(got), err)
		}
	})

	parallel(t, "reflects later changes and shares no memory", newStore, func(t *testing.T, s store.Store) {
		bg := s.(store.BatchGetter)
		seed(t, s)
		first, err := bg.GetMany(t.Context(), []string{alice, gus})
		if err != nil {
			t.Fatalf("GetMany: %v", err)
		}
		want := []consent.Record{mustGet(t, s, alice), mustGet(t, s, gus)}
		// Scribble over what was returned: the store must not care.
		for i := range first {
			r := &first[i]
			r.Version += 100
			for j := range r.State.RefusedChannels {
				r.State.RefusedChannels[j] = "scribbled"
			}
			for j := range r.Tags.Entries {
				r.Tags.Entries[j].Tag = tagTennis
			}
			for j := range r.Tags.Suppressed {
				r.Tags.Suppressed[j].Tag = tagTennis
			}
		}
		again, err := bg.GetMany(t.Context(), []string{alice, gus})
		if err != nil {
			t.Fatalf("GetMany: %v", err)
		}
		checkEqual(t, "GetMany after modifying its previous result", again, want)
		a := mustApplyEffective(t, s, consent.AllowChannel(alice, "sms"))
		again, err = bg.GetMany(t.Context(), []string{alice})
		if err != nil {
			t.Fatalf("GetMany: %v", err)
		}
		checkEqual(t, "GetMany after a change", again, []consent.Record{a.Record})
	})

	parallel(t, "an invalid ID fails the call", newStore, func(t *testing.T, s store.Store) {
		bg := s.(store.BatchGetter)
		mustApplyEffective(t, s, consent.DeclareTag(alice, tagSki))
		for _, bad := range []string{"", "bad user", "user{1}", "用户", strings.Repeat("u", consent.MaxUserIDLen+1)} {
			for _, ids := range [][]string{{bad}, {alice, bad}, {bad, alice, nobody}} {
				got, err := bg.GetMany(t.Context(), ids)
				checkErr(t, fmt.Sprintf("GetMany(%q)", ids), err, consent.ErrInvalidUserID)
				if err != nil && len(got) != 0 {
					t.Errorf("GetMany(%q) failed but returned %d records", ids, len(got))
				}
			}
		}
	})

	parallel(t, "after Close", newStore, func(t *testing.T, s store.Store) {
		bg := s.(store.BatchGetter)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, err := bg.GetMany(t.Context(), []string{alice})
		checkErr(t, "GetMany after Close", err, store.ErrClosed)
	})
}

// ---- ReadLogs ----

// readLogs calls ReadLogs and fails the test on an error.
func readLogs(tb testing.TB, r store.MultiLogReader, logs []int, after []store.Position, count int, block time.Duration) []store.Event {
	tb.Helper()
	evs, err := r.ReadLogs(tb.Context(), logs, after, count, block)
	if err != nil {
		tb.Fatalf("ReadLogs(%v, %q, %d, %v): %v", logs, after, count, block, err)
	}
	return nilIfEmpty(evs)
}

// byLog splits evs by their Log, checking that each log is one of logs and
// that positions increase within each log.
func byLog(tb testing.TB, evs []store.Event, logs []int) map[int][]store.Event {
	tb.Helper()
	out := map[int][]store.Event{}
	for _, ev := range evs {
		if !slices.Contains(logs, ev.Log) {
			tb.Errorf("ReadLogs(%v) returned an event of log %d at %q", logs, ev.Log, ev.Pos)
			continue
		}
		if prev := out[ev.Log]; len(prev) > 0 && ev.Pos.Compare(prev[len(prev)-1].Pos) <= 0 {
			tb.Errorf("ReadLogs: log %d event at %q does not come after %q", ev.Log, ev.Pos, prev[len(prev)-1].Pos)
		}
		out[ev.Log] = append(out[ev.Log], ev)
	}
	return out
}

// testLogs returns the logs the ReadLogs tests follow: up to three shards
// and the settings log.
func testLogs(s store.Store) []int {
	logs := []int{0}
	for i := 1; i < min(3, s.Shards()); i++ {
		logs = append(logs, i)
	}
	return append(logs, store.SettingsLog)
}

// tails returns the Tail of each log.
func tails(tb testing.TB, s store.Store, logs []int) []store.Position {
	tb.Helper()
	out := make([]store.Position, len(logs))
	for i, l := range logs {
		out[i] = mustTail(tb, s, l)
	}
	return out
}

// changeSettings makes one settings change and returns what SetSettings
// returned.
func changeSettings(tb testing.TB, s store.Store, reason string) (consent.Settings, consent.Receipt) {
	tb.Helper()
	next := mustSettings(tb, s).Clone()
	next.Suspended = !next.Suspended
	next.SuspendReason = ""
	if next.Suspended {
		next.SuspendReason = reason
	}
	return mustSetSettings(tb, s, next)
}

func testReadLogs(t *testing.T, newStore newStoreFunc) {
	parallel(t, "events of several logs", newStore, func(t *testing.T, s store.Store) {
		r := s.(store.MultiLogReader)
		logs := testLogs(s)
		shardLogs := logs[:len(logs)-1]
		applied := map[int][]store.Applied{}
		for i, sh := range shardLogs {
			if i == len(shardLogs)-1 && len(shardLogs) > 1 {
				break // the last shard stays empty
			}
			applied[sh] = fillShard(t, s, sh, 3+i)
		}
		changeSettings(t, s, "multi-log read")
		changeSettings(t, s, "multi-log read")
		want := map[int][]store.Event{}
		for _, l := range logs {
			if evs := mustReadAll(t, s, l); len(evs) > 0 {
				want[l] = evs
			}
		}
		from := make([]store.Position, len(logs))
		got := byLog(t, readLogs(t, r, logs, from, 100, 0), logs)
		checkEqual(t, "ReadLogs from the start, by log", got, want)
		for sh, as := range applied {
			if evs := got[sh]; len(evs) == len(as) {
				for i := range evs {
					checkEvent(t, evs[i], as[i])
				}
			}
		}
		for _, ev := range got[store.SettingsLog] {
			if ev.Settings == nil || ev.Record != nil {
				t.Errorf("settings log event at %q: Settings %v, Record %v; want settings and no record", ev.Pos, ev.Settings != nil, ev.Record != nil)
			}
		}
		// From the middle of each log: only what follows.
		mid := make([]store.Position, len(logs))
		want = map[int][]store.Event{}
		for i, l := range logs {
			all := mustReadAll(t, s, l)
			if len(all) > 0 {
				mid[i] = all[0].Pos
			}
			if len(all) > 1 {
				want[l] = all[1:]
			}
		}
		checkEqual(t, "ReadLogs after each log's first event, by log", byLog(t, readLogs(t, r, logs, mid, 100, 0), logs), want)
		// At the tails: nothing.
		if evs := readLogs(t, r, logs, tails(t, s, logs), 100, 0); len(evs) != 0 {
			t.Errorf("ReadLogs at the tails: got %s, want nothing", show(evs))
		}
		// The logs can come in any order; a single log works too.
		rev := slices.Clone(logs)
		slices.Reverse(rev)
		want = map[int][]store.Event{}
		for _, l := range rev {
			if evs := mustReadAll(t, s, l); len(evs) > 0 {
				want[l] = evs
			}
		}
		checkEqual(t, "ReadLogs of the logs in reverse, by log", byLog(t, readLogs(t, r, rev, make([]store.Position, len(rev)), 100, 0), rev), want)
		checkEqual(t, "ReadLogs of shard 0 alone", readLogs(t, r, []int{0}, []store.Position{""}, 100, 0), mustReadAll(t, s, 0))
	})

	parallel(t, "count limits each log", newStore, func(t *testing.T, s store.Store) {
		r := s.(store.MultiLogReader)
		logs := testLogs(s)
		for i, sh := range logs[:len(logs)-1] {
			fillShard(t, s, sh, 5-i)
		}
		for range 3 {
			changeSettings(t, s, "count")
		}
		all := map[int][]store.Event{}
		for _, l := range logs {
			all[l] = mustReadAll(t, s, l)
		}
		for _, count := range []int{1, 2, 3, 10} {
			want := map[int][]store.Event{}
			for _, l := range logs {
				if n := min(count, len(all[l])); n > 0 {
					want[l] = all[l][:n]
				}
			}
			got := readLogs(t, r, logs, make([]store.Position, len(logs)), count, 0)
			checkEqual(t, fmt.Sprintf("ReadLogs with count %d, by log", count), byLog(t, got, logs), want)
		}
		// Reading on in batches yields every event once.
		after := make([]store.Position, len(logs))
		got := map[int][]store.Event{}
		for range 20 {
			evs := readLogs(t, r, logs, after, 2, 0)
			if len(evs) == 0 {
				break
			}
			for l, es := range byLog(t, evs, logs) {
				if len(es) > 2 {
					t.Errorf("ReadLogs with count 2 returned %d events of log %d", len(es), l)
				}
				got[l] = append(got[l], es...)
				after[slices.Index(logs, l)] = es[len(es)-1].Pos
			}
		}
		checkEqual(t, "ReadLogs in batches of 2, by log", got, all)
	})

	parallel(t, "blocking read returns waiting events at once", newStore, func(t *testing.T, s store.Store) {
		r := s.(store.MultiLogReader)
		logs := testLogs(s)
		before := tails(t, s, logs)
		a := fillShard(t, s, logs[len(logs)-2], 2)
		start := time.Now()
		evs := readLogs(t, r, logs, before, 10, longBlock)
		if d := time.Since(start); d > prompt {
			t.Errorf("blocking ReadLogs with events waiting took %v, want at once", d)
		}
		if len(evs) != 2 {
			t.Fatalf("blocking ReadLogs got %s, want the 2 events waiting", show(evs))
		}
		checkEvent(t, evs[0], a[0])
		checkEvent(t, evs[1], a[1])
	})

	for _, which := range []string{"first shard", "last shard", "settings log"} {
		parallel(t, "blocking read wakes for a write to the "+which, newStore, func(t *testing.T, s store.Store) {
			r := s.(store.MultiLogReader)
			logs := testLogs(s)
			before := tails(t, s, logs)
			type result struct {
				a   store.Applied
				set consent.Settings
				rc  consent.Receipt
			}
			next := mustSettings(t, s).Clone()
			next.Suspended, next.SuspendReason = true, "wake"
			done := make(chan result, 1)
			go func() {
				time.Sleep(writeDelay)
				var res result
				switch which {
				case "settings log":
					var err error
					if res.set, res.rc, err = s.SetSettings(t.Context(), next, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
						t.Errorf("concurrent SetSettings: %v", err)
					}
				default:
					sh := logs[0]
					if which == "last shard" {
						sh = logs[len(logs)-2]
					}
					u := usersInShard("wake", sh, s.Shards(), 1)[0]
					var err error
					if res.a, err = s.Apply(t.Context(), consent.SetPersonalization(u, false)); err != nil {
						t.Errorf("concurrent Apply: %v", err)
					}
				}
				done <- res
			}()
			start := time.Now()
			evs, err := r.ReadLogs(t.Context(), logs, before, 10, longBlock)
			d := time.Since(start)
			res := <-done
			if err != nil {
				t.Fatalf("blocking ReadLogs: %v", err)
			}
			if d > prompt {
				t.Errorf("blocking ReadLogs returned after %v, want soon after the write at %v (block %v)", d, writeDelay, longBlock)
			}
			if len(evs) != 1 {
				t.Fatalf("blocking ReadLogs got %s, want the 1 event written concurrently", show(evs))
			}
			if which == "settings log" {
				checkSettingsEvent(t, evs[0], res.set, res.rc)
			} else {
				checkEvent(t, evs[0], res.a)
			}
		})
	}

	parallel(t, "blocking read times out empty", newStore, func(t *testing.T, s store.Store) {
		r := s.(store.MultiLogReader)
		logs := testLogs(s)
		fillShard(t, s, 0, 1)
		changeSettings(t, s, "timeout")
		start := time.Now()
		evs, err := r.ReadLogs(t.Context(), logs, tails(t, s, logs), 10, shortBlock)
		d := time.Since(start)
		if err != nil || len(evs) != 0 {
			t.Errorf("blocking ReadLogs with nothing new = %s, %v; want nothing, nil", show(evs), err)
		}
		if d < shortBlock*3/4 || d > shortBlock+prompt {
			t.Errorf("blocking ReadLogs with nothing new returned after %v, want about the block %v", d, shortBlock)
		}
	})

	parallel(t, "cancelled while blocking", newStore, func(t *testing.T, s store.Store) {
		r := s.(store.MultiLogReader)
		logs := testLogs(s)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(writeDelay, cancel)
		start := time.Now()
		evs, err := r.ReadLogs(ctx, logs, tails(t, s, logs), 10, 5*time.Second)
		d := time.Since(start)
		checkErr(t, "ReadLogs cancelled while blocking", err, context.Canceled)
		if len(evs) != 0 {
			t.Errorf("ReadLogs cancelled while blocking returned %d events", len(evs))
		}
		if d > writeDelay+prompt {
			t.Errorf("ReadLogs returned %v after the start, want soon after the cancel at %v", d, writeDelay)
		}
	})

	parallel(t, "cancelled before the call and deadline while blocking", newStore, func(t *testing.T, s store.Store) {
		r := s.(store.MultiLogReader)
		logs := testLogs(s)
		at := tails(t, s, logs)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		start := time.Now()
		_, err := r.ReadLogs(ctx, logs, at, 10, 5*time.Second)
		checkErr(t, "blocking ReadLogs with a cancelled context", err, context.Canceled)
		if d := time.Since(start); d > prompt {
			t.Errorf("blocking ReadLogs with a cancelled context took %v, want at once", d)
		}
		ctx, cancel = context.WithTimeout(t.Context(), writeDelay)
		defer cancel()
		start = time.Now()
		_, err = r.ReadLogs(ctx, logs, at, 10, 5*time.Second)
		checkErr(t, "ReadLogs past its deadline", err, context.DeadlineExceeded)
		if d := time.Since(start); d > writeDelay+prompt {
			t.Errorf("ReadLogs returned %v after the start, want soon after the deadline at %v", d, writeDelay)
		}
	})

	parallel(t, "invalid arguments", newStore, func(t *testing.T, s store.Store) {
		r := s.(store.MultiLogReader)
		fillShard(t, s, 0, 1)
		n := s.Shards()
		cases := []struct {
			name  string
			logs  []int
			after []store.Position
		}{
			{"fewer positions than logs", []int{0, store.SettingsLog}, []store.Position{""}},
			{"more positions than logs", []int{0}, []store.Position{"", ""}},
			{"positions but no logs", nil, []store.Position{""}},
			{"no logs", nil, nil},
			{"a log past the shards", []int{0, n}, []store.Position{"", ""}},
			{"a negative log other than SettingsLog", []int{-2, 0}, []store.Position{"", ""}},
			{"a malformed position", []int{0, store.SettingsLog}, []store.Position{"", "1-x"}},
			{"another malformed position", []int{0}, []store.Position{"abc"}},
		}
		for _, c := range cases {
			start := time.Now()
			_, err := r.ReadLogs(t.Context(), c.logs, c.after, 10, longBlock)
			checkErr(t, "ReadLogs with "+c.name, err, store.ErrInvalidPosition)
			if d := time.Since(start); d > prompt {
				t.Errorf("blocking ReadLogs with %s took %v to fail, want at once", c.name, d)
			}
		}
	})

	parallel(t, "after Close", newStore, func(t *testing.T, s store.Store) {
		r := s.(store.MultiLogReader)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		start := time.Now()
		_, err := r.ReadLogs(t.Context(), []int{0, store.SettingsLog}, []store.Position{"", ""}, 10, shortBlock)
		checkErr(t, "blocking ReadLogs after Close", err, store.ErrClosed)
		if d := time.Since(start); d > prompt {
			t.Errorf("ReadLogs after Close took %v, want at once", d)
		}
	})
}

// ---- Presence ----

// appliedFor returns made-up positions for every shard log and the settings
// log, distinct per k.
func appliedFor(s store.Store, k int) []store.Position {
	out := make([]store.Position, s.Shards()+1)
	for i := range out {
		out[i] = store.Position(fmt.Sprintf("%d-%d", 1_700_000_000_000+int64(k), i))
	}
	return out
}

func mustAnnounce(tb testing.TB, p store.Presence, id string, applied []store.Position, ttl time.Duration) {
	tb.Helper()
	if err := p.Announce(tb.Context(), id, applied, ttl); err != nil {
		tb.Fatalf("Announce(%q): %v", id, err)
	}
}

func mustInstances(tb testing.TB, p store.Presence) map[string]store.Instance {
	tb.Helper()
	ins, err := p.Instances(tb.Context())
	if err != nil {
		tb.Fatalf("Instances: %v", err)
	}
	out := map[string]store.Instance{}
	for _, in := range ins {
		if _, dup := out[in.ID]; dup {
			tb.Errorf("Instances lists %q twice", in.ID)
		}
		out[in.ID] = in
	}
	return out
}

// instanceIDs returns the IDs of ins, sorted.
func instanceIDs(ins map[string]store.Instance) []string {
	var ids []string
	for id := range ins {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func testPresence(t *testing.T, newStore newStoreFunc) {
	const ttl = time.Minute
	parallel(t, "announced instances are listed with their positions", newStore, func(t *testing.T, s store.Store) {
		p := s.(store.Presence)
		if ins := mustInstances(t, p); len(ins) != 0 {
			t.Errorf("Instances of a new store = %v, want none", instanceIDs(ins))
		}
		a, b := "list-a", "list-b"
		pa, pb := appliedFor(s, 1), appliedFor(s, 2)
		start := time.Now()
		mustAnnounce(t, p, a, pa, ttl)
		mustAnnounce(t, p, b, pb, ttl)
		ins := mustInstances(t, p)
		checkEqual(t, "Instances IDs", instanceIDs(ins), []string{a, b})
		for id, want := range map[string][]store.Position{a: pa, b: pb} {
			in := ins[id]
			checkEqual(t, "Applied of "+id, in.Applied, want)
			if lo, hi := start.Add(ttl-time.Second), time.Now().Add(ttl+time.Second); in.Expires.Before(lo) || in.Expires.After(hi) {
				t.Errorf("Expires of %s = %v, want about now+%v (%v to %v)", id, in.Expires, ttl, lo, hi)
			}
			for sh := range s.Shards() {
				if got := in.AppliedIn(sh); got != want[sh] {
					t.Errorf("%s AppliedIn(%d) = %q, want %q", id, sh, got, want[sh])
				}
			}
			if got := in.AppliedIn(store.SettingsLog); got != want[len(want)-1] {
				t.Errorf("%s AppliedIn(SettingsLog) = %q, want %q", id, got, want[len(want)-1])
			}
			if got := in.AppliedIn(s.Shards() + 1); got != "" {
				t.Errorf("%s AppliedIn(a log past the shards) = %q, want the zero Position", id, got)
			}
		}
	})

	parallel(t, "Leave removes one instance", newStore, func(t *testing.T, s store.Store) {
		p := s.(store.Presence)
		a, b := "leave-a", "leave-b"
		mustAnnounce(t, p, a, appliedFor(s, 1), ttl)
		mustAnnounce(t, p, b, appliedFor(s, 2), ttl)
		if err := p.Leave(t.Context(), a); err != nil {
			t.Fatalf("Leave(%q): %v", a, err)
		}
		ins := mustInstances(t, p)
		checkEqual(t, "Instances after Leave", instanceIDs(ins), []string{b})
		checkEqual(t, "Applied of the instance that stayed", ins[b].Applied, appliedFor(s, 2))
		if err := p.Leave(t.Context(), "leave-never-announced"); err != nil {
			t.Errorf("Leave of an instance never announced: %v", err)
		}
		if err := p.Leave(t.Context(), a); err != nil {
			t.Errorf("Leave of an instance that left: %v", err)
		}
		// It may come back.
		mustAnnounce(t, p, a, appliedFor(s, 3), ttl)
		checkEqual(t, "Instances after announcing again", instanceIDs(mustInstances(t, p)), []string{a, b})
	})

	parallel(t, "an instance expires after its ttl", newStore, func(t *testing.T, s store.Store) {
		p := s.(store.Presence)
		const short = 300 * time.Millisecond
		brief, stays := "expire-brief", "expire-stays"
		mustAnnounce(t, p, stays, appliedFor(s, 1), ttl)
		start := time.Now()
		mustAnnounce(t, p, brief, appliedFor(s, 2), short)
		ins := mustInstances(t, p)
		if _, ok := ins[brief]; !ok && time.Since(start) < short {
			t.Errorf("Instances right after announcing %q with ttl %v: %v, want it listed", brief, short, instanceIDs(ins))
		}
		var gone time.Duration
		for {
			if _, ok := mustInstances(t, p)[brief]; !ok {
				gone = time.Since(start)
				break
			}
			if time.Since(start) > short+2*time.Second {
				t.Fatalf("%q announced with ttl %v is still listed after %v", brief, short, time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if gone < short-50*time.Millisecond {
			t.Errorf("%q announced with ttl %v was gone after %v, before it expired", brief, short, gone)
		}
		checkEqual(t, "Instances after the short one expired", instanceIDs(mustInstances(t, p)), []string{stays})
	})

	parallel(t, "announcing again updates the positions and the expiry", newStore, func(t *testing.T, s store.Store) {
		p := s.(store.Presence)
		const short = 300 * time.Millisecond
		id := "again-a"
		mustAnnounce(t, p, id, appliedFor(s, 1), short)
		mustAnnounce(t, p, id, appliedFor(s, 2), ttl)
		ins := mustInstances(t, p)
		checkEqual(t, "Instances after announcing twice", instanceIDs(ins), []string{id})
		checkEqual(t, "Applied after announcing again", ins[id].Applied, appliedFor(s, 2))
		time.Sleep(short + 200*time.Millisecond)
		ins = mustInstances(t, p)
		if _, ok := ins[id]; !ok {
			t.Fatalf("%q announced again with ttl %v is gone after the first ttl %v", id, ttl, short)
		}
		checkEqual(t, "Applied later", ins[id].Applied, appliedFor(s, 2))
		// A shorter announcement shortens the expiry too.
		mustAnnounce(t, p, id, appliedFor(s, 3), short)
		deadline := time.Now().Add(short + 2*time.Second)
		for {
			if _, ok := mustInstances(t, p)[id]; !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q announced again with ttl %v is still listed long after", id, short)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	parallel(t, "positions are copied", newStore, func(t *testing.T, s store.Store) {
		p := s.(store.Presence)
		id := "copy-a"
		applied := appliedFor(s, 1)
		mustAnnounce(t, p, id, applied, ttl)
		applied[0] = "9-9"
		in := mustInstances(t, p)[id]
		checkEqual(t, "Applied after modifying the announced slice", in.Applied, appliedFor(s, 1))
		if len(in.Applied) > 0 {
			in.Applied[0] = "8-8"
		}
		checkEqual(t, "Applied after modifying a listed slice", mustInstances(t, p)[id].Applied, appliedFor(s, 1))
	})

	parallel(t, "after Close", newStore, func(t *testing.T, s store.Store) {
		p := s.(store.Presence)
		mustAnnounce(t, p, "closed-a", appliedFor(s, 1), ttl)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		checkErr(t, "Announce after Close", p.Announce(t.Context(), "closed-b", appliedFor(s, 1), ttl), store.ErrClosed)
		_, err := p.Instances(t.Context())
		checkErr(t, "Instances after Close", err, store.ErrClosed)
		checkErr(t, "Leave after Close", p.Leave(t.Context(), "closed-a"), store.ErrClosed)
	})
}
