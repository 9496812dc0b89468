package index_test

// Partial state in a real Redis: records deleted, corrupted or renumbered,
// user lists edited, changelogs behind a checkpoint. The index never
// crashes, leaves the users in doubt out of every audience, counts them, and
// answers exactly for everyone else.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

const partialShards = 4

// keyspace is a Redis store with its client and prefix, for tests that
// damage keys behind the store's back.
type keyspace struct {
	st     *rs.Store
	c      goredis.UniversalClient
	prefix string
}

func newKeyspace(t *testing.T, opts rs.Options) *keyspace {
	t.Helper()
	c := redistest.Client(t)
	if opts.Prefix == "" {
		opts.Prefix = redistest.Prefix(t, c)
	}
	return &keyspace{st: redisStore(t, opts), c: c, prefix: opts.Prefix}
}

func (k *keyspace) tag(shard int) string { return k.prefix + ":{" + strconv.Itoa(shard) + "}:" }
func (k *keyspace) user(id string) string {
	return k.tag(store.ShardOf(id, k.st.Shards())) + "u:" + id
}
func (k *keyspace) receipts(id string) string {
	return k.tag(store.ShardOf(id, k.st.Shards())) + "r:" + id
}
func (k *keyspace) users(shard int) string { return k.tag(shard) + "users" }
func (k *keyspace) log(shard int) string   { return k.tag(shard) + "log" }

// number returns the user's number as the store has it.
func (k *keyspace) number(t *testing.T, id string) uint32 {
	t.Helper()
	rec, err := k.st.Get(context.Background(), id)
	if err != nil || rec.Number == 0 {
		t.Fatalf("Get(%s): number %d, %v", id, rec.Number, err)
	}
	return rec.Number
}

// damage is one way of breaking a user's keys; each breaks exactly the
// user's own place in the index (one unknown number).
type damage struct {
	name string
	do   func(t *testing.T, k *keyspace, victim string, others []string)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sameShard returns a user of others in victim's shard.
func sameShard(t *testing.T, k *keyspace, victim string, others []string) string {
	t.Helper()
	n := k.st.Shards()
	for _, o := range others {
		if store.ShardOf(o, n) == store.ShardOf(victim, n) {
			return o
		}
	}
	t.Fatal("no other user in the shard")
	return ""
}

func otherShard(t *testing.T, k *keyspace, victim string, others []string) string {
	t.Helper()
	n := k.st.Shards()
	for _, o := range others {
		if store.ShardOf(o, n) != store.ShardOf(victim, n) {
			return o
		}
	}
	t.Fatal("no user in another shard")
	return ""
}

// listIndex returns the position of victim in its shard's user list.
func listIndex(t *testing.T, k *keyspace, victim string) int64 {
	_, local := store.NumberShard(k.number(t, victim), k.st.Shards())
	return int64(local - 1)
}

var damages = []damage{
	{"record deleted, receipts kept", func(t *testing.T, k *keyspace, v string, _ []string) {
		must(t, k.c.Del(context.Background(), k.user(v)).Err())
	}},
	{"record and receipts deleted", func(t *testing.T, k *keyspace, v string, _ []string) {
		must(t, k.c.Del(context.Background(), k.user(v), k.receipts(v)).Err())
	}},
	{"record JSON garbage", func(t *testing.T, k *keyspace, v string, _ []string) {
		must(t, k.c.HSet(context.Background(), k.user(v), "d", "{\"user_id\":\x00garbage").Err())
	}},
	{"record of another user", func(t *testing.T, k *keyspace, v string, o []string) {
		d, err := k.c.HGet(context.Background(), k.user(sameShard(t, k, v, o)), "d").Result()
		must(t, err)
		must(t, k.c.HSet(context.Background(), k.user(v), "d", d).Err())
	}},
	{"record version field garbage", func(t *testing.T, k *keyspace, v string, _ []string) {
		must(t, k.c.HSet(context.Background(), k.user(v), "v", "x9").Err())
	}},
	{"number 0", func(t *testing.T, k *keyspace, v string, _ []string) {
		must(t, k.c.HSet(context.Background(), k.user(v), "n", "0").Err())
	}},
	{"number of another user", func(t *testing.T, k *keyspace, v string, o []string) {
		n := k.number(t, sameShard(t, k, v, o))
		must(t, k.c.HSet(context.Background(), k.user(v), "n", n).Err())
	}},
	{"number out of range", func(t *testing.T, k *keyspace, v string, _ []string) {
		must(t, k.c.HSet(context.Background(), k.user(v), "n", "4000000000").Err())
	}},
	{"number of another shard", func(t *testing.T, k *keyspace, v string, o []string) {
		n := k.number(t, otherShard(t, k, v, o))
		must(t, k.c.HSet(context.Background(), k.user(v), "n", n).Err())
	}},
	{"list entry garbage", func(t *testing.T, k *keyspace, v string, _ []string) {
		sh := store.ShardOf(v, k.st.Shards())
		must(t, k.c.LSet(context.Background(), k.users(sh), listIndex(t, k, v), "not a user id!").Err())
	}},
	{"list entry of another shard's user", func(t *testing.T, k *keyspace, v string, o []string) {
		sh := store.ShardOf(v, k.st.Shards())
		must(t, k.c.LSet(context.Background(), k.users(sh), listIndex(t, k, v), otherShard(t, k, v, o)).Err())
	}},
	{"list entry repeats another user", func(t *testing.T, k *keyspace, v string, o []string) {
		sh := store.ShardOf(v, k.st.Shards())
		must(t, k.c.LSet(context.Background(), k.users(sh), listIndex(t, k, v), sameShard(t, k, v, o)).Err())
	}},
	{"list entry empty", func(t *testing.T, k *keyspace, v string, _ []string) {
		sh := store.ShardOf(v, k.st.Shards())
		must(t, k.c.LSet(context.Background(), k.users(sh), listIndex(t, k, v), "").Err())
	}},
}

// populate gives n users random histories (every user at least one change)
// and returns them.
func populate(t *testing.T, st store.Store, r *rand.Rand, n int) []string {
	t.Helper()
	ctx := context.Background()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("p%03d", i)
		if _, err := st.Apply(ctx, consent.DeclareTag(users[i], tagPool[r.IntN(3)])); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4*n; i++ {
		st.Apply(ctx, randomChange(r, users[r.IntN(n)])) // refusals are fine
	}
	return users
}

// checkAudiences compares random audiences of x with a brute-force
// evaluation over the users known to be intact.
func checkAudiences(t *testing.T, st store.Store, x *index.Index, intact []string, r *rand.Rand) {
	t.Helper()
	for i := 0; i < 60; i++ {
		seg := randomSegment(r, 3)
		if i == 0 {
			seg = tags.MustParseSegment("!erased")
		}
		ch := channelPool[r.IntN(len(channelPool))]
		targeted := r.IntN(2) == 0
		got := audienceIDs(t, x, seg, ch, targeted)
		want := bruteForce(t, st, intact, seg, ch, targeted)
		if !equalIDs(got, want) {
			t.Fatalf("Audience(%s, %s, targeted=%t) over damaged keys\n got  %d %v\n want %d %v", seg, ch, targeted, len(got), got, len(want), want)
		}
	}
}

// Every kind of damage at once, on random users: Build (what a server does
// at start without a checkpoint) neither crashes nor fails; each damaged
// user is unknown and in no audience; every other user is exactly where
// the records put them; a checkpoint keeps the unknown users; and the index
// keeps following the changelog.
func TestBuildOverDamagedKeys(t *testing.T) {
	ctx := context.Background()
	k := newKeyspace(t, rs.Options{Shards: partialShards})
	r := rand.New(rand.NewPCG(10, 4))
	users := populate(t, k.st, r, 160)
	perm := r.Perm(len(users))
	victims := map[string]string{} // user -> damage
	var order []string
	for i, d := range damages {
		for j := 0; j < 2; j++ {
			v := users[perm[2*i+j]]
			victims[v] = d.name
			order = append(order, v)
		}
	}
	var intact []string
	for _, u := range users {
		if victims[u] == "" {
			intact = append(intact, u)
		}
	}
	for i, v := range order {
		damages[i/2].do(t, k, v, intact)
	}

	x, err := index.Build(ctx, k.st)
	if err != nil {
		t.Fatalf("Build over damaged keys: %v", err)
	}
	if got := x.Unknown(); got != uint64(len(victims)) {
		t.Errorf("Unknown() = %d, want %d (one per damaged user)", got, len(victims))
	}
	all := audienceIDs(t, x, tags.MustParseSegment("!erased"), "push", false)
	for _, id := range all {
		if d := victims[id]; d != "" {
			t.Errorf("user %s (%s) is in an audience", id, d)
		}
	}
	checkAudiences(t, k.st, x, intact, r)

	// A checkpoint keeps the unknown users.
	data, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := index.Unmarshal(data)
	if err != nil || !y.Equal(x) || y.Unknown() != x.Unknown() {
		t.Fatalf("checkpoint round trip: %v (unknown %d vs %d)", err, y.Unknown(), x.Unknown())
	}

	// The index keeps following: changes to intact users, and a user whose
	// keys were all deleted starts again as a new user (a new number).
	var reborn string
	for _, v := range order {
		if victims[v] == "record and receipts deleted" {
			reborn = v
			break
		}
	}
	if _, err := k.st.Apply(ctx, consent.DeclareTag(reborn, "interest:golf")); err != nil {
		t.Fatalf("a user whose keys were all deleted: %v", err)
	}
	for i := 0; i < 200; i++ {
		k.st.Apply(ctx, randomChange(r, intact[r.IntN(len(intact))]))
	}
	for _, z := range []*index.Index{x, y} {
		follow(t, k.st, z)
		checkAudiences(t, k.st, z, append(intact, reborn), r)
		if z.Unknown() != uint64(len(victims)) {
			t.Errorf("after following: Unknown() = %d, want %d", z.Unknown(), len(victims))
		}
	}
}

// A checkpoint whose positions are beyond the store's logs (a restore from
// an older snapshot, a failover to a lagging replica, another keyspace's
// checkpoint) is never replayed: CatchUp rebuilds.
func TestCatchUpBehindCheckpointRebuilds(t *testing.T) {
	ctx := context.Background()
	k := newKeyspace(t, rs.Options{Shards: partialShards})
	r := rand.New(rand.NewPCG(3, 3))
	users := populate(t, k.st, r, 40)
	x, err := index.Build(ctx, k.st)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := x.MarshalBinary()

	t.Run("entries removed from the end of a log", func(t *testing.T) {
		// The newest entries of shard 1 are gone, as after a failover to
		// a replica that had not received them.
		msgs, err := k.c.XRevRangeN(ctx, k.log(1), "+", "-", 3).Result()
		must(t, err)
		for _, m := range msgs {
			must(t, k.c.XDel(ctx, k.log(1), m.ID).Err())
		}
		old, _ := index.Unmarshal(data)
		got, rebuilt, err := index.CatchUp(ctx, k.st, old)
		if err != nil || !rebuilt {
			t.Fatalf("CatchUp past the log's tail: rebuilt %t, %v; want a rebuild", rebuilt, err)
		}
		fresh, _ := index.Build(ctx, k.st)
		if !got.Equal(fresh) {
			t.Fatal("the rebuilt index differs from a fresh build")
		}
		checkAudiences(t, k.st, got, users, r)
	})
	t.Run("checkpoint of a keyspace further ahead", func(t *testing.T) {
		other := newKeyspace(t, rs.Options{Shards: partialShards})
		populate(t, other.st, r, 10)
		old, _ := index.Unmarshal(data)
		got, rebuilt, err := index.CatchUp(ctx, other.st, old)
		if err != nil || !rebuilt {
			t.Fatalf("CatchUp with another keyspace's checkpoint: rebuilt %t, %v; want a rebuild", rebuilt, err)
		}
		if fresh, _ := index.Build(ctx, other.st); !got.Equal(fresh) {
			t.Fatal("the rebuilt index differs from a fresh build")
		}
	})
}
