package consent_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

func TestConstructors(t *testing.T) {
	cases := []struct {
		name string
		got  consent.Change
		want consent.Change
	}{
		{"SetPersonalization on", consent.SetPersonalization("u", true),
			consent.Change{UserID: "u", Op: consent.OpSetPersonalization, Value: true, Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
		{"SetPersonalization off", consent.SetPersonalization("u", false),
			consent.Change{UserID: "u", Op: consent.OpSetPersonalization, Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
		{"RefuseChannel", consent.RefuseChannel("u", "sms"),
			consent.Change{UserID: "u", Op: consent.OpSetChannel, Channel: "sms", Value: true, Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
		{"AllowChannel", consent.AllowChannel("u", "sms"),
			consent.Change{UserID: "u", Op: consent.OpSetChannel, Channel: "sms", Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
		{"GrantSensitive", consent.GrantSensitive("u", tags.Religion, "personalization"),
			consent.Change{UserID: "u", Op: consent.OpSetSensitive, Category: tags.Religion, Purpose: "personalization", Value: true, Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
		{"WithdrawSensitive", consent.WithdrawSensitive("u", tags.Religion),
			consent.Change{UserID: "u", Op: consent.OpSetSensitive, Category: tags.Religion, Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
		{"SetMinor", consent.SetMinor("u", true),
			consent.Change{UserID: "u", Op: consent.OpSetMinor, Value: true, Actor: consent.ActorSystem, Surface: consent.SurfaceAPI}},
		{"SetGuardian", consent.SetGuardian("u", true),
			consent.Change{UserID: "u", Op: consent.OpSetGuardian, Value: true, Actor: consent.ActorGuardian, Surface: consent.SurfaceAppSettings}},
		{"DeclareTag", consent.DeclareTag("u", "a:b"),
			consent.Change{UserID: "u", Op: consent.OpDeclareTag, Tag: "a:b", Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
		{"InferTag", consent.InferTag("u", "a:b"),
			consent.Change{UserID: "u", Op: consent.OpInferTag, Tag: "a:b", Actor: consent.ActorSystem, Surface: consent.SurfacePipeline}},
		{"DeleteTag", consent.DeleteTag("u", "a:b"),
			consent.Change{UserID: "u", Op: consent.OpDeleteTag, Tag: "a:b", Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
		{"Erase", consent.Erase("u"),
			consent.Change{UserID: "u", Op: consent.OpErase, Actor: consent.ActorUser, Surface: consent.SurfaceAppSettings}},
	}
	set := testSettings()
	for _, c := range cases {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
		}
		if err := c.got.Validate(set); err != nil {
			t.Errorf("%s does not validate: %v", c.name, err)
		}
	}
}

func TestByAndBecauseCopy(t *testing.T) {
	orig := consent.RefuseChannel("u", "sms")
	by := orig.By(consent.ActorAdmin, consent.SurfaceAdminConsole)
	because := by.Because("complaint #12")
	if orig.Actor != consent.ActorUser || orig.Surface != consent.SurfaceAppSettings || orig.Reason != "" {
		t.Errorf("By/Because modified the original: %+v", orig)
	}
	if by.Actor != consent.ActorAdmin || by.Surface != consent.SurfaceAdminConsole || by.Reason != "" {
		t.Errorf("By = %+v, want actor admin, surface admin_console, no reason", by)
	}
	if because.Reason != "complaint #12" || because.Actor != consent.ActorAdmin {
		t.Errorf("Because = %+v, want reason set and actor kept", because)
	}
}

func TestOps(t *testing.T) {
	want := []consent.Op{"set_personalization", "set_channel", "set_sensitive", "set_minor", "set_guardian", "declare_tag", "infer_tag", "delete_tag", "restrict", "correct_tag", "erase"}
	if got := consent.Ops(); !reflect.DeepEqual(got, want) {
		t.Errorf("Ops() = %v, want %v", got, want)
	}
}

func TestActorValid(t *testing.T) {
	for a, want := range map[consent.Actor]bool{
		"user": true, "guardian": true, "admin": true, "system": true,
		"": false, "User": false, "root": false, "pipeline": false,
	} {
		if got := a.Valid(); got != want {
			t.Errorf("Actor(%q).Valid() = %t, want %t", a, got, want)
		}
	}
}

func TestFieldError(t *testing.T) {
	err := error(&consent.FieldError{Field: "channel", Detail: "\"fax\" is not one of [sms]", Err: consent.ErrUnknownChannel})
	if want := `consent: unknown channel: channel: "fax" is not one of [sms]`; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, consent.ErrUnknownChannel) || errors.Is(err, consent.ErrInvalidChannel) {
		t.Errorf("errors.Is does not see exactly the wrapped sentinel")
	}
}

func TestValidate(t *testing.T) {
	set := testSettings()
	admin := func(c consent.Change) consent.Change { return c.By(consent.ActorAdmin, consent.SurfaceAdminConsole) }
	system := func(c consent.Change) consent.Change { return c.By(consent.ActorSystem, consent.SurfacePipeline) }
	guardian := func(c consent.Change) consent.Change { return c.By(consent.ActorGuardian, consent.SurfaceAppSettings) }
	with := func(c consent.Change, f func(*consent.Change)) consent.Change { f(&c); return c }
	cases := []struct {
		name    string
		change  consent.Change
		wantErr error // nil: valid
		field   string
	}{
		// User IDs.
		{"empty user ID", consent.Erase(""), consent.ErrInvalidUserID, "user_id"},
		{"user ID too long", consent.Erase(strings.Repeat("u", consent.MaxUserIDLen+1)), consent.ErrInvalidUserID, "user_id"},
		{"user ID of max length", consent.Erase(strings.Repeat("u", consent.MaxUserIDLen)), nil, ""},
		{"user ID with space", consent.Erase("a b"), consent.ErrInvalidUserID, "user_id"},
		{"user ID with brace", consent.Erase("{17}"), consent.ErrInvalidUserID, "user_id"},
		{"user ID with punctuation", consent.Erase("Alice_1-2.3@x+y=z"), nil, ""},
		// Actor, surface, reason.
		{"empty actor", with(consent.Erase("u"), func(c *consent.Change) { c.Actor = "" }), consent.ErrInvalidChange, "actor"},
		{"unknown actor", with(consent.Erase("u"), func(c *consent.Change) { c.Actor = "robot" }), consent.ErrInvalidChange, "actor"},
		{"empty surface", with(consent.Erase("u"), func(c *consent.Change) { c.Surface = "" }), consent.ErrInvalidChange, "surface"},
		{"surface with uppercase", with(consent.Erase("u"), func(c *consent.Change) { c.Surface = "Web" }), consent.ErrInvalidChange, "surface"},
		{"surface with dash", with(consent.Erase("u"), func(c *consent.Change) { c.Surface = "mini-program" }), consent.ErrInvalidChange, "surface"},
		{"surface too long", with(consent.Erase("u"), func(c *consent.Change) { c.Surface = consent.Surface(strings.Repeat("s", consent.MaxChannelLen+1)) }), consent.ErrInvalidChange, "surface"},
		{"custom surface", with(consent.Erase("u"), func(c *consent.Change) { c.Surface = "mini_program2" }), nil, ""},
		{"reason of max length", consent.Erase("u").Because(strings.Repeat("r", consent.MaxReasonLen)), nil, ""},
		{"reason too long", consent.Erase("u").Because(strings.Repeat("r", consent.MaxReasonLen+1)), consent.ErrInvalidChange, "reason"},
		// Time.
		{"zero time", consent.Erase("u"), nil, ""},
		{"time in year 9999", with(consent.Erase("u"), func(c *consent.Change) { c.At = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) }), nil, ""},
		{"time in year 10000", with(consent.Erase("u"), func(c *consent.Change) { c.At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), consent.ErrInvalidChange, "at"},
		{"time whose UTC is year 10000", with(consent.Erase("u"), func(c *consent.Change) {
			c.At = time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600))
		}), consent.ErrInvalidChange, "at"},
		{"time before year 0", with(consent.Erase("u"), func(c *consent.Change) { c.At = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }), consent.ErrInvalidChange, "at"},
		// Operations.
		{"empty op", consent.Change{UserID: "u", Actor: consent.ActorUser, Surface: consent.SurfaceWeb}, consent.ErrInvalidChange, "op"},
		{"unknown op", consent.Change{UserID: "u", Op: "set_everything", Actor: consent.ActorUser, Surface: consent.SurfaceWeb}, consent.ErrInvalidChange, "op"},
		// Guardian.
		{"guardian grants", consent.SetGuardian("u", true), nil, ""},
		{"user cannot give guardian consent", consent.SetGuardian("u", true).By(consent.ActorUser, consent.SurfaceWeb), consent.ErrForbidden, "actor"},
		{"admin cannot give guardian consent", admin(consent.SetGuardian("u", true)), consent.ErrForbidden, "actor"},
		{"admin may withdraw guardian consent", admin(consent.SetGuardian("u", false)), nil, ""},
		// Channels.
		{"refuse known channel", consent.RefuseChannel("u", "in_app"), nil, ""},
		{"refuse unknown channel", consent.RefuseChannel("u", "fax"), consent.ErrUnknownChannel, "channel"},
		{"allow unknown channel", consent.AllowChannel("u", "wechat"), consent.ErrUnknownChannel, "channel"},
		{"empty channel", consent.RefuseChannel("u", ""), consent.ErrInvalidChannel, "channel"},
		{"channel with uppercase", consent.RefuseChannel("u", "SMS"), consent.ErrInvalidChannel, "channel"},
		{"channel too long", consent.RefuseChannel("u", strings.Repeat("c", consent.MaxChannelLen+1)), consent.ErrInvalidChannel, "channel"},
		{"channel on another op", with(consent.Erase("u"), func(c *consent.Change) { c.Channel = "sms" }), consent.ErrInvalidChange, "channel"},
		// Sensitive consent.
		{"grant sensitive", consent.GrantSensitive("u", tags.Whereabouts, "personalization"), nil, ""},
		{"grant unknown category", consent.GrantSensitive("u", "health", "personalization"), tags.ErrInvalidCategory, "category"},
		{"withdraw empty category", consent.WithdrawSensitive("u", ""), tags.ErrInvalidCategory, "category"},
		{"grant without purpose", consent.GrantSensitive("u", tags.Religion, ""), consent.ErrInvalidChange, "purpose"},
		{"grant with bad purpose", consent.GrantSensitive("u", tags.Religion, "Ads!"), consent.ErrInvalidChange, "purpose"},
		{"grant with purpose too long", consent.GrantSensitive("u", tags.Religion, strings.Repeat("p", consent.MaxPurposeLen+1)), consent.ErrInvalidChange, "purpose"},
		{"grant with purpose of max length", consent.GrantSensitive("u", tags.Religion, strings.Repeat("p", consent.MaxPurposeLen)), nil, ""},
		{"withdraw with purpose", with(consent.WithdrawSensitive("u", tags.Religion), func(c *consent.Change) { c.Purpose = "ads" }), consent.ErrInvalidChange, "purpose"},
		{"category on another op", with(consent.SetPersonalization("u", false), func(c *consent.Change) { c.Category = tags.Religion }), consent.ErrInvalidChange, "category"},
		{"purpose on another op", with(consent.RefuseChannel("u", "sms"), func(c *consent.Change) { c.Purpose = "push" }), consent.ErrInvalidChange, "purpose"},
		{"admin cannot grant sensitive", admin(consent.GrantSensitive("u", tags.Religion, "ads")), consent.ErrForbidden, "actor"},
		{"system cannot grant sensitive", system(consent.GrantSensitive("u", tags.Religion, "ads")), consent.ErrForbidden, "actor"},
		{"guardian may grant sensitive", guardian(consent.GrantSensitive("u", tags.Religion, "ads")), nil, ""},
		{"grant for a purpose without a policy version", consent.GrantSensitive("u", tags.Religion, "lottery"), consent.ErrInvalidChange, "purpose"},
		{"admin may withdraw sensitive", admin(consent.WithdrawSensitive("u", tags.Religion)), nil, ""},
		// Tags.
		{"declare", consent.DeclareTag("u", "interest:ski"), nil, ""},
		{"declare by guardian", guardian(consent.DeclareTag("u", "interest:ski")), nil, ""},
		{"declare invalid tag", consent.DeclareTag("u", "Interest:Ski"), tags.ErrInvalidTag, "tag"},
		{"infer empty tag", consent.InferTag("u", ""), tags.ErrInvalidTag, "tag"},
		{"delete invalid tag", consent.DeleteTag("u", "nocolon"), tags.ErrInvalidTag, "tag"},
		{"declare by admin", admin(consent.DeclareTag("u", "interest:ski")), consent.ErrForbidden, "actor"},
		{"declare by system", system(consent.DeclareTag("u", "interest:ski")), consent.ErrForbidden, "actor"},
		{"infer by admin", admin(consent.InferTag("u", "interest:ski")), nil, ""},
		{"infer by user", consent.InferTag("u", "interest:ski").By(consent.ActorUser, consent.SurfaceWeb), consent.ErrForbidden, "actor"},
		{"infer by guardian", guardian(consent.InferTag("u", "interest:ski")), consent.ErrForbidden, "actor"},
		{"declare prohibited", consent.DeclareTag("u", "ethnic:x"), tags.ErrProhibited, "tag"},
		{"infer prohibited", consent.InferTag("u", "ethnic:x"), tags.ErrProhibited, "tag"},
		{"delete prohibited", consent.DeleteTag("u", "ethnic:x"), nil, ""},
		{"delete by system", system(consent.DeleteTag("u", "interest:ski")), nil, ""},
		{"tag on another op", with(consent.Erase("u"), func(c *consent.Change) { c.Tag = "a:b" }), consent.ErrInvalidChange, "tag"},
		{"channel on a tag op", with(consent.DeclareTag("u", "a:b"), func(c *consent.Change) { c.Channel = "sms" }), consent.ErrInvalidChange, "channel"},
		// Widening is the user's (or guardian's) choice; narrowing is anyone's.
		{"admin turns personalization on", admin(consent.SetPersonalization("u", true)), consent.ErrForbidden, "actor"},
		{"system turns personalization on", system(consent.SetPersonalization("u", true)), consent.ErrForbidden, "actor"},
		{"guardian turns personalization on", guardian(consent.SetPersonalization("u", true)), nil, ""},
		{"admin turns personalization off", admin(consent.SetPersonalization("u", false)), nil, ""},
		{"admin allows a channel", admin(consent.AllowChannel("u", "sms")), consent.ErrForbidden, "actor"},
		{"system allows a channel", system(consent.AllowChannel("u", "sms")), consent.ErrForbidden, "actor"},
		{"admin refuses a channel", admin(consent.RefuseChannel("u", "sms")), nil, ""},
		{"system marks minor", consent.SetMinor("u", true), nil, ""},
		{"system marks adult", consent.SetMinor("u", false), consent.ErrForbidden, "actor"},
		{"admin marks adult", admin(consent.SetMinor("u", false)), consent.ErrForbidden, "actor"},
		{"guardian marks adult", consent.SetMinor("u", false).By(consent.ActorGuardian, consent.SurfaceAppSettings), nil, ""},
		{"admin marks a minor", admin(consent.SetMinor("u", true)), nil, ""},
		{"a guardian reference", consent.GuardianConsent("u", "kyc-123"), nil, ""},
		{"a bad reference", consent.GuardianConsent("u", "name with spaces"), consent.ErrInvalidChange, "ref"},
		{"admin erases", admin(consent.Erase("u")), nil, ""},
		{"system erases", system(consent.Erase("u")), nil, ""},
		// Order: the user ID is checked before anything else.
		{"bad user ID and bad op", consent.Change{UserID: "", Op: "x", Actor: "y"}, consent.ErrInvalidUserID, "user_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := c.change
			before := ch
			err := ch.Validate(set)
			if !reflect.DeepEqual(ch, before) {
				t.Errorf("Validate modified the change: %+v, want %+v", ch, before)
			}
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

// TestValidateEveryOpHasAValidChange makes sure the Validate table above
// keeps pace with Ops().
func TestValidateEveryOpHasAValidChange(t *testing.T) {
	set := testSettings()
	valid := map[consent.Op]consent.Change{
		consent.OpSetPersonalization: consent.SetPersonalization("u", false),
		consent.OpSetChannel:         consent.RefuseChannel("u", "push"),
		consent.OpSetSensitive:       consent.GrantSensitive("u", tags.Biometrics, "personalization"),
		consent.OpSetMinor:           consent.SetMinor("u", true),
		consent.OpSetGuardian:        consent.SetGuardian("u", true),
		consent.OpDeclareTag:         consent.DeclareTag("u", "a:b"),
		consent.OpInferTag:           consent.InferTag("u", "a:b"),
		consent.OpDeleteTag:          consent.DeleteTag("u", "a:b"),
		consent.OpRestrict:           consent.Restrict("u"),
		consent.OpCorrectTag:         consent.CorrectTag("u", "a:b", "a:c"),
		consent.OpErase:              consent.Erase("u"),
	}
	for _, op := range consent.Ops() {
		ch, ok := valid[op]
		if !ok {
			t.Errorf("no valid change for op %q: add it to this test and TestValidate", op)
			continue
		}
		if err := ch.Validate(set); err != nil {
			t.Errorf("%s: Validate() = %v, want nil", op, err)
		}
	}
}

func TestValidUserID(t *testing.T) {
	cases := []struct {
		id string
		ok bool
	}{
		{"u", true},
		{"1", true},
		{"Alice.Smith+tag@example.com", true},
		{"abc_DEF-123=", true},
		{strings.Repeat("x", consent.MaxUserIDLen), true},
		{strings.Repeat("x", consent.MaxUserIDLen+1), false},
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"a:b", false},
		{"{17}", false},
		{"a/b", false},
		{"a*", false},
		{"用户", false},
		{"a\x00", false},
		{"a\n", false},
		{".", false},
		{"..", false},
		{"...", true},
		{".a", true},
	}
	for _, c := range cases {
		err := consent.ValidUserID(c.id)
		if c.ok {
			if err != nil {
				t.Errorf("ValidUserID(%q) = %v, want nil", c.id, err)
			}
			continue
		}
		wantFieldErr(t, err, consent.ErrInvalidUserID, "user_id")
	}
}

func TestValidChannelName(t *testing.T) {
	cases := []struct {
		ch string
		ok bool
	}{
		{"push", true},
		{"in_app", true},
		{"a", true},
		{"sms2", true},
		{"a" + strings.Repeat("b", consent.MaxChannelLen-1), true},
		{"a" + strings.Repeat("b", consent.MaxChannelLen), false},
		{"", false},
		{"Push", false},
		{"2sms", false},
		{"_x", false},
		{"in-app", false},
		{"in app", false},
	}
	for _, c := range cases {
		err := consent.ValidChannelName(c.ch)
		if c.ok {
			if err != nil {
				t.Errorf("ValidChannelName(%q) = %v, want nil", c.ch, err)
			}
			continue
		}
		wantFieldErr(t, err, consent.ErrInvalidChannel, "channel")
	}
	// A long bad name is clipped in the message.
	err := consent.ValidChannelName(strings.Repeat("Z", 1000))
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("error for a 1000-byte channel name = %q, want a clipped message", err)
	}
}

// TestWrappedErrorMessages checks that errors carried over from package tags
// name the sentinel once and keep the offending value.
func TestWrappedErrorMessages(t *testing.T) {
	set := testSettings()
	bad := consent.DeclareTag("u", "Bad Tag")
	if err, want := bad.Validate(set), `tags: invalid tag: tag: "Bad Tag": want namespace:value`; err == nil || err.Error() != want {
		t.Errorf("Validate error = %v, want %q", err, want)
	}

	s := consent.DefaultSettings()
	s.Taxonomy["Bad"] = tags.Namespace{}
	if err, want := s.Validate(), `consent: invalid settings: taxonomy: namespace "Bad": namespace must start with a lowercase letter`; err == nil || err.Error() != want {
		t.Errorf("Settings.Validate error = %v, want %q", err, want)
	}

	r, _ := replay(t, set, consent.DeleteTag(user, "interest:ski"))
	ch := consent.InferTag(user, "interest:ski")
	ch.At = atApply
	_, _, err := r.Apply(ch, set)
	if want := "tags: tag was deleted by the user and is suppressed: tag: interest:ski"; err == nil || err.Error() != want {
		t.Errorf("Apply error = %v, want %q", err, want)
	}
}
