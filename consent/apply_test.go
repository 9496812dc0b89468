package consent_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// Shared helpers of the consent tests.

const user = "u1"

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// testSettings returns the default settings plus a prohibited namespace
// "ethnic" and an ordinary listed namespace "interest".
func testSettings() *consent.Settings {
	s := consent.DefaultSettings()
	s.Taxonomy["ethnic"] = tags.Namespace{Prohibited: true}
	s.Taxonomy["interest"] = tags.Namespace{Category: "interests"}
	// Purposes a sensitive consent may name must have a policy version.
	// (at version 0, as if the policy text had never been revised).
	s.Policies["research"] = 0
	s.Policies["ads"] = 0
	s.Policies[strings.Repeat("p", consent.MaxPurposeLen)] = 1
	return &s
}

// withPolicy returns a copy of set with purpose at version v.
func withPolicy(set *consent.Settings, purpose string, v int) *consent.Settings {
	c := set.Clone()
	c.Policies[purpose] = v
	return &c
}

// wantFieldErr fails unless err wraps sentinel and is a *FieldError on field.
func wantFieldErr(tb testing.TB, err, sentinel error, field string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("error = nil, want one wrapping %v on field %q", sentinel, field)
	}
	if !errors.Is(err, sentinel) {
		tb.Fatalf("error = %v, want one wrapping %v", err, sentinel)
	}
	var fe *consent.FieldError
	if !errors.As(err, &fe) {
		tb.Fatalf("error %v (%T) is not a *consent.FieldError", err, err)
	}
	if fe.Field != field {
		tb.Errorf("FieldError.Field = %q, want %q (error: %v)", fe.Field, field, err)
	}
}

// tg parses a tag and fails the test on error.
func tg(tb testing.TB, s string) tags.Tag {
	tb.Helper()
	t, err := tags.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// replay applies changes in order to a new record of user, the i-th at
// t0+i minutes unless it carries its own time, and returns the record and
// the receipts. Every change must validate and apply.
func replay(tb testing.TB, set *consent.Settings, changes ...consent.Change) (consent.Record, []consent.Receipt) {
	tb.Helper()
	r := consent.NewRecord(user)
	var rs []consent.Receipt
	for i, ch := range changes {
		if ch.At.IsZero() {
			ch.At = t0.Add(time.Duration(i) * time.Minute)
		}
		if err := ch.Validate(set); err != nil {
			tb.Fatalf("setup change %d (%s) does not validate: %v", i, ch.Op, err)
		}
		next, rc, err := r.Apply(ch, set)
		if err != nil {
			tb.Fatalf("setup change %d (%s) failed: %v", i, ch.Op, err)
		}
		if rc != nil {
			rs = append(rs, *rc)
		}
		r = next
	}
	return r, rs
}

// mustJSON encodes v; it is used to take deep snapshots.
func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func tagsOf(s tags.Set) []tags.Tag {
	var out []tags.Tag
	for _, e := range s.Entries {
		out = append(out, e.Tag)
	}
	return out
}

func suppressedOf(s tags.Set) []tags.Tag {
	var out []tags.Tag
	for _, p := range s.Suppressed {
		out = append(out, p.Tag)
	}
	return out
}

func tagSlice(ss ...string) []tags.Tag {
	if len(ss) == 0 {
		return nil
	}
	out := make([]tags.Tag, len(ss))
	for i, s := range ss {
		out[i] = tags.Tag(s)
	}
	return out
}

// receiptWant is what a test expects of a receipt.
type receiptWant struct {
	subject       string
	old, new      string
	purpose       string
	policyVersion int
}

type applyCase struct {
	name  string
	setup []consent.Change
	// mod changes the settings the tested change is applied under.
	mod    func(*consent.Settings) *consent.Settings
	change consent.Change
	// skipValidate marks a change that is not expected to pass Validate.
	skipValidate bool

	wantErr   error
	wantField string
	noop      bool
	want      receiptWant
	check     func(t *testing.T, after consent.Record, set *consent.Settings)
}

var atApply = t0.Add(24 * time.Hour)

func runApplyCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := testSettings()
			before, prior := replay(t, base, c.setup...)
			set := base
			if c.mod != nil {
				set = c.mod(base)
			}
			ch := c.change
			if ch.At.IsZero() {
				ch.At = atApply
			}
			if !c.skipValidate {
				if err := ch.Validate(set); err != nil {
					t.Fatalf("change does not validate: %v", err)
				}
			}
			snap := mustJSON(t, before)
			after, rc, err := before.Apply(ch, set)
			if got := mustJSON(t, before); got != snap {
				t.Fatalf("Apply modified its receiver:\n got %s\nwant %s", got, snap)
			}
			if c.wantErr != nil {
				wantFieldErr(t, err, c.wantErr, c.wantField)
				if rc != nil {
					t.Errorf("receipt = %+v on error, want nil", rc)
				}
				if !reflect.DeepEqual(after, before) {
					t.Errorf("record on error = %+v, want the unchanged record %+v", after, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply error = %v, want nil", err)
			}
			if c.noop {
				if rc != nil {
					t.Errorf("receipt = %+v, want nil for a change that changes nothing", *rc)
				}
				if !reflect.DeepEqual(after, before) {
					t.Errorf("no-op returned record %+v, want %+v", after, before)
				}
				return
			}
			if rc == nil {
				t.Fatalf("receipt = nil, want one (record after: %+v)", after)
			}
			wantAt := ch.At.UTC().Round(0)
			w := c.want
			got := receiptWant{subject: rc.Subject, old: rc.Old, new: rc.New, purpose: rc.Purpose, policyVersion: rc.PolicyVersion}
			if got != w {
				t.Errorf("receipt = %+v\nwant      %+v", got, w)
			}
			if rc.UserID != user || rc.Op != ch.Op || rc.Actor != ch.Actor || rc.Surface != ch.Surface || rc.Reason != ch.Reason {
				t.Errorf("receipt who/what = (%q %s %s %s %q), want (%q %s %s %s %q)",
					rc.UserID, rc.Op, rc.Actor, rc.Surface, rc.Reason, user, ch.Op, ch.Actor, ch.Surface, ch.Reason)
			}
			if !rc.At.Equal(wantAt) || rc.At.Location() != time.UTC || strings.Contains(rc.At.String(), "m=") {
				t.Errorf("receipt At = %v, want %v in UTC without a monotonic reading", rc.At, wantAt)
			}
			if !after.UpdatedAt.Equal(wantAt) || after.UpdatedAt.Location() != time.UTC || strings.Contains(after.UpdatedAt.String(), "m=") {
				t.Errorf("record UpdatedAt = %v, want %v in UTC without a monotonic reading", after.UpdatedAt, wantAt)
			}
			if rc.Seq != before.Version+1 || after.Version != before.Version+1 {
				t.Errorf("receipt Seq = %d, record Version = %d; want both %d", rc.Seq, after.Version, before.Version+1)
			}
			if rc.PrevHash != before.LastHash {
				t.Errorf("receipt PrevHash = %q, want the previous head %q", rc.PrevHash, before.LastHash)
			}
			if after.LastHash != rc.Hash || len(rc.Hash) != 64 || rc.ID != "rcpt_"+rc.Hash[:24] {
				t.Errorf("record LastHash = %q, receipt Hash = %q, ID = %q; want the head to be the receipt's hash and ID rcpt_+hash[:24]", after.LastHash, rc.Hash, rc.ID)
			}
			if after.UserID != user {
				t.Errorf("record UserID = %q, want %q", after.UserID, user)
			}
			if err := consent.VerifyChain(append(prior, *rc), consent.Head{Version: after.Version, LastHash: after.LastHash}, nil); err != nil {
				t.Errorf("VerifyChain of the user's receipts = %v, want nil", err)
			}
			if c.check != nil {
				c.check(t, after, set)
			}
		})
	}
}

func TestApplyPersonalization(t *testing.T) {
	runApplyCases(t, []applyCase{
		{
			name:   "turn off",
			change: consent.SetPersonalization(user, false),
			want:   receiptWant{old: "on", new: "off", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if !after.State.PersonalizationOff {
					t.Error("PersonalizationOff = false after turning it off")
				}
				if at, ok := after.State.LastRefusal(consent.KindPersonalization); !ok || !at.Equal(atApply) {
					t.Errorf("LastRefusal(personalization) = %v, %t; want %v, true", at, ok, atApply)
				}
			},
		},
		{
			name:   "turn off when off",
			setup:  []consent.Change{consent.SetPersonalization(user, false)},
			change: consent.SetPersonalization(user, false),
			noop:   true,
		},
		{
			name:   "turn on when off",
			setup:  []consent.Change{consent.SetPersonalization(user, false)},
			change: consent.SetPersonalization(user, true),
			want:   receiptWant{old: "off", new: "on", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if after.State.PersonalizationOff {
					t.Error("PersonalizationOff = true after turning it on")
				}
				// The refusal stays on record for the re-ask cooldown history.
				if at, ok := after.State.LastRefusal(consent.KindPersonalization); !ok || !at.Equal(t0) {
					t.Errorf("LastRefusal(personalization) = %v, %t; want %v, true", at, ok, t0)
				}
			},
		},
		{
			name:   "turn on when on",
			change: consent.SetPersonalization(user, true),
			noop:   true,
		},
		{
			name:   "policy version follows the settings",
			mod:    func(s *consent.Settings) *consent.Settings { return withPolicy(s, "personalization", 7) },
			change: consent.SetPersonalization(user, false).Because("too many ads"),
			want:   receiptWant{old: "on", new: "off", purpose: "personalization", policyVersion: 7},
		},
		{
			name: "time is stored in UTC without monotonic reading",
			change: func() consent.Change {
				c := consent.SetPersonalization(user, false)
				c.At = time.Now().In(time.FixedZone("CST", 8*3600)) // carries a monotonic reading
				return c
			}(),
			want: receiptWant{old: "on", new: "off", purpose: "personalization", policyVersion: 1},
		},
		{
			name:   "admin may turn it off",
			change: consent.SetPersonalization(user, false).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
			want:   receiptWant{old: "on", new: "off", purpose: "personalization", policyVersion: 1},
		},
	})
}

func TestApplyChannel(t *testing.T) {
	runApplyCases(t, []applyCase{
		{
			name:   "refuse",
			change: consent.RefuseChannel(user, "sms"),
			want:   receiptWant{subject: "sms", old: "allowed", new: "refused", purpose: "push", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if !reflect.DeepEqual(after.State.RefusedChannels, []string{"sms"}) {
					t.Errorf("RefusedChannels = %v, want [sms]", after.State.RefusedChannels)
				}
				if at, ok := after.State.LastRefusal(consent.ChannelKind("sms")); !ok || !at.Equal(atApply) {
					t.Errorf("LastRefusal(channel:sms) = %v, %t; want %v, true", at, ok, atApply)
				}
			},
		},
		{
			name:   "refuse keeps channels sorted",
			setup:  []consent.Change{consent.RefuseChannel(user, "sms"), consent.RefuseChannel(user, "email")},
			change: consent.RefuseChannel(user, "push"),
			want:   receiptWant{subject: "push", old: "allowed", new: "refused", purpose: "push", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if want := []string{"email", "push", "sms"}; !reflect.DeepEqual(after.State.RefusedChannels, want) {
					t.Errorf("RefusedChannels = %v, want %v", after.State.RefusedChannels, want)
				}
				var kinds []consent.Kind
				for _, r := range after.State.Refusals {
					kinds = append(kinds, r.Kind)
				}
				if want := []consent.Kind{"channel:email", "channel:push", "channel:sms"}; !reflect.DeepEqual(kinds, want) {
					t.Errorf("Refusals kinds = %v, want %v", kinds, want)
				}
			},
		},
		{
			name:   "refuse when refused",
			setup:  []consent.Change{consent.RefuseChannel(user, "sms")},
			change: consent.RefuseChannel(user, "sms"),
			noop:   true,
		},
		{
			name:   "allow after refusal",
			setup:  []consent.Change{consent.RefuseChannel(user, "sms")},
			change: consent.AllowChannel(user, "sms"),
			want:   receiptWant{subject: "sms", old: "refused", new: "allowed", purpose: "push", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if after.State.RefusedChannels != nil {
					t.Errorf("RefusedChannels = %#v, want nil", after.State.RefusedChannels)
				}
				if after.State.ChannelRefused("sms") {
					t.Error("ChannelRefused(sms) = true after allowing it")
				}
			},
		},
		{
			name:   "allow one of two",
			setup:  []consent.Change{consent.RefuseChannel(user, "sms"), consent.RefuseChannel(user, "email")},
			change: consent.AllowChannel(user, "email"),
			want:   receiptWant{subject: "email", old: "refused", new: "allowed", purpose: "push", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if !reflect.DeepEqual(after.State.RefusedChannels, []string{"sms"}) {
					t.Errorf("RefusedChannels = %v, want [sms]", after.State.RefusedChannels)
				}
			},
		},
		{
			name:   "allow when allowed",
			change: consent.AllowChannel(user, "sms"),
			noop:   true,
		},
	})
}

func TestApplySensitive(t *testing.T) {
	grantMH := consent.GrantSensitive(user, tags.MedicalHealth, "personalization")
	runApplyCases(t, []applyCase{
		{
			name:   "grant",
			change: grantMH,
			want:   receiptWant{subject: "medical_health", old: "none", new: "granted for personalization under policy v1", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				g, ok := after.State.SensitiveGrant(tags.MedicalHealth)
				want := consent.Grant{Granted: true, Purpose: "personalization", PolicyVersion: 1, At: atApply}
				if !ok || !reflect.DeepEqual(g, want) {
					t.Errorf("SensitiveGrant = %+v, %t; want %+v, true", g, ok, want)
				}
				if !after.State.SensitiveOK(tags.MedicalHealth, set) {
					t.Error("SensitiveOK = false after grant")
				}
			},
		},
		{
			name:   "grant again",
			setup:  []consent.Change{grantMH},
			change: grantMH,
			noop:   true,
		},
		{
			name:   "grant for another purpose",
			setup:  []consent.Change{grantMH},
			change: consent.GrantSensitive(user, tags.MedicalHealth, "research"),
			want:   receiptWant{subject: "medical_health", old: "granted for personalization under policy v1", new: "granted for research under policy v0", purpose: "research", policyVersion: 0},
		},
		{
			name:   "grant again after the policy changed",
			setup:  []consent.Change{grantMH},
			mod:    func(s *consent.Settings) *consent.Settings { return withPolicy(s, "personalization", 2) },
			change: grantMH,
			want:   receiptWant{subject: "medical_health", old: "granted for personalization under policy v1", new: "granted for personalization under policy v2", purpose: "personalization", policyVersion: 2},
		},
		{
			name:      "a guardian cannot act for an adult",
			setup:     []consent.Change{grantMH},
			change:    grantMH.By(consent.ActorGuardian, consent.SurfaceAppSettings),
			wantErr:   consent.ErrForbidden,
			wantField: "actor",
		},
		{
			name:   "guardian confirms a grant for a minor",
			setup:  []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true)},
			change: grantMH.By(consent.ActorGuardian, consent.SurfaceAppSettings),
			want:   receiptWant{subject: "medical_health", old: "none", new: "granted by guardian for personalization under policy v1", purpose: "personalization", policyVersion: 1},
		},
		{
			name:      "a minor cannot grant",
			setup:     []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true)},
			change:    grantMH,
			wantErr:   consent.ErrConsentRequired,
			wantField: "actor",
		},
		{
			name:   "the guardian grants for a minor",
			setup:  []consent.Change{consent.SetMinor(user, true)},
			change: grantMH.By(consent.ActorGuardian, consent.SurfaceWeb),
			want:   receiptWant{subject: "medical_health", old: "none", new: "granted by guardian for personalization under policy v1", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if g, _ := after.State.SensitiveGrant(tags.MedicalHealth); !g.ByGuardian {
					t.Errorf("grant %+v: ByGuardian = false, want true", g)
				}
			},
		},
		{
			name:   "decline what was never granted (recorded: Art. 22(5))",
			change: consent.WithdrawSensitive(user, tags.MedicalHealth),
			want:   receiptWant{subject: "medical_health", old: "none", new: "declined"},
		},
		{
			name:   "decline again within the cooldown (a retry)",
			setup:  []consent.Change{consent.WithdrawSensitive(user, tags.MedicalHealth)},
			change: consent.WithdrawSensitive(user, tags.MedicalHealth),
			noop:   true,
		},
		{
			name:   "withdraw twice",
			setup:  []consent.Change{grantMH, consent.WithdrawSensitive(user, tags.MedicalHealth)},
			change: consent.WithdrawSensitive(user, tags.MedicalHealth),
			noop:   true,
		},
		{
			name:   "withdraw without tags",
			setup:  []consent.Change{grantMH, consent.DeclareTag(user, "interest:ski")},
			change: consent.WithdrawSensitive(user, tags.MedicalHealth),
			want:   receiptWant{subject: "medical_health", old: "granted for personalization under policy v1", new: "withdrawn (0 tags removed)", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if got := tagsOf(after.Tags); !reflect.DeepEqual(got, tagSlice("interest:ski")) {
					t.Errorf("tags = %v, want [interest:ski]", got)
				}
			},
		},
		{
			name: "withdraw removes the category's tags",
			setup: []consent.Change{
				grantMH,
				consent.GrantSensitive(user, tags.Religion, "personalization"),
				consent.DeclareTag(user, "medical_health:diabetes"),
				consent.InferTag(user, "medical_health:hypertension"),
				consent.DeclareTag(user, "religion:buddhism"),
				consent.InferTag(user, "interest:ski"),
				consent.DeleteTag(user, "medical_health:flu"),
			},
			change: consent.WithdrawSensitive(user, tags.MedicalHealth),
			want:   receiptWant{subject: "medical_health", old: "granted for personalization under policy v1", new: "withdrawn (2 tags removed)", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if got, want := tagsOf(after.Tags), tagSlice("interest:ski", "religion:buddhism"); !reflect.DeepEqual(got, want) {
					t.Errorf("tags = %v, want %v", got, want)
				}
				if got, want := suppressedOf(after.Tags), tagSlice("medical_health:flu"); !reflect.DeepEqual(got, want) {
					t.Errorf("suppressed = %v, want %v", got, want)
				}
				g, ok := after.State.SensitiveGrant(tags.MedicalHealth)
				want := consent.Grant{Purpose: "personalization", PolicyVersion: 1, At: atApply}
				if !ok || !reflect.DeepEqual(g, want) {
					t.Errorf("SensitiveGrant = %+v, %t; want %+v, true", g, ok, want)
				}
				if after.State.SensitiveOK(tags.MedicalHealth, set) {
					t.Error("SensitiveOK(medical_health) = true after withdrawal")
				}
				if !after.State.SensitiveOK(tags.Religion, set) {
					t.Error("SensitiveOK(religion) = false; withdrawing another category must not touch it")
				}
				if at, ok := after.State.LastRefusal(consent.SensitiveKind(tags.MedicalHealth)); !ok || !at.Equal(atApply) {
					t.Errorf("LastRefusal(sensitive:medical_health) = %v, %t; want %v, true", at, ok, atApply)
				}
				var cats []tags.Category
				for _, sc := range after.State.Sensitive {
					cats = append(cats, sc.Category)
				}
				if want := []tags.Category{tags.MedicalHealth, tags.Religion}; !reflect.DeepEqual(cats, want) {
					t.Errorf("Sensitive categories = %v, want sorted %v", cats, want)
				}
			},
		},
		{
			name:   "withdraw by admin is allowed and names the old purpose",
			setup:  []consent.Change{consent.GrantSensitive(user, tags.Whereabouts, "research")},
			change: consent.WithdrawSensitive(user, tags.Whereabouts).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
			want:   receiptWant{subject: "whereabouts", old: "granted for research under policy v0", new: "withdrawn (0 tags removed)", purpose: "research", policyVersion: 0},
		},
	})
}

func TestApplyMinorAndGuardian(t *testing.T) {
	guardianV1 := "granted by guardian for guardian under policy v1"
	runApplyCases(t, []applyCase{
		{
			name:   "mark minor",
			change: consent.SetMinor(user, true),
			want:   receiptWant{old: "adult", new: "minor"},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if !after.State.Minor || after.State.GuardianOK(set) {
					t.Errorf("Minor = %t, GuardianOK = %t; want true, false", after.State.Minor, after.State.GuardianOK(set))
				}
			},
		},
		{
			name:   "mark minor twice",
			setup:  []consent.Change{consent.SetMinor(user, true)},
			change: consent.SetMinor(user, true),
			noop:   true,
		},
		{
			name:   "the guardian marks adult",
			setup:  []consent.Change{consent.SetMinor(user, true)},
			change: consent.SetMinor(user, false).By(consent.ActorGuardian, consent.SurfaceAppSettings),
			want:   receiptWant{old: "minor", new: "adult"},
		},
		{
			name:   "the user marks adult when adult",
			change: consent.SetMinor(user, false).By(consent.ActorUser, consent.SurfaceAppSettings),
			noop:   true,
		},
		{
			name:   "guardian grants",
			setup:  []consent.Change{consent.SetMinor(user, true)},
			change: consent.SetGuardian(user, true),
			want:   receiptWant{old: "none", new: guardianV1, purpose: "guardian", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				want := consent.Grant{Granted: true, Purpose: "guardian", PolicyVersion: 1, ByGuardian: true, At: atApply}
				if after.State.Guardian == nil || *after.State.Guardian != want {
					t.Errorf("Guardian = %+v, want %+v", after.State.Guardian, want)
				}
				if !after.State.GuardianOK(set) {
					t.Error("GuardianOK = false after the guardian granted")
				}
			},
		},
		{
			name:   "guardian grants twice",
			setup:  []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true)},
			change: consent.SetGuardian(user, true),
			noop:   true,
		},
		{
			name:   "guardian grants again under a new policy",
			setup:  []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true)},
			mod:    func(s *consent.Settings) *consent.Settings { return withPolicy(s, "guardian", 2) },
			change: consent.SetGuardian(user, true),
			want:   receiptWant{old: guardianV1, new: "granted by guardian for guardian under policy v2", purpose: "guardian", policyVersion: 2},
		},
		{
			name:   "guardian grants again after withdrawing",
			setup:  []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true), consent.SetGuardian(user, false)},
			change: consent.SetGuardian(user, true),
			want:   receiptWant{old: "withdrawn", new: guardianV1, purpose: "guardian", policyVersion: 1},
		},
		{
			name:   "guardian withdraws",
			setup:  []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true)},
			change: consent.SetGuardian(user, false),
			want:   receiptWant{old: guardianV1, new: "withdrawn", purpose: "guardian", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				want := consent.Grant{Purpose: "guardian", PolicyVersion: 1, ByGuardian: true, At: atApply}
				if after.State.Guardian == nil || *after.State.Guardian != want {
					t.Errorf("Guardian = %+v, want %+v", after.State.Guardian, want)
				}
				if after.State.GuardianOK(set) {
					t.Error("GuardianOK = true after withdrawal")
				}
				if at, ok := after.State.LastRefusal(consent.KindGuardian); !ok || !at.Equal(atApply) {
					t.Errorf("LastRefusal(guardian) = %v, %t; want %v, true", at, ok, atApply)
				}
			},
		},
		{
			name:   "admin may withdraw guardian consent",
			setup:  []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true)},
			change: consent.SetGuardian(user, false).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
			want:   receiptWant{old: guardianV1, new: "withdrawn", purpose: "guardian", policyVersion: 1},
		},
		{
			name:   "guardian declines, never having given consent (recorded)",
			setup:  []consent.Change{consent.SetMinor(user, true)},
			change: consent.SetGuardian(user, false),
			want:   receiptWant{old: "none", new: "declined", purpose: "guardian", policyVersion: 1},
		},
		{
			name:   "withdraw twice",
			setup:  []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true), consent.SetGuardian(user, false)},
			change: consent.SetGuardian(user, false),
			noop:   true,
		},
	})
}

func TestApplyTags(t *testing.T) {
	grantMH := consent.GrantSensitive(user, tags.MedicalHealth, "personalization")
	minorWithGuardian := []consent.Change{consent.SetMinor(user, true), consent.SetGuardian(user, true)}
	byGuardian := func(c consent.Change) consent.Change { return c.By(consent.ActorGuardian, consent.SurfaceAppSettings) }
	runApplyCases(t, []applyCase{
		{
			name:   "declare new",
			change: consent.DeclareTag(user, "interest:ski"),
			want:   receiptWant{subject: "interest:ski", old: "absent", new: "declared", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				e, ok := after.Tags.Has("interest:ski")
				if !ok || e.Source != tags.Declared || !e.At.Equal(atApply) {
					t.Errorf("Has(interest:ski) = %+v, %t; want declared at %v", e, ok, atApply)
				}
			},
		},
		{
			name:   "declare again",
			setup:  []consent.Change{consent.DeclareTag(user, "interest:ski")},
			change: consent.DeclareTag(user, "interest:ski"),
			noop:   true,
		},
		{
			name:   "declare upgrades an inferred tag",
			setup:  []consent.Change{consent.InferTag(user, "interest:ski")},
			change: consent.DeclareTag(user, "interest:ski"),
			want:   receiptWant{subject: "interest:ski", old: "inferred", new: "declared", purpose: "personalization", policyVersion: 1},
		},
		{
			name:   "infer new",
			change: consent.InferTag(user, "region:sh"),
			want:   receiptWant{subject: "region:sh", old: "absent", new: "inferred", purpose: "personalization", policyVersion: 1},
		},
		{
			name:   "infer by admin",
			change: consent.InferTag(user, "region:sh").By(consent.ActorAdmin, consent.SurfaceAdminConsole),
			want:   receiptWant{subject: "region:sh", old: "absent", new: "inferred", purpose: "personalization", policyVersion: 1},
		},
		{
			name:   "infer again",
			setup:  []consent.Change{consent.InferTag(user, "region:sh")},
			change: consent.InferTag(user, "region:sh"),
			noop:   true,
		},
		{
			name:   "infer never downgrades a declared tag",
			setup:  []consent.Change{consent.DeclareTag(user, "region:sh")},
			change: consent.InferTag(user, "region:sh"),
			noop:   true,
		},
		{
			name:      "infer after the user deleted it",
			setup:     []consent.Change{consent.InferTag(user, "interest:ski"), consent.DeleteTag(user, "interest:ski")},
			change:    consent.InferTag(user, "interest:ski"),
			wantErr:   tags.ErrSuppressed,
			wantField: "tag",
		},
		{
			name:      "admin cannot infer a suppressed tag either",
			setup:     []consent.Change{consent.DeleteTag(user, "interest:ski")},
			change:    consent.InferTag(user, "interest:ski").By(consent.ActorAdmin, consent.SurfaceAdminConsole),
			wantErr:   tags.ErrSuppressed,
			wantField: "tag",
		},
		{
			name:      "a plain declaration does not lift the suppression",
			setup:     []consent.Change{consent.InferTag(user, "interest:ski"), consent.DeleteTag(user, "interest:ski")},
			change:    consent.DeclareTag(user, "interest:ski"),
			wantErr:   tags.ErrSuppressed,
			wantField: "tag",
		},
		{
			name:   "the user's explicit re-declaration lifts the suppression",
			setup:  []consent.Change{consent.InferTag(user, "interest:ski"), consent.DeleteTag(user, "interest:ski")},
			change: consent.RedeclareTag(user, "interest:ski"),
			want:   receiptWant{subject: "interest:ski", old: "suppressed", new: "declared (suppression lifted by the user's re-declaration)", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if after.Tags.IsSuppressed("interest:ski") {
					t.Error("IsSuppressed(interest:ski) = true after the user's declaration")
				}
			},
		},
		{
			name:   "a guardian's declaration lifts the suppression",
			setup:  append(append([]consent.Change{}, minorWithGuardian...), consent.DeleteTag(user, "interest:ski")),
			change: byGuardian(consent.RedeclareTag(user, "interest:ski")),
			want:   receiptWant{subject: "interest:ski", old: "suppressed", new: "declared (suppression lifted by the user's re-declaration)", purpose: "personalization", policyVersion: 1},
		},
		{
			name:      "sensitive tag without consent",
			change:    consent.DeclareTag(user, "medical_health:diabetes"),
			wantErr:   consent.ErrConsentRequired,
			wantField: "tag",
		},
		{
			name:      "sensitive tag inferred without consent",
			change:    consent.InferTag(user, "whereabouts:home"),
			wantErr:   consent.ErrConsentRequired,
			wantField: "tag",
		},
		{
			name:   "sensitive tag with consent",
			setup:  []consent.Change{grantMH},
			change: consent.InferTag(user, "medical_health:diabetes"),
			want:   receiptWant{subject: "medical_health:diabetes", old: "absent", new: "inferred", purpose: "personalization", policyVersion: 1},
		},
		{
			name:      "sensitive tag with consent under an old policy",
			setup:     []consent.Change{grantMH},
			mod:       func(s *consent.Settings) *consent.Settings { return withPolicy(s, "personalization", 2) },
			change:    consent.DeclareTag(user, "medical_health:diabetes"),
			wantErr:   consent.ErrConsentRequired,
			wantField: "tag",
		},
		{
			name:      "sensitive tag after withdrawal",
			setup:     []consent.Change{grantMH, consent.WithdrawSensitive(user, tags.MedicalHealth)},
			change:    consent.DeclareTag(user, "medical_health:diabetes"),
			wantErr:   consent.ErrConsentRequired,
			wantField: "tag",
		},
		{
			name:      "minor without guardian consent",
			setup:     []consent.Change{consent.SetMinor(user, true)},
			change:    consent.InferTag(user, "interest:ski"),
			wantErr:   consent.ErrConsentRequired,
			wantField: "tag",
		},
		{
			name:      "minor declaring without guardian consent",
			setup:     []consent.Change{consent.SetMinor(user, true)},
			change:    consent.DeclareTag(user, "interest:ski"),
			wantErr:   consent.ErrConsentRequired,
			wantField: "tag",
		},
		{
			name:      "minor whose guardian consented under an old policy",
			setup:     minorWithGuardian,
			mod:       func(s *consent.Settings) *consent.Settings { return withPolicy(s, "guardian", 2) },
			change:    consent.InferTag(user, "interest:ski"),
			wantErr:   consent.ErrConsentRequired,
			wantField: "tag",
		},
		{
			name:   "minor with guardian consent",
			setup:  minorWithGuardian,
			change: byGuardian(consent.DeclareTag(user, "interest:ski")),
			want:   receiptWant{subject: "interest:ski", old: "absent", new: "declared", purpose: "personalization", policyVersion: 1},
		},
		{
			name:   "delete present",
			setup:  []consent.Change{consent.DeclareTag(user, "interest:ski"), consent.InferTag(user, "region:sh")},
			change: consent.DeleteTag(user, "interest:ski"),
			want:   receiptWant{subject: "interest:ski", old: "declared", new: "deleted, suppressed", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if got := tagsOf(after.Tags); !reflect.DeepEqual(got, tagSlice("region:sh")) {
					t.Errorf("tags = %v, want [region:sh]", got)
				}
				if got := suppressedOf(after.Tags); !reflect.DeepEqual(got, tagSlice("interest:ski")) {
					t.Errorf("suppressed = %v, want [interest:ski]", got)
				}
			},
		},
		{
			name:   "delete inferred",
			setup:  []consent.Change{consent.InferTag(user, "region:sh")},
			change: consent.DeleteTag(user, "region:sh"),
			want:   receiptWant{subject: "region:sh", old: "inferred", new: "deleted, suppressed", purpose: "personalization", policyVersion: 1},
		},
		{
			name:   "delete before it was ever inferred",
			change: consent.DeleteTag(user, "interest:ski"),
			want:   receiptWant{subject: "interest:ski", old: "absent", new: "deleted, suppressed", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if !after.Tags.IsSuppressed("interest:ski") {
					t.Error("IsSuppressed(interest:ski) = false")
				}
			},
		},
		{
			name:   "delete a prohibited tag is allowed",
			change: consent.DeleteTag(user, "ethnic:x"),
			want:   receiptWant{subject: "ethnic:x", old: "absent", new: "deleted, suppressed", purpose: "personalization", policyVersion: 1},
		},
		{
			name:   "delete twice",
			setup:  []consent.Change{consent.DeleteTag(user, "interest:ski")},
			change: consent.DeleteTag(user, "interest:ski"),
			noop:   true,
		},
	})
}

func TestApplyErase(t *testing.T) {
	full := []consent.Change{
		consent.RefuseChannel(user, "sms"),
		consent.GrantSensitive(user, tags.Religion, "personalization"),
		consent.DeclareTag(user, "religion:buddhism"),
		consent.InferTag(user, "interest:ski"),
		consent.DeleteTag(user, "region:sh"),
		consent.SetPersonalization(user, false),
	}
	erased := append(append([]consent.Change{}, full...), consent.Erase(user))
	runApplyCases(t, []applyCase{
		{
			name:   "erase",
			setup:  full,
			change: consent.Erase(user),
			want:   receiptWant{old: "active", new: "erased"},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if !reflect.DeepEqual(after.State, consent.State{Erased: true}) {
					t.Errorf("State = %+v, want only Erased", after.State)
				}
				if len(after.Tags.Entries) != 0 {
					t.Errorf("tags = %v, want none", tagsOf(after.Tags))
				}
				// Suppressions go too (Art. 24: nothing of the user's
				// profile is kept; the tombstone refuses pipeline writes).
				if got := suppressedOf(after.Tags); len(got) != 0 {
					t.Errorf("suppressed = %v, want none", got)
				}
				d := consent.Evaluate(after.State, after.Tags, set)
				if d.Personalized || d.Reason != consent.ReasonErased || d.PushBlock != consent.ReasonErased {
					t.Errorf("Evaluate after erase = %+v, want not personalized, erased, push blocked", d)
				}
			},
		},
		{
			name:   "erase an empty record",
			change: consent.Erase(user),
			want:   receiptWant{old: "active", new: "erased"},
		},
		{
			name:   "admin may erase",
			setup:  full,
			change: consent.Erase(user).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
			want:   receiptWant{old: "active", new: "erased"},
		},
		{
			name:   "erase twice",
			setup:  erased,
			change: consent.Erase(user),
			noop:   true,
		},
		{
			name:   "admin erases an erased user: nothing to do",
			setup:  erased,
			change: consent.Erase(user).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
			noop:   true,
		},
		{
			name:      "pipeline cannot write to an erased user",
			setup:     erased,
			change:    consent.InferTag(user, "interest:golf"),
			wantErr:   consent.ErrForbidden,
			wantField: "user_id",
		},
		{
			name:   "a restrictive change to an erased user changes nothing",
			setup:  erased,
			change: consent.SetMinor(user, true),
			noop:   true,
		},
		{
			name:   "nor does the user's own opt-out: it does not bring them back",
			setup:  erased,
			change: consent.SetPersonalization(user, false),
			noop:   true,
		},
		{
			name:   "the user's own change brings them back",
			setup:  erased,
			change: consent.SetPersonalization(user, true),
			want:   receiptWant{old: "on", new: "on", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if after.State.Erased {
					t.Error("Erased = true after the user's own change")
				}
				d := consent.Evaluate(after.State, after.Tags, set)
				if !d.Personalized || len(d.Tags) != 0 {
					t.Errorf("Evaluate = %+v, want personalized with no tags", d)
				}
			},
		},
		{
			name:   "the user declares an erased tag again",
			setup:  erased,
			change: consent.RedeclareTag(user, "interest:ski"),
			want:   receiptWant{subject: "interest:ski", old: "absent", new: "declared", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if after.State.Erased {
					t.Error("Erased = true after the user's declaration")
				}
				if got := suppressedOf(after.Tags); len(got) != 0 {
					t.Errorf("suppressed = %v, want none (erasure dropped them)", got)
				}
			},
		},
		{
			name:   "erased sensitive consent is gone",
			setup:  erased,
			change: consent.DeclareTag(user, "religion:buddhism"),
			// Erasure dropped the religion consent, so the user must grant again.
			wantErr:   consent.ErrConsentRequired,
			wantField: "tag",
		},
		{
			name:   "a no-op restriction leaves the user erased",
			setup:  erased,
			change: consent.DeleteTag(user, "interest:ski"),
			noop:   true,
		},
	})
}

func TestApplyErrors(t *testing.T) {
	runApplyCases(t, []applyCase{
		{
			name:      "change for another user",
			change:    consent.SetPersonalization("u2", false),
			wantErr:   consent.ErrInvalidChange,
			wantField: "user_id",
		},
		{
			name:         "unknown operation",
			change:       consent.Change{UserID: user, Op: "rename", Actor: consent.ActorUser, Surface: consent.SurfaceWeb},
			skipValidate: true,
			wantErr:      consent.ErrInvalidChange,
			wantField:    "op",
		},
		{
			name:         "unknown operation on an erased user",
			setup:        []consent.Change{consent.Erase(user)},
			change:       consent.Change{UserID: user, Op: "rename", Actor: consent.ActorUser, Surface: consent.SurfaceWeb},
			skipValidate: true,
			wantErr:      consent.ErrInvalidChange,
			wantField:    "op",
		},
		{
			// Found while writing these tests: a time whose UTC year is 10000
			// made Receipt.Seal panic inside json.Marshal.
			name: "time that cannot be encoded",
			change: func() consent.Change {
				c := consent.SetPersonalization(user, false)
				c.At = time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -(23*3600+59*60)))
				return c
			}(),
			skipValidate: true,
			wantErr:      consent.ErrInvalidChange,
			wantField:    "at",
		},
	})
}

// TestApplyChain checks the per-user hash chain over a long history.
func TestApplyChain(t *testing.T) {
	set := testSettings()
	changes := []consent.Change{
		consent.SetPersonalization(user, false),
		consent.SetPersonalization(user, false), // no-op: no receipt, no seq
		consent.RefuseChannel(user, "push"),
		consent.GrantSensitive(user, tags.Biometrics, "personalization"),
		consent.SetPersonalization(user, true),
		consent.InferTag(user, "biometrics:face"),
		consent.DeleteTag(user, "biometrics:face"),
		consent.RedeclareTag(user, "biometrics:face"),
		consent.WithdrawSensitive(user, tags.Biometrics),
		consent.SetMinor(user, true),
		consent.SetGuardian(user, true),
		consent.Erase(user),
		consent.SetPersonalization(user, true), // the user comes back
	}
	r, rs := replay(t, set, changes...)
	if len(rs) != len(changes)-1 {
		t.Fatalf("got %d receipts, want %d", len(rs), len(changes)-1)
	}
	if r.Version != uint64(len(rs)) || r.LastHash != rs[len(rs)-1].Hash {
		t.Errorf("record Version = %d, LastHash = %q; want %d and the last receipt's hash %q", r.Version, r.LastHash, len(rs), rs[len(rs)-1].Hash)
	}
	seen := map[string]bool{}
	for i, rc := range rs {
		if rc.Seq != uint64(i+1) {
			t.Errorf("receipt %d Seq = %d, want %d", i, rc.Seq, i+1)
		}
		wantPrev := ""
		if i > 0 {
			wantPrev = rs[i-1].Hash
		}
		if rc.PrevHash != wantPrev {
			t.Errorf("receipt %d PrevHash = %q, want %q", i, rc.PrevHash, wantPrev)
		}
		if seen[rc.ID] {
			t.Errorf("receipt %d ID %q is not unique", i, rc.ID)
		}
		seen[rc.ID] = true
	}
	head := consent.Head{Version: rs[len(rs)-1].Seq, LastHash: rs[len(rs)-1].Hash}
	if err := consent.VerifyChain(rs, head, nil); err != nil {
		t.Errorf("VerifyChain = %v, want nil", err)
	}
	// The chain survives a JSON round trip, as a store would keep it.
	var back []consent.Receipt
	if err := json.Unmarshal([]byte(mustJSON(t, rs)), &back); err != nil {
		t.Fatal(err)
	}
	if err := consent.VerifyChain(back, head, nil); err != nil {
		t.Errorf("VerifyChain after JSON round trip = %v, want nil", err)
	}
	wantOps := []consent.Op{"set_personalization", "set_channel", "set_sensitive", "set_personalization", "infer_tag", "delete_tag", "declare_tag", "set_sensitive", "set_minor", "set_guardian", "erase", "set_personalization"}
	var ops []consent.Op
	for _, rc := range rs {
		ops = append(ops, rc.Op)
	}
	if !reflect.DeepEqual(ops, wantOps) {
		t.Errorf("receipt ops = %v, want %v", ops, wantOps)
	}
	if got := rs[7].New; got != "withdrawn (1 tags removed)" {
		t.Errorf("withdrawal receipt New = %q, want %q", got, "withdrawn (1 tags removed)")
	}
}

// TestSuppressionLifecycle walks Art. 42 tag deletion end to end.
func TestSuppressionLifecycle(t *testing.T) {
	set := testSettings()
	at := t0
	step := func(r consent.Record, ch consent.Change) (consent.Record, *consent.Receipt, error) {
		t.Helper()
		at = at.Add(time.Minute)
		ch.At = at
		if err := ch.Validate(set); err != nil {
			t.Fatalf("%s does not validate: %v", ch.Op, err)
		}
		return r.Apply(ch, set)
	}
	ski := tg(t, "interest:ski")
	r := consent.NewRecord(user)
	r, _, err := step(r, consent.InferTag(user, ski))
	if err != nil {
		t.Fatal(err)
	}
	r, rc, err := step(r, consent.DeleteTag(user, ski))
	if err != nil || rc == nil {
		t.Fatalf("delete: receipt %v, error %v", rc, err)
	}
	for _, ch := range []consent.Change{
		consent.InferTag(user, ski),
		consent.InferTag(user, ski).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
		consent.InferTag(user, ski).By(consent.ActorSystem, consent.SurfaceAPI),
	} {
		next, rc, err := step(r, ch)
		wantFieldErr(t, err, tags.ErrSuppressed, "tag")
		if rc != nil || !reflect.DeepEqual(next, r) {
			t.Errorf("refused inference by %s changed something: receipt %v", ch.Actor, rc)
		}
	}
	if d := consent.Evaluate(r.State, r.Tags, set); len(d.Tags) != 0 {
		t.Errorf("usable tags after delete = %v, want none", d.Tags)
	}
	if _, _, err := step(r, consent.DeclareTag(user, ski)); !errors.Is(err, tags.ErrSuppressed) {
		t.Fatalf("a plain declaration of the deleted tag: err = %v, want ErrSuppressed", err)
	}
	r, rc, err = step(r, consent.RedeclareTag(user, ski))
	if err != nil || rc == nil || rc.Old != "suppressed" || !strings.HasPrefix(rc.New, "declared (suppression lifted") {
		t.Fatalf("re-declare: receipt %+v, error %v; want suppressed -> declared (suppression lifted ...)", rc, err)
	}
	if d := consent.Evaluate(r.State, r.Tags, set); !reflect.DeepEqual(d.Tags, []tags.Tag{ski}) {
		t.Errorf("usable tags after the user's declaration = %v, want [%s]", d.Tags, ski)
	}
	if r.Version != 3 {
		t.Errorf("Version = %d, want 3 (refused changes leave no trace)", r.Version)
	}
}

func TestApplyReceiptReason(t *testing.T) {
	set := testSettings()
	ch := consent.RefuseChannel(user, "email").Because("asked support by phone").By(consent.ActorAdmin, "support")
	ch.At = t0
	if err := ch.Validate(set); err != nil {
		t.Fatal(err)
	}
	_, rc, err := consent.NewRecord(user).Apply(ch, set)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Reason != "asked support by phone" || rc.Surface != "support" || rc.Actor != consent.ActorAdmin {
		t.Errorf("receipt reason/surface/actor = %q/%q/%q, want %q/%q/%q", rc.Reason, rc.Surface, rc.Actor, "asked support by phone", "support", "admin")
	}
	if !strings.HasPrefix(rc.ID, "rcpt_") {
		t.Errorf("ID = %q, want prefix rcpt_", rc.ID)
	}
}

// Art. 42: no profile is built behind a "no": inferred tags are refused
// while personalization is off or the service is suspended, unless the
// settings allow it; a declaration by the user is still taken.
func TestInferenceRefusedWhileOff(t *testing.T) {
	set := testSettings()
	off, _ := replay(t, set, consent.SetPersonalization(user, false))
	infer := consent.InferTag(user, "interest:ski")
	infer.At = atApply
	if _, _, err := off.Apply(infer, set); !errors.Is(err, consent.ErrInferenceRefused) {
		t.Fatalf("inferring for an opted-out user: err = %v, want ErrInferenceRefused", err)
	}
	declare := consent.DeclareTag(user, "interest:ski")
	declare.At = atApply
	if _, rc, err := off.Apply(declare, set); err != nil || rc == nil {
		t.Fatalf("the user's own declaration while off: %v", err)
	}
	suspended := set.Clone()
	suspended.Suspended = true
	on := consent.NewRecord(user)
	if _, _, err := on.Apply(infer, &suspended); !errors.Is(err, consent.ErrInferenceRefused) {
		t.Fatalf("inferring while suspended: err = %v, want ErrInferenceRefused", err)
	}
	allowed := set.Clone()
	allowed.AllowInferenceWhileOff = true
	if _, rc, err := off.Apply(infer, &allowed); err != nil || rc == nil {
		t.Fatalf("inferring while off with AllowInferenceWhileOff: %v", err)
	}
	if _, rc, err := on.Apply(infer, set); err != nil || rc == nil {
		t.Fatalf("inferring for a user with personalization on: %v", err)
	}
}

// Art. 22(5): every "no" is recorded and restarts the re-ask cooldown,
// also a "no" to a consent never given and a repeated "no" after the
// cooldown ran out; a repeat within the cooldown is a retry and a no-op.
func TestDeclinesRestartTheCooldown(t *testing.T) {
	set := testSettings()
	cd := set.ReaskCooldown
	at := func(d time.Duration, ch consent.Change) consent.Change { ch.At = t0.Add(d); return ch }
	for _, c := range []struct {
		name string
		no   consent.Change
		kind consent.Kind
	}{
		{"personalization", consent.SetPersonalization(user, false), consent.KindPersonalization},
		{"channel", consent.RefuseChannel(user, "sms"), consent.ChannelKind("sms")},
		{"sensitive never given", consent.WithdrawSensitive(user, tags.Religion), consent.SensitiveKind(tags.Religion)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := consent.NewRecord(user)
			r1, rc, err := r.Apply(at(0, c.no), set)
			if err != nil || rc == nil {
				t.Fatalf("first no: receipt %v, err %v; want a receipt", rc, err)
			}
			if consent.ShouldAsk(r1.State, c.kind, set, t0.Add(time.Second)) {
				t.Fatal("ShouldAsk a second after the first no = true")
			}
			if _, rc, err := r1.Apply(at(time.Hour, c.no), set); err != nil || rc != nil {
				t.Fatalf("no again within the cooldown: receipt %v, err %v; want a no-op", rc, err)
			}
			if !consent.ShouldAsk(r1.State, c.kind, set, t0.Add(cd)) {
				t.Fatal("ShouldAsk after the cooldown = false")
			}
			r2, rc, err := r1.Apply(at(cd+time.Minute, c.no), set)
			if err != nil || rc == nil || rc.New != "declined" {
				t.Fatalf("no again after the cooldown: receipt %+v, err %v; want a receipt with New declined", rc, err)
			}
			if consent.ShouldAsk(r2.State, c.kind, set, t0.Add(cd+2*time.Minute)) {
				t.Fatal("ShouldAsk right after the repeated no = true: the cooldown did not restart")
			}
		})
	}
}

// A guardian's consent carries the guardian's reference into its receipt.
func TestGuardianReferenceInReceipt(t *testing.T) {
	set := testSettings()
	r, _ := replay(t, set, consent.SetMinor(user, true))
	ch := consent.GuardianConsent(user, "kyc-2025-0042")
	ch.At = atApply
	if err := ch.Validate(set); err != nil {
		t.Fatal(err)
	}
	_, rc, err := r.Apply(ch, set)
	if err != nil || rc == nil || rc.Ref != "kyc-2025-0042" {
		t.Fatalf("guardian consent: receipt %+v, err %v; want Ref kyc-2025-0042", rc, err)
	}
}

// TestApplyRestrict covers the Art. 23 restriction of processing: storage
// only until the user lifts it.
func TestApplyRestrict(t *testing.T) {
	base := []consent.Change{consent.DeclareTag(user, "interest:ski"), consent.RefuseChannel(user, "sms")}
	restricted := append(append([]consent.Change{}, base...), consent.Restrict(user))
	runApplyCases(t, []applyCase{
		{
			name:   "the user restricts",
			setup:  base,
			change: consent.Restrict(user),
			want:   receiptWant{old: "unrestricted", new: "restricted"},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if !after.State.Restricted || len(after.Tags.Entries) != 1 {
					t.Errorf("record %+v: want restricted with the tag kept (storage)", after)
				}
				d := consent.Evaluate(after.State, after.Tags, set)
				if d.Personalized || d.Reason != consent.ReasonRestricted || len(d.Tags) != 0 {
					t.Errorf("Evaluate = %+v, want not personalized, reason restricted, no tags", d)
				}
				for _, targeted := range []bool{false, true} {
					if ok, why := d.CanPush("push", targeted); ok || why != consent.ReasonRestricted {
						t.Errorf("CanPush(push, targeted=%t) = %t, %s; want refused, restricted", targeted, ok, why)
					}
				}
			},
		},
		{
			name:   "an admin may restrict on the user's behalf",
			setup:  base,
			change: consent.Restrict(user).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
			want:   receiptWant{old: "unrestricted", new: "restricted"},
		},
		{name: "restricting twice changes nothing", setup: restricted, change: consent.Restrict(user), noop: true},
		{
			name:      "inference is refused while restricted",
			setup:     restricted,
			change:    consent.InferTag(user, "interest:golf"),
			wantErr:   consent.ErrInferenceRefused,
			wantField: "tag",
		},
		{
			name:   "the user lifts it",
			setup:  restricted,
			change: consent.Unrestrict(user),
			want:   receiptWant{old: "restricted", new: "unrestricted"},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				d := consent.Evaluate(after.State, after.Tags, set)
				if !d.Personalized || len(d.Tags) != 1 {
					t.Errorf("Evaluate after lifting = %+v, want personalized with the kept tag", d)
				}
			},
		},
	})
	// Only the user (or guardian) lifts it: Validate refuses anyone else.
	for _, a := range []consent.Actor{consent.ActorAdmin, consent.ActorSystem} {
		ch := consent.Unrestrict(user).By(a, consent.SurfaceAPI)
		if err := ch.Validate(testSettings()); !errors.Is(err, consent.ErrForbidden) {
			t.Errorf("Validate(%s lifts a restriction) = %v, want ErrForbidden", a, err)
		}
	}
}

// TestApplyCorrect covers the Art. 23 correction: one change replaces a tag.
func TestApplyCorrect(t *testing.T) {
	base := []consent.Change{consent.InferTag(user, "region:sh")}
	runApplyCases(t, []applyCase{
		{
			name:   "the user corrects an inferred tag",
			setup:  base,
			change: consent.CorrectTag(user, "region:sh", "region:bj"),
			want:   receiptWant{subject: "region:sh", old: "inferred", new: "corrected to region:bj (declared)", purpose: "personalization", policyVersion: 1},
			check: func(t *testing.T, after consent.Record, set *consent.Settings) {
				if got := tagsOf(after.Tags); !reflect.DeepEqual(got, tagSlice("region:bj")) {
					t.Errorf("tags = %v, want [region:bj]", got)
				}
				if e, _ := after.Tags.Has("region:bj"); e.Source != tags.Declared {
					t.Errorf("source of the correction = %s, want declared", e.Source)
				}
				if got := suppressedOf(after.Tags); !reflect.DeepEqual(got, tagSlice("region:sh")) {
					t.Errorf("suppressed = %v, want the wrong tag [region:sh]", got)
				}
			},
		},
		{
			name:      "correcting a tag the user does not have",
			setup:     base,
			change:    consent.CorrectTag(user, "region:gz", "region:bj"),
			wantErr:   consent.ErrInvalidChange,
			wantField: "tag",
		},
		{
			name:      "a sensitive replacement needs its consent",
			setup:     base,
			change:    consent.CorrectTag(user, "region:sh", "religion:buddhism"),
			wantErr:   consent.ErrConsentRequired,
			wantField: "replacement",
		},
	})
	for name, ch := range map[string]consent.Change{
		"same tag":             consent.CorrectTag(user, "region:sh", "region:sh"),
		"bad replacement":      consent.CorrectTag(user, "region:sh", "Region SH"),
		"no replacement":       consent.CorrectTag(user, "region:sh", ""),
		"pipeline corrects":    consent.CorrectTag(user, "region:sh", "region:bj").By(consent.ActorSystem, consent.SurfacePipeline),
		"replacement on erase": {UserID: user, Op: consent.OpErase, Replacement: "region:bj", Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings},
	} {
		if err := ch.Validate(testSettings()); err == nil {
			t.Errorf("Validate(%s) = nil, want an error", name)
		}
	}
}
