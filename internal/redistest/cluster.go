package redistest

import (
	"context"
	"fmt"
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

// SlotNodes asks the running nodes (CLUSTER SLOTS) which node is the master
// of slot and which are its replicas.
func (cl *Cluster) SlotNodes(ctx context.Context, slot int) (master *Server, replicas []*Server, err error) {
	var last error
	for _, s := range cl.Servers {
		if !s.Running() {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second})
		slots, err := c.ClusterSlots(ctx).Result()
		c.Close()
		if err != nil {
			last = err
			continue
		}
		for _, r := range slots {
			if slot < int(r.Start) || slot > int(r.End) || len(r.Nodes) == 0 {
				continue
			}
			master = cl.server(r.Nodes[0].Addr)
			for _, n := range r.Nodes[1:] {
				if rs := cl.server(n.Addr); rs != nil {
					replicas = append(replicas, rs)
				}
			}
			if master == nil {
				return nil, nil, fmt.Errorf("slot %d served by %s, not one of this cluster's servers", slot, r.Nodes[0].Addr)
			}
			return master, replicas, nil
		}
		last = fmt.Errorf("slot %d not covered", slot)
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
	if len(reps) == 0 {
		tb.Fatalf("the master of slot %d (%s) has no replica to promote", slot, m.Addr)
	}
	f := &Failover{Slot: slot, Killed: m, Replicas: reps}
	m.Stop()
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
