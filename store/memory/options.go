package memory

import (
	"fmt"
	"time"
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
	// CompactMinBytes is the size from which Open compacts a file that holds
	// more than twice as many lines as its live data needs. Zero means
	// DefaultCompactMinBytes; negative disables compaction on Open.
	CompactMinBytes int64
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
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CompactMinBytes == 0 {
		o.CompactMinBytes = DefaultCompactMinBytes
	}
	return o, nil
}
