package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/recguard/recguard/store"
)

// Config configures a Client. Every zero field means its documented
// default; DefaultConfig spells them out.
type Config struct {
	// CacheSize is the most users kept in memory. Zero means 1,000,000.
	// The cache is set-associative with 8 ways per set, so the real
	// capacity is rounded up to a power of two times 8.
	CacheSize int
	// Lease is how long the cache is trusted after a follower last
	// confirmed it was current. Past it, Decide and CanPush fail closed with
	// consent.ReasonUnverified. Zero means 2 s.
	Lease time.Duration
	// SettingsLease is how long the settings (the kill switch, the
	// taxonomy, the channels) are trusted after the settings changelog's
	// follower last confirmed them. Past it every answer fails closed with
	// consent.ReasonUnverified. It is longer than Lease by default so that
	// losing the Redis node that holds the settings (a Redis Cluster's {cfg}
	// slot) for a failover does not stop decisions for users whose records
	// live on other nodes; the price is that a settings change made while
	// this instance cannot reach that node (a partition) reaches it up to
	// SettingsLease late. Zero means 30 s; it is never shorter than Lease.
	SettingsLease time.Duration
	// PollBlock is how long one changelog read waits for news. It must be
	// well under Lease. Zero means Lease/4.
	PollBlock time.Duration
	// MissBatch is the most users read in one round trip on cache misses.
	// Zero means 256.
	MissBatch int
	// Loaders is the number of concurrent miss readers. Zero means 4.
	Loaders int
	// InstanceID names this client among live instances. Empty means a
	// random ID.
	InstanceID string
	// Heartbeat is how often the instance announces itself and its applied
	// positions (store.Presence); it counts as gone after 3 missed
	// heartbeats. Zero means 1 s.
	Heartbeat time.Duration
	// WaitForAll makes Apply return only after every live instance applied
	// the change (or ErrNotPropagated after PropagationTimeout).
	WaitForAll bool
	// PropagationTimeout bounds WaitForAll. Zero means 2 s.
	PropagationTimeout time.Duration
	// ExposureBuffer bounds the exposures waiting for ExposureSink; when it
	// is full new exposures are dropped and counted, never waited for. Zero
	// means 8192.
	ExposureBuffer int
	// ExposureSink, when set, receives batches of exposure events recorded
	// by Recommend, from a background goroutine. Nil records nothing.
	ExposureSink func(ctx context.Context, batch []Exposure) error
	// Ledger, when set, receives the ledger of exposures and pushes
	// (store.Ledger, usually the client's own store): Recommend queues an
	// exposure with its decision's basis for every answer (sampled, see
	// LedgerSampling), RecordPush a push, RecordProvision writes a
	// provision record. Queuing never blocks and allocates nothing: a full
	// queue drops the entry and counts it (Stats.LedgerDropped); a
	// background goroutine writes batches and reports the drops to the
	// store (store.Ledger.AddLedgerDrops). Nil records nothing.
	Ledger store.Ledger
	// LedgerBuffer bounds the ledger entries waiting to be written. Zero
	// means 8192.
	LedgerBuffer int
	// LedgerSampling is the share of exposures recorded in the ledger, in
	// (0, 1]. Zero means 1: every exposure. Pushes and provisions are
	// never sampled.
	LedgerSampling float64
	// Audiences keeps a roaring-bitmap index of every user's tags and
	// consent facts, fed by the same changelog reads as the cache, so
	// Audience can answer. It costs memory for every user in the store
	// (see docs/results.md). The store must list users and read them in
	// batches (store.UserLister, store.BatchGetter) to build the index.
	Audiences bool
	// CheckpointName names the index checkpoint in the store (when it is a
	// store.Checkpointer). Empty means "audience".
	CheckpointName string
	// CheckpointEvery is how often the index is checkpointed. Zero means
	// never from this instance (another may do it).
	CheckpointEvery time.Duration
	// ErasureCheckpointDelay is how soon after the index applied an
	// erasure it is checkpointed again (when CheckpointEvery is set), so
	// no checkpoint keeps an erased user for long (Art. 24). Zero means
	// 10 s.
	ErasureCheckpointDelay time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives the client's warnings (a store that went back in
	// time, lost data, corrupt records). Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	c := Config{}
	c.fill()
	return c
}

func (c *Config) fill() {
	if c.CacheSize == 0 {
		c.CacheSize = 1_000_000
	}
	if c.Lease == 0 {
		c.Lease = 2 * time.Second
	}
	if c.SettingsLease == 0 {
		c.SettingsLease = 30 * time.Second
	}
	if c.SettingsLease < c.Lease {
		c.SettingsLease = c.Lease
	}
	if c.PollBlock == 0 {
		c.PollBlock = c.Lease / 4
	}
	if c.MissBatch == 0 {
		c.MissBatch = 256
	}
	if c.Loaders == 0 {
		c.Loaders = 4
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = time.Second
	}
	if c.PropagationTimeout == 0 {
		c.PropagationTimeout = 2 * time.Second
	}
	if c.ExposureBuffer == 0 {
		c.ExposureBuffer = 8192
	}
	if c.LedgerBuffer == 0 {
		c.LedgerBuffer = 8192
	}
	if c.LedgerSampling == 0 {
		c.LedgerSampling = 1
	}
	if c.CheckpointName == "" {
		c.CheckpointName = "audience"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the configuration (after defaults are applied); the error
// wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c.fill()
	switch {
	case c.CacheSize < 0:
		return fmt.Errorf("%w: CacheSize %d < 0", ErrInvalidConfig, c.CacheSize)
	case c.Lease < 10*time.Millisecond:
		return fmt.Errorf("%w: Lease %v under 10ms", ErrInvalidConfig, c.Lease)
	case c.PollBlock <= 0 || c.PollBlock > c.Lease/2:
		return fmt.Errorf("%w: PollBlock %v must be in (0, Lease/2 = %v]", ErrInvalidConfig, c.PollBlock, c.Lease/2)
	case c.MissBatch < 1 || c.MissBatch > 10_000:
		return fmt.Errorf("%w: MissBatch %d out of 1..10000", ErrInvalidConfig, c.MissBatch)
	case c.Loaders < 1 || c.Loaders > 256:
		return fmt.Errorf("%w: Loaders %d out of 1..256", ErrInvalidConfig, c.Loaders)
	case c.Heartbeat <= 0:
		return fmt.Errorf("%w: Heartbeat %v <= 0", ErrInvalidConfig, c.Heartbeat)
	case c.PropagationTimeout <= 0:
		return fmt.Errorf("%w: PropagationTimeout %v <= 0", ErrInvalidConfig, c.PropagationTimeout)
	case c.ExposureBuffer < 1:
		return fmt.Errorf("%w: ExposureBuffer %d < 1", ErrInvalidConfig, c.ExposureBuffer)
	case c.LedgerBuffer < 1:
		return fmt.Errorf("%w: LedgerBuffer %d < 1", ErrInvalidConfig, c.LedgerBuffer)
	case !(c.LedgerSampling > 0 && c.LedgerSampling <= 1):
		return fmt.Errorf("%w: LedgerSampling %v out of (0, 1]", ErrInvalidConfig, c.LedgerSampling)
	}
	return nil
}
