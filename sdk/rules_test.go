package sdk_test

import (
	"context"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/tags"
)

// Art. 23 access view: a tag is shown usable only when a personalized ranker
// may use it now. An opted-out user is never told their tags are in use; a
// sensitive tag counts only with a consent for personalization (not one
// given for another purpose, Art. 22(4)).
func TestProfileUsableFollowsTheRules(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := newClient(t, b.open(t), sdk.Config{Logger: quiet})
			ctx := context.Background()
			mustApply(t, c, consent.GrantSensitive("pat", tags.MedicalHealth, "push"))
			mustApply(t, c, consent.DeclareTag("pat", tags.MustParse("medical_health:diabetes")))
			mustApply(t, c, consent.DeclareTag("pat", tags.MustParse("interest:ski")))
			usable := func() map[tags.Tag]bool {
				p, err := c.Profile(ctx, "pat")
				if err != nil {
					t.Fatal(err)
				}
				out := map[tags.Tag]bool{}
				for _, pt := range p.Tags {
					out[pt.Tag] = pt.Usable
				}
				return out
			}
			u := usable()
			if !u["interest:ski"] || u["medical_health:diabetes"] {
				t.Fatalf("personalization on, medical consent for push only: usable %v; want interest:ski only", u)
			}
			if d := mustDecide(t, c, "pat"); len(d.Tags) != 1 || d.Tags[0] != "interest:ski" {
				t.Fatalf("Decide tags %v: a consent for push does not make the category usable for personalization", d.Tags)
			}
			mustApply(t, c, consent.SetPersonalization("pat", false))
			for tag, ok := range usable() {
				if ok {
					t.Errorf("opted-out user: tag %s shown usable", tag)
				}
			}
		})
	}
}

// The kill switch on its own: with personalization allowed and the user
// cached, Suspended turns every answer non-personalized and refuses every
// push, on this instance at once.
func TestKillSwitchOnItsOwn(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := newClient(t, b.open(t), sdk.Config{Logger: quiet})
			ctx := context.Background()
			mustApply(t, c, consent.DeclareTag("kim", tags.MustParse("interest:ski")))
			if d := mustDecide(t, c, "kim"); !d.Personalized {
				t.Fatalf("before: %+v", d)
			}
			set := c.Settings()
			set.Suspended, set.SuspendReason = true, "regulator order 51"
			if _, _, err := c.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{"kim", "never-seen"} {
				d := mustDecide(t, c, u)
				if d.Personalized || d.Reason != consent.ReasonSuspended || len(d.Tags) != 0 {
					t.Errorf("Decide(%s) while suspended: %+v, want not personalized, suspended, no tags", u, d)
				}
				for _, targeted := range []bool{false, true} {
					if ok, why, _ := c.CanPush(ctx, u, "push", targeted); ok || why != consent.ReasonSuspended {
						t.Errorf("CanPush(%s, targeted=%t) while suspended: %t %s, want false suspended", u, targeted, ok, why)
					}
				}
			}
		})
	}
}
