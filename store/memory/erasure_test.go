package memory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

var chainKey = consent.ChainKey("memory test chain key, not a secret")

// Markers of the victim's personal content (see eraseVictim).
var victimMarkers = []string{"skiqzm", "golfqzm", "reason-qzm", "ref-qzm", "erasewhy-qzm"}

// writeVictim writes the victim's personal data, every piece carrying a
// marker, and returns the number of receipts written.
func writeVictim(tb testing.TB, s *memory.Store, u string) int {
	tb.Helper()
	changes := []consent.Change{
		consent.DeclareTag(u, "interest:skiqzm"),
		consent.InferTag(u, "interest:golfqzm"),
		consent.DeleteTag(u, "interest:golfqzm"),
		consent.RefuseChannel(u, "sms").Because("reason-qzm"),
		consent.SetMinor(u, true),
		consent.GuardianConsent(u, "ref-qzm"),
	}
	for _, ch := range changes {
		mustApply(tb, s, ch)
	}
	return len(changes)
}

// eraseVictim erases u with a reason that carries a marker.
func eraseVictim(tb testing.TB, s *memory.Store, u string) store.Applied {
	tb.Helper()
	return mustApply(tb, s, consent.Erase(u).By(consent.ActorAdmin, consent.SurfaceAdminConsole).Because("erasewhy-qzm"))
}

// markersIn returns the victim's markers found in b.
func markersIn(b []byte) []string {
	var out []string
	for _, m := range victimMarkers {
		if bytes.Contains(b, []byte(m)) {
			out = append(out, m)
		}
	}
	return out
}

func readData(tb testing.TB, dir string) []byte {
	tb.Helper()
	b, err := os.ReadFile(dataFile(dir))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkErased checks what the store gives back about an erased user with
// n receipts before the erasure.
func checkErased(tb testing.TB, s *memory.Store, u string, n int) {
	tb.Helper()
	ctx := context.Background()
	rec, err := s.Get(ctx, u)
	if err != nil || !rec.State.Erased || len(rec.Tags.Entries) != 0 || len(rec.Tags.Suppressed) != 0 || rec.Version != uint64(n+1) {
		tb.Errorf("record of the erased user = %+v, %v; want the tombstone at version %d", rec, err, n+1)
	}
	rs, err := s.Receipts(ctx, u)
	if err != nil || len(rs) != n+1 {
		tb.Fatalf("Receipts = %d, %v; want %d", len(rs), err, n+1)
	}
	for i, r := range rs {
		if !r.Redacted || r.Salt != "" || r.Subject != "" || r.Reason != "" || r.Ref != "" || r.Old != "" || r.New != "" {
			tb.Errorf("receipt %d is not redacted: %+v", i, r)
		}
	}
	set := mustSettings(tb, s)
	if err := consent.VerifyChain(rs, consent.HeadOf(rec, &set, time.Now()), chainKey); err != nil {
		tb.Errorf("VerifyChain of the redacted receipts: %v", err)
	}
	evs, err := s.ReadChangelog(ctx, store.ShardOf(u, s.Shards()), "", 1000, 0)
	if err != nil {
		tb.Fatal(err)
	}
	var mine []store.Event
	for _, ev := range evs {
		if ev.Record != nil && ev.Record.UserID == u {
			mine = append(mine, ev)
		}
	}
	if len(mine) != n+1 {
		tb.Fatalf("%d changelog entries of the user, want %d", len(mine), n+1)
	}
	for i, ev := range mine[:n] {
		want := consent.Record{UserID: u, Number: rec.Number, Version: uint64(i + 1), LastHash: rs[i].Hash}
		if !ev.Shredded || ev.Prev != nil || !reflectEqual(*ev.Record, want) || !reflectEqual(ev.Receipt, rs[i]) {
			tb.Errorf("entry %d = %+v, want shredded: record %+v, receipt %+v, no prev", i, ev, want, rs[i])
		}
	}
	if last := mine[n]; last.Shredded || last.Prev != nil || !last.Record.State.Erased || !reflectEqual(last.Receipt, rs[n]) {
		tb.Errorf("erase entry = %+v, want the tombstone, the redacted receipt, no prev", last)
	}
	var found []string
	if err := s.ReadOutcomes(ctx, func(e []byte) error { found = append(found, markersIn(e)...); return nil }); err != nil {
		tb.Fatal(err)
	}
	if len(found) > 0 {
		tb.Errorf("outcome events of the erased user are still read: %v", found)
	}
}

func reflectEqual(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestEraseReplayRedacts replays a file whose erase line follows the
// user's clear lines: the state is the erased one, while the file holds the
// clear lines until a compaction.
func TestEraseReplayRedacts(t *testing.T) {
	dir := t.TempDir()
	opts := memory.Options{ChainKey: chainKey, CompactDelay: -1, Shards: 4}
	s := openDir(t, dir, opts)
	const u, other = "victim", "bystander"
	n := writeVictim(t, s, u)
	mustApply(t, s, consent.DeclareTag(other, "interest:chess"))
	if err := s.AppendOutcomes(t.Context(), []string{u, other}, [][]byte{[]byte(`{"i":"skiqzm"}`), []byte(`{"i":"chess"}`)}); err != nil {
		t.Fatal(err)
	}
	a := eraseVictim(t, s, u)
	if a.Receipt.Reason != "erasewhy-qzm" {
		t.Errorf("Applied.Receipt = %+v, want the whole receipt", a.Receipt)
	}
	checkErased(t, s, u, n)
	mustClose(t, s)

	data := readData(t, dir)
	if got := markersIn(data); len(got) != len(victimMarkers)-1 {
		t.Fatalf("file before compaction holds markers %v; want every marker of the clear lines", got)
	}
	if bytes.Contains(data, []byte("erasewhy-qzm")) {
		t.Errorf("the erase line holds its reason: it is written redacted")
	}

	s = openDir(t, dir, opts)
	defer s.Close()
	checkErased(t, s, u, n)
	want := capture(t, s, u, other)
	if !bytes.Equal(readData(t, dir), data) {
		t.Errorf("Open with CompactDelay -1 changed the file")
	}
	if err := s.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := markersIn(readData(t, dir)); len(got) != 0 {
		t.Errorf("file after Compact holds markers %v", got)
	}
	if !bytes.Contains(readData(t, dir), []byte("interest:chess")) {
		t.Errorf("file after Compact lost the bystander's tag")
	}
	checkSame(t, "after Compact", capture(t, s, u, other), want)
	mustClose(t, s)
	s = openDir(t, dir, opts)
	defer s.Close()
	checkSame(t, "after Compact and reopening", capture(t, s, u, other), want)
	checkErased(t, s, u, n)

	// The user comes back: only from the erasure on.
	b := mustApply(t, s, consent.DeclareTag(u, "interest:chess"))
	if b.Record.State.Erased || b.Record.Version != uint64(n+2) {
		t.Errorf("record after coming back = %+v", b.Record)
	}
	evs, _ := s.ReadChangelog(t.Context(), b.Shard, "", 1000, 0)
	if last := evs[len(evs)-1]; last.Prev == nil || !last.Prev.State.Erased {
		t.Errorf("entry of the return = %+v, want the tombstone as Prev", last)
	}
}

// waitForFile polls the data file until ok accepts it.
func waitForFile(t *testing.T, dir string, what string, ok func([]byte) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(dataFile(dir)); err == nil && ok(b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestErasureCompactsSoon(t *testing.T) {
	clean := func(b []byte) bool { return len(markersIn(b)) == 0 && bytes.Contains(b, []byte("bystander")) }

	t.Run("after Apply", func(t *testing.T) {
		dir := t.TempDir()
		s := openDir(t, dir, memory.Options{ChainKey: chainKey, CompactDelay: 20 * time.Millisecond})
		defer s.Close()
		n := writeVictim(t, s, "victim")
		mustApply(t, s, consent.DeclareTag("bystander", "interest:chess"))
		if got := markersIn(readData(t, dir)); len(got) == 0 {
			t.Fatal("test bug: no marker in the file before the erasure")
		}
		eraseVictim(t, s, "victim")
		waitForFile(t, dir, "the erased user's lines leave the file", clean)
		checkErased(t, s, "victim", n)
	})

	t.Run("after Open of a file not compacted", func(t *testing.T) {
		dir := t.TempDir()
		s := openDir(t, dir, memory.Options{ChainKey: chainKey, CompactDelay: time.Hour})
		n := writeVictim(t, s, "victim")
		mustApply(t, s, consent.DeclareTag("bystander", "interest:chess"))
		eraseVictim(t, s, "victim")
		mustClose(t, s) // long before the compaction
		if got := markersIn(readData(t, dir)); len(got) == 0 {
			t.Fatal("the file was compacted before the delay")
		}
		s = openDir(t, dir, memory.Options{ChainKey: chainKey, CompactDelay: 20 * time.Millisecond})
		defer s.Close()
		waitForFile(t, dir, "the erased user's lines leave the file after Open", clean)
		checkErased(t, s, "victim", n)
	})

	t.Run("after PurgeExpired", func(t *testing.T) {
		dir := t.TempDir()
		s := openDir(t, dir, memory.Options{ChainKey: chainKey, CompactDelay: 20 * time.Millisecond})
		defer s.Close()
		old := time.Now().Add(-4 * year)
		mustApply(t, s, at(consent.DeclareTag("old-user", "interest:skiqzm"), old))
		mustApply(t, s, at(consent.DeleteTag("old-user", "interest:skiqzm"), old.Add(time.Minute)))
		mustApply(t, s, consent.DeclareTag("bystander", "interest:chess"))
		if n, err := s.PurgeExpired(t.Context(), time.Now()); err != nil || n != 2 {
			t.Fatalf("PurgeExpired = %d, %v; want 2", n, err)
		}
		// The changelog entries are younger than their retention: they
		// keep the tag until then; the receipts' lines go.
		waitForFile(t, dir, "the purged receipts' lines leave the file", func(b []byte) bool {
			return bytes.Count(b, []byte(`"op":"apply"`)) == 0 && bytes.Contains(b, []byte(`"purged"`))
		})
	})

	t.Run("Close does not wait for the delay", func(t *testing.T) {
		dir := t.TempDir()
		s := openDir(t, dir, memory.Options{CompactDelay: time.Hour})
		eraseVictim(t, s, "victim")
		start := time.Now()
		mustClose(t, s)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Close took %v", d)
		}
	})

	t.Run("a negative delay turns it off", func(t *testing.T) {
		dir := t.TempDir()
		s := openDir(t, dir, memory.Options{CompactDelay: -1})
		defer s.Close()
		writeVictim(t, s, "victim")
		eraseVictim(t, s, "victim")
		time.Sleep(100 * time.Millisecond)
		if got := markersIn(readData(t, dir)); len(got) == 0 {
			t.Errorf("the file was compacted with CompactDelay -1")
		}
	})
}

func TestAnchorsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	opts := memory.Options{ChainKey: chainKey, CompactDelay: -1}
	s := openDir(t, dir, opts)
	const u = "anchored"
	now := time.Now().UTC().Truncate(time.Second)
	var applied []store.Applied
	for _, ch := range []consent.Change{
		at(consent.SetPersonalization(u, false), now.Add(-4*year)),
		at(consent.RefuseChannel(u, "sms"), now.Add(-4*year+time.Minute)),
		at(consent.SetPersonalization(u, true), now.Add(-time.Hour)),
	} {
		applied = append(applied, mustApply(t, s, ch))
	}
	if n, err := s.PurgeExpired(t.Context(), now); err != nil || n != 2 {
		t.Fatalf("PurgeExpired = %d, %v", n, err)
	}
	want := consent.NewAnchor(*applied[1].Receipt, chainKey)
	verify := func(what string) {
		t.Helper()
		rec, err := s.Get(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		if !reflectEqual(rec.Purged, want) {
			t.Errorf("%s: anchor %+v, want %+v", what, rec.Purged, want)
		}
		rs, _ := s.Receipts(t.Context(), u)
		set := mustSettings(t, s)
		if err := consent.VerifyChain(rs, consent.HeadOf(rec, &set, now), chainKey); err != nil {
			t.Errorf("%s: VerifyChain: %v", what, err)
		}
		if err := consent.VerifyChain(rs, consent.HeadOf(rec, &set, now), consent.ChainKey("another key, not the store's")); err == nil {
			t.Errorf("%s: VerifyChain under another key passes", what)
		}
	}
	verify("after the purge")
	mustClose(t, s)
	s = openDir(t, dir, opts)
	verify("after reopening (purge line replayed)")
	if err := s.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = openDir(t, dir, opts)
	defer s.Close()
	verify("after Compact and reopening (anchor in the snapshot)")
	a := mustApply(t, s, consent.RefuseChannel(u, "push"))
	if !reflectEqual(a.Record.Purged, want) {
		t.Errorf("a later change dropped the anchor: %+v", a.Record.Purged)
	}
	mustClose(t, s)
	s = openDir(t, dir, opts)
	defer s.Close()
	verify("after a later change and reopening")
}

func TestExpiry(t *testing.T) {
	const keep = time.Hour
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%t", reopen), func(t *testing.T) {
			dir := t.TempDir()
			opts := memory.Options{Shards: 1, ChangelogRetention: keep, OutcomeRetention: keep, CompactDelay: -1}
			s := openDir(t, dir, opts)
			ctx := t.Context()
			var applied []store.Applied
			for i := range 2 {
				applied = append(applied, mustApply(t, s, consent.SetPersonalization("exp", i%2 == 1)))
			}
			mustSetSettingsVersion(t, s)
			if err := s.AppendOutcomes(ctx, []string{"exp", "exp"}, [][]byte{[]byte(`{"n":"old1"}`), []byte(`{"n":"old2"}`)}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
			mid := time.Now()
			time.Sleep(5 * time.Millisecond)
			for i := range 2 {
				applied = append(applied, mustApply(t, s, consent.SetPersonalization("exp", i%2 == 1)))
			}
			if err := s.AppendOutcomes(ctx, []string{"exp"}, [][]byte{[]byte(`{"n":"new"}`)}); err != nil {
				t.Fatal(err)
			}

			// Nothing is old enough yet.
			if n, err := s.PurgeExpired(ctx, time.Now()); err != nil || n != 0 {
				t.Fatalf("PurgeExpired now = %d, %v", n, err)
			}
			if evs, err := s.ReadChangelog(ctx, 0, "", 10, 0); err != nil || len(evs) != 4 {
				t.Fatalf("changelog before expiry = %d events, %v", len(evs), err)
			}

			if n, err := s.PurgeExpired(ctx, mid.Add(keep)); err != nil || n != 0 {
				t.Fatalf("PurgeExpired = %d, %v; want 0 receipts", n, err)
			}
			if reopen {
				mustClose(t, s)
				s = openDir(t, dir, opts)
			}
			defer s.Close()
			_, err := s.ReadChangelog(ctx, 0, "", 10, 0)
			var te *store.TrimmedError
			if !errors.As(err, &te) || te.Next != applied[2].Pos {
				t.Errorf("ReadChangelog from the start after expiry: %v, want a TrimmedError with next %q", err, applied[2].Pos)
			}
			if _, err := s.ReadChangelog(ctx, 0, applied[0].Pos, 10, 0); !errors.Is(err, store.ErrTrimmed) {
				t.Errorf("ReadChangelog behind the expired entries: %v, want ErrTrimmed", err)
			}
			evs, err := s.ReadChangelog(ctx, 0, applied[1].Pos, 10, 0)
			if err != nil || len(evs) != 2 || evs[0].Pos != applied[2].Pos {
				t.Errorf("ReadChangelog after the newest expired entry = %d events, %v; want the 2 kept", len(evs), err)
			}
			if got := tail(t, s, 0); got != applied[3].Pos {
				t.Errorf("Tail after expiry = %q, want %q", got, applied[3].Pos)
			}
			// The settings log holds nothing personal: bounded by length
			// only, as on Redis.
			if evs, err := s.ReadChangelog(ctx, store.SettingsLog, "", 10, 0); err != nil || len(evs) == 0 {
				t.Errorf("settings log from the start after expiry: %d entries, %v; want them kept", len(evs), err)
			}
			if !reopen {
				var got []string
				if err := s.ReadOutcomes(ctx, func(e []byte) error { got = append(got, string(e)); return nil }); err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got[0] != `{"n":"new"}` {
					t.Errorf("outcomes after expiry = %q, want only the new one", got)
				}
			}
			// The record and receipts are untouched: their retention is
			// the settings'.
			if rs, _ := s.Receipts(ctx, "exp"); len(rs) != 4 {
				t.Errorf("%d receipts after the changelog expired, want 4", len(rs))
			}
			if n, err := s.PurgeExpired(ctx, mid.Add(keep)); err != nil || n != 0 {
				t.Errorf("second PurgeExpired = %d, %v", n, err)
			}
			a := mustApply(t, s, consent.RefuseChannel("exp", "sms"))
			if evs, err := s.ReadChangelog(ctx, 0, applied[3].Pos, 10, 0); err != nil || len(evs) != 1 || evs[0].Pos != a.Pos {
				t.Errorf("a new entry after expiry: %d events, %v", len(evs), err)
			}
		})
	}
}

func mustSetSettingsVersion(tb testing.TB, s *memory.Store) {
	tb.Helper()
	set := mustSettings(tb, s)
	set.ReaskCooldown += time.Hour
	if _, _, err := s.SetSettings(tb.Context(), set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		tb.Fatal(err)
	}
}

func TestOutcomesOfErasedAndRestrictedUsers(t *testing.T) {
	s := mustOpen(t, memory.Options{})
	ctx := t.Context()
	read := func() []string {
		var out []string
		if err := s.ReadOutcomes(ctx, func(e []byte) error { out = append(out, string(e)); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	app := func(u, e string) {
		if err := s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(e)}); err != nil {
			t.Fatal(err)
		}
	}
	app("r", "r-before")
	app("e", "e-before")
	app("x", "x")
	mustApply(t, s, consent.Restrict("r"))
	app("r", "r-during") // dropped
	if got := fmt.Sprint(read()); got != "[e-before x]" && got != "[x e-before]" {
		t.Errorf("outcomes while r restricts = %s", got)
	}
	mustApply(t, s, consent.Unrestrict("r"))
	app("r", "r-after")
	mustApply(t, s, consent.Erase("e"))
	app("e", "e-after") // dropped
	got := read()
	if len(got) != 3 {
		t.Errorf("outcomes after the restriction was lifted and e erased = %q, want r-before, r-after and x", got)
	}
	for _, e := range got {
		if e == "r-during" || e[0] == 'e' {
			t.Errorf("outcome %q read", e)
		}
	}
	// The erased user comes back: the events before the erasure stay gone.
	mustApply(t, s, consent.SetPersonalization("e", true))
	for _, e := range read() {
		if e[0] == 'e' {
			t.Errorf("outcome %q of the erased user read after the user came back", e)
		}
	}
}

// TestCompactWhileErasing erases users while compactions run, then checks
// that the file replays to the same state and holds nothing of them.
func TestCompactWhileErasing(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, memory.Options{Shards: 2, ChainKey: chainKey, CompactDelay: time.Millisecond})
	const users = 12
	var wg sync.WaitGroup
	for w := range users {
		wg.Go(func() {
			u := fmt.Sprintf("eraser-%d", w)
			ctx := context.Background()
			for i := range 6 {
				if _, err := s.Apply(ctx, consent.DeclareTag(u, tags.Tag(fmt.Sprintf("interest:skiqzm%d", i)))); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
			}
			if _, err := s.Apply(ctx, consent.Erase(u)); err != nil {
				t.Errorf("Erase: %v", err)
			}
			if err := s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"n":"skiqzm"}`)}); err != nil {
				t.Errorf("AppendOutcomes: %v", err)
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := s.Compact(context.Background()); err != nil {
				t.Errorf("Compact: %v", err)
			}
		}
	})
	wg.Wait()
	var ids []string
	for w := range users {
		ids = append(ids, fmt.Sprintf("eraser-%d", w))
	}
	want := capture(t, s, ids...)
	for _, u := range ids {
		checkErased(t, s, u, 6)
	}
	if err := s.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := markersIn(readData(t, dir)); len(got) != 0 {
		t.Errorf("file after the erasures and Compact holds %v", got)
	}
	mustClose(t, s)
	s = openDir(t, dir, memory.Options{ChainKey: chainKey, CompactDelay: -1})
	defer s.Close()
	checkSame(t, "after erasing while compacting and reopening", capture(t, s, ids...), want)
}
