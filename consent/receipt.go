package consent

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Receipt is the record one change leaves: who, when, through which surface,
// what, old -> new, under which policy version. The receipts of one user form
// a keyed hash chain: each carries the hash of the one before (PrevHash) and
// its own HMAC over its content and PrevHash, so VerifyChain detects an
// edited, removed or reordered receipt, and whoever can write the store but
// does not hold the deployment's ChainKey cannot rebuild the chain.
//
// The personal fields (Subject, Old, New, Purpose, Reason, Ref) enter the
// hash only through Digest, a SHA-256 over a random Salt and those fields.
// Erasure drops the personal fields and the salt (Redact): the receipt then
// says that a change of kind Op was made at At by Actor through Surface,
// nothing about what it was, and the chain still verifies.
type Receipt struct {
	// ID identifies the receipt; it is derived from Hash.
	ID string `json:"id"`
	// UserID is the user the change was about; empty for settings receipts.
	UserID string `json:"user_id,omitempty"`
	// Seq numbers the user's receipts from 1 without gaps; it equals the
	// record version the change produced.
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	Actor   Actor     `json:"actor"`
	Surface Surface   `json:"surface"`
	Op      Op        `json:"op"`
	// Subject is what the operation was about: a channel, category, tag,
	// or empty. Personal.
	Subject string `json:"subject,omitempty"`
	// Old and New are the state before and after. Personal.
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
	// Purpose (personal) and PolicyVersion name the policy the change was
	// made under.
	Purpose       string `json:"purpose,omitempty"`
	PolicyVersion int    `json:"policy_version"`
	// Reason is free text. Personal.
	Reason string `json:"reason,omitempty"`
	// Ref is the change's reference to its evidence (see Change.Ref).
	// Personal.
	Ref string `json:"ref,omitempty"`
	// Diff lists every difference a settings change made, one line each
	// (see DiffSettings); empty for users' receipts.
	Diff []string `json:"diff,omitempty"`
	// Salt is the random salt of Digest; dropped by Redact.
	Salt string `json:"salt,omitempty"`
	// Digest commits to the personal fields: hex SHA-256 over Salt and
	// the personal fields. It stays when they are dropped.
	Digest string `json:"digest"`
	// Redacted is true once the personal fields and the salt were dropped
	// (the user was erased).
	Redacted bool   `json:"redacted,omitempty"`
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash"`
}

// ChainKey keys the receipt chains (HMAC-SHA256): a deployment secret kept
// outside the store. An empty key makes an unkeyed SHA-256 chain, which
// detects accidents but not whoever can write the store.
type ChainKey []byte

// MinChainKeyLen is the shortest ChainKey a deployment should use.
const MinChainKeyLen = 16

// personal is the part of a Receipt that Digest commits to.
type personal struct {
	Subject string `json:"s"`
	Old     string `json:"o"`
	New     string `json:"n"`
	Purpose string `json:"p"`
	Reason  string `json:"r"`
	Ref     string `json:"f"`
}

func (r *Receipt) personal() personal {
	return personal{Subject: r.Subject, Old: r.Old, New: r.New, Purpose: r.Purpose, Reason: r.Reason, Ref: r.Ref}
}

// hasPersonal reports whether any personal field is set.
func (r *Receipt) hasPersonal() bool { return r.personal() != personal{} }

// Seal fills r.Salt (when empty), r.Digest, r.Hash and r.ID from r's content
// and r.PrevHash under key.
func (r *Receipt) Seal(key ChainKey) {
	if r.Salt == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil { // never fails (crypto/rand)
			panic(err)
		}
		r.Salt = hex.EncodeToString(b[:])
	}
	r.Redacted = false
	r.Digest = r.digest()
	r.Hash = r.computeHash(key)
	r.ID = "rcpt_" + r.Hash[:24]
}

// Redact returns r without its personal fields and salt: what an erased
// user's receipt keeps. It still verifies.
func (r Receipt) Redact() Receipt {
	p := r
	p.Subject, p.Old, p.New, p.Purpose, p.Reason, p.Ref, p.Salt = "", "", "", "", "", "", ""
	p.Redacted = true
	return p
}

func (r *Receipt) digest() string {
	b, err := json.Marshal(r.personal())
	if err != nil { // strings always marshal
		panic(err)
	}
	h := sha256.New()
	h.Write([]byte(r.Salt))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (r *Receipt) computeHash(key ChainKey) string {
	c := *r
	c.ID, c.Hash = "", ""
	c.Subject, c.Old, c.New, c.Purpose, c.Reason, c.Ref, c.Salt = "", "", "", "", "", "", ""
	c.Redacted = false
	c.At = c.At.UTC()
	b, err := json.Marshal(c)
	if err != nil { // a Receipt always marshals
		panic(err)
	}
	if len(key) == 0 {
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// legacyReceipt is a receipt as sealed before digests and chain keys: an
// unkeyed SHA-256 over every field, personal ones included.
type legacyReceipt struct {
	ID            string    `json:"id"`
	UserID        string    `json:"user_id,omitempty"`
	Seq           uint64    `json:"seq"`
	At            time.Time `json:"at"`
	Actor         Actor     `json:"actor"`
	Surface       Surface   `json:"surface"`
	Op            Op        `json:"op"`
	Subject       string    `json:"subject,omitempty"`
	Old           string    `json:"old"`
	New           string    `json:"new"`
	Purpose       string    `json:"purpose,omitempty"`
	PolicyVersion int       `json:"policy_version"`
	Reason        string    `json:"reason,omitempty"`
	Ref           string    `json:"ref,omitempty"`
	Diff          []string  `json:"diff,omitempty"`
	PrevHash      string    `json:"prev_hash,omitempty"`
	Hash          string    `json:"hash"`
}

// legacyHash is the hash a receipt sealed before digests carries.
func (r *Receipt) legacyHash() string {
	b, err := json.Marshal(legacyReceipt{UserID: r.UserID, Seq: r.Seq, At: r.At.UTC(), Actor: r.Actor, Surface: r.Surface, Op: r.Op,
		Subject: r.Subject, Old: r.Old, New: r.New, Purpose: r.Purpose, PolicyVersion: r.PolicyVersion, Reason: r.Reason, Ref: r.Ref,
		Diff: r.Diff, PrevHash: r.PrevHash})
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkOne verifies one receipt on its own: its personal fields match its
// digest (or were dropped by Redact), its hash its content under key, its
// ID its hash. Without a key (a store made before chain keys), a receipt
// sealed before digests existed (no digest, no salt) is checked against
// its unkeyed hash over every field.
func (r *Receipt) checkOne(key ChainKey) error {
	if len(key) == 0 && r.Digest == "" && r.Salt == "" && !r.Redacted {
		if len(r.Hash) < 24 || r.legacyHash() != r.Hash || r.ID != "rcpt_"+r.Hash[:24] {
			return fmt.Errorf("content or ID does not match its hash")
		}
		return nil
	}
	if r.Redacted {
		if r.hasPersonal() || r.Salt != "" {
			return fmt.Errorf("redacted but holds personal fields")
		}
	} else if r.Salt == "" || r.digest() != r.Digest {
		return fmt.Errorf("personal fields do not match their digest")
	}
	if len(r.Hash) < 24 || !hmac.Equal([]byte(r.computeHash(key)), []byte(r.Hash)) || r.ID != "rcpt_"+r.Hash[:24] {
		return fmt.Errorf("content or ID does not match its hash")
	}
	return nil
}

// Anchor is what a purge of expired receipts leaves in their place: the
// Seq, Hash and time of the last receipt purged, and a MAC under the chain
// key over the three, so that whoever can write the store cannot pass off
// a removal of recent receipts as a purge.
type Anchor struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
	MAC  string    `json:"mac"`
}

// IsZero reports whether nothing was purged.
func (a Anchor) IsZero() bool { return a.Seq == 0 && a.Hash == "" && a.MAC == "" }

// NewAnchor returns the anchor a purge leaves after removing receipts up to
// and including r.
func NewAnchor(r Receipt, key ChainKey) Anchor {
	a := Anchor{Seq: r.Seq, Hash: r.Hash, At: r.At.UTC().Round(0)}
	a.MAC = a.mac(key)
	return a
}

func (a Anchor) mac(key ChainKey) string {
	return macHex(key, fmt.Sprintf("anchor\x00%d\x00%s\x00%d", a.Seq, a.Hash, a.At.UnixNano()))
}

// macHex is the hex HMAC-SHA256 of msg under key, or its SHA-256 without one.
func macHex(key ChainKey, msg string) string {
	if len(key) == 0 {
		sum := sha256.Sum256([]byte(msg))
		return hex.EncodeToString(sum[:])
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// Head is what one user's receipts must run between: the record's version
// and last hash (the newest receipt), the anchor a purge left (the receipt
// before the oldest), and the retention that allowed the purge.
type Head struct {
	// UserID, Version and LastHash are the record's: the newest receipt
	// must have Seq == Version and Hash == LastHash.
	UserID   string
	Version  uint64
	LastHash string
	// Content is the record's ContentDigest and HeadMAC its MAC over the
	// four (Record.HeadMAC). With a UserID and a Version the MAC must match
	// under the key; a head built by hand without a UserID skips the check.
	Content string
	HeadMAC string
	// Purged is the anchor the last purge left; zero when none.
	Purged Anchor
	// Retention is how long receipts are kept; a purged prefix is accepted
	// only when its last receipt was at least Retention old at Now.
	Retention time.Duration
	// Now is the time of the check; zero means time.Now().
	Now time.Time
}

// HeadOf returns the head a record's receipts must verify against, with
// the settings' retention, at now.
func HeadOf(r Record, set *Settings, now time.Time) Head {
	return Head{UserID: r.UserID, Version: r.Version, LastHash: r.LastHash, Content: r.ContentDigest(), HeadMAC: r.HeadMAC,
		Purged: r.Purged, Retention: set.RetentionOrDefault(), Now: now}
}

// Sealed reports whether h's MAC is the chain key's own over its user,
// version, last hash and content digest. A head without a UserID (built by
// hand) has nothing to check and is reported sealed.
func (h Head) Sealed(key ChainKey) bool {
	if h.UserID == "" && h.HeadMAC == "" {
		return true
	}
	return hmac.Equal([]byte(headMAC(key, h.UserID, h.Version, h.LastHash, h.Content)), []byte(h.HeadMAC))
}

// AnchorSealed reports whether a is the chain key's own anchor.
func (a Anchor) Sealed(key ChainKey) bool {
	return hmac.Equal([]byte(a.mac(key)), []byte(a.MAC))
}

// VerifyChain checks the receipts of one user, oldest first, against the
// record's head h under key: each receipt's personal fields match its digest
// (or were redacted), its hash its content, each PrevHash the hash before
// it, sequence numbers run without gaps, the newest receipt is the record's
// head (so receipts removed from the newest end are detected), and the
// oldest is Seq 1 or follows the anchor a purge left (checked under key,
// and only when the anchored receipt is past the retention; so receipts
// removed from the oldest end are detected too). The error wraps
// ErrBrokenChain and says where.
func VerifyChain(rs []Receipt, h Head, key ChainKey) error {
	now := h.Now
	if now.IsZero() {
		now = time.Now()
	}
	// Without a key (a store made before chain keys), a record written
	// before heads were sealed has no MAC to check.
	if h.Version > 0 && !(len(key) == 0 && h.HeadMAC == "") && !h.Sealed(key) {
		return fieldErr("receipts", ErrBrokenChain, "the record's head (version %d) is not the store's own: edited, rolled back or forged", h.Version)
	}
	if !h.Purged.IsZero() {
		if !h.Purged.Sealed(key) {
			return fieldErr("receipts", ErrBrokenChain, "the purge anchor (seq %d) is not the store's own", h.Purged.Seq)
		}
		if h.Retention > 0 && now.Sub(h.Purged.At) < h.Retention {
			return fieldErr("receipts", ErrBrokenChain, "receipts up to seq %d were removed before their retention ended", h.Purged.Seq)
		}
		if h.Purged.Seq > h.Version {
			return fieldErr("receipts", ErrBrokenChain, "the purge anchor (seq %d) is past the record's version %d", h.Purged.Seq, h.Version)
		}
	}
	if len(rs) == 0 {
		switch {
		case h.Version == 0:
			return nil
		case h.Purged.Seq == h.Version && h.Purged.Hash == h.LastHash:
			return nil // all purged
		}
		return fieldErr("receipts", ErrBrokenChain, "the record is at version %d but no receipt after seq %d is kept", h.Version, h.Purged.Seq)
	}
	for i := range rs {
		r := &rs[i]
		if err := r.checkOne(key); err != nil {
			return fieldErr("receipts", ErrBrokenChain, "receipt %d (seq %d): %v", i, r.Seq, err)
		}
		if r.Seq == 0 {
			return fieldErr("receipts", ErrBrokenChain, "receipt %d has seq 0", i)
		}
		if i == 0 {
			switch {
			case r.Seq == 1:
				if r.PrevHash != "" {
					return fieldErr("receipts", ErrBrokenChain, "first receipt has a predecessor hash")
				}
			case h.Purged.IsZero():
				return fieldErr("receipts", ErrBrokenChain, "receipts before seq %d are missing and no purge removed them", r.Seq)
			case r.Seq != h.Purged.Seq+1 || r.PrevHash != h.Purged.Hash:
				return fieldErr("receipts", ErrBrokenChain, "oldest receipt (seq %d) does not follow the purge anchor (seq %d)", r.Seq, h.Purged.Seq)
			}
			continue
		}
		p := &rs[i-1]
		if r.Seq != p.Seq+1 {
			return fieldErr("receipts", ErrBrokenChain, "gap between seq %d and %d", p.Seq, r.Seq)
		}
		if r.PrevHash != p.Hash {
			return fieldErr("receipts", ErrBrokenChain, "receipt seq %d does not chain to seq %d", r.Seq, p.Seq)
		}
		if r.UserID != p.UserID {
			return fieldErr("receipts", ErrBrokenChain, "receipt seq %d is for another user", r.Seq)
		}
	}
	// A receipt is redacted only by an erasure: an erase receipt follows
	// every redacted one (else its content was removed, not erased).
	erased := false
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Op == OpErase {
			erased = true
		}
		if rs[i].Redacted && !erased {
			return fieldErr("receipts", ErrBrokenChain, "receipt seq %d lost its content but no erasure follows it", rs[i].Seq)
		}
	}
	last := &rs[len(rs)-1]
	if last.Seq != h.Version || last.Hash != h.LastHash {
		return fieldErr("receipts", ErrBrokenChain, "newest receipt is seq %d but the record is at version %d: receipts were removed or the record replaced", last.Seq, h.Version)
	}
	return nil
}

// VerifyLinks checks a run of receipts on its own, oldest first: each
// receipt against its digest and hash under key, each PrevHash the hash
// before it, no gaps. It is for receipts with no record to anchor them
// (settings receipts); VerifyChain is the full check.
func VerifyLinks(rs []Receipt, key ChainKey) error {
	for i := range rs {
		r := &rs[i]
		if err := r.checkOne(key); err != nil {
			return fieldErr("receipts", ErrBrokenChain, "receipt %d (seq %d): %v", i, r.Seq, err)
		}
		if i == 0 {
			if r.Seq == 1 && r.PrevHash != "" {
				return fieldErr("receipts", ErrBrokenChain, "first receipt has a predecessor hash")
			}
			continue
		}
		p := &rs[i-1]
		if r.Seq != p.Seq+1 || r.PrevHash != p.Hash {
			return fieldErr("receipts", ErrBrokenChain, "receipt seq %d does not follow seq %d", r.Seq, p.Seq)
		}
	}
	return nil
}
