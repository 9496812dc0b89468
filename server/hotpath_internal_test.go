package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// ---- the decision's JSON encoder ----

// wantDecisionJSON is what the route answered before appendDecision:
// encoding/json of the response with its nil lists as [].
func wantDecisionJSON(t testing.TB, r DecisionResponse) []byte {
	t.Helper()
	r.Decision = nonNil(r.Decision)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkDecisionJSON(t testing.TB, r DecisionResponse) {
	t.Helper()
	want := wantDecisionJSON(t, r)
	got, ok := appendDecision(nil, &r)
	if !ok {
		t.Fatalf("appendDecision refused %+v", r)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("appendDecision:\n got %s\nwant %s", got, want)
	}
}

func TestAppendDecisionMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	full := DecisionResponse{UserID: "u0000001", DecisionID: "AQEBAQMBztHQ8qQ0Ic_2OuN90JyAAAAAAAAAAfeY8QWMSt7i4sycyBuof08", DecidedAt: at,
		Decision: consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized,
			Tags:     []tags.Tag{"interest:music", "loyalty:gold", "region:xa"},
			Channels: []string{"email", "in_app", "push"}, Refused: []string{"sms"},
			Basis: consent.Basis{RecordVersion: 3, SettingsVersion: 1, ID: consent.DecisionID{1, 2, 3}}}}
	cases := map[string]DecisionResponse{
		"personalized": full,
		"nil lists":    {UserID: "u1", DecidedAt: at, Decision: consent.Decision{Reason: consent.ReasonUnverified}},
		"empty lists": {UserID: "u1", DecidedAt: at, Decision: consent.Decision{Reason: consent.ReasonOptedOut,
			Tags: []tags.Tag{}, Channels: []string{}, Refused: []string{}}},
		"push block":     {UserID: "u2", DecidedAt: at, Decision: consent.Decision{Reason: consent.ReasonSuspended, PushBlock: consent.ReasonSuspended}},
		"unknown reason": {UserID: "u3", DecidedAt: at, Decision: consent.Decision{Reason: consent.Reason(200), PushBlock: consent.Reason(201)}},
		"escapes": {UserID: `a"b\c<d>&e` + "\n\t\x01\u2028é\xff", DecisionID: "<&>", DecidedAt: at,
			Decision: consent.Decision{Tags: []tags.Tag{"x:\"y\""}, Channels: []string{"é"}, Refused: []string{"\x7f"}}},
		"max versions": {UserID: "u4", DecidedAt: at, Decision: consent.Decision{Basis: consent.Basis{RecordVersion: 1<<64 - 1, SettingsVersion: 1 << 63}}},
		"whole second": {UserID: "u5", DecidedAt: at.Truncate(time.Second)},
		"nanoseconds":  {UserID: "u6", DecidedAt: at.Add(123)},
		"other zone":   {UserID: "u7", DecidedAt: at.In(time.FixedZone("x", 8*3600))},
		"zero time":    {UserID: "u8"},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) { checkDecisionJSON(t, r) })
	}
}

func TestAppendDecisionRefusesWhatJSONRefuses(t *testing.T) {
	r := DecisionResponse{UserID: "u1", DecidedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, ok := appendDecision(nil, &r); ok {
		t.Fatal("appendDecision encoded a year encoding/json refuses")
	}
	if _, err := json.Marshal(r); err == nil {
		t.Fatal("encoding/json encodes year 10000: appendDecision should too")
	}
}

func TestAppendDecisionRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		const alphabet = "abcXYZ09:_-.\"\\<>&\x00\x1f\x7f é\u2028"
		n := rng.IntN(12)
		var sb strings.Builder
		for range n {
			r := []rune(alphabet)
			sb.WriteRune(r[rng.IntN(len(r))])
		}
		return sb.String()
	}
	list := func() []string {
		if rng.IntN(4) == 0 {
			return nil
		}
		out := make([]string, rng.IntN(5))
		for i := range out {
			out[i] = str()
		}
		return out
	}
	for range 2000 {
		var tg []tags.Tag
		for _, s := range list() {
			tg = append(tg, tags.Tag(s))
		}
		checkDecisionJSON(t, DecisionResponse{UserID: str(), DecisionID: str(),
			DecidedAt: time.Unix(rng.Int64N(250_000_000_000), rng.Int64N(1e9)).UTC(),
			Decision: consent.Decision{Personalized: rng.IntN(2) == 0, Reason: consent.Reason(rng.IntN(30)), Tags: tg,
				Channels: list(), Refused: list(), PushBlock: consent.Reason(rng.IntN(3) * rng.IntN(30)),
				Basis: consent.Basis{RecordVersion: rng.Uint64(), SettingsVersion: rng.Uint64() >> rng.IntN(64)}}})
	}
}

func FuzzAppendDecision(f *testing.F) {
	f.Add("u0000001", "interest:ski", "sms", "AQEB", uint8(1), uint8(0), true, uint64(3), uint64(1), int64(1_700_000_000_123_000_000))
	f.Add("a\"<>&\\", "\x00\xff", "é\u2028", "", uint8(250), uint8(7), false, uint64(0), uint64(1<<63), int64(-5))
	f.Fuzz(func(t *testing.T, user, tag, channel, id string, reason, block uint8, pers bool, rv, sv uint64, ns int64) {
		checkDecisionJSON(t, DecisionResponse{UserID: user, DecisionID: id, DecidedAt: time.Unix(0, ns).UTC(),
			Decision: consent.Decision{Personalized: pers, Reason: consent.Reason(reason), PushBlock: consent.Reason(block),
				Tags: []tags.Tag{tags.Tag(tag), tags.Tag(user)}, Channels: []string{channel}, Refused: []string{id, channel},
				Basis: consent.Basis{RecordVersion: rv, SettingsVersion: sv}}})
	})
}

// ---- the lazy deadline ----

func TestDeadlineCtxLazy(t *testing.T) {
	var d deadlineCtx
	d.init(context.Background(), time.Now().Add(time.Hour))
	if err := d.Err(); err != nil {
		t.Fatalf("Err before the deadline: %v", err)
	}
	if dl, ok := d.Deadline(); !ok || time.Until(dl) < 59*time.Minute {
		t.Fatalf("Deadline = %v, %t", dl, ok)
	}
	_ = d.Value("k")
	if d.ctx != nil {
		t.Fatal("Err, Deadline and Value made the timer: only Done should")
	}
	d.cancel()
	if !errors.Is(d.Err(), context.Canceled) {
		t.Fatalf("Err after cancel = %v, want Canceled", d.Err())
	}
	select {
	case <-d.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after cancel")
	}
	if !errors.Is(d.Err(), context.Canceled) {
		t.Fatalf("Err after cancel and Done = %v, want Canceled", d.Err())
	}
}

func TestDeadlineCtxExpires(t *testing.T) {
	t.Run("waited on", func(t *testing.T) {
		var d deadlineCtx
		d.init(context.Background(), time.Now().Add(20*time.Millisecond))
		defer d.cancel()
		select {
		case <-d.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed at the deadline")
		}
		if !errors.Is(d.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want DeadlineExceeded", d.Err())
		}
	})
	t.Run("never waited on", func(t *testing.T) {
		var d deadlineCtx
		d.init(context.Background(), time.Now().Add(5*time.Millisecond))
		time.Sleep(10 * time.Millisecond)
		if !errors.Is(d.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want DeadlineExceeded", d.Err())
		}
		d.cancel()
		if !errors.Is(d.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err after cancel = %v, want DeadlineExceeded (the deadline came first)", d.Err())
		}
	})
	t.Run("derived context", func(t *testing.T) {
		var d deadlineCtx
		d.init(context.Background(), time.Now().Add(20*time.Millisecond))
		defer d.cancel()
		child, cancel := context.WithTimeout(&d, time.Hour)
		defer cancel()
		if dl, _ := child.Deadline(); time.Until(dl) > time.Second {
			t.Fatalf("child deadline %v: not bounded by the parent's", dl)
		}
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a context derived from it outlived its deadline")
		}
		if !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("child Err = %v", child.Err())
		}
	})
}

func TestDeadlineCtxParent(t *testing.T) {
	t.Run("parent canceled, lazy", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		var d deadlineCtx
		d.init(parent, time.Now().Add(time.Hour))
		defer d.cancel()
		cancel()
		if !errors.Is(d.Err(), context.Canceled) {
			t.Fatalf("Err = %v, want Canceled", d.Err())
		}
		select {
		case <-d.Done():
		case <-time.After(time.Second):
			t.Fatal("Done not closed with the parent")
		}
	})
	t.Run("parent canceled, waited on", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		var d deadlineCtx
		d.init(parent, time.Now().Add(time.Hour))
		defer d.cancel()
		done := d.Done()
		cancel()
		select {
		case <-done:
		case <-time.After(time.Second):
			t.Fatal("Done not closed with the parent")
		}
		if !errors.Is(d.Err(), context.Canceled) {
			t.Fatalf("Err = %v, want Canceled", d.Err())
		}
	})
	t.Run("earlier parent deadline", func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var d deadlineCtx
		d.init(parent, time.Now().Add(time.Hour))
		defer d.cancel()
		if dl, _ := d.Deadline(); time.Until(dl) > 2*time.Minute {
			t.Fatalf("Deadline %v: not the parent's earlier one", dl)
		}
	})
	t.Run("values", func(t *testing.T) {
		type key struct{}
		parent := context.WithValue(context.Background(), key{}, "v")
		var d deadlineCtx
		d.init(parent, time.Now().Add(time.Hour))
		defer d.cancel()
		if d.Value(key{}) != "v" {
			t.Fatal("parent's value lost before Done")
		}
		_ = d.Done()
		if d.Value(key{}) != "v" {
			t.Fatal("parent's value lost after Done")
		}
	})
}

// ---- the key check ----

func TestJudgeKey(t *testing.T) {
	secret := "s3cr3t-secret-of-a-key"
	k := store.APIKey{ID: "0123456789ab", Role: string(RoleApp), Hash: hashSecret(secret)}
	if _, c := judge(k, secret); c != keyOK {
		t.Fatalf("the right secret: %v, want keyOK", c)
	}
	upper := k
	upper.Hash = strings.ToUpper(k.Hash)
	if _, c := judge(upper, secret); c != keyOK {
		t.Fatalf("an upper-case stored hash: %v, want keyOK (hex.DecodeString accepted it)", c)
	}
	for name, tc := range map[string]struct {
		k      store.APIKey
		secret string
	}{
		"wrong secret":    {k, secret + "x"},
		"empty secret":    {k, ""},
		"short hash":      {store.APIKey{ID: k.ID, Hash: k.Hash[:62]}, secret},
		"non-hex hash":    {store.APIKey{ID: k.ID, Hash: "zz" + k.Hash[2:]}, secret},
		"empty hash":      {store.APIKey{ID: k.ID}, secret},
		"revoked":         {store.APIKey{ID: k.ID, Hash: k.Hash, RevokedAt: time.Now()}, secret},
		"secret too long": {store.APIKey{ID: k.ID, Hash: hashSecret(strings.Repeat("a", 65))}, strings.Repeat("a", 65)},
	} {
		if _, c := judge(tc.k, tc.secret); c != keyBad {
			t.Errorf("%s: %v, want keyBad", name, c)
		}
	}
}
