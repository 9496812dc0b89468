package memory

import (
	"fmt"
	"slices"
	"time"

	"github.com/recguard/recguard/store"
)

// Defaults for zero Options fields.
const (
	// DefaultChangelogMaxLen is the number of entries kept per changelog.
	DefaultChangelogMaxLen = 100000
	// DefaultCompactMinBytes is the smallest file Open compacts.
	DefaultCompactMinBytes = 1 << 20
	// DefaultReadCount is the number of events ReadChangelog returns at most
	// when called with count <= 0.
	DefaultReadCount = 100
	// MaxShards is the largest shard count a store accepts.
	MaxShards = 1 << 16
	// DefaultChangelogRetention is how long changelog entries are kept.
	DefaultChangelogRetention = 7 * 24 * time.Hour
	// DefaultOutcomeRetention is how long outcome events are kept.
	DefaultOutcomeRetention = 180 * 24 * time.Hour
	// DefaultCompactDelay is how long the store waits after an erasure or
	// a purge before it compacts the data file.
	DefaultCompactDelay = time.Minute
)

// Options configure a Store. The zero value is a purely in-memory store with
// store.DefaultShards shards.
type Options struct {
	// Dir is the data directory, created if missing. Empty means nothing is
	// persisted: the data lives as long as the Store.
	Dir string
	// Shards is the number of changelog shards, used when the store is first
	// created and kept in the data. Zero means store.DefaultShards for a new
	// store and "whatever the data says" for an existing one; a non-zero
	// value that differs from the data's is an error wrapping
	// ErrInvalidOptions. At most MaxShards.
	Shards int
	// ChangelogMaxLen is the number of entries each changelog (every shard
	// log and the settings log) keeps; older entries are trimmed and reading
	// from before them returns store.ErrTrimmed. Zero means
	// DefaultChangelogMaxLen.
	ChangelogMaxLen int
	// Now is the clock that stamps changes made without a time and settings
	// receipts. Nil means time.Now. Changelog positions always use time.Now.
	Now func() time.Time
	// NoSync skips the fsync after each write. False (the zero value) makes
	// every acknowledged write durable, at the cost of an fsync per write
	// (shared by concurrent writers); true keeps writes safe from a crash of
	// the process but not of the machine.
	NoSync bool
	// ChainKey keys the receipt chains (consent.ChainKey): a deployment
	// secret kept outside the data directory's store file. Empty means an
	// unkeyed chain.
	ChainKey []byte
	// ChangelogRetention is how long changelog entries are kept: PurgeExpired
	// trims older ones. Zero means DefaultChangelogRetention.
	ChangelogRetention time.Duration
	// OutcomeRetention is how long outcome events are kept: PurgeExpired
	// drops older ones. Zero means DefaultOutcomeRetention.
	OutcomeRetention time.Duration
	// LedgerRetention is how long ledger exposures and pushes are kept:
	// PurgeExpired drops older ones. Provisions are kept for
	// store.ProvisionRetentionFor(LedgerRetention), at least three years.
	// Zero means store.DefaultLedgerRetention.
	LedgerRetention time.Duration
	// LedgerMaxLen bounds each shard's ledger queue. Zero means
	// store.DefaultLedgerMaxLen.
	LedgerMaxLen int
	// CompactMinBytes is the size from which Open compacts a file that holds
	// more than twice as many lines as its live data needs. Zero means
	// DefaultCompactMinBytes; negative disables compaction on Open.
	CompactMinBytes int64
	// CompactDelay is how long, with a data directory, the store waits after
	// an erasure or an effective PurgeExpired (and after an Open that
	// replayed one) before it compacts the data file in the background, so
	// that the lines holding what was erased or purged leave the file; the
	// erasures and purges of the wait share one compaction. Zero means
	// DefaultCompactDelay; negative disables these compactions (Compact
	// still does it). See the package documentation for the bound.
	CompactDelay time.Duration
}

// withDefaults validates o and fills its zero fields (Shards stays zero: it
// depends on the data).
func (o Options) withDefaults() (Options, error) {
	if o.Shards < 0 || o.Shards > MaxShards {
		return o, fmt.Errorf("%w: Shards %d: want 0 to %d", ErrInvalidOptions, o.Shards, MaxShards)
	}
	if o.ChangelogMaxLen < 0 {
		return o, fmt.Errorf("%w: negative ChangelogMaxLen %d", ErrInvalidOptions, o.ChangelogMaxLen)
	}
	if o.ChangelogMaxLen == 0 {
		o.ChangelogMaxLen = DefaultChangelogMaxLen
	}
	o.ChainKey = slices.Clone(o.ChainKey) // the caller may reuse its slice
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CompactMinBytes == 0 {
		o.CompactMinBytes = DefaultCompactMinBytes
	}
	if o.ChangelogRetention < 0 || o.OutcomeRetention < 0 {
		return o, fmt.Errorf("%w: negative ChangelogRetention %v or OutcomeRetention %v", ErrInvalidOptions, o.ChangelogRetention, o.OutcomeRetention)
	}
	if o.ChangelogRetention == 0 {
		o.ChangelogRetention = DefaultChangelogRetention
	}
	if o.OutcomeRetention == 0 {
		o.OutcomeRetention = DefaultOutcomeRetention
	}
	if o.LedgerRetention < 0 || o.LedgerMaxLen < 0 {
		return o, fmt.Errorf("%w: negative LedgerRetention %v or LedgerMaxLen %d", ErrInvalidOptions, o.LedgerRetention, o.LedgerMaxLen)
	}
	o.LedgerRetention = store.LedgerRetentionOrDefault(o.LedgerRetention)
	if o.LedgerMaxLen == 0 {
		o.LedgerMaxLen = store.DefaultLedgerMaxLen
	}
	if o.CompactDelay == 0 {
		o.CompactDelay = DefaultCompactDelay
	}
	return o, nil
}
