package redis_test

import (
	"context"
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
	storetest.Run(t, newStoreOn(c))
}

// TestConformanceCluster runs the same suite against a 6-node Redis Cluster
// (3 masters, 3 replicas) that the test starts on free loopback ports.
func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Redis Cluster run")
	}
	cl := redistest.StartCluster(t)
	storetest.Run(t, newStoreOn(cl.Client(t)))
}

func newStoreOn(c goredis.UniversalClient) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store {
		s, err := rs.New(context.Background(), c, rs.Options{Prefix: redistest.Prefix(t, c), Init: true})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}
