package memory_test

import (
	"errors"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// trimmedStore returns a store with 2 shards keeping 3 entries per log,
// whose shard 1 had 5 changes and settings log 4, and what Apply returned
// for shard 1.
func trimmedStore(t *testing.T) (*memory.Store, []store.Applied) {
	t.Helper()
	s := mustOpen(t, memory.Options{ChangelogMaxLen: 3, Shards: 2})
	u := usersInShard("trim", 1, 2, 1)[0]
	var applied []store.Applied
	for i := range 5 {
		applied = append(applied, mustApply(t, s, consent.SetPersonalization(u, i%2 == 1)))
	}
	for range 4 {
		set := mustSettings(t, s)
		set.ReaskCooldown += time.Hour
		if _, _, err := s.SetSettings(t.Context(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
			t.Fatal(err)
		}
	}
	return s, applied
}

func TestTrimmedError(t *testing.T) {
	s, applied := trimmedStore(t)
	ctx := t.Context()
	check := func(what string, err error, log int, after, next store.Position) {
		t.Helper()
		var te *store.TrimmedError
		if !errors.As(err, &te) || !errors.Is(err, store.ErrTrimmed) {
			t.Fatalf("%s: %v (%T), want a *store.TrimmedError wrapping store.ErrTrimmed", what, err, err)
		}
		if te.Log != log || te.After != after || te.Next != next {
			t.Errorf("%s: TrimmedError{Log %d, After %q, Next %q}, want {%d, %q, %q}", what, te.Log, te.After, te.Next, log, after, next)
		}
	}
	_, err := s.ReadChangelog(ctx, 1, applied[0].Pos, 10, 0)
	check("ReadChangelog(1) from a trimmed position", err, 1, applied[0].Pos, applied[2].Pos)
	_, err = s.ReadChangelog(ctx, 1, "", 10, time.Second)
	check("blocking ReadChangelog(1) from the start", err, 1, "", applied[2].Pos)
	setEvs, err := s.ReadChangelog(ctx, store.SettingsLog, tail(t, s, store.SettingsLog), 10, 0)
	if err != nil || len(setEvs) != 0 {
		t.Fatalf("ReadChangelog(SettingsLog) at the tail = %d events, %v", len(setEvs), err)
	}

	// ReadLogs names the trimmed log, even when another log has events.
	_, err = s.ReadLogs(ctx, []int{0, 1}, []store.Position{"", applied[0].Pos}, 10, 0)
	check("ReadLogs with shard 1 trimmed", err, 1, applied[0].Pos, applied[2].Pos)
	_, err = s.ReadLogs(ctx, []int{1, store.SettingsLog}, []store.Position{applied[1].Pos, ""}, 10, time.Second)
	var te *store.TrimmedError
	if !errors.As(err, &te) || te.Log != store.SettingsLog {
		t.Errorf("ReadLogs with the settings log trimmed: %v, want a *store.TrimmedError for SettingsLog", err)
	}
	evs, err := s.ReadLogs(ctx, []int{0, 1}, []store.Position{"", applied[1].Pos}, 10, 0)
	if err != nil || len(evs) != 3 || evs[0].Pos != applied[2].Pos {
		t.Errorf("ReadLogs after the newest trimmed entry = %d events, %v; want the 3 kept", len(evs), err)
	}
}

func tail(tb testing.TB, s store.Store, log int) store.Position {
	tb.Helper()
	p, err := s.Tail(tb.Context(), log)
	if err != nil {
		tb.Fatalf("Tail(%d): %v", log, err)
	}
	return p
}

func TestReadLogsBlocking(t *testing.T) {
	ctx := t.Context()
	t.Run("woken by Close", func(t *testing.T) {
		s := mustOpen(t, memory.Options{Shards: 4})
		time.AfterFunc(50*time.Millisecond, func() { s.Close() })
		start := time.Now()
		_, err := s.ReadLogs(ctx, []int{0, 3, store.SettingsLog}, []store.Position{"", "", ""}, 10, 10*time.Second)
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("ReadLogs blocked when the store closed: %v, want ErrClosed", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("ReadLogs woken by Close after %v", d)
		}
	})
	t.Run("times out with an empty slice", func(t *testing.T) {
		s := mustOpen(t, memory.Options{Shards: 2})
		evs, err := s.ReadLogs(ctx, []int{0, 1}, []store.Position{"", ""}, 10, 50*time.Millisecond)
		if err != nil || evs == nil || len(evs) != 0 {
			t.Errorf("timed-out ReadLogs = %#v, %v; want an empty slice, nil", evs, err)
		}
	})
	t.Run("many readers, many writers", func(t *testing.T) {
		// Readers following every log see every event exactly once, in
		// order, while writers hit all shards.
		s := mustOpen(t, memory.Options{Shards: 8})
		logs := make([]int, 8)
		for i := range logs {
			logs[i] = i
		}
		const writes = 200
		results := make(chan int, 4)
		for range 4 {
			go func() {
				after := make([]store.Position, len(logs))
				n := 0
				deadline := time.Now().Add(20 * time.Second)
				for n < writes && time.Now().Before(deadline) {
					evs, err := s.ReadLogs(ctx, logs, after, 7, time.Second)
					if err != nil {
						t.Errorf("ReadLogs: %v", err)
						break
					}
					for _, ev := range evs {
						if ev.Pos.Compare(after[ev.Log]) <= 0 {
							t.Errorf("log %d: %q after %q", ev.Log, ev.Pos, after[ev.Log])
						}
						after[ev.Log] = ev.Pos
						n++
					}
				}
				results <- n
			}()
		}
		for i := range writes {
			u := usersInShard("rw", i%8, 8, 1+i/8)[i/8]
			mustApply(t, s, consent.SetPersonalization(u, false))
		}
		for range 4 {
			if n := <-results; n != writes {
				t.Errorf("a reader saw %d events, want %d", n, writes)
			}
		}
	})
}

func TestGetManyReturnsCopies(t *testing.T) {
	s := mustOpen(t, memory.Options{})
	mustApply(t, s, consent.RefuseChannel("copy", "sms"))
	mustApply(t, s, consent.DeclareTag("copy", "interest:ski"))
	mustApply(t, s, consent.SetMinor("copy", true))
	mustApply(t, s, consent.SetGuardian("copy", true))
	want := capture(t, s, "copy")
	rs, err := s.GetMany(t.Context(), []string{"copy", "copy"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs {
		rs[i].State.RefusedChannels[0] = "scribbled"
		rs[i].Tags.Entries[0].Tag = "scribbled:x"
		rs[i].State.Guardian.PolicyVersion = 99
	}
	checkSame(t, "after modifying what GetMany returned", capture(t, s, "copy"), want)
}

func TestPresenceIsNotPersisted(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{NoSync: true})
	before := fileSize(t, dataFile(dir))
	applied := make([]store.Position, s.Shards()+1)
	if err := s.Announce(t.Context(), "instance-1", applied, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Leave(t.Context(), "instance-0"); err != nil {
		t.Fatal(err)
	}
	if after := fileSize(t, dataFile(dir)); after != before {
		t.Errorf("the file grew from %d to %d bytes on Announce and Leave", before, after)
	}
	mustClose(t, s)
	s = openDir(t, dir, memory.Options{})
	defer s.Close()
	if ins, err := s.Instances(t.Context()); err != nil || len(ins) != 0 {
		t.Errorf("Instances after reopening = %+v, %v; want none", ins, err)
	}
}

func TestAnnounceValidates(t *testing.T) {
	s := mustOpen(t, memory.Options{Shards: 1})
	ctx := t.Context()
	if err := s.Announce(ctx, "bad id", nil, time.Minute); !errors.Is(err, consent.ErrInvalidUserID) {
		t.Errorf("Announce with an invalid ID: %v, want consent.ErrInvalidUserID", err)
	}
	if err := s.Announce(ctx, "ok", []store.Position{"1-0", "x"}, time.Minute); !errors.Is(err, store.ErrInvalidPosition) {
		t.Errorf("Announce with a malformed position: %v, want store.ErrInvalidPosition", err)
	}
	if err := s.Announce(ctx, "gone", nil, -time.Second); err != nil {
		t.Fatal(err)
	}
	if ins, err := s.Instances(ctx); err != nil || len(ins) != 0 {
		t.Errorf("Instances after a bad announcement and one already expired = %+v, %v; want none", ins, err)
	}
}
