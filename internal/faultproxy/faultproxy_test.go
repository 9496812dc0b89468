package faultproxy_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/internal/faultproxy"
	"github.com/recguard/recguard/internal/redistest"
)

// echoServer answers every line with the same line, on loopback, until the
// test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type lineConn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *lineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &lineConn{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends line and waits up to d for the echo. It returns the echo,
// how long it took, and the read error (a timeout when nothing came).
func (c *lineConn) roundTrip(t *testing.T, line string, d time.Duration) (string, time.Duration, error) {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", 0, err
	}
	return c.readLine(d, start)
}

func (c *lineConn) readLine(d time.Duration, start time.Time) (string, time.Duration, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", time.Since(start), err
	}
	return s[:len(s)-1], time.Since(start), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPassThrough(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	for _, s := range []string{"a", "hello", string(make([]byte, 100_000))} {
		got, _, err := c.roundTrip(t, s, 2*time.Second)
		if err != nil || got != s {
			t.Fatalf("echo of %d bytes: got %d bytes, err %v", len(s), len(got), err)
		}
	}
	if p.Conns() != 1 || p.Accepted() != 1 {
		t.Fatalf("Conns %d Accepted %d, want 1 and 1", p.Conns(), p.Accepted())
	}
}

func TestLatency(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	if _, _, err := c.roundTrip(t, "warm", time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetLatency(100 * time.Millisecond)
	if f, lat := p.Fault(); f != faultproxy.None || lat != 100*time.Millisecond {
		t.Fatalf("Fault() = %v, %v", f, lat)
	}
	_, rtt, err := c.roundTrip(t, "slow", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rtt < 200*time.Millisecond || rtt > time.Second {
		t.Fatalf("round trip with 100ms latency each way took %v, want about 200ms", rtt)
	}
	// A chunk waiting out the latency goes at once when the link heals.
	p.SetLatency(5 * time.Second)
	start := time.Now()
	if _, err := c.Write([]byte("held\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	p.Heal()
	got, rtt, err := c.readLine(2*time.Second, start)
	if err != nil || got != "held" || rtt > time.Second {
		t.Fatalf("after Heal: %q in %v, err %v; want \"held\" well before the 5s latency", got, rtt, err)
	}
}

func TestStallHoldsBytes(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	if _, _, err := c.roundTrip(t, "before", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	start := time.Now()
	if _, err := c.Write([]byte("during\n")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.readLine(300*time.Millisecond, start); !isTimeout(err) {
		t.Fatalf("read during a stall: err %v, want a timeout", err)
	}
	// New connections are accepted during a stall, and held too.
	c2 := dial(t, p.Addr())
	if _, _, err := c2.roundTrip(t, "new", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection during a stall: err %v, want a timeout", err)
	}
	p.Heal()
	if got, _, err := c.readLine(2*time.Second, start); err != nil || got != "during" {
		t.Fatalf("after Heal: %q, %v; want the held line", got, err)
	}
	if got, _, err := c2.readLine(2*time.Second, start); err != nil || got != "new" {
		t.Fatalf("new connection after Heal: %q, %v", got, err)
	}
}

func TestBlackholeSwallows(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	p.Blackhole()
	if _, _, err := c.roundTrip(t, "lost", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("read in a blackhole: err %v, want a timeout", err)
	}
	p.Heal()
	// What went in is gone; what comes after passes.
	got, _, err := c.roundTrip(t, "after", 2*time.Second)
	if err != nil || got != "after" {
		t.Fatalf("after Heal: %q, %v; want only \"after\"", got, err)
	}
}

func TestDrop(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	if _, _, err := c.roundTrip(t, "x", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Drop()
	if _, _, err := c.readLine(2*time.Second, time.Now()); !errors.Is(err, io.EOF) {
		t.Fatalf("open connection on Drop: err %v, want EOF", err)
	}
	c2 := dial(t, p.Addr())
	if _, _, err := c2.readLine(2*time.Second, time.Now()); !errors.Is(err, io.EOF) {
		t.Fatalf("new connection during Drop: err %v, want EOF", err)
	}
	p.Heal()
	c3 := dial(t, p.Addr())
	if got, _, err := c3.roundTrip(t, "back", 2*time.Second); err != nil || got != "back" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
}

func TestReset(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	if _, _, err := c.roundTrip(t, "x", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	if _, _, err := c.readLine(2*time.Second, time.Now()); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("open connection on Reset: err %v, want ECONNRESET", err)
	}
	// The reset may reach the client while it is still connecting.
	if raw, err := net.DialTimeout("tcp", p.Addr(), time.Second); err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("new connection during Reset: dial err %v, want ECONNRESET", err)
		}
	} else {
		t.Cleanup(func() { raw.Close() })
		c2 := &lineConn{Conn: raw, r: bufio.NewReader(raw)}
		if _, _, err := c2.readLine(2*time.Second, time.Now()); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("new connection during Reset: err %v, want ECONNRESET", err)
		}
	}
	p.Heal()
	c3 := dial(t, p.Addr())
	if got, _, err := c3.roundTrip(t, "back", 2*time.Second); err != nil || got != "back" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
}

func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := startProxy(t, addr)
	c := dial(t, p.Addr())
	if _, _, err := c.readLine(3*time.Second, time.Now()); err == nil || isTimeout(err) {
		t.Fatalf("connection to a dead target: err %v, want it closed", err)
	}
}

func TestClose(t *testing.T) {
	p, err := faultproxy.New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if _, _, err := c.roundTrip(t, "x", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return with a stalled connection open")
	}
	if _, _, err := c.readLine(time.Second, time.Now()); err == nil || isTimeout(err) {
		t.Fatalf("connection after Close: err %v, want closed", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), 200*time.Millisecond); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A real Redis client through the proxy: commands pass, fail under each
// fault, and pass again after Heal.
func TestRedisThroughProxy(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	srv := redistest.StartServer(t)
	p := startProxy(t, srv.Addr)
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []faultproxy.Fault{faultproxy.Stall, faultproxy.Drop, faultproxy.Reset, faultproxy.Blackhole} {
		t.Run(f.String(), func(t *testing.T) {
			p.Set(f)
			start := time.Now()
			if err := c.Get(ctx, "k").Err(); err == nil {
				t.Fatalf("GET under %v succeeded", f)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("GET under %v took %v to fail", f, d)
			}
			p.Heal()
			deadline := time.Now().Add(3 * time.Second)
			for {
				v, err := c.Get(ctx, "k").Result()
				if err == nil && v == "v" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GET after healing %v: %q, %v", f, v, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
