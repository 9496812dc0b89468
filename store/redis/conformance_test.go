package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/store/storetest"
)

// TestConformance runs the store conformance suite against the Redis named
// by RECGUARD_REDIS_ADDRS (default 127.0.0.1:6379; several addresses mean a
// cluster), each subtest in a key prefix of its own.
func TestConformance(t *testing.T) {
	c := redistest.Client(t)
	storetest.Run(t, newStoreOn(c), storetest.WithRaw(rawDump(c)))
}

// TestConformanceCluster runs the same suite against a 6-node Redis Cluster
// (3 masters, 3 replicas) that the test starts on free loopback ports.
func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Redis Cluster run")
	}
	cl := redistest.StartCluster(t)
	c := cl.Client(t)
	storetest.Run(t, newStoreOn(c), storetest.WithRaw(rawDump(c)))
}

// prefixes maps each store under test to its key prefix, for rawDump.
var prefixes sync.Map

// rawDump returns everything the store's keyspace holds: every key under
// its prefix on every master, with its value whatever its type.
func rawDump(c goredis.UniversalClient) func(tb testing.TB, s store.Store) []byte {
	return func(tb testing.TB, s store.Store) []byte {
		tb.Helper()
		p, ok := prefixes.Load(s)
		if !ok {
			tb.Fatalf("rawDump: unknown store")
		}
		ctx := context.Background()
		var mu sync.Mutex
		var out bytes.Buffer
		dump := func(ctx context.Context, n goredis.UniversalClient) error {
			iter := n.Scan(ctx, 0, p.(string)+":*", 1000).Iterator()
			for iter.Next(ctx) {
				k := iter.Val()
				var v any
				var err error
				switch typ, _ := n.Type(ctx, k).Result(); typ {
				case "hash":
					v, err = n.HGetAll(ctx, k).Result()
				case "list":
					v, err = n.LRange(ctx, k, 0, -1).Result()
				case "stream":
					v, err = n.XRange(ctx, k, "-", "+").Result()
				case "string":
					v, err = n.Get(ctx, k).Result()
				case "zset":
					v, err = n.ZRangeWithScores(ctx, k, 0, -1).Result()
				case "set":
					v, err = n.SMembers(ctx, k).Result()
				default:
					v = "unknown type " + typ
				}
				if err != nil {
					return err
				}
				mu.Lock()
				fmt.Fprintf(&out, "%s => %v\n", k, v)
				mu.Unlock()
			}
			return iter.Err()
		}
		var err error
		if cc, ok := c.(*goredis.ClusterClient); ok {
			err = cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error { return dump(ctx, n) })
		} else {
			err = dump(ctx, c)
		}
		if err != nil {
			tb.Fatalf("rawDump: %v", err)
		}
		return out.Bytes()
	}
}

func newStoreOn(c goredis.UniversalClient) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store {
		prefix := redistest.Prefix(t, c)
		s, err := rs.New(context.Background(), c, rs.Options{Prefix: prefix, Init: true, ChainKey: storetest.ChainKey})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		prefixes.Store(store.Store(s), prefix)
		t.Cleanup(func() { s.Close() })
		return s
	}
}
