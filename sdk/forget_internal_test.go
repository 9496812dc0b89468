package sdk

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// An erasure leaves no combination of the erased user's tags in the
// cache's shared tag lists (a combination is closer to a fingerprint than
// one tag); other users' views keep theirs and still answer.
func TestErasureForgetsSharedTagLists(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := New(ctx, st, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	unique := tags.Tag("interest:eve-only-club")
	for _, ch := range []consent.Change{consent.DeclareTag("eve", unique), consent.DeclareTag("eve", "interest:ski"), consent.DeclareTag("sam", "interest:ski")} {
		if _, err := c.Apply(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"eve", "sam"} {
		if d, err := c.Decide(ctx, u); err != nil || !d.Personalized {
			t.Fatalf("%s: %+v %v", u, d, err)
		}
	}
	held := func() bool {
		in := &c.cache.in
		in.mu.Lock()
		defer in.mu.Unlock()
		for _, l := range in.tagLists {
			if slices.Contains(l, unique) {
				return true
			}
		}
		return false
	}
	if !held() {
		t.Fatal("setup: eve's tag list is not shared")
	}
	if _, err := c.Apply(ctx, consent.Erase("eve")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); held(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("an erased user's tag combination is still shared after the erasure was followed")
		}
	}
	if d, err := c.Decide(ctx, "sam"); err != nil || !d.Personalized || !slices.Equal(d.Tags, []tags.Tag{"interest:ski"}) {
		t.Fatalf("sam after eve's erasure: %+v %v", d, err)
	}
}
