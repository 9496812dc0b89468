package sdk_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

func scanLedger(t *testing.T, l store.Ledger) []store.LedgerEntry {
	t.Helper()
	var out []store.LedgerEntry
	if err := l.ScanLedger(context.Background(), time.Time{}, time.Time{}, func(e store.LedgerEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	personalRanker = func(context.Context, sdk.RankRequest) ([]string, error) { return []string{"p1", "p2"}, nil }
	plainRanker    = func(context.Context, sdk.RankRequest) ([]string, error) { return []string{"f1"}, nil }
)

func TestLedgerRecordsWithBasis(t *testing.T) {
	st := memoryStore(t)
	c := newClient(t, st, sdk.Config{Ledger: st, Logger: quiet})
	ctx := context.Background()
	mustApply(t, c, consent.DeclareTag("ann", tags.MustParse("interest:ski")))
	mustApply(t, c, consent.SetPersonalization("bob", false))
	ra, err := c.Recommend(ctx, "ann", personalRanker, plainRanker)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := c.Recommend(ctx, "bob", personalRanker, plainRanker)
	pd, _ := c.DecidePush(ctx, "ann", "sms", true)
	pushTags := []tags.Tag{"interest:ski"}
	if err := c.RecordPush(ctx, sdk.Push{UserID: "ann", Campaign: "spring", Decision: pd, Tags: pushTags}); err != nil {
		t.Fatal(err)
	}
	pushTags[0] = "interest:changed-after"                                               // the ledger keeps its own copy
	if err := c.RecordPush(ctx, sdk.Push{UserID: "bob", Channel: "email"}); err != nil { // not asked
		t.Fatal(err)
	}
	if err := c.RecordProvision(ctx, sdk.Provision{Recipient: "vendor-x", Purpose: "marketing", Segment: "interest:ski", Channel: "sms", Targeted: true, Count: 1}); err != nil {
		t.Fatal(err)
	}
	var got []store.LedgerEntry
	eventually(t, 3*time.Second, "5 ledger entries", func() bool { got = scanLedger(t, st); return len(got) == 5 })
	by := map[string]store.LedgerEntry{}
	for _, e := range got {
		by[e.Kind.String()+"/"+e.UserID] = e
	}
	ea := by["exposure/ann"]
	if ea.DecisionID != ra.ID || ea.RecordVersion != ra.RecordVersion || ea.SettingsVersion != ra.SettingsVersion || ea.Mode != store.ModePersonalized || !ea.Decided || ea.Items != 2 || ea.Reason != consent.ReasonPersonalized {
		t.Errorf("ann's exposure = %+v, want the basis of %+v", ea, ra)
	}
	if eb := by["exposure/bob"]; eb.Mode != store.ModeNonPersonalized || eb.Reason != consent.ReasonOptedOut || eb.DecisionID != rb.ID {
		t.Errorf("bob's exposure = %+v", eb)
	}
	if p := by["push/ann"]; p.DecisionID != pd.ID || p.Mode != store.ModeAllowed || p.Channel != "sms" || !p.Targeted || p.Campaign != "spring" || len(p.Tags) != 1 || p.Tags[0] != "interest:ski" {
		t.Errorf("ann's push = %+v", p)
	}
	if p := by["push/bob"]; p.Decided || p.Mode != "" || p.Channel != "email" {
		t.Errorf("bob's undecided push = %+v", p)
	}
	if p := by["provision/"]; p.Recipient != "vendor-x" || p.Count != 1 {
		t.Errorf("provision = %+v", p)
	}
	// Bad pushes queue nothing.
	for _, p := range []sdk.Push{{UserID: "bad id", Channel: "sms"}, {UserID: "ann", Channel: "fax"}, {UserID: "ann", Channel: "sms", Campaign: "a b"},
		{UserID: "ann", Channel: "sms", Tags: []tags.Tag{"Bad Tag"}}, {UserID: "ann", Channel: "sms", Tags: make([]tags.Tag, store.MaxLedgerTags+1)}} {
		if err := c.RecordPush(ctx, p); err == nil {
			t.Errorf("RecordPush(%+v): nil error", p)
		}
	}
	if err := c.RecordExposure(sdk.Exposed{UserID: "ann", Tags: []tags.Tag{"Bad Tag"}}); !errors.Is(err, consent.ErrInvalidChange) {
		t.Errorf("exposure with a bad tag: %v", err)
	}
	if err := c.RecordProvision(ctx, sdk.Provision{Purpose: "x", Segment: "*"}); !errors.Is(err, consent.ErrInvalidChange) {
		t.Errorf("provision without recipient: %v", err)
	}
	time.Sleep(250 * time.Millisecond)
	if n := len(scanLedger(t, st)); n != 5 {
		t.Errorf("after bad records the ledger holds %d entries, want 5", n)
	}
	exp, _ := store.ExportUser(ctx, st, "ann")
	if len(exp.Ledger) != 2 {
		t.Errorf("ann's export holds %d ledger entries, want 2", len(exp.Ledger))
	}
	// Without a ledger.
	c2 := newClient(t, memoryStore(t), sdk.Config{Logger: quiet})
	if err := c2.RecordPush(ctx, sdk.Push{UserID: "ann", Channel: "sms"}); !errors.Is(err, sdk.ErrNoLedger) {
		t.Errorf("RecordPush without a ledger: %v", err)
	}
}

func TestLedgerSampling(t *testing.T) {
	st := memoryStore(t)
	c := newClient(t, st, sdk.Config{Ledger: st, LedgerSampling: 0.1, Logger: quiet})
	for i := 0; i < 2000; i++ {
		c.Recommend(context.Background(), "ann", personalRanker, plainRanker)
	}
	eventually(t, 3*time.Second, "queue drained", func() bool { s := c.Stats(); return s.LedgerSent+s.LedgerSampledOut == 2000 })
	s := c.Stats()
	if s.LedgerSent+s.LedgerSampledOut != 2000 || s.LedgerSent < 120 || s.LedgerSent > 290 {
		t.Errorf("sampled at 10%%: sent %d, left out %d of 2000", s.LedgerSent, s.LedgerSampledOut)
	}
	if _, err := sdk.New(context.Background(), st, sdk.Config{LedgerSampling: 1.5}); !errors.Is(err, sdk.ErrInvalidConfig) {
		t.Errorf("LedgerSampling 1.5: %v", err)
	}
}

// blockingLedger is a real store whose ledger writes wait until released.
type blockingLedger struct {
	store.Ledger
	gate chan struct{}
	once sync.Once
}

func (b *blockingLedger) AppendLedger(ctx context.Context, es []store.LedgerEntry) error {
	select {
	case <-b.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.Ledger.AppendLedger(ctx, es)
}

func (b *blockingLedger) release() { b.once.Do(func() { close(b.gate) }) }

// A full queue drops and counts; Recommend never waits for it.
func TestLedgerFullQueueNeverBlocks(t *testing.T) {
	st := memoryStore(t)
	bl := &blockingLedger{Ledger: st, gate: make(chan struct{})}
	defer bl.release()
	c := newClient(t, st, sdk.Config{Ledger: bl, LedgerBuffer: 16, Logger: quiet})
	ctx := context.Background()
	c.Recommend(ctx, "ann", personalRanker, plainRanker) // warm the cache
	const n = 5000
	var worst time.Duration
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := c.Recommend(ctx, "ann", personalRanker, plainRanker); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(t0))
	}
	total := time.Since(start)
	s := c.Stats()
	dropped := s.LedgerDropped[store.LedgerExposure]
	t.Logf("%d Recommend with a stuck ledger: %v total, %v each, worst %v; dropped %d", n, total, total/n, worst, dropped)
	if dropped < n-16-ledgerBatchSlack {
		t.Errorf("dropped %d of %d with a queue of 16 and a stuck store", dropped, n)
	}
	if worst > 50*time.Millisecond || total/n > 50*time.Microsecond {
		t.Errorf("Recommend waited for the full queue: worst %v, mean %v", worst, total/n)
	}
	// The flusher may still take a batch off the queue before it is stuck:
	// pushes then fill it, and the next one is refused.
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = c.RecordPush(ctx, sdk.Push{UserID: "ann", Channel: "sms"})
	}
	if !errors.Is(err, sdk.ErrLedgerFull) {
		t.Errorf("RecordPush on a full queue: %v, want ErrLedgerFull", err)
	}
	bl.release()
	// Once the store takes writes again, the drops reach it.
	eventually(t, 10*time.Second, "drops reported to the store", func() bool {
		d, _ := st.LedgerDrops(ctx)
		s := c.Stats()
		return d[store.LedgerExposure] == s.LedgerDropped[store.LedgerExposure] && d[store.LedgerPush] == s.LedgerDropped[store.LedgerPush] && d[store.LedgerPush] > 0
	})
}

// ledgerBatchSlack is how many entries the flusher may hold besides the
// queue (one batch taken off the queue while the write is stuck).
const ledgerBatchSlack = 512

// Redis hangs (SIGSTOP) while recording: nothing crashes, Recommend does
// not wait, the failed batches are counted as drops, and the counts reach
// Redis once it is back.
func TestLedgerRedisDown(t *testing.T) {
	srv := redistest.StartServer(t, "--appendonly", "no")
	rc := srv.Client(&goredis.Options{MaxRetries: -1, DialTimeout: 100 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { rc.Close() })
	st := redisStore(t, rc, "rg", rs.Options{Shards: 2, Logger: quiet})
	c := newClient(t, st, sdk.Config{Ledger: st, Lease: 400 * time.Millisecond, Logger: quiet})
	ctx := context.Background()
	mustApply(t, c, consent.DeclareTag("ann", tags.MustParse("interest:ski")))
	c.Recommend(ctx, "ann", personalRanker, plainRanker)
	eventually(t, 3*time.Second, "first exposure written", func() bool { return c.Stats().LedgerSent == 1 })

	srv.Pause()
	paused := true
	defer func() {
		if paused {
			srv.Resume()
		}
	}()
	var worst time.Duration
	deadline := time.Now().Add(1500 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		t0 := time.Now()
		c.Recommend(ctx, "ann", personalRanker, plainRanker) // answers from cache, then fails closed: never waits
		worst = max(worst, time.Since(t0))
		n++
		time.Sleep(time.Millisecond)
	}
	eventually(t, 5*time.Second, "a failed batch counted", func() bool { return c.Stats().LedgerDropped[store.LedgerExposure] > 0 })
	s := c.Stats()
	t.Logf("Redis stopped: %d Recommend calls, worst %v; dropped %d, sent %d", n, worst, s.LedgerDropped[store.LedgerExposure], s.LedgerSent)
	if worst > 100*time.Millisecond { // blocking would take the store timeout (300 ms) or forever
		t.Errorf("Recommend waited %v while Redis was down", worst)
	}
	srv.Resume()
	paused = false
	deadline = time.Now().Add(10 * time.Second)
	for {
		d, err := st.LedgerDrops(ctx)
		if err == nil && d[store.LedgerExposure] > 0 && d[store.LedgerExposure] == c.Stats().LedgerDropped[store.LedgerExposure] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the drops did not reach Redis: store says %v (%v), client %v", d, err, c.Stats().LedgerDropped)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every exposure is accounted for: written or counted as dropped.
	eventually(t, 10*time.Second, "every exposure written or counted", func() bool {
		s := c.Stats()
		return s.LedgerSent+s.LedgerDropped[store.LedgerExposure] == uint64(n+1)
	})
}
