package redis_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// An empty keyspace is created only when asked: without Init, New refuses
// it, so a Redis that lost everything is never taken for a new store.
func TestEmptyKeyspaceNeedsInit(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	_, err := rs.New(ctx, c, rs.Options{Prefix: p, Logger: quiet})
	if !errors.Is(err, store.ErrNotInitialized) {
		t.Fatalf("New on an empty keyspace without Init: err = %v, want store.ErrNotInitialized", err)
	}
	if !strings.Contains(err.Error(), "--init") {
		t.Errorf("error %q does not say how to initialise", err)
	}
	if n, _ := c.Exists(ctx, p+":{cfg}:meta", p+":{cfg}:settings").Result(); n != 0 {
		t.Fatalf("a refused New wrote %d keys", n)
	}
	s := mustNew(t, c, rs.Options{Prefix: p, Logger: quiet})
	mustApply(t, s, consent.SetPersonalization("ann", false))
	// Init on a keyspace in use changes nothing.
	s2 := mustNew(t, c, rs.Options{Prefix: p, Logger: quiet})
	if r, err := s2.Get(ctx, "ann"); err != nil || !r.State.PersonalizationOff {
		t.Fatalf("after a second Init: %+v, %v; want ann's opt-out kept", r.State, err)
	}
	// Opening without Init works on a keyspace in use.
	if _, err := rs.New(ctx, c, rs.Options{Prefix: p, Logger: quiet}); err != nil {
		t.Fatalf("New without Init on a keyspace in use: %v", err)
	}
}

// A Redis restarted without persistence comes back empty: a store that was
// open sees data loss on every read and refuses every write; a new one
// refuses to open without Init, and Init there is an operator's explicit
// choice.
func TestRestartWithoutPersistenceIsDataLoss(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	c := srv.Client(&goredis.Options{MaxRetries: -1})
	s := mustNew(t, c, rs.Options{Logger: quiet})
	a := mustApply(t, s, consent.SetPersonalization("bob", false))
	srv.Stop()
	srv.Start()
	waitUp(t, c)

	if _, err := s.Get(ctx, "bob"); !errors.Is(err, store.ErrDataLoss) {
		t.Fatalf("Get after the restart: err = %v, want store.ErrDataLoss (not a fresh user)", err)
	}
	if _, err := s.GetMany(ctx, []string{"bob", "carl"}); !errors.Is(err, store.ErrDataLoss) {
		t.Fatalf("GetMany after the restart: err = %v, want store.ErrDataLoss", err)
	}
	_, err := s.ReadChangelog(ctx, a.Shard, a.Pos, 10, 0)
	var dl *store.DataLossError
	if !errors.As(err, &dl) || len(dl.Logs) != 1 || dl.Logs[0] != a.Shard {
		t.Fatalf("ReadChangelog after the restart: err = %v, want a *store.DataLossError for log %d", err, a.Shard)
	}
	if _, err := s.Apply(ctx, consent.SetPersonalization("bob", true)); !errors.Is(err, store.ErrDataLoss) {
		t.Fatalf("Apply after the restart: err = %v, want store.ErrDataLoss", err)
	}
	if _, err := s.GetKey(ctx, "0123456789ab"); !errors.Is(err, store.ErrDataLoss) {
		t.Fatalf("GetKey after the restart: err = %v, want store.ErrDataLoss (not an unknown key)", err)
	}
	if _, _, err := s.SetSettings(ctx, consent.DefaultSettings(), consent.ActorAdmin, "console"); !errors.Is(err, store.ErrDataLoss) {
		t.Fatalf("SetSettings after the restart: err = %v, want store.ErrDataLoss", err)
	}
	if n, _ := c.DBSize(ctx).Result(); n != 0 {
		t.Fatalf("refused writes left %d keys in the emptied Redis", n)
	}
	if _, err := rs.New(ctx, c, rs.Options{Logger: quiet}); !errors.Is(err, store.ErrNotInitialized) {
		t.Fatalf("New after the restart without Init: err = %v, want store.ErrNotInitialized", err)
	}
}

func waitUp(t *testing.T, c goredis.UniversalClient) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis did not come back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A slot that lost its data while others kept theirs (a cluster node
// restarted empty, a manual DEL of its keys) is named; New refuses the
// keyspace unless the loss is accepted explicitly.
func TestPartialLossIsNamedAndRefused(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	s := mustNew(t, c, rs.Options{Prefix: p, Shards: 4, Logger: quiet})
	for i := range 20 {
		mustApply(t, s, consent.SetPersonalization("u"+strconv.Itoa(i), false))
	}
	// Shard 2 loses everything.
	for _, k := range []string{"seq", "log", "users", "rx"} {
		c.Del(ctx, p+":{2}:"+k)
	}
	it := c.Scan(ctx, 0, p+":{2}:*", 1000).Iterator()
	for it.Next(ctx) {
		c.Del(ctx, it.Val())
	}
	_, err := rs.New(ctx, c, rs.Options{Prefix: p, Logger: quiet})
	var dl *store.DataLossError
	if !errors.As(err, &dl) || len(dl.Logs) != 1 || dl.Logs[0] != 2 {
		t.Fatalf("New on a keyspace that lost shard 2: err = %v, want a *store.DataLossError naming shard 2", err)
	}
	// Writes to the lost shard are refused; others go on.
	var lostUser, okUser string
	for i := 0; lostUser == "" || okUser == ""; i++ {
		u := "w" + strconv.Itoa(i)
		if store.ShardOf(u, 4) == 2 {
			lostUser = u
		} else {
			okUser = u
		}
	}
	if _, err := s.Apply(ctx, consent.SetPersonalization(lostUser, false)); !errors.Is(err, store.ErrDataLoss) {
		t.Fatalf("write to the lost shard: err = %v, want store.ErrDataLoss", err)
	}
	mustApply(t, s, consent.SetPersonalization(okUser, false))
	// The operator accepts the loss: the shard is marked anew and usable.
	s2, err := rs.New(ctx, c, rs.Options{Prefix: p, AcceptDataLoss: true, Logger: quiet})
	if err != nil {
		t.Fatalf("New with AcceptDataLoss: %v", err)
	}
	mustApply(t, s2, consent.SetPersonalization(lostUser, false))
}

// A record gone while the user's receipts remain (eviction, a manual DEL, a
// partial restore) is unknown: reads name it as corrupt, writes are refused
// (it is never silently re-created from empty), other users are served.
func TestLostAndCorruptRecords(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	s := mustNew(t, c, rs.Options{Prefix: p, Logger: quiet})
	users := []string{"gone", "garbled", "fine"}
	for _, u := range users {
		mustApply(t, s, consent.SetPersonalization(u, false))
	}
	key := func(u string) string { return p + ":{" + strconv.Itoa(store.ShardOf(u, s.Shards())) + "}:u:" + u }
	c.Del(ctx, key("gone"))
	c.HSet(ctx, key("garbled"), "d", "{not json")

	for _, u := range []string{"gone", "garbled"} {
		_, err := s.Get(ctx, u)
		if !errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s): err = %v, want store.ErrCorrupt (not ErrNotFound)", u, err)
		}
		if _, err := s.Apply(ctx, consent.SetPersonalization(u, true)); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("Apply(%s): err = %v, want store.ErrCorrupt", u, err)
		}
	}
	recs, err := s.GetMany(ctx, []string{"fine", "gone", "never-seen", "garbled"})
	bad := store.Corrupted(err)
	if len(bad) != 2 || !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("GetMany: err = %v, want a *store.CorruptError naming gone and garbled", err)
	}
	if len(recs) != 4 || !recs[0].State.PersonalizationOff || recs[2].Version != 0 {
		t.Fatalf("GetMany records: %+v; want fine's opt-out and an empty never-seen user", recs)
	}
	if n, _ := c.Exists(ctx, key("gone")).Result(); n != 0 {
		t.Fatalf("a refused write re-created the lost record")
	}
}

// Redis configured to evict any key may drop an opt-out: New refuses it
// unless allowed explicitly.
func TestEvictingPolicyRefused(t *testing.T) {
	srv := redistest.StartServer(t, "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
	c := srv.Client(nil)
	_, err := rs.New(context.Background(), c, rs.Options{Init: true, Logger: quiet})
	if !errors.Is(err, store.ErrUnsafeConfig) {
		t.Fatalf("New on allkeys-lru: err = %v, want store.ErrUnsafeConfig", err)
	}
	if _, err := rs.New(context.Background(), c, rs.Options{Init: true, AllowEvicting: true, Logger: quiet}); err != nil {
		t.Fatalf("New on allkeys-lru with AllowEvicting: %v", err)
	}
}

// A changelog restored from an older snapshot (what a failover to a replica
// that missed entries also looks like) is reported to a reader that had read
// further: quiet (nothing written since) and busy (written again since).
func TestRestoredSnapshotIsRegression(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t, "--appendonly", "no")
	c := srv.Client(&goredis.Options{MaxRetries: -1})
	s := mustNew(t, c, rs.Options{Shards: 1, Logger: quiet})
	for i := range 3 {
		mustApply(t, s, consent.SetPersonalization("ann", i%2 == 1))
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var last store.Applied
	for i := range 3 {
		last = mustApply(t, s, consent.SetPersonalization("ann", i%2 == 0))
	}
	srv.Stop()
	srv.Start() // loads the snapshot: three changes are gone
	waitUp(t, c)
	_, err := s.ReadChangelog(ctx, 0, last.Pos, 10, 0)
	var re *store.RegressedError
	if !errors.As(err, &re) || re.Log != 0 {
		t.Fatalf("quiet log behind the reader: err = %v, want a *store.RegressedError", err)
	}
	if _, err := s.ReadLogs(ctx, []int{0, store.SettingsLog}, []store.Position{last.Pos, ""}, 10, 100*time.Millisecond); !errors.As(err, &re) {
		t.Fatalf("ReadLogs on the quiet log: err = %v, want a *store.RegressedError", err)
	}
	// Written again since: the entries numbered like the lost ones come
	// back with other content; a reader past them must not take them.
	for i := range 5 {
		mustApply(t, s, consent.SetPersonalization("ann", i%2 == 0))
	}
	if _, err := s.ReadChangelog(ctx, 0, last.Pos, 10, 0); !errors.As(err, &re) {
		t.Fatalf("busy log rewritten past the reader: err = %v, want a *store.RegressedError", err)
	}
}

// With Durability.Replicas, a write is acknowledged only once a replica has
// it; without a replica to confirm, the write stands on the primary and the
// caller is told it is not replicated.
func TestDurabilityWaitsForReplicas(t *testing.T) {
	ctx := context.Background()
	primary := redistest.StartServer(t)
	host, port, _ := strings.Cut(primary.Addr, ":")
	replica := redistest.StartServer(t, "--replicaof", host, port)
	c := primary.Client(nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := c.Info(ctx, "replication").Result()
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never came online: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := mustNew(t, c, rs.Options{Durability: rs.Durability{Replicas: 1, Timeout: 300 * time.Millisecond}, Logger: quiet})
	a, err := s.Apply(ctx, consent.SetPersonalization("dee", false))
	if err != nil || a.Receipt == nil {
		t.Fatalf("Apply with a live replica: %v", err)
	}
	rc := replica.Client(nil)
	if v, _ := rc.HGet(ctx, "rg:{"+strconv.Itoa(a.Shard)+"}:u:dee", "v").Result(); v != "1" {
		t.Fatalf("acknowledged write not on the replica: version %q", v)
	}
	replica.Stop()
	start := time.Now()
	a, err = s.Apply(ctx, consent.RefuseChannel("dee", "sms"))
	if !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("Apply without a replica: err = %v, want store.ErrNotReplicated", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the unreplicated write took %v; the timeout is 300ms", took)
	}
	if a.Receipt == nil || a.Record.Version != 2 {
		t.Fatalf("unreplicated write: applied %+v; want the change (version 2) reported as standing", a)
	}
	// The retry is a no-op; it still says the change is not replicated.
	if a, err := s.Apply(ctx, consent.RefuseChannel("dee", "sms")); !errors.Is(err, store.ErrNotReplicated) || a.Receipt != nil {
		t.Fatalf("retry (a no-op) without a replica: receipt %v, err = %v; want no receipt and store.ErrNotReplicated", a.Receipt, err)
	}
	if r, err := s.Get(ctx, "dee"); err != nil || !r.State.ChannelRefused("sms") {
		t.Fatalf("after the unreplicated write: %+v, %v; want it on the primary", r.State, err)
	}
	_, _, err = s.SetSettings(ctx, mustSettings(t, s), consent.ActorAdmin, "console")
	if !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("SetSettings without a replica: err = %v, want store.ErrNotReplicated", err)
	}
}

func mustSettings(t *testing.T, s store.Store) consent.Settings {
	t.Helper()
	set, err := s.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// On a Redis Cluster whose {cfg} primary is down (before its replica is
// promoted), a user can still opt out: restrictive changes are validated
// against the settings last read. Other changes wait for the settings.
func TestOptOutWhileSettingsNodeIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping a Redis Cluster test")
	}
	ctx := context.Background()
	cl := redistest.StartCluster(t)
	c := rs.NewClient(rs.ClientOptions{Addrs: cl.Addrs, Cluster: true}).(*goredis.ClusterClient)
	t.Cleanup(func() { c.Close() })
	waitWritable(t, c)
	s := mustNew(t, c, rs.Options{Logger: quiet})
	// Find the master holding {cfg} and a user whose shard lives elsewhere.
	cfgNode := nodeOf(t, c, "rg:{cfg}:meta")
	user := ""
	for i := 0; user == ""; i++ {
		u := "z" + strconv.Itoa(i)
		if nodeOf(t, c, "rg:{"+strconv.Itoa(store.ShardOf(u, s.Shards()))+"}:seq") != cfgNode {
			user = u
		}
	}
	mustApply(t, s, consent.DeclareTag(user, "interest:ski"))
	for _, srv := range cl.Servers {
		if srv.Addr == cfgNode {
			srv.Stop()
		}
	}
	start := time.Now()
	a, err := s.Apply(ctx, consent.SetPersonalization(user, false))
	if err != nil || a.Receipt == nil {
		t.Fatalf("opt-out with the settings node down: %v", err)
	}
	t.Logf("opt-out acknowledged in %v with the settings node down", time.Since(start))
	if _, err := s.Apply(ctx, consent.DeclareTag(user, "interest:golf")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a widening change with the settings node down: err = %v, want store.ErrUnavailable", err)
	}
}

func waitWritable(t *testing.T, c *goredis.ClusterClient) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 64; i++ {
		for c.Set(context.Background(), "probe:{"+strconv.Itoa(i)+"}", "1", time.Minute).Err() != nil {
			if time.Now().After(deadline) {
				t.Fatal("cluster not writable")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// nodeOf returns the address of the master serving key.
func nodeOf(t *testing.T, c *goredis.ClusterClient, key string) string {
	t.Helper()
	n, err := c.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return n.Options().Addr
}
