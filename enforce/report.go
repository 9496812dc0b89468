package enforce

import (
	"time"
)

// Kind names a rule an exposure or a push broke.
type Kind string

// The violation kinds.
const (
	// PersonalizedAfterOptOut: a personalized exposure while the user's
	// personalization was off (Art. 42), beyond the allowance.
	PersonalizedAfterOptOut Kind = "personalized_after_opt_out"
	// PushOnRefusedChannel: a push on a channel the user refused (Art. 42).
	PushOnRefusedChannel Kind = "push_on_refused_channel"
	// TargetedPushAfterOptOut: a push chosen from the user's
	// characteristics while the user's personalization was off.
	TargetedPushAfterOptOut Kind = "targeted_push_after_opt_out"
	// WhileSuspended: a personalized exposure or a push while the service
	// was suspended (Art. 51), beyond the settings allowance.
	WhileSuspended Kind = "while_suspended"
	// WhileRestricted: a personalized exposure or a push while the user
	// restricted processing of their data (Art. 23).
	WhileRestricted Kind = "while_restricted"
	// MinorWithoutGuardian: a personalized exposure or a targeted push to
	// a minor without current guardian consent (Art. 22).
	MinorWithoutGuardian Kind = "minor_without_guardian_consent"
	// TagAfterDeletion: an exposure or a push chosen by a tag the user had
	// deleted (Art. 42: a deleted tag stays deleted).
	TagAfterDeletion Kind = "tag_after_deletion"
	// SensitiveWithoutConsent: an exposure or a push chosen by a sensitive
	// tag without a separate consent valid at that time (Art. 22): never
	// given, withdrawn, given for another purpose, under an older policy
	// version, or for a minor not by the guardian.
	SensitiveWithoutConsent Kind = "sensitive_without_consent"
	// ModeContradictsDecision: an exposure declared personalized under a
	// decision ID whose decision was not.
	ModeContradictsDecision Kind = "mode_contradicts_decision"
)

// Kinds lists every violation kind, in report order.
func Kinds() []Kind {
	return []Kind{PersonalizedAfterOptOut, PushOnRefusedChannel, TargetedPushAfterOptOut, WhileSuspended,
		WhileRestricted, MinorWithoutGuardian, TagAfterDeletion, SensitiveWithoutConsent, ModeContradictsDecision}
}

// Violation is one broken rule and its evidence: the ledger entry (when,
// which surface, its decision's ID and basis) and the receipt that made
// the entry wrong (its ID, time, and how long before the entry it was).
type Violation struct {
	Kind Kind      `json:"kind"`
	User string    `json:"user"`
	At   time.Time `json:"at"`
	// Event is "exposure" or "push"; Surface where it was recorded;
	// Logged when the store received it.
	Event   string    `json:"event"`
	Surface string    `json:"surface,omitempty"`
	Logged  time.Time `json:"logged,omitzero"`
	// Mode is what the entry says was served or sent; Decided whether a
	// decision backed it (SDK, or a verified decision ID).
	Mode            string `json:"mode,omitempty"`
	Decided         bool   `json:"decided"`
	DecisionID      string `json:"decision_id,omitempty"`
	DecisionReason  string `json:"decision_reason,omitempty"`
	RecordVersion   uint64 `json:"record_version,omitempty"`
	SettingsVersion uint64 `json:"settings_version,omitempty"`
	Channel         string `json:"channel,omitempty"`
	Campaign        string `json:"campaign,omitempty"`
	Tag             string `json:"tag,omitempty"`
	// ReceiptID is the receipt whose change the entry broke (a settings
	// receipt for a suspension or a policy change); empty when the rule
	// was broken from before every receipt kept (a sensitive tag never
	// consented to) or by the decision itself.
	ReceiptID string    `json:"receipt_id,omitempty"`
	ReceiptAt time.Time `json:"receipt_at,omitzero"`
	// LagMS is how long after that receipt the entry came, in
	// milliseconds (beyond the allowance, or the decision itself refused).
	LagMS float64 `json:"lag_ms,omitempty"`
	// Detail says what happened, in a sentence.
	Detail string `json:"detail"`
}

// Report is an enforcement audit's result.
type Report struct {
	Generated time.Time `json:"generated"`
	// From and To bound the entries audited: From <= At < To (zero: open).
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Allowance is the propagation allowance for the users' changes,
	// SettingsAllowance for settings changes (the suspension, a policy
	// version): an entry within it after the change is not a violation
	// (counted in WithinAllowance).
	Allowance         string `json:"allowance"`
	SettingsAllowance string `json:"settings_allowance"`

	// Entries counts the ledger entries audited (in the window), by event.
	Entries    int64 `json:"entries"`
	Exposures  int64 `json:"exposures"`
	Pushes     int64 `json:"pushes"`
	Provisions int64 `json:"provisions"`
	// Users counts the users the audited entries name.
	Users int64 `json:"users"`
	// Unattributed counts exposures and pushes whose user was erased since
	// (the link from the ledger's pseudonym to the user is erased with the
	// user) or who was erased when it was recorded: they name no one and
	// are not checked.
	Unattributed int64 `json:"unattributed"`
	// Receipts counts the receipts replayed.
	Receipts int64 `json:"receipts"`

	// Coverage says how much of the ledger a decision backs.
	Coverage Coverage `json:"coverage"`
	// Drops are the entries that never reached the ledger (a full queue,
	// an unreachable store), by event, as the store counted them.
	Drops map[string]uint64 `json:"drops"`

	// Totals count the violations.
	Totals Totals `json:"totals"`
	// WithinAllowance counts the entries that would be violations had they
	// come later after the change: the allowance they used.
	WithinAllowance Allowed `json:"within_allowance"`
	// Violations lists every violation found (up to Options.MaxViolations,
	// oldest first); ViolationsOmitted counts those left out.
	Violations        []Violation `json:"violations"`
	ViolationsOmitted int64       `json:"violations_omitted,omitempty"`

	// ProvisionsBy summarises the provisions (audiences handed over,
	// Art. 12) by recipient and purpose.
	ProvisionsBy []ProvisionTotal `json:"provisions_by"`

	// Notes say what the reader must know to read the report right.
	Notes []string `json:"notes"`
}

// Coverage is the share of exposures and pushes whose mode a decision
// backs (the SDK's own decision, or a verified decision ID) rather than
// the app's word.
type Coverage struct {
	ExposuresDecided int64   `json:"exposures_decided"`
	PushesDecided    int64   `json:"pushes_decided"`
	ExposureShare    float64 `json:"exposure_share"`
	PushShare        float64 `json:"push_share"`
}

// Totals count violations by kind, by day (UTC) and by surface.
type Totals struct {
	All       int64                     `json:"all"`
	ByKind    map[Kind]int64            `json:"by_kind"`
	ByDay     []DayTotal                `json:"by_day"`
	BySurface map[string]map[Kind]int64 `json:"by_surface"`
}

// DayTotal counts one day's violations by kind.
type DayTotal struct {
	Day    string         `json:"day"`
	All    int64          `json:"all"`
	ByKind map[Kind]int64 `json:"by_kind"`
}

// Allowed counts the entries inside the allowance, by kind, and the
// longest lag among them (at most the allowance).
type Allowed struct {
	All      int64          `json:"all"`
	ByKind   map[Kind]int64 `json:"by_kind"`
	MaxLagMS float64        `json:"max_lag_ms"`
}

// ProvisionTotal counts the provisions to one recipient for one purpose.
type ProvisionTotal struct {
	Recipient string    `json:"recipient"`
	Purpose   string    `json:"purpose"`
	Exports   int64     `json:"exports"`
	Users     int64     `json:"users"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}
