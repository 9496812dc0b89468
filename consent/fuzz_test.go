package consent_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// userIDRE is an independent statement of the user ID syntax.
var userIDRE = regexp.MustCompile(`^[A-Za-z0-9_.@+=\-]{1,128}$`)

func FuzzValidUserID(f *testing.F) {
	for _, s := range []string{
		"u1", "", ".", "..", "...", "a b", "Alice.Smith+tag@example.com", "{17}", "用户", "a\x00", "=", "-", "a:b",
		strings.Repeat("x", consent.MaxUserIDLen), strings.Repeat("x", consent.MaxUserIDLen+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := consent.ValidUserID(id)
		if want := userIDRE.MatchString(id) && id != "." && id != ".."; want != (err == nil) {
			t.Fatalf("ValidUserID(%q) = %v, but the syntax says valid=%t", id, err, want)
		}
		if err == nil {
			return
		}
		var fe *consent.FieldError
		if !errors.As(err, &fe) || fe.Field != "user_id" || !errors.Is(err, consent.ErrInvalidUserID) {
			t.Fatalf("ValidUserID(%q) error = %#v, want a *FieldError on user_id wrapping ErrInvalidUserID", id, err)
		}
	})
}

// knownSentinels are the errors Validate and Apply may wrap.
var knownSentinels = []error{
	consent.ErrInvalidUserID, consent.ErrInvalidChannel, consent.ErrUnknownChannel, consent.ErrInvalidChange,
	consent.ErrConsentRequired, consent.ErrForbidden, tags.ErrInvalidTag, tags.ErrInvalidCategory,
	tags.ErrSuppressed, tags.ErrProhibited,
}

func checkTypedError(t *testing.T, what string, err error) {
	t.Helper()
	var fe *consent.FieldError
	if !errors.As(err, &fe) || fe.Field == "" {
		t.Fatalf("%s error = %v (%T), want a *FieldError naming a field", what, err, err)
	}
	for _, s := range knownSentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("%s error = %v wraps no known sentinel", what, err)
}

// fuzzRecord returns a record of id with some history, so fuzzed changes
// meet grants, tags and suppressions.
func fuzzRecord(t *testing.T, id string, set *consent.Settings) consent.Record {
	t.Helper()
	r := consent.NewRecord(id)
	for i, ch := range []consent.Change{
		consent.GrantSensitive(id, tags.Religion, "personalization"),
		consent.DeclareTag(id, "religion:buddhism"),
		consent.InferTag(id, "interest:ski"),
		consent.DeleteTag(id, "interest:golf"),
		consent.RefuseChannel(id, "sms"),
		consent.SetMinor(id, true),
		consent.SetGuardian(id, true),
	} {
		ch.At = t0.Add(time.Duration(i) * time.Minute)
		next, _, err := r.Apply(ch, set)
		if err != nil {
			t.Fatalf("fuzz setup %s: %v", ch.Op, err)
		}
		r = next
	}
	return r
}

func FuzzChangeValidate(f *testing.F) {
	seeds := []consent.Change{
		consent.SetPersonalization("u1", false),
		consent.SetPersonalization("u1", true).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
		consent.RefuseChannel("u1", "sms"),
		consent.AllowChannel("u1", "fax"),
		consent.GrantSensitive("u1", tags.MedicalHealth, "personalization"),
		consent.WithdrawSensitive("u1", tags.Religion),
		consent.SetMinor("u1", false),
		consent.SetGuardian("u1", true),
		consent.DeclareTag("u1", "medical_health:diabetes"),
		consent.InferTag("u1", "interest:golf"),
		consent.DeleteTag("u1", "religion:buddhism"),
		consent.Erase("u1").By(consent.ActorSystem, consent.SurfacePipeline),
		consent.DeclareTag("u1", "ethnic:x"),
	}
	for _, s := range seeds {
		s.At = t0.Add(48 * time.Hour)
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"user_id":""}`,
		`{"user_id":"u1","op":"erase","actor":"user","surface":"web","tag":"a:b"}`,
		`{"user_id":"u1","op":"set_personalization","actor":"user","surface":"web","at":"9999-12-31T23:59:59-23:59"}`,
		`{"user_id":"u1","op":"set_sensitive","value":true,"category":"religion","purpose":"ads","actor":"guardian","surface":"web"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ch consent.Change
		if err := json.Unmarshal(data, &ch); err != nil {
			return
		}
		set := testSettings()
		err := ch.Validate(set)
		if err != nil {
			checkTypedError(t, "Validate", err)
			return
		}
		if err := consent.ValidUserID(ch.UserID); err != nil {
			t.Fatalf("Validate accepted a change with user ID %q: %v", ch.UserID, err)
		}
		if !ch.Actor.Valid() {
			t.Fatalf("Validate accepted actor %q", ch.Actor)
		}
		known := false
		for _, op := range consent.Ops() {
			known = known || op == ch.Op
		}
		if !known {
			t.Fatalf("Validate accepted op %q", ch.Op)
		}
		// A valid change applies without panicking to a new and to a
		// populated record, and a second application changes nothing.
		for _, r := range []consent.Record{consent.NewRecord(ch.UserID), fuzzRecord(t, ch.UserID, set)} {
			next, rc, err := r.Apply(ch, set)
			if err != nil {
				checkTypedError(t, "Apply", err)
				if rc != nil {
					t.Fatalf("Apply returned a receipt with error %v", err)
				}
				continue
			}
			if rc == nil {
				if next.Version != r.Version || next.LastHash != r.LastHash {
					t.Fatalf("no receipt but the record moved from v%d to v%d", r.Version, next.Version)
				}
				continue
			}
			if rc.Seq != r.Version+1 || rc.PrevHash != r.LastHash || next.LastHash != rc.Hash {
				t.Fatalf("receipt seq %d prev %q, record head %q; want seq %d prev %q head %q",
					rc.Seq, rc.PrevHash, next.LastHash, r.Version+1, r.LastHash, rc.Hash)
			}
			if r.Version == 0 {
				if err := consent.VerifyChain([]consent.Receipt{*rc}, consent.Head{Version: next.Version, LastHash: next.LastHash}, nil); err != nil {
					t.Fatalf("VerifyChain of the first receipt = %v", err)
				}
			}
			if _, rc2, _ := next.Apply(ch, set); rc2 != nil {
				t.Fatalf("applying %s twice produced a second receipt %+v", ch.Op, *rc2)
			}
		}
	})
}
