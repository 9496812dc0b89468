package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

func mustNew(tb testing.TB, c goredis.UniversalClient, opts rs.Options) *rs.Store {
	tb.Helper()
	opts.Init = true
	s, err := rs.New(context.Background(), c, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func mustApply(tb testing.TB, s store.Store, ch consent.Change) store.Applied {
	tb.Helper()
	a, err := s.Apply(context.Background(), ch)
	if err != nil {
		tb.Fatalf("Apply(%s %s): %v", ch.Op, ch.UserID, err)
	}
	return a
}

func TestShardCountIsFixedAtFirstStart(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	s := mustNew(t, c, rs.Options{Prefix: p, Shards: 8})
	if got := s.Shards(); got != 8 {
		t.Fatalf("Shards() = %d, want 8", got)
	}
	if got := mustNew(t, c, rs.Options{Prefix: p}).Shards(); got != 8 {
		t.Fatalf("reopen with Shards 0: Shards() = %d, want the stored 8", got)
	}
	if _, err := rs.New(ctx, c, rs.Options{Prefix: p, Shards: 4}); err == nil {
		t.Fatal("reopen with Shards 4 over a keyspace of 8: want an error, got nil")
	}
	if _, err := rs.New(ctx, c, rs.Options{Prefix: "bad{prefix}"}); err == nil {
		t.Fatal("prefix with braces: want an error, got nil")
	}
}

// Every key a user's change touches carries the user's shard hash tag, so
// one change is one slot (and so runs on a Redis Cluster).
func TestUserKeysShareOneHashTag(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	s := mustNew(t, c, rs.Options{Prefix: p})
	user := "alice"
	mustApply(t, s, consent.DeclareTag(user, tags.MustParse("interest:ski")))
	mustApply(t, s, consent.RefuseChannel(user, "sms"))
	want := fmt.Sprintf("{%d}", store.ShardOf(user, s.Shards()))
	var keys []string
	it := c.Scan(ctx, 0, p+":*", 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if strings.Contains(k, "{cfg}") {
			continue
		}
		if strings.HasSuffix(k, ":seq") && !strings.Contains(k, want) {
			continue // every shard's counter carries the keyspace's identity from the start
		}
		n++
		first := k[strings.Index(k, "{") : strings.Index(k, "}")+1]
		if first != want {
			t.Errorf("key %q has hash tag %s, want %s", k, first, want)
		}
	}
	if n < 4 {
		t.Fatalf("found %d user keys (%v), want record, receipts, log, index, counter", n, keys)
	}
}

// A changelog trimmed past a reader's position is reported exactly: a reader
// that fell behind gets ErrTrimmed, one that kept up does not.
func TestTrimmedChangelogIsDetected(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	s := mustNew(t, c, rs.Options{Prefix: redistest.Prefix(t, c), Shards: 1, ChangelogMaxLen: 10})
	var keptUp store.Position
	for i := 0; i < 400; i++ {
		a := mustApply(t, s, consent.SetPersonalization("u", i%2 == 1))
		if i == 398 {
			keptUp = a.Pos
		}
	}
	if _, err := s.ReadChangelog(ctx, 0, "", 10, 0); !errors.Is(err, store.ErrTrimmed) {
		t.Fatalf("read from zero after trimming: err = %v, want ErrTrimmed", err)
	}
	evs, err := s.ReadChangelog(ctx, 0, keptUp, 10, 0)
	if err != nil || len(evs) != 1 || evs[0].Record.Version != 400 {
		t.Fatalf("read after the second-last entry: %d events, err %v; want the last one (version 400)", len(evs), err)
	}
	tail, err := s.Tail(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if evs, err := s.ReadChangelog(ctx, 0, tail, 10, 0); err != nil || len(evs) != 0 {
		t.Fatalf("read after tail: %d events, err %v; want none", len(evs), err)
	}
}

// Settings changed through one Store are used by another at once: the
// version check on every write sees the change.
func TestSettingsChangeSeenByOtherInstance(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	a := mustNew(t, c, rs.Options{Prefix: p})
	b := mustNew(t, c, rs.Options{Prefix: p})
	if _, err := b.Apply(ctx, consent.RefuseChannel("u", "wechat")); !errors.Is(err, consent.ErrUnknownChannel) {
		t.Fatalf("refuse unknown channel: err = %v, want ErrUnknownChannel", err)
	}
	set, err := a.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set.Channels = append(set.Channels, "wechat")
	if _, _, err := a.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	ap := mustApply(t, b, consent.RefuseChannel("u", "wechat"))
	if !ap.Record.State.ChannelRefused("wechat") {
		t.Fatalf("after the channel was added elsewhere: refused = %v, want wechat", ap.Record.State.RefusedChannels)
	}
}

// Two store instances (two processes) writing one user at once still give
// dense versions, one receipt and one changelog entry per change.
func TestConcurrentWritersAcrossInstances(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	insts := []*rs.Store{mustNew(t, c, rs.Options{Prefix: p}), mustNew(t, c, rs.Options{Prefix: p})}
	const perWriter = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4*perWriter)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := insts[w%2]
			for i := 0; i < perWriter; i++ {
				tag := tags.Tag(fmt.Sprintf("w%d:t%d", w, i))
				if _, err := s.Apply(ctx, consent.DeclareTag("shared", tag)); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent apply: %v", err)
	}
	rec, err := insts[0].Get(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Version != 4*perWriter || len(rec.Tags.Entries) != 4*perWriter {
		t.Fatalf("version %d with %d tags, want %d and %d", rec.Version, len(rec.Tags.Entries), 4*perWriter, 4*perWriter)
	}
	rcs, err := insts[1].Receipts(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != 4*perWriter {
		t.Fatalf("%d receipts, want %d", len(rcs), 4*perWriter)
	}
	if err := consent.VerifyChain(rcs, consent.Head{Version: rec.Version, LastHash: rec.LastHash}, nil); err != nil {
		t.Fatalf("receipt chain: %v", err)
	}
}

// When Redis is down every call fails with ErrUnavailable (never a made-up
// answer), and the store works again once Redis is back.
func TestUnavailableAndRecovery(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	c := srv.Client(&goredis.Options{MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	s := mustNew(t, c, rs.Options{})
	mustApply(t, s, consent.SetPersonalization("u", false))
	srv.Stop()
	if _, err := s.Get(ctx, "u"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get with Redis down: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.Apply(ctx, consent.SetPersonalization("u", true)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Apply with Redis down: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.ReadChangelog(ctx, 0, "", 10, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ReadChangelog with Redis down: err = %v, want ErrUnavailable", err)
	}
	srv.Start()
	rec, err := s.Get(ctx, "u")
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if !rec.State.PersonalizationOff || rec.Version != 1 {
		t.Fatalf("after restart with AOF: %+v, want the opt-out at version 1", rec)
	}
	mustApply(t, s, consent.SetPersonalization("u", true))
}
