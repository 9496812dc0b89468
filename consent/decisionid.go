package consent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"
)

// DecisionID identifies one answer of an SDK client (Decide, CanPush,
// Recommend): 8 random bytes chosen when the client starts, then a 64-bit
// sequence, so that no two answers of one client share an ID and clients
// do not collide. The zero DecisionID identifies nothing. It is a plain
// value: making one allocates nothing.
type DecisionID [16]byte

// IsZero reports whether id is the zero DecisionID.
func (id DecisionID) IsZero() bool { return id == DecisionID{} }

// String returns the ID as 32 lowercase hex digits.
func (id DecisionID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the ID as 32 lowercase hex digits.
func (id DecisionID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes 32 hex digits.
func (id *DecisionID) UnmarshalText(b []byte) error {
	if len(b) != 2*len(id) {
		return fmt.Errorf("consent: a decision ID is %d hex digits, got %d bytes", 2*len(id), len(b))
	}
	var out DecisionID
	if _, err := hex.Decode(out[:], b); err != nil {
		return fmt.Errorf("consent: decision ID: %w", err)
	}
	*id = out
	return nil
}

// Basis is what an answer was computed from, so that it can be checked
// later against the receipts: the version of the user's record and of the
// settings it used, and the answer's ID. The reason is the answer's own
// (Decision.Reason). It is plain values, copied with the answer.
type Basis struct {
	// RecordVersion is the version of the user's record the answer was
	// computed from (consent.Record.Version): 0 when the user has no record
	// (the defaults applied) or when the answer used none (the fail-closed
	// answers unverified, unavailable, data_loss, suspended).
	RecordVersion uint64 `json:"record_version"`
	// SettingsVersion is the version of the settings the answer was
	// computed under (Settings.Version): 0 when it used none (unverified,
	// unavailable, data_loss).
	SettingsVersion uint64 `json:"settings_version"`
	// ID identifies the answer. It is not in JSON: over HTTP the server
	// answers with a signed decision ID (SignedDecision) that holds it.
	ID DecisionID `json:"-"`
}

// DecisionKind says which question a SignedDecision answers.
type DecisionKind uint8

// The kinds of a SignedDecision.
const (
	// DecisionRecommend is the answer of Decide (GET /v1/users/{id}/decision):
	// may a recommendation be personalized.
	DecisionRecommend DecisionKind = 1
	// DecisionPush is the answer of CanPush (GET /v1/users/{id}/can-push):
	// may a push on a channel be sent.
	DecisionPush DecisionKind = 2
)

// String returns "decision" or "push".
func (k DecisionKind) String() string {
	switch k {
	case DecisionRecommend:
		return "decision"
	case DecisionPush:
		return "push"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ErrInvalidDecisionID reports a decision ID that is malformed, or that
// this deployment did not issue for this user (forged, altered, or issued
// for another user or under another key).
var ErrInvalidDecisionID = errors.New("consent: invalid decision ID")

// decisionIDLabel separates decision-ID MACs (and the key derived for
// them) from every other use of the deployment secret.
const decisionIDLabel = "recguard decision-id v1"

// Limits of a signed decision ID.
const (
	decisionIDVersion = 1
	decisionMACLen    = 16 // HMAC-SHA256 truncated to 128 bits
	// MaxDecisionIDLen bounds a signed decision ID's text: anything longer
	// is malformed before it is decoded.
	MaxDecisionIDLen = 160
)

// The flag bits of a signed decision ID.
const (
	flagPersonalized = 1 << 0 // DecisionRecommend only
	flagAllowed      = 1 << 1 // DecisionPush only
	flagTargeted     = 1 << 2 // DecisionPush only
)

// DecisionKey derives the key decision IDs are signed with from a
// deployment secret (the receipt chain key, or a secret of its own):
// HMAC-SHA256(secret, "recguard decision-id v1"). The derived key signs
// nothing else, and the secret's other uses cannot produce a valid decision
// ID.
func DecisionKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(decisionIDLabel))
	return m.Sum(nil)
}

// SignedDecision is what a signed decision ID says: an answer for one user
// (the user is bound by the MAC, not carried), its basis and when it was
// given. Over HTTP every decision and push answer carries one, and
// POST /v1/events verifies the ID an event carries.
//
// The text form (Sign) is base64url without padding of:
//
//	version (1 byte, 1) | kind (1 byte) | flags (1 byte) | reason (1 byte)
//	| record version (uvarint) | settings version (uvarint)
//	| time (uvarint, Unix milliseconds) | ID (16 bytes)
//	| [push only: channel length (1 byte) | channel]
//	| MAC (16 bytes)
//
// where flags bit 0 is Personalized (kind 1), bit 1 Allowed and bit 2
// Targeted (kind 2), and MAC is the first 16 bytes of HMAC-SHA256 under
// DecisionKey(secret) over "recguard decision-id v1", a zero byte, the
// user ID's length (uvarint), the user ID and everything before the MAC.
// A recommendation decision's ID is about 60 characters; a push answer's
// adds about 4 characters for every 3 bytes of its channel plus 2; no ID is
// longer than MaxDecisionIDLen.
type SignedDecision struct {
	Kind DecisionKind
	// Personalized is the recommendation decision (DecisionRecommend).
	Personalized bool
	// Allowed says the push may be sent (DecisionPush).
	Allowed bool
	// Reason is the answer's reason.
	Reason Reason
	// Channel and Targeted are the push asked about (DecisionPush).
	Channel  string
	Targeted bool
	// RecordVersion and SettingsVersion are the answer's Basis.
	RecordVersion, SettingsVersion uint64
	// At is when the answer was given, to the millisecond.
	At time.Time
	// ID is the SDK's ID of the answer (Basis.ID).
	ID DecisionID
}

// Mode is the outcome-event mode the decision allows: "personalized" for a
// personalized recommendation decision or an allowed targeted push,
// otherwise "non_personalized".
func (s SignedDecision) Mode() string {
	if (s.Kind == DecisionRecommend && s.Personalized) || (s.Kind == DecisionPush && s.Allowed && s.Targeted) {
		return "personalized"
	}
	return "non_personalized"
}

// check reports what makes s impossible to sign or parse: an unknown kind
// or reason, flags of the other kind, an answer that contradicts its
// reason, a bad channel, a time before 1970.
func (s SignedDecision) check() error {
	if s.Reason >= numReasons {
		return fmt.Errorf("unknown reason %d", uint8(s.Reason))
	}
	if s.At.UnixMilli() < 0 {
		return errors.New("time before 1970")
	}
	switch s.Kind {
	case DecisionRecommend:
		if s.Allowed || s.Targeted || s.Channel != "" {
			return errors.New("a recommendation decision has no push fields")
		}
		if s.Personalized != (s.Reason == ReasonPersonalized) {
			return fmt.Errorf("personalized %t with reason %s", s.Personalized, s.Reason)
		}
	case DecisionPush:
		if s.Personalized {
			return errors.New("a push answer has no personalized flag")
		}
		if s.Allowed != (s.Reason == ReasonAllowed) {
			return fmt.Errorf("allowed %t with reason %s", s.Allowed, s.Reason)
		}
		if err := ValidChannelName(s.Channel); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown kind %d", uint8(s.Kind))
	}
	return nil
}

// appendPayload appends to b the encoding of everything but the MAC.
func (s SignedDecision) appendPayload(b []byte) []byte {
	var flags byte
	if s.Personalized {
		flags |= flagPersonalized
	}
	if s.Allowed {
		flags |= flagAllowed
	}
	if s.Targeted {
		flags |= flagTargeted
	}
	b = append(b, decisionIDVersion, byte(s.Kind), flags, byte(s.Reason))
	b = binary.AppendUvarint(b, s.RecordVersion)
	b = binary.AppendUvarint(b, s.SettingsVersion)
	b = binary.AppendUvarint(b, uint64(s.At.UnixMilli()))
	b = append(b, s.ID[:]...)
	if s.Kind == DecisionPush {
		b = append(b, byte(len(s.Channel)))
		b = append(b, s.Channel...)
	}
	return b
}

// decisionMAC is the MAC of payload for userID under key (DecisionKey),
// appended to dst.
func decisionMAC(dst, key []byte, userID string, payload []byte) []byte {
	p := macPoolFor(key)
	m := p.Get().(*decisionHMAC)
	b := append(m.buf[:0], decisionIDLabel...)
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(len(userID)))
	b = append(b, userID...)
	b = append(b, payload...)
	m.buf = b
	m.h.Reset()
	m.h.Write(b)
	m.sum = m.h.Sum(m.sum[:0])
	dst = append(dst, m.sum[:decisionMACLen]...)
	p.Put(m)
	return dst
}

// decisionHMAC is a reusable HMAC-SHA256 under one key and its buffers:
// signing on every answer costs no allocation.
type decisionHMAC struct {
	h        hash.Hash
	buf, sum []byte
}

// macPool is the pool of decisionHMACs of one key. A deployment signs
// under one key: the last pool made is kept, and a call under another key
// replaces it.
type macPool struct {
	key  string
	pool sync.Pool
}

var lastMACPool atomic.Pointer[macPool]

func macPoolFor(key []byte) *sync.Pool {
	if mp := lastMACPool.Load(); mp != nil && mp.key == string(key) {
		return &mp.pool
	}
	mp := &macPool{key: string(key)}
	k := []byte(mp.key)
	mp.pool.New = func() any { return &decisionHMAC{h: hmac.New(sha256.New, k)} }
	lastMACPool.Store(mp)
	return &mp.pool
}

// Sign returns the decision ID of s for userID under key (DecisionKey of
// the deployment secret). It returns an error only for an s that no answer
// can be (see the fields' rules), or an empty key.
func (s SignedDecision) Sign(key []byte, userID string) (string, error) {
	if len(key) == 0 {
		return "", errors.New("consent: signing a decision ID: no key")
	}
	if err := s.check(); err != nil {
		return "", fmt.Errorf("consent: signing a decision ID: %w", err)
	}
	var pb [4 + 3*binary.MaxVarintLen64 + 16 + 1 + 255 + decisionMACLen]byte
	p := s.appendPayload(pb[:0])
	p = decisionMAC(p, key, userID, p)
	var tb [MaxDecisionIDLen + 256]byte
	return string(base64.RawURLEncoding.AppendEncode(tb[:0], p)), nil
}

// VerifyDecisionID parses id and checks that it was signed under key for
// userID; it returns what the ID says. Any change to the ID, or a user
// other than the one it was issued for, is an error wrapping
// ErrInvalidDecisionID (a *FieldError on field decision_id).
func VerifyDecisionID(key []byte, userID, id string) (SignedDecision, error) {
	s, payload, mac, err := parseDecisionID(id)
	if err != nil {
		return SignedDecision{}, fieldErr("decision_id", ErrInvalidDecisionID, "%v", err)
	}
	var mb [decisionMACLen]byte
	if len(key) == 0 || !hmac.Equal(mac, decisionMAC(mb[:0], key, userID, payload)) {
		return SignedDecision{}, fieldErr("decision_id", ErrInvalidDecisionID, "not issued by this deployment for this user")
	}
	return s, nil
}

var decisionIDEncoding = base64.RawURLEncoding.Strict()

// parseDecisionID decodes a decision ID's text into what it says, the
// bytes the MAC covers and the MAC. It accepts only the canonical form
// (the one Sign makes), so one answer has one ID.
func parseDecisionID(id string) (s SignedDecision, payload, mac []byte, err error) {
	if len(id) == 0 || len(id) > MaxDecisionIDLen {
		return s, nil, nil, fmt.Errorf("%d characters: want 1 to %d", len(id), MaxDecisionIDLen)
	}
	for i := 0; i < len(id); i++ {
		// The decoder skips newlines: refuse them (and all else outside
		// the alphabet) first, so that one answer has one ID.
		if c := id[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return s, nil, nil, errors.New("not base64url without padding")
		}
	}
	b, err := decisionIDEncoding.DecodeString(id)
	if err != nil {
		return s, nil, nil, errors.New("not base64url without padding")
	}
	if len(b) < 4+3+len(s.ID)+decisionMACLen {
		return s, nil, nil, errors.New("too short")
	}
	if b[0] != decisionIDVersion {
		return s, nil, nil, fmt.Errorf("unknown version %d", b[0])
	}
	s.Kind, s.Reason = DecisionKind(b[1]), Reason(b[3])
	flags := b[2]
	if flags&^(flagPersonalized|flagAllowed|flagTargeted) != 0 {
		return s, nil, nil, fmt.Errorf("unknown flags %#x", flags)
	}
	s.Personalized, s.Allowed, s.Targeted = flags&flagPersonalized != 0, flags&flagAllowed != 0, flags&flagTargeted != 0
	rest := b[4 : len(b)-decisionMACLen]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(rest)
		if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
			return s, nil, nil, errors.New("bad number")
		}
		vals[i], rest = v, rest[n:]
	}
	s.RecordVersion, s.SettingsVersion = vals[0], vals[1]
	if vals[2] > 1<<62 {
		return s, nil, nil, errors.New("time out of range")
	}
	s.At = time.UnixMilli(int64(vals[2])).UTC()
	if len(rest) < len(s.ID) {
		return s, nil, nil, errors.New("too short")
	}
	rest = rest[copy(s.ID[:], rest):]
	if s.Kind == DecisionPush {
		if len(rest) < 1 || int(rest[0]) != len(rest)-1 {
			return s, nil, nil, errors.New("bad channel")
		}
		s.Channel, rest = string(rest[1:]), nil
	}
	if len(rest) != 0 {
		return s, nil, nil, errors.New("data after the ID")
	}
	if err := s.check(); err != nil {
		return s, nil, nil, err
	}
	return s, b[:len(b)-decisionMACLen], b[len(b)-decisionMACLen:], nil
}
