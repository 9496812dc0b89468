package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the
// key's hash tag (the part between the first '{' and the next '}', when
// not empty) or of the whole key, modulo 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// server returns the cluster's server listening on addr, or nil.
func (cl *Cluster) server(addr string) *Server {
	for _, s := range cl.Servers {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// SlotNodes asks the running nodes (CLUSTER NODES) which node is the master
// of slot and which are its replicas (replicas flagged as failed are left
// out). CLUSTER SLOTS is not used: Redis 7 leaves out of it replicas whose
// offset the master has not heard of yet.
func (cl *Cluster) SlotNodes(ctx context.Context, slot int) (master *Server, replicas []*Server, err error) {
	var last error
	for _, s := range cl.Servers {
		if !s.Running() {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second})
		txt, err := c.ClusterNodes(ctx).Result()
		c.Close()
		if err != nil {
			last = err
			continue
		}
		type node struct{ id, addr, flags, master string }
		var nodes []node
		masterID := ""
		for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			n := node{id: f[0], addr: f[1], flags: f[2], master: f[3]}
			if at := strings.IndexByte(n.addr, '@'); at >= 0 {
				n.addr = n.addr[:at]
			}
			nodes = append(nodes, n)
			if !strings.Contains(n.flags, "master") || strings.Contains(n.flags, "fail") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, ok := strings.Cut(r, "-")
				if !ok {
					hi = lo
				}
				a, err1 := strconv.Atoi(lo)
				b, err2 := strconv.Atoi(hi)
				if err1 == nil && err2 == nil && a <= slot && slot <= b {
					masterID = n.id
					master = cl.server(n.addr)
				}
			}
		}
		if masterID == "" {
			last = fmt.Errorf("slot %d not covered", slot)
			continue
		}
		if master == nil {
			return nil, nil, fmt.Errorf("slot %d served by a node that is not one of this cluster's servers", slot)
		}
		for _, n := range nodes {
			if n.master == masterID && strings.Contains(n.flags, "slave") && !strings.Contains(n.flags, "fail") {
				if rs := cl.server(n.addr); rs != nil {
					replicas = append(replicas, rs)
				}
			}
		}
		return master, replicas, nil
	}
	if last == nil {
		last = fmt.Errorf("no node running")
	}
	return nil, nil, last
}

// NodeFor returns the server that is master of key's slot now.
func (cl *Cluster) NodeFor(ctx context.Context, key string) (*Server, error) {
	m, _, err := cl.SlotNodes(ctx, Slot(key))
	return m, err
}

// Role returns what s says it is (ROLE): "master", "slave", or an error.
func Role(ctx context.Context, s *Server) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	defer c.Close()
	v, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	if len(v) == 0 {
		return "", fmt.Errorf("empty ROLE reply")
	}
	r, _ := v[0].(string)
	return r, nil
}

// Failover is a master killed under a running cluster and the replica that
// took its place.
type Failover struct {
	Slot       int
	Killed     *Server   // the master, SIGKILLed
	Replicas   []*Server // its replicas when it was killed
	Promoted   *Server   // the replica that became master (nil until promoted)
	KilledAt   time.Time
	PromotedAt time.Time // when the promoted replica first said ROLE master (polled every 2 ms)
}

// KillMaster SIGKILLs the master of slot. Wait for the promotion with
// WaitPromoted; restart the killed node with Killed.Start (it rejoins as a
// replica).
func (cl *Cluster) KillMaster(tb testing.TB, slot int) *Failover {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, reps, err := cl.SlotNodes(ctx, slot)
	if err != nil {
		tb.Fatalf("finding the master of slot %d: %v", slot, err)
	}
	return KillMasterOf(tb, slot, m, reps)
}

// KillMasterOf SIGKILLs master, which the caller found (SlotNodes) to be the
// master of slot with replicas: for when the cluster cannot be asked at the
// moment of the kill (a replica is paused, say).
func KillMasterOf(tb testing.TB, slot int, master *Server, replicas []*Server) *Failover {
	tb.Helper()
	if len(replicas) == 0 {
		tb.Fatalf("the master of slot %d (%s) has no replica to promote", slot, master.Addr)
	}
	f := &Failover{Slot: slot, Killed: master, Replicas: replicas}
	master.Stop()
	f.KilledAt = time.Now()
	return f
}

// WaitPromoted polls the killed master's replicas (ROLE, every 2 ms) until
// one says it is master, then waits until the cluster reports
// cluster_state:ok on the promoted node, and returns the promotion time.
// It fails the test after timeout.
func (f *Failover) WaitPromoted(tb testing.TB, timeout time.Duration) time.Time {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for f.Promoted == nil {
		for _, r := range f.Replicas {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			role, err := Role(ctx, r)
			cancel()
			if err == nil && role == "master" {
				f.Promoted, f.PromotedAt = r, time.Now()
				break
			}
		}
		if f.Promoted != nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no replica of %s promoted within %v of the kill", f.Killed.Addr, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return f.PromotedAt
}

// Running reports whether the server process is running (not stopped by
// Stop; a paused one is running).
func (s *Server) Running() bool { return s.cmd != nil }

// WaitClusterOK waits until every running node reports cluster_state:ok and
// the slot map of every running node covers all slots, or fails the test.
func (cl *Cluster) WaitClusterOK(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for _, s := range cl.Servers {
		if !s.Running() {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := c.ClusterInfo(ctx).Result()
			cancel()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				tb.Fatalf("cluster node %s not ok: %v %s", s.Addr, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
	}
}

// WaitReplicaOf waits until s is a replica whose link to its master is up
// (INFO replication: master_link_status:up), or fails the test.
func WaitReplicaOf(tb testing.TB, s *Server, timeout time.Duration) {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Info(ctx, "replication").Result()
		cancel()
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s is not a synced replica after %v: %v\n%s", s.Addr, timeout, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
