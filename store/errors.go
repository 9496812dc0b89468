package store

import "errors"

// Sentinel errors of the stores. Validation errors come from the model
// packages (consent.ErrInvalidUserID, tags.ErrInvalidTag,
// consent.ErrUnknownChannel, tags.ErrSuppressed, consent.ErrConsentRequired,
// ...); stores return them unchanged, wrapped in a *consent.FieldError.
var (
	// ErrNotFound reports a user the store has never seen.
	ErrNotFound = errors.New("store: not found")
	// ErrUnavailable reports that the backing storage could not be reached
	// or failed; the operation may or may not have taken effect only where the
	// method's doc says so.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrConflict reports a write that lost a race it could not win by
	// retrying: settings saved against a stale version, or a user record
	// under sustained contention.
	ErrConflict = errors.New("store: conflict")
	// ErrTrimmed reports a changelog read from a position older than the
	// oldest entry kept: entries were trimmed away and the reader must
	// rebuild from the records, never guess.
	ErrTrimmed = errors.New("store: changelog trimmed past position")
	// ErrInvalidPosition reports a malformed changelog position or log number.
	ErrInvalidPosition = errors.New("store: invalid changelog position")
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("store: closed")
)

// Errors that say the store lost or changed data it should still hold. None
// of them is ever a reason to personalize: readers treat what they cover as
// unknown and fail closed.
var (
	// ErrRegressed reports a changelog that is behind a position its reader
	// already applied: a failover to a replica that missed entries, or a
	// restore from an older snapshot. The reader must drop what it derived
	// from the lost entries and re-read the records. Errors of this kind are
	// *RegressedError.
	ErrRegressed = errors.New("store: changelog behind a position already applied")
	// ErrDataLoss reports a keyspace that lost data: its identity (the epoch
	// written when it was initialised) is gone or was replaced, in whole or
	// for some shards. Nothing read from it can be trusted until an operator
	// restores it (or explicitly accepts the loss); writes are refused.
	ErrDataLoss = errors.New("store: data loss: the keyspace lost or replaced its data")
	// ErrNotInitialized reports an empty keyspace opened without the
	// explicit initialisation option. Initialising is an explicit act (for
	// the server, `recguard serve --init`), so a store that lost everything
	// is never silently re-created.
	ErrNotInitialized = errors.New("store: keyspace not initialised")
	// ErrCorrupt reports one user's record that is missing (the store holds
	// evidence of the user, such as receipts, but no record) or cannot be
	// decoded. The user is unknown: answers for them fail closed, and writes
	// to them are refused until the record is restored. Errors of this kind
	// are *CorruptError.
	ErrCorrupt = errors.New("store: record missing or corrupt")
	// ErrNotReplicated reports a write the primary recorded but fewer
	// replicas than the durability option asks for confirmed within its
	// timeout: the change stands on the primary, but a failover now may lose
	// it.
	ErrNotReplicated = errors.New("store: write not confirmed by the required replicas")
	// ErrUnsafeConfig reports a backing store configured so that it may drop
	// records on its own (an evicting maxmemory-policy).
	ErrUnsafeConfig = errors.New("store: unsafe backing store configuration")
)
