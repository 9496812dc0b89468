package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

func testSettings(t *testing.T, newStore newStoreFunc) {
	parallel(t, "a new store holds the defaults", newStore, func(t *testing.T, s store.Store) {
		want := consent.DefaultSettings().Normalize()
		want.Version = 1
		checkEqual(t, "Settings of a new store", mustSettings(t, s), want)
		mustVerify(t, "SettingsReceipts of a new store", mustSettingsReceipts(t, s))
	})

	parallel(t, "SetSettings saves, versions and records", newStore, func(t *testing.T, s store.Store) {
		cur := mustSettings(t, s)
		next := cur.Clone()
		next.Channels = []string{"wechat", "sms", "push", "email", "in_app"}
		next.Policies[consent.PurposePush] = 2
		next.ReaskCooldown = 7 * 24 * time.Hour
		next.Retention = 0
		prev := cur
		step := func(n int, set consent.Settings) consent.Settings {
			t.Helper()
			receipts := mustSettingsReceipts(t, s)
			tail := mustTail(t, s, store.SettingsLog)

			saved, rc, err := s.SetSettings(t.Context(), set, consent.ActorAdmin, consent.SurfaceAdminConsole)
			if err != nil {
				t.Fatalf("SetSettings #%d: %v", n, err)
			}
			want := set.Normalize()
			want.Version = prev.Version + 1
			checkEqual(t, fmt.Sprintf("settings saved by SetSettings #%d", n), saved, want)
			checkEqual(t, fmt.Sprintf("Settings after SetSettings #%d", n), mustSettings(t, s), saved)
			if rc.Actor != consent.ActorAdmin || rc.Surface != consent.SurfaceAdminConsole || rc.UserID != "" || rc.Hash == "" || rc.At.IsZero() {
				t.Errorf("settings receipt %s: want actor admin, surface admin_console, no user, a hash and a time", show(rc))
			}
			if d := consent.DiffSettings(&prev, &saved); !equal(rc.Diff, d) {
				t.Errorf("settings receipt #%d Diff = %q, want every difference %q", n, rc.Diff, d)
			}
			rs := mustSettingsReceipts(t, s)
			checkEqual(t, fmt.Sprintf("SettingsReceipts after SetSettings #%d", n), rs, append(receipts[:len(receipts):len(receipts)], rc))
			mustVerify(t, "SettingsReceipts", rs)

			evs := mustReadFrom(t, s, store.SettingsLog, tail)
			if len(evs) != 1 {
				t.Fatalf("settings changelog after SetSettings #%d: got %d new events, want 1", n, len(evs))
			}
			checkSettingsEvent(t, evs[0], saved, rc)
			if got := mustTail(t, s, store.SettingsLog); got != evs[0].Pos {
				t.Errorf("Tail(SettingsLog) = %q, want the new event's position %q", got, evs[0].Pos)
			}
			return saved
		}
		prev = step(1, next)
		again := prev.Clone()
		again.Suspended, again.SuspendReason = true, "regulator order"
		step(2, again)
	})

	staleCases := []struct {
		name    string
		version func(cur uint64) uint64
	}{
		{"stale version", func(cur uint64) uint64 { return cur - 1 }},
		{"zero version", func(uint64) uint64 { return 0 }},
		{"future version", func(cur uint64) uint64 { return cur + 5 }},
	}
	for _, c := range staleCases {
		parallel(t, "SetSettings with a "+c.name+" conflicts", newStore, func(t *testing.T, s store.Store) {
			cur := mustUpdateSettings(t, s, func(set *consent.Settings) { set.ReaskCooldown = 25 * time.Hour })
			next := cur.Clone()
			next.Version = c.version(cur.Version)
			next.Suspended = true
			before := takeSnapshot(t, s)
			_, _, err := s.SetSettings(t.Context(), next, consent.ActorAdmin, consent.SurfaceAdminConsole)
			checkErr(t, fmt.Sprintf("SetSettings with version %d over %d", next.Version, cur.Version), err, store.ErrConflict)
			checkUnchanged(t, before, takeSnapshot(t, s))
		})
	}

	parallel(t, "concurrent SetSettings on one version: exactly one wins", newStore, func(t *testing.T, s store.Store) {
		const n = 8
		cur := mustSettings(t, s)
		receipts := mustSettingsReceipts(t, s)
		var mu sync.Mutex
		var wins, conflicts int
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				next := cur.Clone()
				next.ReaskCooldown = consent.MinReaskCooldown + time.Duration(i+1)*time.Hour
				_, _, err := s.SetSettings(t.Context(), next, consent.ActorAdmin, consent.SurfaceAdminConsole)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Errorf("concurrent SetSettings: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || conflicts != n-1 {
			t.Errorf("%d concurrent SetSettings on version %d: %d won and %d conflicted, want 1 and %d", n, cur.Version, wins, conflicts, n-1)
		}
		if got := mustSettings(t, s).Version; got != cur.Version+1 {
			t.Errorf("version after the race = %d, want %d", got, cur.Version+1)
		}
		rs := mustSettingsReceipts(t, s)
		if len(rs) != len(receipts)+1 {
			t.Errorf("SettingsReceipts grew from %d to %d, want by 1", len(receipts), len(rs))
		}
		mustVerify(t, "SettingsReceipts", rs)
	})

	invalid := []struct {
		name string
		edit func(*consent.Settings)
		want error
	}{
		{"bad channel name", func(s *consent.Settings) { s.Channels = append(s.Channels, "Bad Channel") }, consent.ErrInvalidChannel},
		{"duplicate channel", func(s *consent.Settings) { s.Channels = append(s.Channels, s.Channels[0]) }, consent.ErrInvalidSettings},
		{"too many channels", func(s *consent.Settings) {
			for i := range 65 {
				s.Channels = append(s.Channels, fmt.Sprintf("c%d", i))
			}
		}, consent.ErrInvalidSettings},
		{"retention under three years", func(s *consent.Settings) { s.Retention = 365 * 24 * time.Hour }, consent.ErrInvalidSettings},
		{"negative re-ask cooldown", func(s *consent.Settings) { s.ReaskCooldown = -time.Hour }, consent.ErrInvalidSettings},
		{"invalid taxonomy namespace", func(s *consent.Settings) { s.Taxonomy["Bad NS"] = tags.Namespace{} }, consent.ErrInvalidSettings},
		{"unknown sensitive category", func(s *consent.Settings) { s.Taxonomy["stars"] = tags.Namespace{Sensitive: "astrology"} }, consent.ErrInvalidSettings},
		{"negative policy version", func(s *consent.Settings) { s.Policies[consent.PurposePush] = -1 }, consent.ErrInvalidSettings},
		{"invalid purpose", func(s *consent.Settings) { s.Policies["Bad Purpose"] = 1 }, consent.ErrInvalidSettings},
		{"suspend reason too long", func(s *consent.Settings) { s.SuspendReason = strings.Repeat("r", consent.MaxReasonLen+1) }, consent.ErrInvalidSettings},
	}
	for _, c := range invalid {
		parallel(t, "invalid settings: "+c.name, newStore, func(t *testing.T, s store.Store) {
			seed(t, s)
			next := mustSettings(t, s).Clone()
			c.edit(&next)
			before := takeSnapshot(t, s, alice)
			_, _, err := s.SetSettings(t.Context(), next, consent.ActorAdmin, consent.SurfaceAdminConsole)
			checkFieldErr(t, "SetSettings with "+c.name, err, c.want)
			checkUnchanged(t, before, takeSnapshot(t, s, alice))
		})
	}

	parallel(t, "a new channel can be refused", newStore, func(t *testing.T, s store.Store) {
		const u = "channel-user"
		_, err := s.Apply(t.Context(), consent.RefuseChannel(u, "wechat"))
		checkFieldErr(t, "refusing a channel not configured", err, consent.ErrUnknownChannel)
		mustUpdateSettings(t, s, func(set *consent.Settings) { set.Channels = append(set.Channels, "wechat") })
		a := mustApplyEffective(t, s, consent.RefuseChannel(u, "wechat"))
		if a.Receipt.Subject != "wechat" || a.Receipt.New != "refused" || !a.Record.State.ChannelRefused("wechat") {
			t.Errorf("refusing the new channel: receipt %s, record state %s; want wechat refused", show(a.Receipt), show(a.Record.State))
		}
		checkEqual(t, "Get after refusing the new channel", mustGet(t, s, u), a.Record)
	})

	parallel(t, "a policy bump voids older sensitive consent", newStore, func(t *testing.T, s store.Store) {
		const u = "policy-user"
		zen := tags.Tag("religion:zen")
		mustApplyEffective(t, s, consent.GrantSensitive(u, tags.Religion, consent.PurposePersonalization))
		mustApplyEffective(t, s, consent.DeclareTag(u, zen))
		mustApplyEffective(t, s, consent.DeclareTag(u, tagSki))
		usable := func(t *testing.T) []tags.Tag {
			t.Helper()
			r := mustGet(t, s, u)
			set := mustSettings(t, s)
			return consent.Evaluate(r.State, r.Tags, &set).Tags
		}
		if got := usable(t); !slices.Contains(got, zen) || !slices.Contains(got, tagSki) {
			t.Fatalf("usable tags before the bump = %v, want %s and %s", got, zen, tagSki)
		}

		bumped := mustUpdateSettings(t, s, func(set *consent.Settings) { set.Policies[consent.PurposePersonalization] = 2 })
		r := mustGet(t, s, u)
		if r.State.SensitiveOK(tags.Religion, &bumped) {
			t.Errorf("religion consent given under policy v1 still counts under v2: %s", show(r.State.Sensitive))
		}
		if got := usable(t); slices.Contains(got, zen) || !slices.Contains(got, tagSki) {
			t.Errorf("usable tags after the bump = %v, want %s without %s", got, tagSki, zen)
		}
		_, err := s.Apply(t.Context(), consent.DeclareTag(u, "religion:tao"))
		checkFieldErr(t, "declaring a sensitive tag under a voided consent", err, consent.ErrConsentRequired)

		a := mustApplyEffective(t, s, consent.GrantSensitive(u, tags.Religion, consent.PurposePersonalization))
		if a.Receipt.PolicyVersion != 2 || a.Receipt.New != "granted for personalization under policy v2" {
			t.Errorf("re-consent receipt %s: want policy v2", show(a.Receipt))
		}
		if got := usable(t); !slices.Contains(got, zen) {
			t.Errorf("usable tags after re-consent = %v, want %s back", got, zen)
		}
		if a := mustApplyEffective(t, s, consent.SetPersonalization(u, false)); a.Receipt.PolicyVersion != 2 {
			t.Errorf("receipt after the bump has policy v%d, want v2", a.Receipt.PolicyVersion)
		}
	})

	parallel(t, "a prohibited namespace", newStore, func(t *testing.T, s store.Store) {
		const u = "prohibited-user"
		left, right := tags.Tag("politics:left"), tags.Tag("politics:right")
		mustApplyEffective(t, s, consent.DeclareTag(u, left))
		set := mustUpdateSettings(t, s, func(set *consent.Settings) {
			set.Taxonomy["politics"] = tags.Namespace{Prohibited: true}
		})
		if !set.Taxonomy.Lookup(left).Prohibited {
			t.Fatalf("saved taxonomy %s does not prohibit politics", show(set.Taxonomy))
		}
		before := takeSnapshot(t, s, u)
		for _, ch := range []consent.Change{consent.DeclareTag(u, right), consent.InferTag(u, right)} {
			_, err := s.Apply(t.Context(), ch)
			checkFieldErr(t, "Apply("+describe(ch)+")", err, tags.ErrProhibited)
		}
		checkUnchanged(t, before, takeSnapshot(t, s, u))
		r := mustGet(t, s, u)
		if d := consent.Evaluate(r.State, r.Tags, &set); slices.Contains(d.Tags, left) {
			t.Errorf("usable tags %v include the prohibited %s", d.Tags, left)
		}
		a := mustApplyEffective(t, s, consent.DeleteTag(u, left))
		if _, has := a.Record.Tags.Has(left); has {
			t.Errorf("deleting a tag in a prohibited namespace left it: %s", show(a.Record.Tags))
		}
	})
}

func testRetention(t *testing.T, newStore newStoreFunc) {
	const year = 365 * 24 * time.Hour
	parallel(t, "PurgeExpired deletes exactly the expired receipts", newStore, func(t *testing.T, s store.Store) {
		const u, other = "retention-user", "retention-other"
		now := time.Now().UTC().Truncate(time.Second)
		old, recent := now.Add(-4*year), now.Add(-24*time.Hour)
		var applied []store.Applied
		for _, ch := range []consent.Change{
			at(consent.SetPersonalization(u, false), old),
			at(consent.RefuseChannel(u, "sms"), old.Add(time.Minute)),
			at(consent.SetPersonalization(u, true), recent),
			at(consent.AllowChannel(u, "sms"), recent.Add(time.Minute)),
		} {
			applied = append(applied, mustApplyEffective(t, s, ch))
		}
		keep := []consent.Receipt{*applied[2].Receipt, *applied[3].Receipt}
		otherRc := *mustApplyEffective(t, s, at(consent.SetPersonalization(other, false), recent)).Receipt
		settingsBefore := mustSettingsReceipts(t, s)

		n, err := s.PurgeExpired(t.Context(), now)
		if err != nil {
			t.Fatalf("PurgeExpired: %v", err)
		}
		settingsPurged := len(settingsBefore) - len(mustSettingsReceipts(t, s))
		if want := 2 + settingsPurged; n != want {
			t.Errorf("PurgeExpired = %d, want %d (2 user receipts 4 years old, %d settings receipts)", n, want, settingsPurged)
		}
		rs := mustReceipts(t, s, u)
		checkEqual(t, "Receipts after PurgeExpired", rs, keep)
		mustVerifyUser(t, s, u, now)
		checkEqual(t, "Receipts of a user with nothing expired", mustReceipts(t, s, other), []consent.Receipt{otherRc})
		// The purge left its anchor in the record: the last receipt it
		// removed, sealed under the chain key.
		wantRec := applied[3].Record
		wantRec.Purged = consent.NewAnchor(*applied[1].Receipt, ChainKey)
		checkEqual(t, "Get after PurgeExpired", mustGet(t, s, u), wantRec)
		// A receipt removed without a purge (a kept one) is detected.
		set := mustSettings(t, s)
		if err := consent.VerifyChain(rs[1:], consent.HeadOf(wantRec, &set, now), ChainKey); err == nil {
			t.Errorf("VerifyChain without the oldest kept receipt = nil, want the removal detected")
		}
		if err := consent.VerifyChain(rs[:1], consent.HeadOf(wantRec, &set, now), ChainKey); err == nil {
			t.Errorf("VerifyChain without the newest receipt = nil, want the removal detected")
		}

		if n, err := s.PurgeExpired(t.Context(), now); err != nil || n != 0 {
			t.Errorf("second PurgeExpired = %d, %v; want 0, nil", n, err)
		}
		a := mustApplyEffective(t, s, consent.RefuseChannel(u, "push"))
		if a.Receipt.Seq != 5 || a.Receipt.PrevHash != keep[1].Hash {
			t.Errorf("receipt after the purge: seq %d prev %q, want seq 5 chained to %q", a.Receipt.Seq, a.Receipt.PrevHash, keep[1].Hash)
		}
		rs = mustReceipts(t, s, u)
		checkEqual(t, "Receipts after a change following the purge", rs, append(keep, *a.Receipt))
		mustVerifyUser(t, s, u, now)
		if got := mustGet(t, s, u).Purged; got != wantRec.Purged {
			t.Errorf("anchor after a later change = %s, want it kept %s", show(got), show(wantRec.Purged))
		}
	})

	parallel(t, "a longer retention keeps older receipts", newStore, func(t *testing.T, s store.Store) {
		const u = "long-retention-user"
		mustUpdateSettings(t, s, func(set *consent.Settings) { set.Retention = 5 * year })
		now := time.Now().UTC().Truncate(time.Second)
		var want []consent.Receipt
		for _, ch := range []consent.Change{
			at(consent.SetPersonalization(u, false), now.Add(-4*year)),
			at(consent.SetPersonalization(u, true), now.Add(-24*time.Hour)),
		} {
			want = append(want, *mustApplyEffective(t, s, ch).Receipt)
		}
		settingsBefore := mustSettingsReceipts(t, s)
		n, err := s.PurgeExpired(t.Context(), now)
		if err != nil {
			t.Fatalf("PurgeExpired: %v", err)
		}
		if want := len(settingsBefore) - len(mustSettingsReceipts(t, s)); n != want {
			t.Errorf("PurgeExpired under a 5-year retention = %d, want %d", n, want)
		}
		checkEqual(t, "Receipts under a 5-year retention", mustReceipts(t, s, u), want)
	})

	parallel(t, "PurgeExpired trims the changelog and outcome events by age", newStore, func(t *testing.T, s store.Store) {
		const u = "age-user"
		a := mustApplyEffective(t, s, consent.DeclareTag(u, tagSki))
		ol, hasOutcomes := s.(store.OutcomeLog)
		if hasOutcomes {
			if err := ol.AppendOutcomes(t.Context(), []string{u}, [][]byte{[]byte(`{"item":"aged"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		countOutcomes := func() int {
			n := 0
			if hasOutcomes {
				if err := ol.ReadOutcomes(t.Context(), func([]byte) error { n++; return nil }); err != nil {
					t.Fatal(err)
				}
			}
			return n
		}
		// Within both retentions (the stores' defaults are days and
		// months): nothing goes.
		if _, err := s.PurgeExpired(t.Context(), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if evs := mustRead(t, s, a.Shard, "", 10, 0); len(evs) != 1 {
			t.Fatalf("changelog within its retention: %d entries, want 1", len(evs))
		}
		if hasOutcomes && countOutcomes() != 1 {
			t.Fatalf("outcomes within their retention: %d, want 1", countOutcomes())
		}
		// Four years on: past every retention, the receipts' three years
		// included.
		if _, err := s.PurgeExpired(t.Context(), time.Now().Add(4*365*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		evs, err := s.ReadChangelog(t.Context(), a.Shard, "", 10, 0)
		if err == nil && len(evs) != 0 {
			t.Errorf("changelog past its retention still holds %s", show(evs))
		}
		if _, err := s.ReadChangelog(t.Context(), a.Shard, "", 10, 0); err != nil && !errors.Is(err, store.ErrTrimmed) {
			t.Errorf("reading a log trimmed by age: %v, want nil or ErrTrimmed", err)
		}
		if n := countOutcomes(); n != 0 {
			t.Errorf("%d outcome events past their retention", n)
		}
		if rs := mustReceipts(t, s, u); len(rs) != 0 {
			t.Errorf("%d receipts past their retention", len(rs))
		}
		// The record stays, with its anchor, and verifies.
		mustVerifyUser(t, s, u, time.Now().Add(4*365*24*time.Hour))
	})
}
