package sdk

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

// TestViewMatchesStore: after random changes written by one client and
// followed by another, every cached view of both gives back the store's
// record exactly (tags dropped under restriction, as the cache keeps it),
// the decision consent.Evaluate gives for it, and ShouldAsk's answer on it.
func TestViewMatchesStore(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"memory", func(t *testing.T) store.Store {
			s, err := memory.Open(context.Background(), memory.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"redis", func(t *testing.T) store.Store {
			c := redistest.Client(t)
			s, err := rs.New(context.Background(), c, rs.Options{Prefix: redistest.Prefix(t, c), Init: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		t.Run(b.name, func(t *testing.T) { testViewMatchesStore(t, b.open(t)) })
	}
}

func testViewMatchesStore(t *testing.T, st store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func() *Client {
		c, err := New(ctx, st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	writer, follower := open(), open()
	r := rand.New(rand.NewPCG(16, 9))
	const users = 12
	id := func(i int) string { return fmt.Sprintf("view-user-%d", i) }
	for i := range users {
		if _, err := follower.Decide(ctx, id(i)); err != nil { // cached before the changes: followed
			t.Fatal(err)
		}
	}
	applied := 0
	for range 240 {
		u := id(r.IntN(users))
		var ch consent.Change
		switch r.IntN(12) {
		case 0:
			ch = consent.DeclareTag(u, tags.Tag(fmt.Sprintf("interest:i%d", r.IntN(8)))).By(consent.ActorUser, consent.SurfaceAPI)
		case 1:
			ch = consent.DeleteTag(u, tags.Tag(fmt.Sprintf("interest:i%d", r.IntN(8)))).By(consent.ActorUser, consent.SurfaceAPI)
		case 2:
			ch = consent.RefuseChannel(u, []string{"sms", "email", "push"}[r.IntN(3)])
		case 3:
			ch = consent.AllowChannel(u, []string{"sms", "email", "push"}[r.IntN(3)])
		case 4:
			ch = consent.SetPersonalization(u, r.IntN(2) == 0)
		case 5:
			ch = consent.GrantSensitive(u, tags.Religion, consent.PurposePersonalization)
		case 6:
			ch = consent.WithdrawSensitive(u, tags.Religion)
		case 7:
			ch = consent.SetMinor(u, r.IntN(2) == 0).By(consent.ActorUser, consent.SurfaceAPI)
		case 8:
			ch = consent.SetGuardian(u, r.IntN(2) == 0).By(consent.ActorGuardian, consent.SurfaceAPI)
		case 9:
			if r.IntN(2) == 0 {
				ch = consent.Restrict(u).By(consent.ActorUser, consent.SurfaceAPI)
			} else {
				ch = consent.Unrestrict(u).By(consent.ActorUser, consent.SurfaceAPI)
			}
		default:
			ch = consent.InferTag(u, tags.Tag(fmt.Sprintf("region:r%d", r.IntN(8))))
		}
		if _, err := writer.Apply(ctx, ch); err != nil {
			continue // a change the rules refuse changes nothing
		}
		applied++
	}
	if applied < 100 {
		t.Fatalf("only %d of 240 changes applied", applied)
	}
	for i := range users {
		want, err := st.Get(ctx, id(i))
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*Client{"writer": writer, "follower": follower} {
			h := xxhash.Sum64String(id(i))
			var v *view
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				if v = c.cache.lookup(h, id(i)); v != nil && !v.loading && v.version >= want.Version {
					break
				}
				if _, err := c.Decide(ctx, id(i)); err != nil || time.Now().After(deadline) {
					t.Fatalf("%s: %s not cached at version %d (err %v)", name, id(i), want.Version, err)
				}
			}
			sv := c.settings.Load()
			wantRec, wantDec := legacyViewOf(want, sv)
			if got := v.record(&c.cache.in); !reflect.DeepEqual(got, wantRec) {
				t.Fatalf("%s: cached record of %s:\n got %#v\nwant %#v", name, id(i), got, wantRec)
			}
			d, err := c.Decide(ctx, id(i))
			if err != nil {
				t.Fatal(err)
			}
			d.ID = consent.DecisionID{}
			if !reflect.DeepEqual(d, wantDec) {
				t.Fatalf("%s: decision of %s:\n got %#v\nwant %#v", name, id(i), d, wantDec)
			}
			for _, k := range []consent.Kind{consent.KindPersonalization, consent.KindGuardian, consent.ChannelKind("sms"), consent.SensitiveKind(tags.Religion)} {
				got, err := c.ShouldAsk(ctx, id(i), k)
				if err != nil {
					t.Fatal(err)
				}
				if w := consent.ShouldAsk(want.State, k, &sv.set, c.cfg.Now()); got != w {
					t.Fatalf("%s: ShouldAsk(%s, %s) = %v, want %v", name, id(i), k, got, w)
				}
			}
		}
	}
}
