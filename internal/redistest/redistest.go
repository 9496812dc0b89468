// Package redistest gives tests a real Redis: the shared server named by
// RECGUARD_REDIS_ADDRS (default 127.0.0.1:6379; several comma-separated
// addresses mean a Redis Cluster), or servers of their own started on free
// loopback ports with redis-server: a standalone server that can be stopped
// and restarted, and a 6-node Redis Cluster (3 masters, 3 replicas).
//
// Everything started here is stopped by t.Cleanup. Tests that need
// redis-server skip with a reason when it is not installed.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvAddrs names the environment variable with the Redis address(es) tests
// use; several comma-separated addresses mean a Redis Cluster.
const EnvAddrs = "RECGUARD_REDIS_ADDRS"

// Addrs returns the addresses from EnvAddrs, or 127.0.0.1:6379.
func Addrs() []string {
	v := strings.TrimSpace(os.Getenv(EnvAddrs))
	if v == "" {
		return []string{"127.0.0.1:6379"}
	}
	return strings.Split(v, ",")
}

// Client returns a client for the shared Redis (see Addrs), closed at the
// end of the test. It fails the test when Redis does not answer PING.
func Client(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	addrs := Addrs()
	var c redis.UniversalClient
	if len(addrs) > 1 {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	} else {
		c = redis.NewClient(&redis.Options{Addr: addrs[0]})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		tb.Fatalf("redis at %v: %v (start one with: redis-server --daemonize yes --port 6379 --save \"\")", addrs, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Prefix returns a key prefix unique to this test, and deletes every key
// under it when the test ends.
func Prefix(tb testing.TB, c redis.UniversalClient) string {
	tb.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	p := "rgt" + hex.EncodeToString(b[:])
	tb.Cleanup(func() { DeletePrefix(c, p) })
	return p
}

// DeletePrefix deletes every key that starts with prefix+":" on every master.
func DeletePrefix(c redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	del := func(ctx context.Context, n redis.UniversalClient) error {
		it := n.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for it.Next(ctx) {
			n.Del(ctx, it.Val())
		}
		return it.Err()
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return del(ctx, n) })
		return
	}
	_ = del(ctx, c)
}

// Server is a redis-server process of a test's own.
type Server struct {
	Addr string
	Dir  string
	tb   testing.TB
	args []string
	cmd  *exec.Cmd
	// exited is closed when cmd has ended (its Wait returned).
	exited chan struct{}
}

// RequireBinary skips the test when redis-server is not installed.
func RequireBinary(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip("redis-server not installed: skipping a test that starts its own Redis")
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartServer starts a redis-server on a free loopback port with extra
// configuration arguments (e.g. "--appendonly", "yes"), waits until it
// answers, and stops it when the test ends. A cluster-enabled server
// ("--cluster-enabled", "yes") gets a free port of its own for the cluster
// bus too: the default, the port + 10000, may be taken or past 65535.
//
// A port is only known to be free a moment before redis-server binds it
// (another process, or an outgoing connection's ephemeral port, may take
// it in between), so a server that could not bind its ports is started
// again on new ones, up to five times.
func StartServer(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	RequireBinary(tb)
	s := &Server{tb: tb, Dir: tb.TempDir()}
	cluster := false
	for i := 0; i+1 < len(extra); i++ {
		if extra[i] == "--cluster-enabled" && extra[i+1] == "yes" {
			cluster = true
		}
	}
	var err error
	for range 5 {
		port := FreePort(tb)
		s.Addr = "127.0.0.1:" + strconv.Itoa(port)
		s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", s.Dir,
			"--daemonize", "no", "--logfile", filepath.Join(s.Dir, "redis.log")}, extra...)
		if cluster {
			s.args = append(s.args, "--cluster-port", strconv.Itoa(FreePort(tb)))
		}
		if err = s.start(); err == nil {
			tb.Cleanup(s.Stop)
			return s
		}
		log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
		if !strings.Contains(string(log), "Address already in use") {
			break
		}
		_ = os.Remove(filepath.Join(s.Dir, "redis.log"))
		_ = os.Remove(filepath.Join(s.Dir, "nodes.conf"))
	}
	log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	tb.Fatalf("%v\n%s", err, log)
	return nil
}

// Start (re)starts the server after Stop and waits until it answers PING.
func (s *Server) Start() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
		s.tb.Fatalf("%v\n%s", err, log)
	}
}

// start starts the server unless running and waits until it answers PING;
// on failure the server is stopped.
func (s *Server) start() error {
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command("redis-server", s.args...)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.exited)
	if err := waitPing(s.Addr, 10*time.Second, s.exited); err != nil {
		s.Stop()
		return fmt.Errorf("redis-server on %s did not answer: %w", s.Addr, err)
	}
	return nil
}

// Stop kills the server (SIGKILL: as abrupt as a crash) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Client returns a client for the server, closed at the end of the test.
func (s *Server) Client(opts *redis.Options) *redis.Client {
	if opts == nil {
		opts = &redis.Options{}
	}
	opts.Addr = s.Addr
	c := redis.NewClient(opts)
	s.tb.Cleanup(func() { c.Close() })
	return c
}

// waitPing waits until the server at addr answers PING, at most d, or
// until exited is closed (the server ended: a port it could not bind).
func waitPing(addr string, d time.Duration, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Cluster is a Redis Cluster of a test's own: 3 masters and 3 replicas.
type Cluster struct {
	Addrs   []string
	Servers []*Server
}

// StartCluster starts six cluster-enabled redis-servers on free ports, joins
// them with redis-cli --cluster create (one replica per master), waits until
// every node reports cluster_state:ok, and stops them when the test ends.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	return StartClusterWith(tb, ClusterOptions{})
}

// ClusterOptions configure StartClusterWith. The zero value is StartCluster's
// cluster.
type ClusterOptions struct {
	// NodeTimeout is cluster-node-timeout: how long a master may be
	// unreachable before its replica is promoted. Zero means 5 s.
	NodeTimeout time.Duration
	// Extra are more redis-server arguments for every node (e.g.
	// "--appendonly", "yes").
	Extra []string
}

// StartClusterWith starts a cluster like StartCluster, configured by o.
func StartClusterWith(tb testing.TB, o ClusterOptions) *Cluster {
	tb.Helper()
	RequireBinary(tb)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Skip("redis-cli not installed: cannot create a cluster")
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 5 * time.Second
	}
	cl := &Cluster{}
	for i := 0; i < 6; i++ {
		args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10), "--appendonly", "no",
			// A replica (a new one, or a killed master rejoining) syncs at
			// once instead of after the default 5 s diskless-sync delay.
			"--repl-diskless-sync-delay", "0"}
		s := StartServer(tb, append(args, o.Extra...)...)
		cl.Servers = append(cl.Servers, s)
		cl.Addrs = append(cl.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, cl.Addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range cl.Addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				tb.Fatalf("cluster node %s not ok: %v %s", a, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
	}
	// Every replica synced: until then CLUSTER SLOTS does not list it and a
	// failover would have nothing to promote.
	for _, s := range cl.Servers {
		c := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := c.Info(context.Background(), "replication").Result()
			if err == nil && (strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				tb.Fatalf("cluster node %s: replica not synced: %v %s", s.Addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	return cl
}

// Client returns a cluster client for the cluster, closed at the end of the
// test; it waits until a write to every slot range succeeds.
func (cl *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs})
	tb.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 64; i++ {
		key := fmt.Sprintf("probe:{%d}", i)
		for {
			err := c.Set(context.Background(), key, "1", time.Minute).Err()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("cluster not writable: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}
