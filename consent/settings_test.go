package consent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

func TestDefaultSettings(t *testing.T) {
	s := consent.DefaultSettings()
	if err := s.Validate(); err != nil {
		t.Fatalf("DefaultSettings().Validate() = %v", err)
	}
	if want := []string{"email", "in_app", "push", "sms"}; !reflect.DeepEqual(s.Channels, want) {
		t.Errorf("Channels = %v, want %v", s.Channels, want)
	}
	if want := map[string]int{"personalization": 1, "push": 1, "guardian": 1}; !reflect.DeepEqual(s.Policies, want) {
		t.Errorf("Policies = %v, want %v", s.Policies, want)
	}
	if s.ReaskCooldown != 30*24*time.Hour || s.Retention != 3*365*24*time.Hour || s.Suspended || s.Version != 0 {
		t.Errorf("cooldown %v, retention %v, suspended %t, version %d; want 720h, 26280h, false, 0", s.ReaskCooldown, s.Retention, s.Suspended, s.Version)
	}
	if len(s.Taxonomy) != len(tags.Categories()) {
		t.Errorf("taxonomy has %d namespaces, want %d", len(s.Taxonomy), len(tags.Categories()))
	}
	for _, c := range tags.Categories() {
		ns, ok := s.Taxonomy[string(c)]
		if want := (tags.Namespace{Category: "sensitive", Sensitive: c}); !ok || ns != want {
			t.Errorf("Taxonomy[%q] = %+v, %t; want %+v", c, ns, ok, want)
		}
	}
	// Each call returns a fresh value.
	s.Channels[0] = "changed"
	s.Policies["push"] = 9
	s.Taxonomy["x"] = tags.Namespace{}
	again := consent.DefaultSettings()
	if again.Channels[0] != "email" || again.Policies["push"] != 1 || len(again.Taxonomy) != 6 {
		t.Errorf("DefaultSettings shares state between calls: %+v", again)
	}
}

func TestSettingsValidate(t *testing.T) {
	manyChannels := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("ch%d", i)
		}
		return out
	}
	cases := []struct {
		name    string
		mod     func(*consent.Settings)
		wantErr error
		field   string
	}{
		{"defaults", func(*consent.Settings) {}, nil, ""},
		{"zero settings", func(s *consent.Settings) { *s = consent.Settings{} }, consent.ErrInvalidSettings, "reask_cooldown"},
		{"zero settings with a cooldown", func(s *consent.Settings) { *s = consent.Settings{ReaskCooldown: consent.MinReaskCooldown} }, nil, ""},
		{"64 channels", func(s *consent.Settings) { s.Channels = manyChannels(64) }, nil, ""},
		{"65 channels", func(s *consent.Settings) { s.Channels = manyChannels(65) }, consent.ErrInvalidSettings, "channels"},
		{"bad channel name", func(s *consent.Settings) { s.Channels = []string{"push", "WeChat"} }, consent.ErrInvalidChannel, "channel"},
		{"empty channel name", func(s *consent.Settings) { s.Channels = []string{""} }, consent.ErrInvalidChannel, "channel"},
		{"duplicate channel", func(s *consent.Settings) { s.Channels = []string{"push", "sms", "push"} }, consent.ErrInvalidSettings, "channels"},
		{"bad taxonomy namespace", func(s *consent.Settings) { s.Taxonomy["Bad"] = tags.Namespace{} }, consent.ErrInvalidSettings, "taxonomy"},
		{"bad taxonomy category", func(s *consent.Settings) { s.Taxonomy["health"] = tags.Namespace{Sensitive: "health"} }, consent.ErrInvalidSettings, "taxonomy"},
		{"nil taxonomy", func(s *consent.Settings) { s.Taxonomy = nil }, nil, ""},
		{"bad purpose", func(s *consent.Settings) { s.Policies["Ads"] = 1 }, consent.ErrInvalidSettings, "policies"},
		{"empty purpose", func(s *consent.Settings) { s.Policies[""] = 1 }, consent.ErrInvalidSettings, "policies"},
		{"purpose too long", func(s *consent.Settings) { s.Policies[strings.Repeat("p", consent.MaxPurposeLen+1)] = 1 }, consent.ErrInvalidSettings, "policies"},
		{"purpose of max length", func(s *consent.Settings) { s.Policies[strings.Repeat("p", consent.MaxPurposeLen)] = 1 }, nil, ""},
		{"negative policy version", func(s *consent.Settings) { s.Policies["ads"] = -1 }, consent.ErrInvalidSettings, "policies"},
		{"policy version zero", func(s *consent.Settings) { s.Policies["ads"] = 0 }, nil, ""},
		{"negative cooldown", func(s *consent.Settings) { s.ReaskCooldown = -time.Second }, consent.ErrInvalidSettings, "reask_cooldown"},
		{"zero cooldown", func(s *consent.Settings) { s.ReaskCooldown = 0 }, consent.ErrInvalidSettings, "reask_cooldown"},
		{"cooldown under the minimum", func(s *consent.Settings) { s.ReaskCooldown = consent.MinReaskCooldown - time.Second }, consent.ErrInvalidSettings, "reask_cooldown"},
		{"cooldown at the minimum", func(s *consent.Settings) { s.ReaskCooldown = consent.MinReaskCooldown }, nil, ""},
		{"keep on bump of a known purpose", func(s *consent.Settings) { s.KeepOnBump = []string{consent.PurposePush} }, nil, ""},
		{"keep on bump of an unknown purpose", func(s *consent.Settings) { s.KeepOnBump = []string{"ads"} }, consent.ErrInvalidSettings, "keep_on_bump"},
		{"retention too short", func(s *consent.Settings) { s.Retention = consent.DefaultRetention - time.Second }, consent.ErrInvalidSettings, "retention"},
		{"negative retention", func(s *consent.Settings) { s.Retention = -time.Hour }, consent.ErrInvalidSettings, "retention"},
		{"zero retention means default", func(s *consent.Settings) { s.Retention = 0 }, nil, ""},
		{"longer retention", func(s *consent.Settings) { s.Retention = 2 * consent.DefaultRetention }, nil, ""},
		{"suspend reason of max length", func(s *consent.Settings) {
			s.Suspended, s.SuspendReason = true, strings.Repeat("r", consent.MaxReasonLen)
		}, nil, ""},
		{"suspend reason too long", func(s *consent.Settings) { s.SuspendReason = strings.Repeat("r", consent.MaxReasonLen+1) }, consent.ErrInvalidSettings, "suspend_reason"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := consent.DefaultSettings()
			c.mod(&s)
			err := s.Validate()
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			wantFieldErr(t, err, c.wantErr, c.field)
		})
	}
}

func TestSettingsNormalize(t *testing.T) {
	s := consent.Settings{
		Version:       4,
		Channels:      []string{"sms", "email", "push"},
		Taxonomy:      tags.Taxonomy{"religion": {Sensitive: tags.Religion}},
		Policies:      map[string]int{"push": 2},
		ReaskCooldown: 0,
		Retention:     0,
		Suspended:     true,
		SuspendReason: "order 17",
	}
	snap := mustJSON(t, s)
	n := s.Normalize()
	if mustJSON(t, s) != snap {
		t.Errorf("Normalize modified its receiver: %s, want %s", mustJSON(t, s), snap)
	}
	want := consent.Settings{
		Version:       4,
		Channels:      []string{"email", "push", "sms"},
		Taxonomy:      tags.Taxonomy{"religion": {Sensitive: tags.Religion}},
		Policies:      map[string]int{"push": 2},
		ReaskCooldown: 0, // Normalize keeps it; Validate refuses it
		Retention:     consent.DefaultRetention,
		Suspended:     true,
		SuspendReason: "order 17",
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("Normalize() =\n%+v\nwant\n%+v", n, want)
	}
	n.Channels[0], n.Policies["push"] = "x", 9
	n.Taxonomy["religion"] = tags.Namespace{}
	if mustJSON(t, s) != snap {
		t.Error("the normalized copy shares state with the original")
	}
	// A non-zero retention is kept; Normalize is idempotent.
	long := consent.Settings{Retention: 5 * consent.DefaultRetention}.Normalize()
	if long.Retention != 5*consent.DefaultRetention {
		t.Errorf("Retention = %v, want %v", long.Retention, 5*consent.DefaultRetention)
	}
	if twice := want.Normalize(); !reflect.DeepEqual(twice, want) {
		t.Errorf("Normalize is not idempotent: %+v", twice)
	}
}

func TestSettingsClone(t *testing.T) {
	s := *testSettings()
	s.Version, s.Suspended, s.SuspendReason = 3, true, "order"
	c := s.Clone()
	if !reflect.DeepEqual(c, s) {
		t.Fatalf("Clone() = %+v, want %+v", c, s)
	}
	snap := mustJSON(t, s)
	c.Channels[0] = "changed"
	c.Channels = append(c.Channels, "extra")
	c.Policies["push"] = 99
	c.Policies["new"] = 1
	c.Taxonomy["religion"] = tags.Namespace{Prohibited: true}
	delete(c.Taxonomy, "biometrics")
	if got := mustJSON(t, s); got != snap {
		t.Errorf("changing the clone changed the original:\n got %s\nwant %s", got, snap)
	}
	// Nil maps and slices stay nil.
	z := consent.Settings{}.Clone()
	if z.Channels != nil || z.Policies != nil || z.Taxonomy != nil {
		t.Errorf("Settings{}.Clone() = %+v, want nil fields", z)
	}
}

func TestSettingsAccessors(t *testing.T) {
	s := testSettings()
	for ch, want := range map[string]bool{"push": true, "sms": true, "email": true, "in_app": true, "fax": false, "": false, "Push": false} {
		if got := s.HasChannel(ch); got != want {
			t.Errorf("HasChannel(%q) = %t, want %t", ch, got, want)
		}
	}
	for p, want := range map[string]int{"personalization": 1, "push": 1, "guardian": 1, "ads": 0, "": 0} {
		if got := s.PolicyVersion(p); got != want {
			t.Errorf("PolicyVersion(%q) = %d, want %d", p, got, want)
		}
	}
	if got := (&consent.Settings{}).PolicyVersion("push"); got != 0 {
		t.Errorf("PolicyVersion on nil Policies = %d, want 0", got)
	}
	if got := (&consent.Settings{}).RetentionOrDefault(); got != consent.DefaultRetention {
		t.Errorf("RetentionOrDefault() of zero = %v, want %v", got, consent.DefaultRetention)
	}
	if got := (&consent.Settings{Retention: 4 * consent.DefaultRetention}).RetentionOrDefault(); got != 4*consent.DefaultRetention {
		t.Errorf("RetentionOrDefault() = %v, want %v", got, 4*consent.DefaultRetention)
	}
}

func TestSettingsSummary(t *testing.T) {
	s := consent.DefaultSettings()
	s.Version = 7
	s.Policies["ads"] = 3
	want := "v7 channels=[email in_app push sms] policies=[ads@3 guardian@1 personalization@1 push@1] suspended=false"
	if got := s.Summary(); got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	z := consent.Settings{Suspended: true}
	if got, want := z.Summary(), "v0 channels=[] policies=[] suspended=true"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestSettingsJSONRoundTrip(t *testing.T) {
	s := *testSettings()
	s.Version = 2
	var back consent.Settings
	if err := json.Unmarshal([]byte(mustJSON(t, s)), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("JSON round trip = %+v, want %+v", back, s)
	}
}

// Durations are Go duration strings in JSON; numbers (nanoseconds, as
// settings were once stored) are still read; unknown fields are refused.
func TestSettingsJSONDurations(t *testing.T) {
	s := consent.DefaultSettings()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"reask_cooldown":"720h0m0s"`) || !strings.Contains(string(b), `"retention":"26280h0m0s"`) {
		t.Fatalf("settings JSON %s: want durations as Go duration strings", b)
	}
	var back consent.Settings
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip: %+v, %v; want %+v", back, err, s)
	}
	var old consent.Settings
	if err := json.Unmarshal([]byte(`{"version":3,"channels":["sms"],"reask_cooldown":86400000000000,"retention":0}`), &old); err != nil || old.ReaskCooldown != 24*time.Hour {
		t.Fatalf("nanoseconds: %+v, %v; want 24h", old, err)
	}
	var h consent.Settings
	if err := json.Unmarshal([]byte(`{"channels":["sms"],"reask_cooldown":"48h"}`), &h); err != nil || h.ReaskCooldown != 48*time.Hour {
		t.Fatalf(`"48h": %v, %v`, h.ReaskCooldown, err)
	}
	var x consent.Settings
	if err := json.Unmarshal([]byte(`{"channels":["sms"],"surprise":1}`), &x); err == nil {
		t.Error("an unknown field is accepted")
	}
	for bad, field := range map[string]string{
		`{"reask_cooldown":"soon"}`:  "reask_cooldown",
		`{"retention":"3y"}`:         "retention",
		`{"reask_cooldown":true}`:    "reask_cooldown",
		`{"channels":"sms"}`:         "channels",
		`{"policies":{"ads":"one"}}`: "policies",
	} {
		var x consent.Settings
		err := json.Unmarshal([]byte(bad), &x)
		var fe *consent.FieldError
		if !errors.As(err, &fe) || fe.Field != field || !errors.Is(err, consent.ErrInvalidSettings) {
			t.Errorf("Unmarshal(%s) = %v, want a *FieldError on %q wrapping ErrInvalidSettings", bad, err, field)
		}
	}
}
