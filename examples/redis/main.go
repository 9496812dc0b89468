// Command redis points the SDK at Redis, as a deployment does: two app
// instances (two sdk.Client values, as in two processes) share one store;
// a user's opt-out made through one is honoured by the other before Apply
// returns (Config.WaitForAll), because every instance follows the store's
// changelogs and announces how far it has applied them.
//
//	REDIS_ADDRS=127.0.0.1:6379 go run ./examples/redis
//
// REDIS_ADDRS is one address (default 127.0.0.1:6379), or a comma-separated
// list of a Redis Cluster's nodes. The example writes under a key prefix
// of its own (rgexample<random>) and deletes every key under it at exit;
// it touches nothing else.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	rsstore "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// addrs returns the Redis addresses from REDIS_ADDRS.
func addrs() []string {
	var out []string
	for _, a := range strings.Split(os.Getenv("REDIS_ADDRS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return []string{"127.0.0.1:6379"}
	}
	return out
}

func run(ctx context.Context, w io.Writer) error {
	// One go-redis client (a cluster client for several addresses), with
	// the short timeouts recguard fails closed by.
	rc := rsstore.NewClient(rsstore.ClientOptions{Addrs: addrs()})
	defer rc.Close()

	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	prefix := "rgexample" + hex.EncodeToString(b[:])
	defer deletePrefix(rc, prefix)

	// The receipt chain key: a deployment secret, the same for every
	// instance, kept outside Redis (here a random one).
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	// Init creates the keyspace; only a deployment's first start does
	// that (recguard serve --init): a Redis that lost its data is never
	// silently re-created.
	st, err := rsstore.New(ctx, rc, rsstore.Options{Prefix: prefix, Init: true, ChainKey: key})
	if err != nil {
		return err
	}
	defer st.Close()

	// Two app instances on the same store.
	cfg := sdk.DefaultConfig()
	cfg.WaitForAll = true // Apply returns once every live instance applied the change
	a, err := sdk.New(ctx, st, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	bcl, err := sdk.New(ctx, st, sdk.DefaultConfig())
	if err != nil {
		return err
	}
	defer bcl.Close()
	kind := "one Redis"
	if _, ok := rc.(*goredis.ClusterClient); ok {
		kind = "a Redis Cluster"
	}
	fmt.Fprintf(w, "store: %s at %s, prefix %s, %d shards; two instances %s and %s\n", kind, strings.Join(addrs(), ","), prefix, st.Shards(), a.InstanceID()[:8], bcl.InstanceID()[:8])

	if _, err := a.Apply(ctx, consent.DeclareTag("alice", tags.MustParse("interest:ski"))); err != nil {
		return err
	}
	show := func(step string) error {
		for _, c := range []struct {
			name string
			c    *sdk.Client
		}{{"instance A", a}, {"instance B", bcl}} {
			d, err := c.c.Decide(ctx, "alice")
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%-34s %s: personalized=%t reason=%s tags=%v\n", step, c.name, d.Personalized, d.Reason, d.Tags)
		}
		return nil
	}
	if err := show("alice declared interest:ski:"); err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := a.Apply(ctx, consent.SetPersonalization("alice", false)); err != nil {
		return err // sdk.ErrNotPropagated when an instance did not confirm in time
	}
	fmt.Fprintf(w, "alice opts out through instance A: every instance applied it within %s\n", time.Since(t0).Round(time.Millisecond))
	if err := show("then:"); err != nil {
		return err
	}
	rcs, err := st.Receipts(ctx, "alice")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "alice's receipts in Redis: %d, the last %s %s -> %s\n", len(rcs), rcs[len(rcs)-1].Op, rcs[len(rcs)-1].Old, rcs[len(rcs)-1].New)
	return nil
}

// deletePrefix deletes every key under prefix, on every master of a
// cluster.
func deletePrefix(rc goredis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	del := func(ctx context.Context, c goredis.UniversalClient) error {
		it := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for it.Next(ctx) {
			c.Del(ctx, it.Val())
		}
		return it.Err()
	}
	if cc, ok := rc.(*goredis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error { return del(ctx, n) })
		return
	}
	_ = del(ctx, rc)
}
