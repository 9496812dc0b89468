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
