package store

import (
	"context"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/recguard/recguard/consent"
)

// SettingsLog is the log number of the settings changelog, passed to
// ReadChangelog and Tail in place of a shard number.
const SettingsLog = -1

// DefaultShards is the shard count a new store is created with.
const DefaultShards = 16

// Store is the system of record for users' consent, tags and receipts and
// for the platform settings.
//
// Contract (every implementation passes store/storetest):
//
//   - All methods are safe for concurrent use.
//   - Every change to a user is applied atomically together with its receipt
//     and its changelog entry: either all three are recorded or none is.
//     Changes to one user are serialized: the versions of the records they
//     produce run 1, 2, 3, ... and the changelog lists them in that order.
//   - Bad input changes nothing: a change that fails validation (against the
//     settings, or against the user's current record) returns an error
//     wrapping the model's sentinel (consent.ErrInvalidUserID,
//     tags.ErrInvalidTag, consent.ErrUnknownChannel, tags.ErrSuppressed,
//     consent.ErrConsentRequired, consent.ErrForbidden, ...) and leaves the
//     record, the receipts and the changelog as they were.
//   - A user never seen is not an error for writes; Get returns ErrNotFound
//     together with the empty record consent.NewRecord(userID).
//   - When the backing storage fails, methods return an error wrapping
//     ErrUnavailable. A write (Apply, SetSettings, PurgeExpired) may then
//     have taken effect; the changelog and receipts tell once the storage
//     is back.
//   - Close may be called more than once; calls after Close return
//     ErrClosed.
//   - Each user belongs to shard ShardOf(userID, Shards()); the shard count is
//     fixed when the store is first created and kept in the store.
//   - A user's first change assigns Record.Number = UserNumber(shard, k,
//     Shards()) where k counts the shard's users from 1, atomically with the
//     change; it never changes afterwards (not even on erasure) and no two
//     users share one.
type Store interface {
	// Shards returns the number of changelog shards.
	Shards() int

	// Get returns the user's current record. For a user never seen it
	// returns consent.NewRecord(userID) and ErrNotFound.
	Get(ctx context.Context, userID string) (consent.Record, error)

	// Apply validates ch, applies it to the user's record and records the
	// receipt and the changelog entry, all atomically; receipts are sealed
	// under the store's chain key (consent.Record.ApplyKeyed). A zero ch.At
	// is set from the store's clock. A change that leaves the record as it
	// is (a no-op, such as refusing a channel already refused) writes
	// nothing and returns the current record with a nil Receipt.
	//
	// OpErase erases (Art. 24): in the same atomic step the record becomes a
	// tombstone (consent.State{Erased: true}, no tags, no suppressions), and
	// from then on nothing the store holds gives back any personal content of
	// the user's earlier changes: their receipts read back redacted
	// (consent.Receipt.Redact), their earlier changelog entries read back
	// Shredded, their outcome events are no longer read. What stays (the
	// tombstone, redacted receipts until their retention) carries no
	// personal content.
	Apply(ctx context.Context, ch consent.Change) (Applied, error)

	// Receipts returns the user's receipts, oldest first: every receipt
	// younger than the retention. A user never seen has none (no error).
	// An erased user's receipts come back redacted: storage only, for an
	// auditor to verify (consent.VerifyChain still holds).
	Receipts(ctx context.Context, userID string) ([]consent.Receipt, error)

	// ReadChangelog returns up to count events of log (a shard number, or
	// SettingsLog) after position after, oldest first; count <= 0 means 100.
	// The zero Position reads from the first entry ever written. With
	// block > 0 it waits up to block for the first event when there is none
	// yet, and returns an empty slice (no error) on timeout; an ended ctx
	// ends the wait with an error wrapping ctx.Err(). When entries after
	// `after` were trimmed away (for the zero Position: when anything was
	// ever trimmed) it returns an error wrapping ErrTrimmed.
	ReadChangelog(ctx context.Context, log int, after Position, count int, block time.Duration) ([]Event, error)

	// Tail returns the position of the newest event in log, or the zero
	// Position for an empty log. Reading after it returns only new events.
	Tail(ctx context.Context, log int) (Position, error)

	// Settings returns the current settings. A new store holds
	// consent.DefaultSettings() with Version 1.
	Settings(ctx context.Context) (consent.Settings, error)

	// SetSettings validates and saves s if the stored version still equals
	// s.Version (optimistic concurrency; ErrConflict otherwise), records a
	// receipt made by actor through surface, and appends the new settings to
	// the settings changelog, atomically. It returns the saved settings
	// (Version incremented) and the receipt: Op consent.OpSetSettings, no
	// UserID, Seq counting settings receipts from 1 (the first settings,
	// Version 1, have no receipt), Old and New the settings' Summary. An
	// invalid actor or surface wraps consent.ErrInvalidChange.
	SetSettings(ctx context.Context, s consent.Settings, actor consent.Actor, surface consent.Surface) (consent.Settings, consent.Receipt, error)

	// SettingsReceipts returns the receipts of settings changes, oldest
	// first, within the retention.
	SettingsReceipts(ctx context.Context) ([]consent.Receipt, error)

	// PurgeExpired deletes receipts older than the settings' retention as of
	// now (compared in milliseconds) and returns how many it deleted. It
	// deletes from the oldest end of each chain only: a receipt recorded
	// with an old time behind a newer one stays until the newer one expires.
	// For a user's chain it records, in the same atomic step, the anchor of
	// the last receipt deleted in the record (consent.Record.Purged, sealed
	// under the chain key), so what remains verifies against the record's
	// head and nothing else can pass for a purge. It also trims changelog
	// entries older than the store's changelog retention and outcome events
	// older than its outcome retention (each store's Options say how long).
	PurgeExpired(ctx context.Context, now time.Time) (int, error)

	// Close releases the store's resources. It does not close a client the
	// caller passed in.
	Close() error
}

// Applied is the result of Store.Apply.
type Applied struct {
	// Record is the user's record after the change.
	Record consent.Record
	// Receipt is the change's receipt; nil when the change was a no-op and
	// nothing was written.
	Receipt *consent.Receipt
	// Shard is the user's shard.
	Shard int
	// Pos is the changelog position of the change; zero for a no-op.
	Pos Position
}

// Event is one changelog entry.
type Event struct {
	// Log is the shard number, or SettingsLog.
	Log int
	// Pos is the entry's position in its log.
	Pos Position
	// Record is the user's record after the change; nil in the settings log.
	Record *consent.Record
	// Prev is the user's record before the change (Version 0 for the
	// user's first change); nil in the settings log, in a Shredded entry
	// and in an erase entry (Record.State.Erased: readers drop everything
	// they hold about the user). Indexes diff the two.
	Prev *consent.Record
	// Settings are the settings after the change; nil in a shard log.
	Settings *consent.Settings
	// Receipt is the change's receipt.
	Receipt consent.Receipt
	// Shredded is true for an entry whose content was erased with its user
	// (the user was erased after the change): Record holds only UserID,
	// Number, Version and LastHash, Prev is nil and Receipt is redacted.
	// Readers drop what they hold about the user until the erase entry
	// arrives (treat the user as unknown: fail closed).
	Shredded bool
}

// UserNumber returns the dense number of the local-th user (1-based) of
// shard among n shards: users are numbered shard by shard in turn, so the
// numbers of a store stay dense as it grows.
func UserNumber(shard, local, n int) uint32 { return uint32((local-1)*n + shard + 1) }

// NumberShard returns the shard and local (1-based) number of user number
// num among n shards; the inverse of UserNumber.
func NumberShard(num uint32, n int) (shard, local int) {
	i := int(num) - 1
	return i % n, i/n + 1
}

// ShardOf returns the shard of userID among n shards: xxhash64 of the ID
// modulo n. It is the same in every store and every process.
func ShardOf(userID string, n int) int {
	return int(xxhash.Sum64String(userID) % uint64(n))
}
