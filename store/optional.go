package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recguard/recguard/consent"
)

// Optional abilities. A Store may implement any of these small interfaces;
// callers find them by type assertion and fall back to the core Store
// methods when they are missing. Each ability is covered by store/storetest
// when the store under test has it.

// BatchGetter reads many users in one round trip.
type BatchGetter interface {
	// GetMany returns the records of userIDs, in order. A user never seen
	// gets consent.NewRecord(id) (Version 0); there is no ErrNotFound. The
	// IDs must be valid (consent.ValidUserID); an invalid one fails the
	// whole call. An error wrapping ErrUnavailable or ErrDataLoss fails the
	// whole batch. A user whose record is missing or corrupt does not: the
	// call returns every record (consent.NewRecord(id) in that user's place)
	// together with a *CorruptError naming those users, whom the caller must
	// treat as unknown.
	GetMany(ctx context.Context, userIDs []string) ([]consent.Record, error)
}

// MultiLogReader follows several changelogs with one blocking read.
type MultiLogReader interface {
	// ReadLogs is ReadChangelog over several logs at once: after[i] is the
	// position in logs[i]. It returns the events of every log that has some
	// (each event names its Log), in order within each log, up to count per
	// log. A trimmed log fails the call with a *TrimmedError naming it. A
	// store that cannot do this in its current configuration (a Redis
	// Cluster: one XREAD cannot span slots) returns errors.ErrUnsupported.
	ReadLogs(ctx context.Context, logs []int, after []Position, count int, block time.Duration) ([]Event, error)
}

// Presence lets SDK instances announce themselves and how far they have
// applied each changelog, so a writer can wait until every live instance
// has seen its change.
type Presence interface {
	// Announce registers instance id as live until now+ttl and records the
	// position it has applied in each log (applied[i] is for log i; the
	// last element is for SettingsLog).
	Announce(ctx context.Context, id string, applied []Position, ttl time.Duration) error
	// Instances returns the instances live now.
	Instances(ctx context.Context) ([]Instance, error)
	// Leave removes instance id at once.
	Leave(ctx context.Context, id string) error
}

// Instance is a live SDK instance and how far it has applied each log.
type Instance struct {
	ID string `json:"id"`
	// Applied[i] is the position applied in shard log i; the last element
	// is the settings log.
	Applied []Position `json:"applied"`
	// Expires is when the instance stops counting as live without a new
	// announcement.
	Expires time.Time `json:"expires"`
}

// AppliedIn returns how far the instance applied log (a shard or
// SettingsLog), or the zero Position when it does not say.
func (in Instance) AppliedIn(log int) Position {
	if log == SettingsLog {
		log = len(in.Applied) - 1
	}
	if log < 0 || log >= len(in.Applied) {
		return ""
	}
	return in.Applied[log]
}

// TrimmedError reports which log was trimmed past a reader's position. It
// wraps ErrTrimmed.
type TrimmedError struct {
	Log   int      // the log, or SettingsLog
	After Position // the reader's position
	Next  Position // the oldest entry kept after it
}

func (e *TrimmedError) Error() string {
	return fmt.Sprintf("%v: log %d after %s: next entry kept is %s", ErrTrimmed, e.Log, e.After.String(), e.Next.String())
}

// Unwrap returns ErrTrimmed.
func (e *TrimmedError) Unwrap() error { return ErrTrimmed }

// UserLister lists a shard's users in the order of their numbers, so an
// index can be rebuilt from scratch and can map numbers back to user IDs.
type UserLister interface {
	// ListUsers returns up to count user IDs of shard whose local numbers
	// (see UserNumber) start at from (1-based): the i-th ID returned has
	// local number from+i. Fewer than count means the end was reached.
	ListUsers(ctx context.Context, shard, from, count int) ([]string, error)
}

// Checkpointer keeps named blobs, such as an index's serialized bitmaps
// with the changelog positions they reflect.
type Checkpointer interface {
	// SaveCheckpoint stores data under name, replacing what was there.
	SaveCheckpoint(ctx context.Context, name string, data []byte) error
	// LoadCheckpoint returns the data saved under name, or ErrNotFound.
	LoadCheckpoint(ctx context.Context, name string) ([]byte, error)
}

// KeyStore keeps the server's API keys. Keys are stored hashed: the store
// never sees a key's secret.
type KeyStore interface {
	// PutKey creates or replaces the key with k.ID.
	PutKey(ctx context.Context, k APIKey) error
	// GetKey returns the key with id, or ErrNotFound.
	GetKey(ctx context.Context, id string) (APIKey, error)
	// ListKeys returns every key, revoked ones included, sorted by ID.
	ListKeys(ctx context.Context) ([]APIKey, error)
}

// APIKey is one API key as stored: its ID, role, the SHA-256 of its secret,
// and when it was created and (if so) revoked.
type APIKey struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Hash      string    `json:"hash"` // hex SHA-256 of the secret
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the key was revoked.
func (k APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// RightsLog keeps a record of every rights request handled (access, copy,
// correction, deletion, withdrawal, portability), for the yearly report
// Art. 44 asks large platforms to publish. Entries name no user.
type RightsLog interface {
	// LogRightsRequest appends one handled request.
	LogRightsRequest(ctx context.Context, r RightsRequest) error
	// RightsRequests returns the requests received in [from, to), oldest
	// first.
	RightsRequests(ctx context.Context, from, to time.Time) ([]RightsRequest, error)
}

// RightsRequest is one handled rights request, without the user's identity.
type RightsRequest struct {
	// Kind is access, copy, correct, delete, withdraw, portability,
	// refuse_push, opt_out, consent or erase.
	Kind     string    `json:"kind"`
	Received time.Time `json:"received"`
	Handled  time.Time `json:"handled"`
	// Outcome is fulfilled, rejected (bad or disallowed request) or failed
	// (the service could not handle it).
	Outcome string `json:"outcome"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
	// Verification says how the applicant's identity was verified before
	// the request was handled (password, sms_otp, face, in_person,
	// guardian, ...), when the request said; never who the applicant is.
	Verification string `json:"verification,omitempty"`
}

// RequestCounter counts rights requests per user, so an operator can see
// clearly excessive ones (Art. 25) across every instance.
type RequestCounter interface {
	// CountRequest records one request of class (a-z and _) by userID at
	// at and returns how many requests of that class the user made in
	// (at-window, at], this one included. Older entries may be dropped. An
	// erasure of the user drops them all.
	CountRequest(ctx context.Context, userID, class string, at time.Time, window time.Duration) (int, error)
}

// OutcomeLog keeps outcome events (what was shown to whom, at which rank and
// price) for Art. 46 audits, in one bounded stream per shard: the oldest
// events are dropped once a shard holds its bound, and PurgeExpired drops
// those older than the store's outcome retention. Events are opaque JSON
// objects to the store, kept so that erasing their user makes them
// unreadable (Art. 24).
type OutcomeLog interface {
	// AppendOutcomes appends events[i] to the stream of userIDs[i]'s shard.
	// Events of users who are erased or restricted processing (Art. 23)
	// are not stored: they are dropped without error.
	AppendOutcomes(ctx context.Context, userIDs []string, events [][]byte) error
	// ReadOutcomes calls fn with every event kept, shard by shard, oldest
	// first within a shard; an error from fn stops the read and is returned.
	// It skips the events of users erased since (their content is gone)
	// and of users who restrict processing now (storage only).
	ReadOutcomes(ctx context.Context, fn func(event []byte) error) error
}

// RegressedError reports which log is behind its reader. It wraps
// ErrRegressed.
type RegressedError struct {
	Log   int      // the log, or SettingsLog
	After Position // the reader's position
	Tail  Position // the newest entry the log holds now (zero: none)
}

func (e *RegressedError) Error() string {
	return fmt.Sprintf("%v: log %d: reader at %s, log holds up to %s", ErrRegressed, e.Log, e.After.String(), e.Tail.String())
}

// Unwrap returns ErrRegressed.
func (e *RegressedError) Unwrap() error { return ErrRegressed }

// CorruptError names the users whose records are missing or cannot be
// decoded. It wraps ErrCorrupt. Detail says what was wrong, for logs only
// (it never holds record content).
type CorruptError struct {
	UserIDs []string
	Detail  string
}

func (e *CorruptError) Error() string {
	if len(e.UserIDs) == 1 {
		return fmt.Sprintf("%v: user %q: %s", ErrCorrupt, e.UserIDs[0], e.Detail)
	}
	return fmt.Sprintf("%v: %d users: %s", ErrCorrupt, len(e.UserIDs), e.Detail)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Corrupted returns the IDs named by a *CorruptError in err's chain (nil when
// there is none).
func Corrupted(err error) []string {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return ce.UserIDs
	}
	return nil
}

// DataLossError names the logs (shards, or SettingsLog for the settings and
// keys) whose data is gone: the slot lost the identity marker the keyspace
// was initialised with. It wraps ErrDataLoss. Detail is for logs.
type DataLossError struct {
	Logs   []int
	Detail string
}

func (e *DataLossError) Error() string {
	return fmt.Sprintf("%v: logs %v: %s", ErrDataLoss, e.Logs, e.Detail)
}

// Unwrap returns ErrDataLoss.
func (e *DataLossError) Unwrap() error { return ErrDataLoss }

// Validate checks r the way every RightsLog does before keeping it: a kind
// of a-z and _, a known outcome, times in years 1 to 9999, a verification
// method of at most 32 bytes of a-z, 0-9 and _ starting with a letter. The
// error is a *consent.FieldError wrapping consent.ErrInvalidChange.
func (r RightsRequest) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &consent.FieldError{Field: field, Detail: fmt.Sprintf(format, args...), Err: consent.ErrInvalidChange}
	}
	if r.Kind == "" {
		return bad("kind", "empty kind")
	}
	for i := 0; i < len(r.Kind); i++ {
		if c := r.Kind[i]; (c < 'a' || c > 'z') && c != '_' {
			return bad("kind", "kind %q: want only a-z and _", r.Kind)
		}
	}
	switch r.Outcome {
	case "fulfilled", "rejected", "failed":
	default:
		return bad("outcome", "outcome %q: want fulfilled, rejected or failed", r.Outcome)
	}
	if r.Received.IsZero() {
		return bad("received", "no time received")
	}
	if y := r.Received.UTC().Year(); y < 1 || y > 9999 {
		return bad("received", "year %d out of range 1..9999", y)
	}
	if y := r.Handled.UTC().Year(); !r.Handled.IsZero() && (y < 1 || y > 9999) {
		return bad("handled", "year %d out of range 1..9999", y)
	}
	if v := r.Verification; v != "" {
		ok := len(v) <= 32 && v[0] >= 'a' && v[0] <= 'z'
		for i := 0; ok && i < len(v); i++ {
			c := v[i]
			ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
		}
		if !ok {
			return bad("verification", "verification %q: want up to 32 bytes of a-z, 0-9 and _, starting with a letter", clipString(v))
		}
	}
	return nil
}

// ValidClass checks a RequestCounter class: 1 to 32 bytes of a-z and _.
func ValidClass(class string) error {
	ok := len(class) > 0 && len(class) <= 32
	for i := 0; ok && i < len(class); i++ {
		ok = class[i] >= 'a' && class[i] <= 'z' || class[i] == '_'
	}
	if !ok {
		return &consent.FieldError{Field: "class", Detail: fmt.Sprintf("class %q: want 1 to 32 bytes of a-z and _", clipString(class)), Err: consent.ErrInvalidChange}
	}
	return nil
}

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// BatchApplier applies many changes at once: one round trip and one script
// per shard and batch instead of two round trips per change. It is for bulk
// writers (recguard seed, importers, a service coalescing many users'
// changes); each change keeps every promise of Store.Apply: it is validated
// with consent.Record.ApplyKeyed against the user's record as left by the
// changes before it, and is recorded atomically with its receipt and its
// changelog entry.
type BatchApplier interface {
	// ApplyBatch applies chs in order, with the result Store.Apply would
	// give applying them one after another from one caller: applied[i] and
	// errs[i] are change i's result and error (nil: applied, or a no-op).
	// Both slices have len(chs). A change that fails changes nothing and the
	// user's later changes in the batch are applied to the record without
	// it. Changes of different users are independent: an error for one
	// user (validation, ErrUnavailable, ErrDataLoss on their shard) leaves
	// the other users' changes applied. A user's changes are recorded in
	// their order in chs (versions, receipts and changelog entries follow
	// it); an error wrapping ErrUnavailable means, as for Apply, that the
	// change may have taken effect.
	ApplyBatch(ctx context.Context, chs []consent.Change) (applied []Applied, errs []error)
}

// ApplyAll applies chs through st's BatchApplier when it has one, else one
// by one through Apply; the results are those of ApplyBatch.
func ApplyAll(ctx context.Context, st Store, chs []consent.Change) ([]Applied, []error) {
	if b, ok := st.(BatchApplier); ok {
		return b.ApplyBatch(ctx, chs)
	}
	out := make([]Applied, len(chs))
	errs := make([]error, len(chs))
	for i, ch := range chs {
		out[i], errs[i] = st.Apply(ctx, ch)
	}
	return out, errs
}

// FirstError returns the index of the first non-nil error of errs and the
// error, or -1 and nil.
func FirstError(errs []error) (int, error) {
	for i, err := range errs {
		if err != nil {
			return i, err
		}
	}
	return -1, nil
}
