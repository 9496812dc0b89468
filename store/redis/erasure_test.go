package redis_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

var testKey = consent.ChainKey("redis erasure test chain key!")

// verifyUser checks the user's receipts against the record head as the
// server and recguard verify do.
func verifyUser(t *testing.T, s store.Store, user string) error {
	t.Helper()
	ctx := context.Background()
	rec, err := s.Get(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	rcs, err := s.Receipts(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	set, err := s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return consent.VerifyChain(rcs, consent.HeadOf(rec, &set, time.Now()), testKey)
}

// TestTruncatedReceiptsAreDetected removes receipts straight from Redis, at
// the newest end, the oldest end and in the middle, as someone with write
// access to Redis would, and expects verification to fail every time; then
// rebuilds the chain without the deployment key and expects that to fail
// too.
func TestTruncatedReceiptsAreDetected(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper func(key string)
	}{
		{"newest two removed (RPOP the opt-out and the erase)", func(key string) { c.RPop(ctx, key); c.RPop(ctx, key) }},
		{"oldest two removed (LPOP)", func(key string) { c.LPop(ctx, key); c.LPop(ctx, key) }},
		{"both ends", func(key string) { c.LPop(ctx, key); c.RPop(ctx, key) }},
		{"one in the middle", func(key string) {
			it := c.LIndex(ctx, key, 2).Val()
			c.LRem(ctx, key, 1, it)
		}},
		{"all of them", func(key string) { c.Del(ctx, key) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := redistest.Prefix(t, c)
			s := mustNew(t, c, rs.Options{Prefix: p, Init: true, ChainKey: testKey})
			const u = "alice"
			for _, ch := range []consent.Change{
				consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePersonalization),
				consent.DeclareTag(u, "interest:ski"),
				consent.DeclareTag(u, "medical_health:diabetes"),
				consent.RefuseChannel(u, "sms"),
				consent.SetPersonalization(u, false),
				consent.Erase(u),
			} {
				mustApply(t, s, ch)
			}
			if err := verifyUser(t, s, u); err != nil {
				t.Fatalf("untouched chain: %v", err)
			}
			tc.tamper(p + ":{" + itoa(store.ShardOf(u, s.Shards())) + "}:r:" + u)
			if tc.name == "all of them" {
				// The record still names its head: gone receipts are not
				// a user never seen.
				_, err := s.Receipts(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := verifyUser(t, s, u); err == nil {
				t.Errorf("after %s the chain still verifies", tc.name)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestChainKeyed checks that receipts sealed under one key do not verify
// under another or none: whoever can write Redis but lacks the key cannot
// rebuild the chain.
func TestChainKeyed(t *testing.T) {
	c := redistest.Client(t)
	s := mustNew(t, c, rs.Options{Prefix: redistest.Prefix(t, c), Init: true, ChainKey: testKey})
	mustApply(t, s, consent.RefuseChannel("bob", "sms"))
	mustApply(t, s, consent.SetPersonalization("bob", false))
	rec, _ := s.Get(t.Context(), "bob")
	rcs, _ := s.Receipts(t.Context(), "bob")
	set := mustSettings(t, s)
	h := consent.HeadOf(rec, &set, time.Now())
	if err := consent.VerifyChain(rcs, h, testKey); err != nil {
		t.Fatalf("with the key: %v", err)
	}
	for _, k := range []consent.ChainKey{nil, consent.ChainKey("another deployment key")} {
		if err := consent.VerifyChain(rcs, h, k); err == nil {
			t.Errorf("receipts verify under key %q", k)
		}
	}
}

// TestErasedDataIsNoise reads the raw Redis keyspace after an erasure: the
// user's earlier changelog entries, receipts and outcome events are still
// there as bytes (streams and lists cannot be rewritten in place) but hold
// nothing readable; reading them through the store gives shredded entries,
// redacted receipts and no events.
func TestErasedDataIsNoise(t *testing.T) {
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	s := mustNew(t, c, rs.Options{Prefix: p, Init: true, ChainKey: testKey})
	const u = "carol"
	mustApply(t, s, consent.DeclareTag(u, "interest:skiing"))
	if err := s.AppendOutcomes(t.Context(), []string{u}, [][]byte{[]byte(`{"item":"ski-boots"}`)}); err != nil {
		t.Fatal(err)
	}
	shard := store.ShardOf(u, s.Shards())
	raw := func() []byte {
		var b bytes.Buffer
		for _, k := range c.Keys(t.Context(), p+":*").Val() {
			switch c.Type(t.Context(), k).Val() {
			case "stream":
				for _, m := range c.XRange(t.Context(), k, "-", "+").Val() {
					for f, v := range m.Values {
						b.WriteString(f + "=" + v.(string) + "\n")
					}
				}
			case "list":
				b.WriteString(strings.Join(c.LRange(t.Context(), k, 0, -1).Val(), "\n"))
			case "hash":
				for f, v := range c.HGetAll(t.Context(), k).Val() {
					b.WriteString(f + "=" + v + "\n")
				}
			}
		}
		return b.Bytes()
	}
	// Sealed even before the erasure: a Redis dump does not show tags in
	// clear outside the live record.
	if bytes.Count(raw(), []byte("skiing")) != 1 { // the record itself
		t.Errorf("tag value in clear outside the record: %q", raw())
	}
	if bytes.Contains(raw(), []byte("ski-boots")) {
		t.Errorf("outcome event in clear")
	}
	mustApply(t, s, consent.Erase(u))
	if bytes.Contains(raw(), []byte("skiing")) || bytes.Contains(raw(), []byte("ski-boots")) {
		t.Errorf("after erase the keyspace still holds the user's content")
	}
	// The receipt items keep not even the sealed noise: "<ms> - <JSON>".
	for _, it := range c.LRange(t.Context(), p+":{"+strconv.Itoa(shard)+"}:r:"+u, 0, -1).Val() {
		if f := strings.SplitN(it, " ", 3); len(f) != 3 || f[1] != "-" {
			t.Errorf("receipt item after erase keeps a sealed part: %.60q", it)
		}
	}
	evs, err := s.ReadChangelog(t.Context(), shard, "", 100, 0)
	if err != nil || len(evs) != 2 || !evs[0].Shredded || evs[1].Shredded || !evs[1].Record.State.Erased {
		t.Errorf("changelog after erase = %+v, %v; want the first entry shredded, then the tombstone", evs, err)
	}
	n := 0
	if err := s.ReadOutcomes(t.Context(), func([]byte) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("ReadOutcomes after erase: %d events, %v", n, err)
	}
	// The user comes back with a new key; the old entries stay noise.
	mustApply(t, s, consent.DeclareTag(u, "interest:chess"))
	evs, _ = s.ReadChangelog(t.Context(), shard, "", 100, 0)
	if len(evs) != 3 || !evs[0].Shredded || evs[2].Shredded || evs[2].Record.Tags.Entries[0].Tag != "interest:chess" {
		t.Errorf("changelog after coming back = %+v", evs)
	}
}

// TestChangelogTrimmedByAge checks PurgeExpired trims changelog and outcome
// entries older than their retention, even on a quiet shard, and that a
// reader behind the trim is told so.
func TestChangelogTrimmedByAge(t *testing.T) {
	c := redistest.Client(t)
	s := mustNew(t, c, rs.Options{Prefix: redistest.Prefix(t, c), Init: true, ChainKey: testKey, ChangelogRetention: time.Hour, OutcomeRetention: time.Hour})
	const u = "dave"
	a := mustApply(t, s, consent.DeclareTag(u, "interest:ski"))
	if err := s.AppendOutcomes(t.Context(), []string{u}, [][]byte{[]byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeExpired(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.ReadChangelog(t.Context(), a.Shard, "", 10, 0); err != nil || len(evs) != 1 {
		t.Fatalf("within the retention: %d events, %v", len(evs), err)
	}
	if _, err := s.PurgeExpired(t.Context(), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.ReadChangelog(t.Context(), a.Shard, "", 10, 0); err == nil && len(evs) != 0 {
		t.Errorf("past the retention the entry is still read: %+v", evs)
	}
	_, err := s.ReadChangelog(t.Context(), a.Shard, "0-0", 10, 0)
	if err == nil {
		t.Errorf("a reader behind the age trim is not told it was trimmed")
	}
	n := 0
	_ = s.ReadOutcomes(t.Context(), func([]byte) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d outcome events past their retention", n)
	}
}
