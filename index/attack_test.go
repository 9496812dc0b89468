package index_test

// Attacks on the audience index through the Redis store: changelog
// entries tampered by whoever can write Redis (a replayed sealed entry, an
// emptied one, a damaged data key) must never put a restricted user back
// into an audience, and checkpoints taken after an erasure hold nothing of
// the erased user.

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

type atkIdx struct {
	c goredis.UniversalClient
	p string
	s *rs.Store
}

func atkIdxOpen(t *testing.T) *atkIdx {
	t.Helper()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	s, err := rs.New(context.Background(), c, rs.Options{Prefix: p, Init: true, Shards: 2, ChainKey: []byte("index attack chain key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &atkIdx{c: c, p: p, s: s}
}

func (a *atkIdx) apply(t *testing.T, chs ...consent.Change) {
	t.Helper()
	for _, ch := range chs {
		if _, err := a.s.Apply(context.Background(), ch); err != nil {
			t.Fatalf("Apply(%s %s): %v", ch.Op, ch.UserID, err)
		}
	}
}

func (a *atkIdx) tag(u string) string {
	return a.p + ":{" + strconv.Itoa(store.ShardOf(u, a.s.Shards())) + "}:"
}

// entries returns the user's changelog entries (ID and fields).
func (a *atkIdx) entries(t *testing.T, u string) []goredis.XMessage {
	t.Helper()
	var out []goredis.XMessage
	for _, m := range a.c.XRange(context.Background(), a.tag(u)+"log", "-", "+").Val() {
		if m.Values["u"] == u {
			out = append(out, m)
		}
	}
	return out
}

// rewrite rebuilds the user's shard log with the same IDs, edit changing
// the fields of each entry.
func (a *atkIdx) rewrite(t *testing.T, u string, edit func(id string, vals map[string]any)) {
	t.Helper()
	ctx := context.Background()
	key := a.tag(u) + "log"
	msgs := a.c.XRange(ctx, key, "-", "+").Val()
	a.c.Del(ctx, key)
	for _, m := range msgs {
		edit(m.ID, m.Values)
		if err := a.c.XAdd(ctx, &goredis.XAddArgs{Stream: key, ID: m.ID, Values: m.Values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func atkAudience(t *testing.T, x *index.Index, seg string, targeted bool) []string {
	t.Helper()
	a, err := x.Audience(tags.MustParseSegment(seg), "push", targeted)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := a.Page(0, 1000)
	slices.Sort(ids)
	return ids
}

func atkCatchUp(t *testing.T, st store.Store, x *index.Index) *index.Index {
	t.Helper()
	y, rebuilt, err := index.CatchUp(context.Background(), st, x)
	if err != nil {
		t.Fatal(err)
	}
	if rebuilt {
		t.Logf("CatchUp rebuilt the index from the records")
	}
	return y
}

// TestAttackIndexTamperedRestrictEntry restricts a user while an index
// follows, after someone with write access to Redis tampered with the
// restriction's changelog entry: replaced its sealed part with the user's
// previous one (same data key, so it decrypts), or emptied it. The index
// must not put the restricted user in any audience.
func TestAttackIndexTamperedRestrictEntry(t *testing.T) {
	for _, how := range []string{"replayed older sealed part", "sealed part emptied", "sealed part removed"} {
		t.Run(how, func(t *testing.T) {
			a := atkIdxOpen(t)
			const u, other = "idx-victim", "idx-other"
			a.apply(t, consent.DeclareTag(u, "interest:ski"), consent.DeclareTag(other, "interest:ski"))
			x, err := index.Build(context.Background(), a.s)
			if err != nil {
				t.Fatal(err)
			}
			if got := atkAudience(t, x, "interest:ski", true); !slices.Equal(got, []string{other, u}) {
				t.Fatalf("before: %v", got)
			}
			a.apply(t, consent.Restrict(u))
			ents := a.entries(t, u)
			first, last := ents[0], ents[len(ents)-1]
			a.rewrite(t, u, func(id string, vals map[string]any) {
				if id != last.ID {
					return
				}
				switch how {
				case "replayed older sealed part":
					vals["x"] = first.Values["x"]
				case "sealed part emptied":
					vals["x"] = ""
				case "sealed part removed":
					delete(vals, "x")
				}
			})
			x = atkCatchUp(t, a.s, x)
			for _, seg := range []string{"interest:ski", "*"} {
				for _, targeted := range []bool{true, false} {
					if got := atkAudience(t, x, seg, targeted); slices.Contains(got, u) {
						t.Errorf("%s: the restricted user is in the audience %q (targeted %t): %v", how, seg, targeted, got)
					}
				}
			}
			rec, _ := a.s.Get(context.Background(), u)
			if !rec.State.Restricted {
				t.Fatalf("test bug: the record is not restricted")
			}
		})
	}
}

// TestAttackIndexDamagedDataKey damages a live user's data key while an
// index follows: their entries read shredded, so the index fails closed
// (the user in no audience, unknown) rather than keeping facts it cannot
// confirm; a rebuild from the records (which are intact) brings them back.
func TestAttackIndexDamagedDataKey(t *testing.T) {
	a := atkIdxOpen(t)
	ctx := context.Background()
	const u = "idx-dk"
	a.apply(t, consent.DeclareTag(u, "interest:ski"))
	x, err := index.Build(ctx, a.s)
	if err != nil {
		t.Fatal(err)
	}
	a.apply(t, consent.DeclareTag(u, "interest:golf"))
	a.c.HSet(ctx, a.tag(u)+"u:"+u, "k", strings.Repeat("x", 31))
	x = atkCatchUp(t, a.s, x)
	if got := atkAudience(t, x, "interest:golf | interest:ski", true); slices.Contains(got, u) && x.Unknown() == 0 {
		t.Errorf("a user whose entries cannot be opened is in the audience with facts the index cannot confirm: %v", got)
	}
}

// TestAttackIndexCheckpointAfterErase: an instance saved a checkpoint
// while the user was live, the user was erased, and an instance restarts
// from that checkpoint (as the SDK does), catches up and saves: the stored
// checkpoint holds neither the user's ID nor their tags. It also shows
// what the stored checkpoint holds between the erasure and the next save.
func TestAttackIndexCheckpointAfterErase(t *testing.T) {
	a := atkIdxOpen(t)
	ctx := context.Background()
	const u, other = "idx-erased-zq", "idx-keep"
	a.apply(t, consent.DeclareTag(u, "interest:zqsecret"), consent.RefuseChannel(u, "sms"), consent.DeclareTag(other, "interest:ski"))
	x, err := index.Build(ctx, a.s)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Save(ctx, a.s, "audience"); err != nil {
		t.Fatal(err)
	}
	a.apply(t, consent.Erase(u))
	raw := func() []byte {
		return []byte(strings.Join(a.c.LRange(ctx, a.p+":{ckpt}:audience", 0, -1).Val(), ""))
	}
	if bytes.Contains(raw(), []byte(u)) {
		t.Logf("between the erasure and the next checkpoint save, the stored checkpoint still holds the erased user's ID and tags (until an instance saves again: CheckpointEvery, or at shutdown)")
	}
	y, err := index.LoadCheckpoint(ctx, a.s, "audience")
	if err != nil {
		t.Fatal(err)
	}
	y = atkCatchUp(t, a.s, y)
	if got := atkAudience(t, y, "*", false); slices.Contains(got, u) {
		t.Errorf("erased user in an audience after catching up: %v", got)
	}
	if err := y.Save(ctx, a.s, "audience"); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{u, "zqsecret"} {
		if bytes.Contains(raw(), []byte(secret)) {
			t.Errorf("the checkpoint saved after the erasure holds %q", secret)
		}
	}
	// The same from a rebuild.
	z, err := index.Build(ctx, a.s)
	if err != nil {
		t.Fatal(err)
	}
	data, err := z.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{u, "zqsecret"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("a rebuilt index's checkpoint holds %q", secret)
		}
	}
}
