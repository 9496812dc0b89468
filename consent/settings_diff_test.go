package consent_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// A settings receipt names every difference: what a product manager's
// partial edit did to the taxonomy, policies and cooldown cannot hide in it.
func TestDiffSettings(t *testing.T) {
	old := consent.DefaultSettings()
	next := old.Clone()
	next.Channels = append(next.Channels, "wechat")
	delete(next.Taxonomy, string(tags.MedicalHealth))
	next.Taxonomy["hobby"] = tags.Namespace{Category: "interests"}
	next.Policies[consent.PurposePush] = 2
	delete(next.Policies, consent.PurposeGuardian)
	next.ReaskCooldown = 48 * time.Hour
	next.Suspended, next.SuspendReason = true, "order 7"
	got := consent.DiffSettings(&old, &next)
	want := []string{
		"channels: +wechat",
		"taxonomy hobby: added (ordinary, category interests)",
		"taxonomy medical_health: removed (was sensitive: medical_health, category sensitive)",
		"policies guardian: removed (was v1)",
		"policies push: v1 -> v2",
		"reask_cooldown: 720h0m0s -> 48h0m0s",
		"suspended: false -> true",
		`suspend_reason: "" -> "order 7"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DiffSettings =\n%q\nwant\n%q", got, want)
	}
	recat := old.Clone()
	ns := recat.Taxonomy[string(tags.Religion)]
	ns.Category = "beliefs"
	recat.Taxonomy[string(tags.Religion)] = ns
	if d := consent.DiffSettings(&old, &recat); len(d) != 1 || d[0] != "taxonomy religion: sensitive: religion, category sensitive -> sensitive: religion, category beliefs" {
		t.Errorf("DiffSettings(category of a sensitive namespace) = %q", d)
	}
	if d := consent.DiffSettings(&old, &old); len(d) != 0 {
		t.Errorf("DiffSettings(same) = %q, want none", d)
	}
	weak := consent.Weakens(&old, &next)
	wantWeak := []string{
		"policies guardian: removed (was v1)",
		"reask_cooldown: shortened 720h0m0s -> 48h0m0s",
		"taxonomy medical_health: no longer needs the separate consent for medical_health",
	}
	if !reflect.DeepEqual(weak, wantWeak) {
		t.Errorf("Weakens =\n%q\nwant\n%q", weak, wantWeak)
	}
	// Adding a channel, bumping a policy, suspending: nothing loosened.
	safe := old.Clone()
	safe.Channels = append(safe.Channels, "wechat")
	safe.Policies[consent.PurposePush] = 2
	safe.Suspended = true
	if w := consent.Weakens(&old, &safe); len(w) != 0 {
		t.Errorf("Weakens(a safe edit) = %q, want none", w)
	}
	rc := consent.NewSettingsReceipt(&old, &next, 3, "", consent.ActorAdmin, consent.SurfaceAdminConsole, time.Unix(1e9, 0), nil)
	if !reflect.DeepEqual(rc.Diff, want) || rc.Op != consent.OpSetSettings || rc.Seq != 3 {
		t.Errorf("receipt %+v: want the diff, op set_settings, seq 3", rc)
	}
	rc1 := consent.NewSettingsReceipt(&old, &next, 1, "", consent.ActorAdmin, consent.SurfaceAdminConsole, time.Unix(1e9, 0), nil)
	if err := consent.VerifyLinks([]consent.Receipt{rc1}, nil); err != nil {
		t.Errorf("VerifyChain(settings receipt with a diff) = %v", err)
	}
	rc1.Diff = rc1.Diff[1:]
	if err := consent.VerifyLinks([]consent.Receipt{rc1}, nil); err == nil {
		t.Error("a receipt whose diff lost a line still verifies")
	}
}
