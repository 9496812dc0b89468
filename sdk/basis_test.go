package sdk_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/tags"
)

// Every answer carries its basis: the record version and the settings
// version it was computed from, its reason, and an ID no other answer has.
// The versions follow every change to the user and to the settings.
func TestAnswersCarryTheirBasis(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var xs exposures
			c := newClient(t, b.open(t), sdk.Config{Logger: quiet, ExposureSink: xs.sink})
			ctx := context.Background()
			ids := map[consent.DecisionID]bool{}
			fresh := func(what string, id consent.DecisionID) {
				t.Helper()
				if id.IsZero() || ids[id] {
					t.Fatalf("%s: ID %s is zero or was given before", what, id)
				}
				ids[id] = true
			}
			check := func(what, user string, rv, sv uint64, reason consent.Reason) {
				t.Helper()
				d := mustDecide(t, c, user)
				if d.RecordVersion != rv || d.SettingsVersion != sv || d.Reason != reason {
					t.Fatalf("%s: Decide basis record v%d settings v%d reason %s; want v%d v%d %s", what, d.RecordVersion, d.SettingsVersion, d.Reason, rv, sv, reason)
				}
				fresh(what+": Decide", d.ID)
				p, err := c.DecidePush(ctx, user, "push", true)
				ok, why, _ := c.CanPush(ctx, user, "push", true)
				if err != nil || p.Allowed != ok || p.Reason != why || p.Channel != "push" || !p.Targeted || p.RecordVersion != rv || p.SettingsVersion != sv {
					t.Fatalf("%s: DecidePush = %+v, %v; want CanPush's answer (%t %s) on record v%d settings v%d", what, p, err, ok, why, rv, sv)
				}
				fresh(what+": DecidePush", p.ID)
			}
			sv := c.Settings().Version

			check("new user", "ann", 0, sv, consent.ReasonPersonalized)
			a := mustApply(t, c, consent.DeclareTag("ann", tags.MustParse("interest:ski")))
			check("after a tag", "ann", a.Record.Version, sv, consent.ReasonPersonalized)
			a = mustApply(t, c, consent.SetPersonalization("ann", false))
			if a.Record.Version != 2 {
				t.Fatalf("record version %d after two changes", a.Record.Version)
			}
			check("after the opt-out", "ann", 2, sv, consent.ReasonOptedOut)

			set := c.Settings()
			set.Channels = append(set.Channels, "wechat")
			saved, _, err := c.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole)
			if err != nil || saved.Version <= sv {
				t.Fatalf("SetSettings: version %d, %v; want over %d", saved.Version, err, sv)
			}
			check("after a settings change", "ann", 2, saved.Version, consent.ReasonOptedOut)

			// Many hits: every ID is new.
			for i := 0; i < 1000; i++ {
				fresh("hit", mustDecide(t, c, "ann").ID)
			}

			// Recommend's Result and the exposure it records carry the
			// decision's basis.
			mustApply(t, c, consent.SetPersonalization("ann", true))
			rank := func(context.Context, sdk.RankRequest) ([]string, error) { return []string{"x"}, nil }
			res, err := c.Recommend(ctx, "ann", rank, rank)
			if err != nil || !res.Personalized || res.RecordVersion != 3 || res.SettingsVersion != saved.Version {
				t.Fatalf("Recommend = %+v, %v; want personalized on record v3 settings v%d", res, err, saved.Version)
			}
			fresh("Recommend", res.ID)
			eventually(t, 2*time.Second, "the exposure", func() bool { return len(xs.users()) == 1 })
			xs.mu.Lock()
			x := xs.got[0]
			xs.mu.Unlock()
			if x.DecisionID != res.ID || x.RecordVersion != 3 || x.SettingsVersion != saved.Version || x.Reason != consent.ReasonPersonalized {
				t.Fatalf("exposure %+v, want the Result's basis (%s, v3, v%d)", x, res.ID, saved.Version)
			}

			// The kill switch: no record is used, the settings are.
			set = c.Settings()
			set.Suspended = true
			saved, _, err = c.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole)
			if err != nil {
				t.Fatal(err)
			}
			check("suspended", "ann", 0, saved.Version, consent.ReasonSuspended)

			// Another client: other IDs.
			other := newClient(t, b.open(t), sdk.Config{Logger: quiet})
			mine := mustDecide(t, c, "ann").ID
			if d := mustDecide(t, other, "ann"); ids[d.ID] || [8]byte(d.ID[:8]) == [8]byte(mine[:8]) {
				t.Fatalf("another client's ID %s shares this client's nonce or an ID", d.ID)
			}
		})
	}
}

// A closed client answers with no ID: nothing was decided.
func TestClosedClientGivesNoID(t *testing.T) {
	c := newClient(t, backends[0].open(t), sdk.Config{})
	c.Close()
	d, err := c.Decide(context.Background(), "zed")
	p, perr := c.DecidePush(context.Background(), "zed", "push", false)
	if !errors.Is(err, sdk.ErrClosed) || !errors.Is(perr, sdk.ErrClosed) || !d.ID.IsZero() || !p.ID.IsZero() || p.Allowed {
		t.Fatalf("closed client: %+v %v / %+v %v; want ErrClosed, zero IDs, no push", d, err, p, perr)
	}
}
