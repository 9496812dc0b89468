package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Receipt is the record one change leaves: who, when, through which surface,
// what, old -> new, under which policy version. The receipts of one user form
// a hash chain: each carries the hash of the one before (PrevHash) and its
// own hash over its content and PrevHash, so VerifyChain detects an edited,
// removed or reordered receipt.
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
	// or empty.
	Subject string `json:"subject,omitempty"`
	Old     string `json:"old"`
	New     string `json:"new"`
	// Purpose and PolicyVersion name the policy the change was made under.
	Purpose       string `json:"purpose,omitempty"`
	PolicyVersion int    `json:"policy_version"`
	Reason        string `json:"reason,omitempty"`
	// Ref is the change's reference to its evidence (see Change.Ref).
	Ref string `json:"ref,omitempty"`
	// Diff lists every difference a settings change made, one line each
	// (see DiffSettings); empty for users' receipts.
	Diff     []string `json:"diff,omitempty"`
	PrevHash string   `json:"prev_hash,omitempty"`
	Hash     string   `json:"hash"`
}

// Seal fills r.Hash and r.ID from r's content and r.PrevHash.
func (r *Receipt) Seal() { r.Hash = r.computeHash(); r.ID = "rcpt_" + r.Hash[:24] }

func (r *Receipt) computeHash() string {
	c := *r
	c.ID, c.Hash = "", ""
	c.At = c.At.UTC()
	b, err := json.Marshal(c)
	if err != nil { // a Receipt always marshals
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// VerifyChain checks the receipts of one user, oldest first: each hash
// matches its content, each PrevHash the hash before it, sequence numbers run
// without gaps. The first receipt may start after 1 (older ones expired under
// the retention); its PrevHash is then taken on trust. The error wraps
// ErrBrokenChain and says where.
func VerifyChain(rs []Receipt) error {
	for i := range rs {
		r := &rs[i]
		if got := r.computeHash(); got != r.Hash || len(r.Hash) < 24 || r.ID != "rcpt_"+r.Hash[:24] {
			return fieldErr("receipts", ErrBrokenChain, "receipt %d (seq %d): content or ID does not match its hash", i, r.Seq)
		}
		if r.Seq == 0 {
			return fieldErr("receipts", ErrBrokenChain, "receipt %d has seq 0", i)
		}
		if i == 0 {
			if r.Seq == 1 && r.PrevHash != "" {
				return fieldErr("receipts", ErrBrokenChain, "first receipt has a predecessor hash")
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
	return nil
}
