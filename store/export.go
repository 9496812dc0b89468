package store

import (
	"context"
	"fmt"
	"time"

	"github.com/recguard/recguard/consent"
)

// Export is everything a store holds about one user, for the Art. 23-25
// access and portability rights. For an erased user it holds the tombstone
// and the erasure certificate, not the retained receipts: those are kept in
// storage only, for an auditor to verify (Art. 24).
type Export struct {
	Record   consent.Record    `json:"record"`
	Receipts []consent.Receipt `json:"receipts"`
	// Erasure is the erasure certificate of an erased user; nil otherwise.
	Erasure *Erasure `json:"erasure,omitempty"`
	// Ledger is the user's exposures and pushes the store keeps (a store
	// with the Ledger ability), oldest first; none for an erased user.
	Ledger []LedgerEntry `json:"ledger,omitempty"`
}

// Erasure certifies that a user's personal data was erased: when, by whom,
// what was deleted, and what is kept, why and until when.
type Erasure struct {
	ErasedAt  time.Time       `json:"erased_at"`
	By        consent.Actor   `json:"by"`
	Surface   consent.Surface `json:"surface"`
	ReceiptID string          `json:"receipt_id"`
	// Deleted lists what was deleted.
	Deleted []string `json:"deleted"`
	// Retained lists what is kept without personal content.
	Retained []Retained `json:"retained"`
}

// Retained is one thing kept after an erasure.
type Retained struct {
	What string `json:"what"`
	Why  string `json:"why"`
	// Until is when it goes at the latest; zero for as long as the
	// account ID exists.
	Until time.Time `json:"until,omitzero"`
}

// ErasedData lists what an erasure deletes, in every store.
var ErasedData = []string{
	"consent state: the personalization switch, channel refusals, sensitive-data consents, guardian consent, minor status, refusal times",
	"every tag and every suppression",
	"the personal content of every receipt: tags, categories, purposes, old and new values, reasons, evidence references",
	"the content of every changelog entry about the user",
	"every outcome event recorded for the user",
	"the link between the user and their exposures and pushes in the ledger (the entries stay, naming no one)",
}

// ExportUser reads the user's record and receipts, and their ledger
// entries when the store keeps a Ledger. A user never seen exports
// as an empty record with no receipts (no error). An erased user exports as
// the tombstone with no receipts and the erasure certificate.
func ExportUser(ctx context.Context, s Store, userID string) (Export, error) {
	if err := consent.ValidUserID(userID); err != nil {
		return Export{}, err
	}
	r, err := s.Get(ctx, userID)
	if err != nil && !isNotFound(err) {
		return Export{}, err
	}
	rs, err := s.Receipts(ctx, userID)
	if err != nil {
		return Export{}, err
	}
	if rs == nil {
		rs = []consent.Receipt{}
	}
	if !r.State.Erased {
		exp := Export{Record: r, Receipts: rs}
		if l, ok := s.(Ledger); ok {
			if exp.Ledger, err = l.UserLedger(ctx, userID); err != nil {
				return Export{}, err
			}
			if len(exp.Ledger) == 0 {
				exp.Ledger = nil
			}
		}
		return exp, nil
	}
	set, err := s.Settings(ctx)
	if err != nil {
		return Export{}, err
	}
	return Export{Record: r, Receipts: []consent.Receipt{}, Erasure: Certify(r, rs, set.RetentionOrDefault())}, nil
}

// Certify builds the erasure certificate of an erased record from its
// (redacted) receipts and the receipts' retention.
func Certify(r consent.Record, rs []consent.Receipt, retention time.Duration) *Erasure {
	e := &Erasure{Deleted: ErasedData}
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Op == consent.OpErase {
			e.ErasedAt, e.By, e.Surface, e.ReceiptID = rs[i].At, rs[i].Actor, rs[i].Surface, rs[i].ID
			break
		}
	}
	if e.ErasedAt.IsZero() {
		e.ErasedAt = r.UpdatedAt
	}
	e.Retained = append(e.Retained, Retained{
		What: "a tombstone: the account ID, that it was erased, when, and the record's version and chain head",
		Why:  "so that no pipeline writes data to this ID again (Art. 24) and the retained receipts can be verified",
	})
	if len(rs) > 0 {
		e.Retained = append(e.Retained, Retained{
			What:  fmt.Sprintf("%d receipts without personal content: sequence number, time, actor, surface, operation, policy version, digest and chain hash", len(rs)),
			Why:   "records of consent changes are kept for their retention (Art. 12); they are stored only, for auditors, and not used",
			Until: rs[len(rs)-1].At.Add(retention).UTC(),
		})
	}
	return e
}
