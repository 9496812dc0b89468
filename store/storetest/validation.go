package storetest

import (
	"strings"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

func testNoOps(t *testing.T, newStore newStoreFunc) {
	const a = consent.ActorAdmin
	const sa = consent.SurfaceAdminConsole
	cases := []struct {
		name string
		ch   consent.Change
	}{
		{"personalization on for a never-seen user", consent.SetPersonalization(nobody, true)},
		{"allow a channel for a never-seen user", consent.AllowChannel(nobody, "sms")},
		{"set adult for a never-seen user", consent.SetMinor(nobody, false).By(consent.ActorUser, consent.SurfaceAppSettings)},
		{"personalization already off", consent.SetPersonalization(alice, false)},
		{"refuse an already refused channel", consent.RefuseChannel(alice, "sms")},
		{"admin refuses an already refused channel", consent.RefuseChannel(alice, "sms").By(a, sa)},
		{"allow a never refused channel", consent.AllowChannel(alice, "push")},
		{"grant the same sensitive consent again", consent.GrantSensitive(alice, tags.Religion, consent.PurposePersonalization)},

		{"declare a declared tag", consent.DeclareTag(alice, tagSki)},
		{"infer an inferred tag", consent.InferTag(alice, tagChess)},
		{"infer a declared tag", consent.InferTag(alice, tagSki)},
		{"delete a deleted tag", consent.DeleteTag(alice, tagGolf)},
		{"delete a tag suppressed before it existed", consent.DeleteTag(alice, tagTennis)},
		{"set adult on an adult", consent.SetMinor(alice, false).By(consent.ActorUser, consent.SurfaceAppSettings)},
		{"withdraw guardian consent never given", consent.SetGuardian(alice, false)},
		{"set minor on a minor", consent.SetMinor(minnie, true)},
		{"guardian consents again", consent.SetGuardian(gus, true)},
		{"erase an erased user", consent.Erase(erin)},
	}
	for _, c := range cases {
		parallel(t, c.name, newStore, func(t *testing.T, s store.Store) {
			seed(t, s)
			before := takeSnapshot(t, s, seededUsers...)
			a := mustApply(t, s, c.ch)
			if a.Receipt != nil {
				t.Errorf("Applied.Receipt = %s, want nil for a no-op", show(a.Receipt))
			}
			if !a.Pos.IsZero() {
				t.Errorf("Applied.Pos = %q, want zero for a no-op", a.Pos)
			}
			if want := store.ShardOf(c.ch.UserID, s.Shards()); a.Shard != want {
				t.Errorf("Applied.Shard = %d, want ShardOf = %d", a.Shard, want)
			}
			checkEqual(t, "Applied.Record of a no-op", a.Record, before.Users[c.ch.UserID].Record)
			checkUnchanged(t, before, takeSnapshot(t, s, seededUsers...))
		})
	}
}

func testValidation(t *testing.T, newStore newStoreFunc) {
	const (
		user  = consent.ActorUser
		admin = consent.ActorAdmin
		sys   = consent.ActorSystem
		sApp  = consent.SurfaceAppSettings
		sAdm  = consent.SurfaceAdminConsole
		sPipe = consent.SurfacePipeline
	)
	politics := tags.Tag("politics:left")
	withTag := consent.SetPersonalization(alice, false)
	withTag.Tag = tagSki
	cases := []struct {
		name string
		ch   consent.Change
		want error
	}{
		{"empty user ID", consent.SetPersonalization("", false), consent.ErrInvalidUserID},
		{"user ID too long", consent.SetPersonalization(strings.Repeat("u", consent.MaxUserIDLen+1), false), consent.ErrInvalidUserID},
		{"user ID with a space", consent.SetPersonalization("bad user", false), consent.ErrInvalidUserID},
		{"user ID with a hash tag", consent.SetPersonalization("user{1}", false), consent.ErrInvalidUserID},
		{"user ID with a newline", consent.SetPersonalization("user\n1", false), consent.ErrInvalidUserID},
		{"user ID not ASCII", consent.DeclareTag("用户", tagSki), consent.ErrInvalidUserID},
		{"tag without colon", consent.DeclareTag(alice, "interestski"), tags.ErrInvalidTag},
		{"tag in upper case", consent.DeclareTag(alice, "Interest:Ski"), tags.ErrInvalidTag},
		{"tag with empty value", consent.InferTag(alice, "interest:"), tags.ErrInvalidTag},
		{"tag value too long", consent.DeclareTag(alice, tags.Tag("interest:"+strings.Repeat("x", tags.MaxValueLen+1))), tags.ErrInvalidTag},
		{"delete an invalid tag", consent.DeleteTag(alice, "bad tag"), tags.ErrInvalidTag},
		{"unknown channel", consent.RefuseChannel(alice, "carrier_pigeon"), consent.ErrUnknownChannel},
		{"channel name in upper case", consent.RefuseChannel(alice, "SMS"), consent.ErrInvalidChannel},
		{"empty channel name", consent.AllowChannel(alice, ""), consent.ErrInvalidChannel},
		{"unknown op", consent.Change{UserID: alice, Op: "explode", Actor: user, Surface: sApp}, consent.ErrInvalidChange},
		{"empty op", consent.Change{UserID: alice, Actor: user, Surface: sApp}, consent.ErrInvalidChange},
		{"unknown actor", consent.SetPersonalization(alice, true).By("robot", sApp), consent.ErrInvalidChange},
		{"invalid surface", consent.SetPersonalization(alice, true).By(user, "App Settings"), consent.ErrInvalidChange},
		{"reason too long", consent.SetPersonalization(alice, true).Because(strings.Repeat("r", consent.MaxReasonLen+1)), consent.ErrInvalidChange},
		{"superfluous field", withTag, consent.ErrInvalidChange},
		{"invalid sensitive category", consent.GrantSensitive(alice, "astrology", consent.PurposePersonalization), tags.ErrInvalidCategory},
		{"invalid purpose", consent.GrantSensitive(alice, tags.Biometrics, "Bad Purpose"), consent.ErrInvalidChange},
		{"admin grants sensitive consent", consent.GrantSensitive(alice, tags.Biometrics, consent.PurposePersonalization).By(admin, sAdm), consent.ErrForbidden},
		{"admin turns personalization on", consent.SetPersonalization(alice, true).By(admin, sAdm), consent.ErrForbidden},
		{"admin allows a refused channel", consent.AllowChannel(alice, "sms").By(admin, sAdm), consent.ErrForbidden},
		{"system declares a tag", consent.DeclareTag(alice, "interest:judo").By(sys, sPipe), consent.ErrForbidden},
		{"user infers a tag", consent.InferTag(alice, "interest:judo").By(user, sApp), consent.ErrForbidden},
		{"user gives guardian consent", consent.SetGuardian(minnie, true).By(user, sApp), consent.ErrForbidden},
		{"admin grants for a never-seen user", consent.GrantSensitive(nobody, tags.Religion, consent.PurposePersonalization).By(admin, sAdm), consent.ErrForbidden},
		{"infer a deleted tag", consent.InferTag(alice, tagGolf), tags.ErrSuppressed},
		{"admin infers a deleted tag", consent.InferTag(alice, tagGolf).By(admin, sAdm), tags.ErrSuppressed},
		{"infer a tag deleted before it existed", consent.InferTag(alice, tagTennis), tags.ErrSuppressed},
		{"sensitive tag without consent", consent.DeclareTag(alice, "medical_health:diabetes"), consent.ErrConsentRequired},
		{"inferred sensitive tag without consent", consent.InferTag(alice, "whereabouts:home"), consent.ErrConsentRequired},
		{"sensitive tag for a never-seen user", consent.DeclareTag(nobody, "religion:zen"), consent.ErrConsentRequired},
		{"minor without guardian declares a tag", consent.DeclareTag(minnie, "interest:lego"), consent.ErrConsentRequired},
		{"minor without guardian gets an inferred tag", consent.InferTag(minnie, "interest:lego"), consent.ErrConsentRequired},
		{"minor grants sensitive consent", consent.GrantSensitive(gus, tags.Religion, consent.PurposePersonalization), consent.ErrConsentRequired},
		{"declare in a prohibited namespace", consent.DeclareTag(alice, politics), tags.ErrProhibited},
		{"infer in a prohibited namespace", consent.InferTag(alice, politics), tags.ErrProhibited},
		{"system infers for an erased user", consent.InferTag(erin, "interest:judo"), consent.ErrForbidden},
	}
	for _, c := range cases {
		parallel(t, c.name, newStore, func(t *testing.T, s store.Store) {
			mustUpdateSettings(t, s, func(set *consent.Settings) {
				set.Taxonomy["politics"] = tags.Namespace{Category: "opinions", Prohibited: true}
			})
			seed(t, s)
			users := seededUsers
			if consent.ValidUserID(c.ch.UserID) == nil {
				users = append(users[:len(users):len(users)], c.ch.UserID)
			}
			before := takeSnapshot(t, s, users...)
			a, err := s.Apply(t.Context(), c.ch)
			checkFieldErr(t, "Apply("+describe(c.ch)+")", err, c.want)
			if a.Receipt != nil {
				t.Errorf("Applied.Receipt = %s with an error, want nil", show(a.Receipt))
			}
			checkUnchanged(t, before, takeSnapshot(t, s, users...))
		})
	}
}
