package store

import (
	"context"
	"fmt"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// LedgerKind says what a LedgerEntry records.
type LedgerKind uint8

// The kinds of ledger entries.
const (
	// LedgerExposure is a recommendation served to a user (sdk Recommend,
	// or an outcome event posted to the server).
	LedgerExposure LedgerKind = 1
	// LedgerPush is a push sent to a user (sdk RecordPush, or an event of
	// kind "push" posted to the server).
	LedgerPush LedgerKind = 2
	// LedgerProvision is a provision of personal information (Art. 12): an
	// audience exported to a recipient. It names no user.
	LedgerProvision LedgerKind = 3
)

var ledgerKindNames = [...]string{LedgerExposure: "exposure", LedgerPush: "push", LedgerProvision: "provision"}

// String returns "exposure", "push" or "provision".
func (k LedgerKind) String() string {
	if k >= LedgerExposure && k <= LedgerProvision {
		return ledgerKindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText encodes the kind as its name.
func (k LedgerKind) MarshalText() ([]byte, error) {
	if k < LedgerExposure || k > LedgerProvision {
		return nil, fmt.Errorf("store: unknown ledger kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText decodes a kind name.
func (k *LedgerKind) UnmarshalText(b []byte) error {
	for i, n := range ledgerKindNames {
		if i > 0 && n == string(b) {
			*k = LedgerKind(i)
			return nil
		}
	}
	return fmt.Errorf("store: unknown ledger kind %q", clipString(string(b)))
}

// Ledger modes: what the decision behind an exposure or a push said.
const (
	ModePersonalized    = "personalized"     // an exposure served by the personalized ranker
	ModeNonPersonalized = "non_personalized" // an exposure served by the fallback ranker
	ModeAllowed         = "allowed"          // a push its decision allowed
	ModeRefused         = "refused"          // a push its decision refused (sent anyway, or the app did not ask)
)

// Retention bounds of the ledger.
const (
	// DefaultLedgerRetention is how long exposures and pushes are kept.
	DefaultLedgerRetention = 180 * 24 * time.Hour
	// ProvisionRetention is the least time a provision record is kept,
	// whatever the ledger retention says: Art. 12 asks records of data
	// provision to be kept for at least three years.
	ProvisionRetention = 3 * 365 * 24 * time.Hour
	// DefaultLedgerMaxLen bounds each shard's ledger stream.
	DefaultLedgerMaxLen = 2_000_000
)

// ProvisionRetentionFor returns how long provision records are kept under a
// ledger retention d: d, but never less than ProvisionRetention (like
// consent.Settings.RetentionOrDefault).
func ProvisionRetentionFor(d time.Duration) time.Duration {
	return max(d, ProvisionRetention)
}

// LedgerRetentionOrDefault returns d, or DefaultLedgerRetention when d <= 0.
func LedgerRetentionOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultLedgerRetention
	}
	return d
}

// LedgerEntry is one exposure, push or provision, with the basis of the
// decision it was made under, so that an enforcement audit can replay the
// receipts against it.
type LedgerEntry struct {
	Kind LedgerKind `json:"kind"`
	// UserID is the user shown or pushed to (exposures and pushes; empty for
	// a provision). The store keeps it pseudonymised, and forgets the link
	// when the user is erased: read back, an erased user's entries have no
	// UserID.
	UserID string `json:"user,omitempty"`
	// At is when the exposure or push happened, or the audience was exported.
	At time.Time `json:"at"`
	// Logged is when the store received the entry (set by the store on
	// read; ignored on Append). Scans select and order by it.
	Logged time.Time `json:"logged,omitzero"`

	// The basis of the decision: its ID, the record and settings versions
	// and reason it was computed from, when it was made, what it said
	// (Mode), and whether the mode was decided (from an SDK decision or a
	// verified decision ID) or only declared by the app.
	DecisionID      consent.DecisionID `json:"decision_id,omitzero"`
	RecordVersion   uint64             `json:"record_version,omitempty"`
	SettingsVersion uint64             `json:"settings_version,omitempty"`
	Reason          consent.Reason     `json:"reason"`
	Mode            string             `json:"mode,omitempty"`
	Decided         bool               `json:"decided,omitempty"`
	DecidedAt       time.Time          `json:"decided_at,omitzero"`

	// Contradicted says the app declared a Mode its decision ID does not
	// allow (an exposure declared personalized under a decision that was
	// not): Mode is the declared one, Reason and the versions the
	// decision's. An enforcement audit lists it as a violation.
	Contradicted bool `json:"contradicted,omitempty"`

	// Tags are the tags the exposure or push was chosen by, as the app
	// reported them (at most MaxLedgerTags): an enforcement audit checks
	// each against the user's deletions and sensitive consents at At.
	Tags []tags.Tag `json:"tags,omitempty"`

	// Surface is where the entry was recorded: "sdk" or "http".
	Surface string `json:"surface,omitempty"`
	// Items is how many items an exposure showed.
	Items int `json:"items,omitempty"`

	// Channel is a push's channel or an export's.
	Channel string `json:"channel,omitempty"`
	// Targeted says a push (or an export) was chosen from the users' tags.
	Targeted bool `json:"targeted,omitempty"`
	// Campaign names the push campaign, if any.
	Campaign string `json:"campaign,omitempty"`

	// Recipient, Purpose, Segment and Count describe a provision: who
	// received the audience, what for, which segment, how many users.
	Recipient string `json:"recipient,omitempty"`
	Purpose   string `json:"purpose,omitempty"`
	Segment   string `json:"segment,omitempty"`
	Count     int    `json:"count,omitempty"`
}

// Limits of a ledger entry's free fields.
const (
	// MaxLedgerLabel bounds Campaign, Recipient, Purpose and Surface.
	MaxLedgerLabel = 128
	// MaxLedgerSegment bounds a provision's Segment.
	MaxLedgerSegment = 4096
	// MaxLedgerTags bounds an exposure's or a push's Tags.
	MaxLedgerTags = 64
)

// ValidLabel checks a ledger label (campaign, recipient, purpose, surface):
// 1 to MaxLedgerLabel bytes of ASCII letters, digits and _ . : @ + = -.
func ValidLabel(field, v string) error {
	ok := len(v) > 0 && len(v) <= MaxLedgerLabel
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '@' || c == '+' || c == '=' || c == '-'
	}
	if !ok {
		return &consent.FieldError{Field: field, Detail: fmt.Sprintf("%s %q: want 1 to %d bytes of A-Za-z0-9_.:@+=-", field, clipString(v), MaxLedgerLabel), Err: consent.ErrInvalidChange}
	}
	return nil
}

// Validate checks e the way every Ledger does before keeping it: a known
// kind; a valid user for exposures and pushes and none for provisions; a
// time in years 1970 to 9999; a channel of valid syntax for pushes; labels
// of ValidLabel syntax; no negative count. It does not check the channel
// against the settings (the caller does). The error is a
// *consent.FieldError wrapping consent.ErrInvalidChange (or the user ID
// error).
func (e *LedgerEntry) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &consent.FieldError{Field: field, Detail: fmt.Sprintf(format, args...), Err: consent.ErrInvalidChange}
	}
	if e.Kind < LedgerExposure || e.Kind > LedgerProvision {
		return bad("kind", "unknown ledger kind %d", uint8(e.Kind))
	}
	if e.At.IsZero() {
		return bad("at", "no time")
	}
	if y := e.At.UTC().Year(); y < 1970 || y > 9999 {
		return bad("at", "year %d out of range 1970..9999", y)
	}
	if y := e.DecidedAt.UTC().Year(); !e.DecidedAt.IsZero() && (y < 1970 || y > 9999) {
		return bad("decided_at", "year %d out of range 1970..9999", y)
	}
	if e.Items < 0 || e.Count < 0 {
		return bad("count", "negative count")
	}
	switch e.Mode {
	case "", ModePersonalized, ModeNonPersonalized, ModeAllowed, ModeRefused:
	default:
		return bad("mode", "unknown mode %q", clipString(e.Mode))
	}
	if e.Surface != "" {
		if err := ValidLabel("surface", e.Surface); err != nil {
			return err
		}
	}
	if e.Campaign != "" {
		if err := ValidLabel("campaign", e.Campaign); err != nil {
			return err
		}
	}
	if e.Channel != "" {
		if err := consent.ValidChannelName(e.Channel); err != nil {
			return &consent.FieldError{Field: "channel", Detail: err.Error(), Err: consent.ErrInvalidChange}
		}
	}
	if len(e.Tags) > MaxLedgerTags {
		return bad("tags", "%d tags: at most %d", len(e.Tags), MaxLedgerTags)
	}
	for _, t := range e.Tags {
		if _, err := tags.Parse(string(t)); err != nil {
			return bad("tags", "%v", err)
		}
	}
	if e.Contradicted && e.Kind != LedgerExposure {
		return bad("contradicted", "only an exposure can contradict its decision")
	}
	switch e.Kind {
	case LedgerExposure, LedgerPush:
		if err := consent.ValidUserID(e.UserID); err != nil {
			return err
		}
		if e.Recipient != "" || e.Purpose != "" || e.Segment != "" || e.Count != 0 {
			return bad("recipient", "an exposure or a push has no recipient, purpose, segment or count")
		}
		if e.Kind == LedgerPush && e.Channel == "" {
			return bad("channel", "a push needs its channel")
		}
	case LedgerProvision:
		if e.UserID != "" || len(e.Tags) > 0 {
			return bad("user", "a provision names no user and no tag")
		}
		if err := ValidLabel("recipient", e.Recipient); err != nil {
			return err
		}
		if err := ValidLabel("purpose", e.Purpose); err != nil {
			return err
		}
		if e.Segment == "" || len(e.Segment) > MaxLedgerSegment {
			return bad("segment", "segment of %d bytes: want 1 to %d", len(e.Segment), MaxLedgerSegment)
		}
	}
	return nil
}

// Ledger keeps exposures, pushes and provisions (Art. 12, Art. 42, Art. 46
// evidence): exposures and pushes in one bounded stream per shard, trimmed
// by PurgeExpired to the store's ledger retention; provisions in a stream
// of their own, never trimmed by length and kept at least
// ProvisionRetention. User IDs are kept as per-user random pseudonyms whose
// link to the user is deleted with the user (Art. 24: read back, an erased
// user's entries name no one).
type Ledger interface {
	// AppendLedger validates every entry and appends them all; one invalid
	// entry fails the call and nothing is appended.
	AppendLedger(ctx context.Context, entries []LedgerEntry) error
	// ScanLedger calls fn with every entry kept that the store received in
	// [from, to) (a zero to: no end), oldest first across every stream; an
	// error from fn stops the scan and is returned.
	ScanLedger(ctx context.Context, from, to time.Time, fn func(LedgerEntry) error) error
	// UserLedger returns the user's exposures and pushes kept, oldest first
	// (none for an erased user).
	UserLedger(ctx context.Context, userID string) ([]LedgerEntry, error)
	// AddLedgerDrops adds n to the count of entries of kind that never
	// reached the ledger (a full queue, an unreachable store).
	AddLedgerDrops(ctx context.Context, kind LedgerKind, n uint64) error
	// LedgerDrops returns the drop counts recorded by AddLedgerDrops, by kind.
	LedgerDrops(ctx context.Context) (map[LedgerKind]uint64, error)
}
