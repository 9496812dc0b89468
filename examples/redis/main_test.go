package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestRedis runs the example against the Redis of REDIS_ADDRS (default
// 127.0.0.1:6379), and skips when none answers: the opt-out made through
// one instance is honoured by both before Apply returns, and every key the
// example wrote is gone afterwards.
func TestRedis(t *testing.T) {
	addr := addrs()[0]
	conn, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		t.Skipf("no Redis answers on %s: %v", addr, err)
	}
	conn.Close()
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"alice declared interest:ski:       instance B: personalized=true reason=personalized tags=[interest:ski]",
		"alice opts out through instance A: every instance applied it within",
		"then:                              instance A: personalized=false reason=personalization_off tags=[]",
		"then:                              instance B: personalized=false reason=personalization_off tags=[]",
		"alice's receipts in Redis: 2, the last set_personalization on -> off",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the output lacks %q:\n%s", want, s)
		}
	}
	// The example cleaned up after itself.
	i := strings.Index(s, "prefix ")
	if i < 0 {
		t.Fatalf("no prefix in the output:\n%s", s)
	}
	prefix := strings.TrimSuffix(strings.Fields(s[i+len("prefix "):])[0], ",")
	var c goredis.UniversalClient
	if as := addrs(); len(as) > 1 {
		c = goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: as})
	} else {
		c = goredis.NewClient(&goredis.Options{Addr: as[0]})
	}
	defer c.Close()
	var mu sync.Mutex // ForEachMaster scans the masters at once
	var keys []string
	ctx := context.Background()
	scan := func(ctx context.Context, n goredis.UniversalClient) error {
		it := n.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	if cc, ok := c.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error { return scan(ctx, n) })
	} else {
		err = scan(ctx, c)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Errorf("keys left under %s: %v", prefix, keys)
	}
}
