package redis_test

import (
	"context"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/internal/faultproxy"
	"github.com/recguard/recguard/internal/redistest"
	rs "github.com/recguard/recguard/store/redis"
)

// A blocking XREAD on a link that went dead ends after block + Timeout,
// not after go-redis's block + 10 s, even without a context deadline.
func TestNewClientBlockingReadBounded(t *testing.T) {
	srv := redistest.StartServer(t)
	p, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c := rs.NewClient(rs.ClientOptions{Addrs: []string{p.Addr()}, Timeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if err := c.XAdd(ctx, &goredis.XAddArgs{Stream: "s", Values: []any{"k", "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	start := time.Now()
	err = c.XRead(ctx, &goredis.XReadArgs{Streams: []string{"s", "$"}, Block: 300 * time.Millisecond}).Err()
	took := time.Since(start)
	if err == nil {
		t.Fatal("XREAD through a blackhole succeeded")
	}
	if took > 2*time.Second {
		t.Fatalf("XREAD BLOCK 300ms through a blackhole took %v to fail, want about 500ms (block + Timeout)", took)
	}
	p.Heal()
	// Non-blocking reads keep their own bound (Timeout).
	p.Stall()
	start = time.Now()
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("GET through a stall succeeded")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("GET through a stall took %v to fail, want about Timeout (200ms)", took)
	}
}

// A refused connection fails well under a second without a context
// deadline (3 dial attempts 50 ms apart, for each of go-redis's command
// tries), where go-redis's defaults take about 2 s.
func TestNewClientRefusedFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := rs.NewClient(rs.ClientOptions{Addrs: []string{addr}})
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING to a closed port succeeded")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("PING to a closed port took %v to fail, want well under 1s", took)
	}
}
