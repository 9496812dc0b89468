package consent_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
)

var testDecisionKey = consent.DecisionKey([]byte("a deployment secret of 32 bytes!"))

func sampleDecisions() []consent.SignedDecision {
	at := time.Date(2026, 12, 6, 9, 30, 15, 123e6, time.UTC)
	id := consent.DecisionID{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 0x80, 0, 0, 0, 0, 0, 0, 42}
	return []consent.SignedDecision{
		{Kind: consent.DecisionRecommend, Personalized: true, Reason: consent.ReasonPersonalized, RecordVersion: 12, SettingsVersion: 3, At: at, ID: id},
		{Kind: consent.DecisionRecommend, Reason: consent.ReasonOptedOut, RecordVersion: 1 << 40, SettingsVersion: 0, At: at, ID: id},
		{Kind: consent.DecisionPush, Allowed: true, Reason: consent.ReasonAllowed, Channel: "push", Targeted: true, RecordVersion: 7, SettingsVersion: 2, At: at, ID: id},
		{Kind: consent.DecisionPush, Reason: consent.ReasonChannelRefused, Channel: "abcdefghijklmnopqrstuvwxyz012345", RecordVersion: ^uint64(0), SettingsVersion: ^uint64(0), At: at, ID: id},
	}
}

func mustSign(t testing.TB, sd consent.SignedDecision, key []byte, user string) string {
	t.Helper()
	s, err := sd.Sign(key, user)
	if err != nil {
		t.Fatalf("Sign(%+v): %v", sd, err)
	}
	return s
}

// A signed decision ID verifies for its user under its key and says what
// was signed; nothing else verifies.
func TestDecisionIDRoundTrip(t *testing.T) {
	for _, sd := range sampleDecisions() {
		id := mustSign(t, sd, testDecisionKey, "alice")
		if len(id) > consent.MaxDecisionIDLen || strings.ContainsAny(id, "+/=") {
			t.Errorf("ID %q: %d characters, or not base64url without padding", id, len(id))
		}
		got, err := consent.VerifyDecisionID(testDecisionKey, "alice", id)
		if err != nil || got != sd {
			t.Fatalf("VerifyDecisionID(%s) = %+v, %v; want %+v", id, got, err, sd)
		}
		for what, f := range map[string]func() (consent.SignedDecision, error){
			"another user":         func() (consent.SignedDecision, error) { return consent.VerifyDecisionID(testDecisionKey, "alice2", id) },
			"a prefix of the user": func() (consent.SignedDecision, error) { return consent.VerifyDecisionID(testDecisionKey, "alic", id) },
			"another key": func() (consent.SignedDecision, error) {
				return consent.VerifyDecisionID(consent.DecisionKey([]byte("another deployment's secret!!!!!")), "alice", id)
			},
			"no key": func() (consent.SignedDecision, error) { return consent.VerifyDecisionID(nil, "alice", id) },
			"truncated": func() (consent.SignedDecision, error) {
				return consent.VerifyDecisionID(testDecisionKey, "alice", id[:len(id)-1])
			},
			"extended": func() (consent.SignedDecision, error) {
				return consent.VerifyDecisionID(testDecisionKey, "alice", id+"A")
			},
			"padded": func() (consent.SignedDecision, error) {
				return consent.VerifyDecisionID(testDecisionKey, "alice", id+"=")
			},
			"empty": func() (consent.SignedDecision, error) { return consent.VerifyDecisionID(testDecisionKey, "alice", "") },
		} {
			if got, err := f(); !errors.Is(err, consent.ErrInvalidDecisionID) || got != (consent.SignedDecision{}) {
				t.Errorf("%s: %+v, %v; want ErrInvalidDecisionID and nothing", what, got, err)
			}
		}
	}
}

// Changing any field of the answer, re-signed without the key (with the
// MAC of the original), fails: every field is bound.
func TestDecisionIDBindsEveryField(t *testing.T) {
	base := sampleDecisions()[2] // a push: every field is used
	orig := mustSign(t, base, testDecisionKey, "bob")
	raw, _ := base64.RawURLEncoding.DecodeString(orig)
	mac := raw[len(raw)-16:]
	otherKey := consent.DecisionKey([]byte("someone else's secret, 32 bytes!"))
	changes := map[string]func(*consent.SignedDecision){
		"allowed":          func(s *consent.SignedDecision) { s.Allowed, s.Reason = false, consent.ReasonOptedOut },
		"reason":           func(s *consent.SignedDecision) { s.Allowed, s.Reason = false, consent.ReasonChannelRefused },
		"channel":          func(s *consent.SignedDecision) { s.Channel = "sms" },
		"targeted":         func(s *consent.SignedDecision) { s.Targeted = false },
		"record version":   func(s *consent.SignedDecision) { s.RecordVersion++ },
		"settings version": func(s *consent.SignedDecision) { s.SettingsVersion-- },
		"time":             func(s *consent.SignedDecision) { s.At = s.At.Add(time.Millisecond) },
		"id":               func(s *consent.SignedDecision) { s.ID[15]++ },
		"kind": func(s *consent.SignedDecision) {
			*s = consent.SignedDecision{Kind: consent.DecisionRecommend, Personalized: true, Reason: consent.ReasonPersonalized, RecordVersion: s.RecordVersion, SettingsVersion: s.SettingsVersion, At: s.At, ID: s.ID}
		},
	}
	for what, change := range changes {
		sd := base
		change(&sd)
		// The forger signs with a key of their own and keeps the payload,
		// then grafts the original MAC on.
		forged, _ := base64.RawURLEncoding.DecodeString(mustSign(t, sd, otherKey, "bob"))
		forged = append(forged[:len(forged)-16:len(forged)-16], mac...)
		id := base64.RawURLEncoding.EncodeToString(forged)
		if _, err := consent.VerifyDecisionID(testDecisionKey, "bob", id); !errors.Is(err, consent.ErrInvalidDecisionID) {
			t.Errorf("changed %s: %v; want ErrInvalidDecisionID", what, err)
		}
		if _, err := consent.VerifyDecisionID(testDecisionKey, "bob", mustSign(t, sd, otherKey, "bob")); !errors.Is(err, consent.ErrInvalidDecisionID) {
			t.Errorf("changed %s, signed under another key: %v; want ErrInvalidDecisionID", what, err)
		}
	}
	// Every single bit flipped anywhere fails.
	for i := range raw {
		for bit := 0; bit < 8; bit++ {
			b := bytes.Clone(raw)
			b[i] ^= 1 << bit
			if _, err := consent.VerifyDecisionID(testDecisionKey, "bob", base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, consent.ErrInvalidDecisionID) {
				t.Fatalf("byte %d bit %d flipped: %v; want ErrInvalidDecisionID", i, bit, err)
			}
		}
	}
}

// Answers no decision can be are not signed.
func TestDecisionIDSignRefusesImpossibleAnswers(t *testing.T) {
	at := time.Now()
	for what, sd := range map[string]consent.SignedDecision{
		"no kind":                               {Reason: consent.ReasonPersonalized, Personalized: true, At: at},
		"personalized, wrong reason":            {Kind: consent.DecisionRecommend, Personalized: true, Reason: consent.ReasonOptedOut, At: at},
		"not personalized, reason personalized": {Kind: consent.DecisionRecommend, Reason: consent.ReasonPersonalized, At: at},
		"a decision with a channel":             {Kind: consent.DecisionRecommend, Reason: consent.ReasonOptedOut, Channel: "sms", At: at},
		"a push without a channel":              {Kind: consent.DecisionPush, Reason: consent.ReasonOptedOut, At: at},
		"a push, bad channel":                   {Kind: consent.DecisionPush, Reason: consent.ReasonOptedOut, Channel: "SMS!", At: at},
		"allowed, wrong reason":                 {Kind: consent.DecisionPush, Allowed: true, Reason: consent.ReasonOptedOut, Channel: "sms", At: at},
		"a personalized push":                   {Kind: consent.DecisionPush, Personalized: true, Reason: consent.ReasonOptedOut, Channel: "sms", At: at},
		"unknown reason":                        {Kind: consent.DecisionRecommend, Reason: consent.Reason(200), At: at},
		"no time":                               {Kind: consent.DecisionRecommend, Reason: consent.ReasonOptedOut},
	} {
		if id, err := sd.Sign(testDecisionKey, "u"); err == nil {
			t.Errorf("%s: signed %q", what, id)
		}
	}
	if _, err := sampleDecisions()[0].Sign(nil, "u"); err == nil {
		t.Error("signed without a key")
	}
}

// The decision key is domain separated from the secret it comes from.
func TestDecisionKeyIsDerived(t *testing.T) {
	secret := []byte("a deployment secret of 32 bytes!")
	k := consent.DecisionKey(secret)
	if len(k) != 32 || bytes.Equal(k, secret) || bytes.Equal(k, consent.DecisionKey([]byte("a deployment secret of 32 bytes?"))) {
		t.Fatalf("DecisionKey = %x", k)
	}
	// An ID signed under the raw secret does not verify under the key.
	id := mustSign(t, sampleDecisions()[0], secret, "u")
	if _, err := consent.VerifyDecisionID(k, "u", id); err == nil {
		t.Fatal("an ID signed under the raw secret verified")
	}
}

func TestDecisionIDText(t *testing.T) {
	id := consent.DecisionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	b, _ := id.MarshalText()
	if string(b) != "0102030405060708090a0b0c0d0e0f10" || id.String() != string(b) {
		t.Fatalf("text %s", b)
	}
	var back consent.DecisionID
	if err := back.UnmarshalText(b); err != nil || back != id {
		t.Fatalf("round trip %s, %v", back, err)
	}
	for _, bad := range []string{"", "01", "zz02030405060708090a0b0c0d0e0f10", "0102030405060708090a0b0c0d0e0f1011"} {
		if err := back.UnmarshalText([]byte(bad)); err == nil || back != id {
			t.Errorf("UnmarshalText(%q) = %v, changed to %s", bad, err, back)
		}
	}
	if !(consent.DecisionID{}).IsZero() || id.IsZero() {
		t.Error("IsZero")
	}
}

// sealDecision is a decision ID's text for payload (the bytes before the
// MAC), with the MAC docs/api.md specifies, computed here independently.
func sealDecision(key []byte, user string, payload []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("recguard decision-id v1\x00"))
	m.Write(binary.AppendUvarint(nil, uint64(len(user))))
	m.Write([]byte(user))
	m.Write(payload)
	return base64.RawURLEncoding.EncodeToString(append(bytes.Clone(payload), m.Sum(nil)[:16]...))
}

// The MAC is the one documented: an ID sealed independently verifies.
func TestDecisionIDFormatIsDocumented(t *testing.T) {
	for _, sd := range sampleDecisions() {
		id := mustSign(t, sd, testDecisionKey, "carol")
		raw, _ := base64.RawURLEncoding.DecodeString(id)
		if got := sealDecision(testDecisionKey, "carol", raw[:len(raw)-16]); got != id {
			t.Fatalf("independently sealed %s, Sign made %s", got, id)
		}
		if raw[0] != 1 || consent.DecisionKind(raw[1]) != sd.Kind || consent.Reason(raw[3]) != sd.Reason || !bytes.Contains(raw, sd.ID[:]) {
			t.Fatalf("layout of %x does not follow the documented one for %+v", raw, sd)
		}
	}
}

// FuzzDecisionID: the parser never panics, on any text and on any payload
// sealed with a good MAC; what it accepts is canonical (signing what it
// says under the same key gives back the same text), and an ID that
// verifies for one user verifies for no other.
func FuzzDecisionID(f *testing.F) {
	for _, sd := range sampleDecisions() {
		id := mustSign(f, sd, testDecisionKey, "alice")
		raw, _ := base64.RawURLEncoding.DecodeString(id)
		f.Add(id, "alice", raw[:len(raw)-16])
		f.Add(id, "bob", raw[:len(raw)-17])
		f.Add(id[:len(id)-2], "alice", raw[:4])
	}
	f.Add("", "alice", []byte{})
	f.Add("AQEBAQ", "alice", []byte{1, 1, 1, 1, 0x80, 0x00, 0, 0})
	f.Add(strings.Repeat("A", 200), "x", bytes.Repeat([]byte{0xff}, 40))
	check := func(t *testing.T, id, user string) {
		sd, err := consent.VerifyDecisionID(testDecisionKey, user, id)
		if err != nil {
			if !errors.Is(err, consent.ErrInvalidDecisionID) || sd != (consent.SignedDecision{}) {
				t.Fatalf("VerifyDecisionID(%q, %q) = %+v, %v", id, user, sd, err)
			}
			return
		}
		again, err := sd.Sign(testDecisionKey, user)
		if err != nil || again != id {
			t.Fatalf("accepted %q for %q, which re-signs as %q (%v)", id, user, again, err)
		}
		if _, err := consent.VerifyDecisionID(testDecisionKey, user+"x", id); err == nil {
			t.Fatalf("%q verified for %q and %q", id, user, user+"x")
		}
	}
	f.Fuzz(func(t *testing.T, id, user string, payload []byte) {
		check(t, id, user)
		check(t, sealDecision(testDecisionKey, user, payload), user)
	})
}

// Signing reuses its MAC state per key: under keys used in turn, from many
// goroutines at once, every ID is still the one sealed independently under
// its own key.
func TestDecisionIDSignPooledPerKey(t *testing.T) {
	keys := [][]byte{testDecisionKey, consent.DecisionKey([]byte("another deployment's secret!!!!!")), consent.DecisionKey([]byte("a third"))}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				key := keys[(g+i)%len(keys)]
				sd := sampleDecisions()[i%4]
				user := "u" + strconv.Itoa(i)
				id, err := sd.Sign(key, user)
				if err != nil {
					t.Error(err)
					return
				}
				raw, _ := base64.RawURLEncoding.DecodeString(id)
				if want := sealDecision(key, user, raw[:len(raw)-16]); want != id {
					t.Errorf("key %d user %s: Sign made %s, sealed independently %s", (g+i)%len(keys), user, id, want)
					return
				}
				if _, err := consent.VerifyDecisionID(key, user, id); err != nil {
					t.Errorf("verify: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
