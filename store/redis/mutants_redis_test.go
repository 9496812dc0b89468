package redis_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

// beforeScript is a go-redis hook that, once armed, runs fn just before the
// next script call whose first key (the user's record) ends with suffix:
// it puts another process's work between the store's read of a record and
// its compare-and-set script.
type beforeScript struct {
	suffix string
	armed  atomic.Bool
	ran    atomic.Bool
	fn     func(ctx context.Context, key string)
}

func (h *beforeScript) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *beforeScript) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.maybe(ctx, cmd)
		return next(ctx, cmd)
	}
}

func (h *beforeScript) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		for _, cmd := range cmds {
			h.maybe(ctx, cmd)
		}
		return next(ctx, cmds)
	}
}

func (h *beforeScript) maybe(ctx context.Context, cmd goredis.Cmder) {
	name := strings.ToLower(cmd.Name())
	if name != "evalsha" && name != "eval" {
		return
	}
	args := cmd.Args() // evalsha sha numkeys key1 ...
	if len(args) < 4 {
		return
	}
	if k, _ := args[3].(string); strings.HasSuffix(k, h.suffix) && h.armed.CompareAndSwap(true, false) {
		h.fn(ctx, k)
		h.ran.Store(true)
	}
}

// A record lost between the store's read and its write must not be
// re-created from empty: here the user is new when the store reads
// (no record, no receipts), then another process writes the user's first
// change and the record is lost (evicted, deleted) while its receipt
// remains, all before the store's script runs. The script itself must see
// the receipts and refuse (store.ErrCorrupt), leaving the record absent.
// Found by mutation testing (mutants/mutants.txt,
// redis-apply-no-lost-record-check): TestLostAndCorruptRecords is caught
// by the Go-side check before the script, so the script's own check, the
// one that closes the race, was untested.
func TestLostRecordNotRecreatedMidWrite(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	other := redistest.Client(t) // another process, without the hook
	p := redistest.Prefix(t, c)
	s := mustNew(t, c, rs.Options{Prefix: p, Logger: quiet})
	s2 := mustNew(t, other, rs.Options{Prefix: p, Logger: quiet})
	mustApply(t, s, consent.SetPersonalization("someone-else", false)) // scripts loaded, keyspace in use

	var userKey string
	h := &beforeScript{suffix: ":u:bob", fn: func(ctx context.Context, key string) {
		if _, err := s2.Apply(ctx, consent.DeclareTag("bob", tags.MustParse("interest:ski"))); err != nil {
			t.Errorf("the other process's write: %v", err)
		}
		userKey = key
		if n, err := other.Del(ctx, key).Result(); n != 1 || err != nil { // the record is lost, its receipt stays
			t.Errorf("deleting bob's record %s: %d %v", key, n, err)
		}
	}}
	c.AddHook(h)
	h.armed.Store(true)
	_, err := s.Apply(ctx, consent.SetPersonalization("bob", false))
	if !h.ran.Load() {
		t.Fatal("the hook never ran: the test tests nothing")
	}
	if !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Apply over a record lost mid-write: err = %v, want store.ErrCorrupt", err)
	}
	if userKey != "" {
		if n, _ := other.Exists(ctx, userKey).Result(); n != 0 {
			t.Errorf("the lost record was re-created from empty")
		}
	}
}
