package consent_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

var testKey = consent.ChainKey("0123456789abcdef-test-chain-key")

// chain returns the record and the receipts, sealed under testKey, of a
// history of 6 changes of user.
func chainRec(tb testing.TB) (consent.Record, []consent.Receipt) {
	tb.Helper()
	set := testSettings()
	r := consent.NewRecord(user)
	var rs []consent.Receipt
	for i, ch := range []consent.Change{
		consent.SetPersonalization(user, false),
		consent.RefuseChannel(user, "sms"),
		consent.GrantSensitive(user, tags.Religion, "personalization"),
		consent.DeclareTag(user, "religion:buddhism"),
		consent.DeleteTag(user, "religion:buddhism"),
		consent.AllowChannel(user, "sms"),
	} {
		ch.At = t0.Add(time.Duration(i) * time.Minute)
		next, rc, err := r.ApplyKeyed(ch, set, testKey)
		if err != nil || rc == nil {
			tb.Fatalf("setup change %d: %v %v", i, rc, err)
		}
		r, rs = next, append(rs, *rc)
	}
	return r, rs
}

func chain(tb testing.TB) []consent.Receipt { _, rs := chainRec(tb); return rs }

func headOf(rs []consent.Receipt) consent.Head {
	if len(rs) == 0 {
		return consent.Head{}
	}
	return consent.Head{Version: rs[len(rs)-1].Seq, LastHash: rs[len(rs)-1].Hash, Now: t0.Add(time.Hour)}
}

func cloneReceipts(rs []consent.Receipt) []consent.Receipt {
	return append([]consent.Receipt(nil), rs...)
}

// reseal recomputes the hashes of rs[from:] under key so that only the
// change made to rs[from] itself (not its hash) can be detected, relinking
// the rest.
func reseal(rs []consent.Receipt, from int, key consent.ChainKey) {
	for i := from; i < len(rs); i++ {
		if i > from {
			rs[i].PrevHash = rs[i-1].Hash
		}
		rs[i].Seal(key)
	}
}

func TestSeal(t *testing.T) {
	r := consent.Receipt{UserID: user, Seq: 1, At: t0, Actor: consent.ActorUser, Surface: consent.SurfaceWeb,
		Op: consent.OpSetChannel, Subject: "sms", Old: "allowed", New: "refused", Purpose: "push", PolicyVersion: 1}
	r.Seal(testKey)
	if len(r.Hash) != 64 {
		t.Fatalf("Hash = %q, want 64 hex digits", r.Hash)
	}
	if _, err := hex.DecodeString(r.Hash); err != nil {
		t.Errorf("Hash %q is not hex: %v", r.Hash, err)
	}
	if r.ID != "rcpt_"+r.Hash[:24] {
		t.Errorf("ID = %q, want rcpt_ + the first 24 hex digits of %q", r.ID, r.Hash)
	}
	if len(r.Salt) != 32 || len(r.Digest) != 64 {
		t.Errorf("Salt %q Digest %q: want a 16-byte salt and a SHA-256 digest", r.Salt, r.Digest)
	}
	h := r.Hash

	// Sealing again, or with a different ID or Hash already set, gives the
	// same hash: they are not part of the content.
	again := r
	again.ID, again.Hash = "rcpt_forged", "00"
	again.Seal(testKey)
	if again.Hash != h {
		t.Errorf("re-sealed hash = %q, want %q", again.Hash, h)
	}
	// The same instant in another zone hashes the same.
	zoned := r
	zoned.At = r.At.In(time.FixedZone("CST", 8*3600))
	zoned.Seal(testKey)
	if zoned.Hash != h {
		t.Errorf("hash with At in +08:00 = %q, want %q", zoned.Hash, h)
	}
	// Another key, or none, gives another hash: the chain is keyed.
	other := r
	other.Seal(consent.ChainKey("another deployment's key!"))
	unkeyed := r
	unkeyed.Seal(nil)
	if other.Hash == h || unkeyed.Hash == h {
		t.Errorf("hash does not depend on the key")
	}

	// Every field of the content is covered by the hash (the personal ones
	// through the digest).
	mutations := map[string]func(*consent.Receipt){
		"UserID":        func(r *consent.Receipt) { r.UserID = "u2" },
		"Seq":           func(r *consent.Receipt) { r.Seq = 2 },
		"At":            func(r *consent.Receipt) { r.At = r.At.Add(time.Nanosecond) },
		"Actor":         func(r *consent.Receipt) { r.Actor = consent.ActorAdmin },
		"Surface":       func(r *consent.Receipt) { r.Surface = consent.SurfaceAPI },
		"Op":            func(r *consent.Receipt) { r.Op = consent.OpSetPersonalization },
		"Subject":       func(r *consent.Receipt) { r.Subject = "email" },
		"Old":           func(r *consent.Receipt) { r.Old = "refused" },
		"New":           func(r *consent.Receipt) { r.New = "allowed" },
		"Purpose":       func(r *consent.Receipt) { r.Purpose = "ads" },
		"PolicyVersion": func(r *consent.Receipt) { r.PolicyVersion = 2 },
		"Reason":        func(r *consent.Receipt) { r.Reason = "x" },
		"Ref":           func(r *consent.Receipt) { r.Ref = "guardian-7" },
		"Salt":          func(r *consent.Receipt) { r.Salt = strings.Repeat("ab", 16) },
		"PrevHash":      func(r *consent.Receipt) { r.PrevHash = h },
	}
	for field, mutate := range mutations {
		m := r
		mutate(&m)
		m.Seal(testKey)
		if m.Hash == h {
			t.Errorf("changing %s does not change the hash", field)
		}
	}
	// The salt hides the personal fields: the same content sealed twice
	// gets two digests.
	fresh := r
	fresh.Salt = ""
	fresh.Seal(testKey)
	if fresh.Digest == r.Digest {
		t.Errorf("two seals of the same content share a digest: the salt is not random")
	}
}

func TestRedact(t *testing.T) {
	rec, rs := chainRec(t)
	// Receipts are redacted by an erasure: append one.
	ch := consent.Erase(user)
	ch.At = t0.Add(time.Hour)
	rec, rc, err := rec.ApplyKeyed(ch, testSettings(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	rs = append(rs, *rc)
	red := make([]consent.Receipt, len(rs))
	for i := range rs {
		red[i] = rs[i].Redact()
		r := red[i]
		if r.Subject != "" || r.Old != "" || r.New != "" || r.Purpose != "" || r.Reason != "" || r.Ref != "" || r.Salt != "" || !r.Redacted {
			t.Errorf("Redact left personal fields: %+v", r)
		}
		if r.Hash != rs[i].Hash || r.Seq != rs[i].Seq || r.Op != rs[i].Op || r.At != rs[i].At {
			t.Errorf("Redact changed the skeleton: %+v", r)
		}
	}
	if strings.Contains(mustJSON(t, red), "buddhism") || strings.Contains(mustJSON(t, red), "religion") {
		t.Errorf("redacted receipts still name the tag or category: %s", mustJSON(t, red))
	}
	h := consent.HeadOf(rec, testSettings(), t0.Add(2*time.Hour))
	if err := consent.VerifyChain(red, h, testKey); err != nil {
		t.Errorf("VerifyChain(redacted) = %v, want nil", err)
	}
	// A receipt redacted without an erasure after it: its content was
	// removed, not erased.
	live := cloneReceipts(rs[:6])
	live[2] = live[2].Redact()
	lh := consent.Head{Version: 6, LastHash: live[5].Hash, Now: h.Now}
	if err := consent.VerifyChain(live, lh, testKey); err == nil || !strings.Contains(err.Error(), "lost its content but no erasure follows it") {
		t.Errorf("VerifyChain(a live receipt redacted) = %v, want the removal detected", err)
	}
	// Half redacted verifies too (the newest were redacted first).
	mixed := append(cloneReceipts(rs[:3]), red[3:]...)
	if err := consent.VerifyChain(mixed, h, testKey); err != nil {
		t.Errorf("VerifyChain(half redacted) = %v, want nil", err)
	}
	// A redacted receipt given back fields it never had fails.
	forged := cloneReceipts(red)
	forged[3].Subject = "religion:christianity"
	if err := consent.VerifyChain(forged, h, testKey); err == nil {
		t.Errorf("a redacted receipt with invented content verifies")
	}
	// A receipt whose fields were swapped but whose digest was kept fails.
	swapped := cloneReceipts(rs)
	swapped[3].Subject = "religion:christianity"
	if err := consent.VerifyChain(swapped, h, testKey); err == nil {
		t.Errorf("a receipt with edited personal fields verifies")
	}
}

func TestVerifyChainAccepts(t *testing.T) {
	rec, rs := chainRec(t)
	head := consent.Head{Version: rec.Version, LastHash: rec.LastHash, Now: t0.Add(4 * 365 * 24 * time.Hour), Retention: 3 * 365 * 24 * time.Hour}
	purgedTo := func(i int) consent.Head {
		h := head
		h.Purged = consent.NewAnchor(rs[i], testKey)
		return h
	}
	cases := []struct {
		name string
		rs   []consent.Receipt
		head consent.Head
	}{
		{"nil for a user never seen", nil, consent.Head{}},
		{"empty for a user never seen", []consent.Receipt{}, consent.Head{}},
		{"first receipt only", rs[:1], headOf(rs[:1])},
		{"whole chain", rs, head},
		{"oldest two purged past the retention", rs[2:], purgedTo(1)},
		{"all but the newest purged", rs[5:], purgedTo(4)},
		{"all purged", nil, purgedTo(5)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := consent.VerifyChain(c.rs, c.head, testKey); err != nil {
				t.Errorf("VerifyChain = %v, want nil", err)
			}
		})
	}
}

func TestVerifyChainRejects(t *testing.T) {
	long := 3 * 365 * 24 * time.Hour
	cases := []struct {
		name    string
		tamper  func(rs []consent.Receipt, h *consent.Head) []consent.Receipt
		wantMsg string
	}{
		{
			name: "edited content",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs[2].New = "granted for ads under policy v9"
				return rs
			},
			wantMsg: "receipt 2 (seq 3): personal fields do not match their digest",
		},
		{
			name: "edited time",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs[0].At = rs[0].At.Add(time.Second)
				return rs
			},
			wantMsg: "receipt 0 (seq 1): content or ID does not match its hash",
		},
		{
			name: "edited hash",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs[5].Hash = strings.Repeat("0", 64)
				return rs
			},
			wantMsg: "receipt 5 (seq 6): content or ID does not match its hash",
		},
		{
			name: "whole chain rebuilt without the key",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs[3].Subject = "religion:christianity"
				reseal(rs, 0, nil)
				back := consent.Record{UserID: rs[0].UserID, Version: 6, LastHash: rs[5].Hash}
				h.LastHash, h.HeadMAC = back.LastHash, back.ComputeHeadMAC(nil)
				return rs
			},
			wantMsg: "the record's head (version 6) is not the store's own",
		},
		{
			name: "whole chain rebuilt with another key",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				reseal(rs, 0, consent.ChainKey("the attacker's own key"))
				h.LastHash = rs[5].Hash
				h.HeadMAC = "" // and hope the check is skipped
				return rs
			},
			wantMsg: "is not the store's own",
		},
		{
			name: "whole chain rebuilt without the key, head checked by hand",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				reseal(rs, 0, nil)
				*h = consent.Head{Version: 6, LastHash: rs[5].Hash, Now: h.Now}
				return rs
			},
			wantMsg: "receipt 0 (seq 1): content or ID does not match its hash",
		},
		{
			name: "edited and re-sealed receipt no longer chains",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs[1].Actor = consent.ActorAdmin
				rs[1].Seal(testKey)
				return rs
			},
			wantMsg: "receipt seq 3 does not chain to seq 2",
		},
		{
			name:    "gap: a receipt removed in the middle",
			tamper:  func(rs []consent.Receipt, h *consent.Head) []consent.Receipt { return append(rs[:2], rs[3:]...) },
			wantMsg: "gap between seq 2 and 4",
		},
		{
			name:    "newest removed",
			tamper:  func(rs []consent.Receipt, h *consent.Head) []consent.Receipt { return rs[:5] },
			wantMsg: "newest receipt is seq 5 but the record is at version 6",
		},
		{
			name:    "newest two removed",
			tamper:  func(rs []consent.Receipt, h *consent.Head) []consent.Receipt { return rs[:4] },
			wantMsg: "newest receipt is seq 4 but the record is at version 6",
		},
		{
			name:    "all removed",
			tamper:  func(rs []consent.Receipt, h *consent.Head) []consent.Receipt { return nil },
			wantMsg: "the record is at version 6 but no receipt after seq 0 is kept",
		},
		{
			name: "newest removed and the record rolled back to match, without the key",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				back := consent.Record{UserID: rs[0].UserID, Version: 5, LastHash: rs[4].Hash}
				h.Version, h.LastHash, h.HeadMAC = back.Version, back.LastHash, back.ComputeHeadMAC(nil)
				return rs[:5]
			},
			wantMsg: "the record's head (version 5) is not the store's own",
		},
		{
			name: "newest removed and the record's head MAC deleted",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				h.Version, h.LastHash, h.HeadMAC = 5, rs[4].Hash, ""
				return rs[:5]
			},
			wantMsg: "is not the store's own",
		},
		{
			name: "the head MAC of another user",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				h.UserID = "someone-else"
				return rs
			},
			wantMsg: "is not the store's own",
		},
		{
			name:    "oldest two removed, no purge",
			tamper:  func(rs []consent.Receipt, h *consent.Head) []consent.Receipt { return rs[2:] },
			wantMsg: "receipts before seq 3 are missing and no purge removed them",
		},
		{
			name:    "oldest and newest removed",
			tamper:  func(rs []consent.Receipt, h *consent.Head) []consent.Receipt { return rs[2:4] },
			wantMsg: "receipts before seq 3 are missing",
		},
		{
			name: "purged before the retention ended",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				h.Purged = consent.NewAnchor(rs[1], testKey)
				h.Retention = long
				return rs[2:]
			},
			wantMsg: "receipts up to seq 2 were removed before their retention ended",
		},
		{
			name: "anchor forged without the key",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				a := consent.NewAnchor(rs[1], nil)
				a.At = a.At.Add(-4 * long)
				h.Purged = a
				h.Retention = long
				return rs[2:]
			},
			wantMsg: "the purge anchor (seq 2) is not the store's own",
		},
		{
			name: "anchor's time moved back",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				a := consent.NewAnchor(rs[1], testKey)
				a.At = a.At.Add(-4 * long)
				h.Purged = a
				h.Retention = long
				return rs[2:]
			},
			wantMsg: "is not the store's own",
		},
		{
			name: "anchor left, one more receipt removed",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				h.Purged = consent.NewAnchor(rs[1], testKey)
				h.Retention = 0 // past the retention: only the link is wrong
				return rs[3:]
			},
			wantMsg: "oldest receipt (seq 4) does not follow the purge anchor (seq 2)",
		},
		{
			name:    "reordered",
			tamper:  func(rs []consent.Receipt, h *consent.Head) []consent.Receipt { rs[2], rs[3] = rs[3], rs[2]; return rs },
			wantMsg: "gap between seq 2 and 4",
		},
		{
			name: "duplicated receipt",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				return []consent.Receipt{rs[0], rs[1], rs[1]}
			},
			wantMsg: "gap between seq 2 and 2",
		},
		{
			name: "wrong PrevHash, re-sealed",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs[3].PrevHash = rs[1].Hash
				reseal(rs, 3, testKey)
				return rs
			},
			wantMsg: "receipt seq 4 does not chain to seq 3",
		},
		{
			name: "renumbered to hide a removal",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs = append(rs[:2], rs[3:]...)
				for i := 2; i < len(rs); i++ {
					rs[i].Seq = uint64(i + 1)
				}
				reseal(rs, 2, testKey)
				return rs
			},
			wantMsg: "receipt seq 3 does not chain to seq 2",
		},
		{
			name: "first receipt with a predecessor",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs[0].PrevHash = strings.Repeat("a", 64)
				reseal(rs, 0, testKey)
				return rs
			},
			wantMsg: "first receipt has a predecessor hash",
		},
		{
			name: "receipt of another user spliced in",
			tamper: func(rs []consent.Receipt, h *consent.Head) []consent.Receipt {
				rs[4].UserID = "u2"
				rs[4].Seal(testKey)
				return rs[:5]
			},
			wantMsg: "receipt seq 5 is for another user",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, orig := chainRec(t)
			h := consent.HeadOf(rec, testSettings(), t0.Add(time.Hour))
			rs := c.tamper(cloneReceipts(orig), &h)
			err := consent.VerifyChain(rs, h, testKey)
			wantFieldErr(t, err, consent.ErrBrokenChain, "receipts")
			if err != nil && !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("VerifyChain error = %q, want it to say %q", err, c.wantMsg)
			}
		})
	}
}

// TestVerifyChainDoesNotModify makes sure verification reads only.
func TestVerifyChainDoesNotModify(t *testing.T) {
	rs := chain(t)
	snap := mustJSON(t, rs)
	if err := consent.VerifyChain(rs, headOf(rs), testKey); err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, rs); got != snap {
		t.Errorf("VerifyChain modified the receipts")
	}
}

// TestLegacyReceipts: receipts sealed before digests and chain keys (an
// unkeyed SHA-256 over every field) still verify without a key, as they did,
// and a legacy record head has no MAC to check then; under a key they do
// not (a keyed deployment accepts only what its key sealed).
func TestLegacyReceipts(t *testing.T) {
	old := func(seq uint64, prev, subject string) consent.Receipt {
		r := consent.Receipt{UserID: user, Seq: seq, At: t0.Add(time.Duration(seq) * time.Minute), Actor: consent.ActorUser,
			Surface: consent.SurfaceAppSettings, Op: consent.OpSetChannel, Subject: subject, Old: "allowed", New: "refused",
			Purpose: "push", PolicyVersion: 1, PrevHash: prev}
		// The previous release's seal: SHA-256 of the JSON without ID and
		// hash, fields in the struct's order.
		b, _ := json.Marshal(struct {
			ID            string          `json:"id"`
			UserID        string          `json:"user_id,omitempty"`
			Seq           uint64          `json:"seq"`
			At            time.Time       `json:"at"`
			Actor         consent.Actor   `json:"actor"`
			Surface       consent.Surface `json:"surface"`
			Op            consent.Op      `json:"op"`
			Subject       string          `json:"subject,omitempty"`
			Old           string          `json:"old"`
			New           string          `json:"new"`
			Purpose       string          `json:"purpose,omitempty"`
			PolicyVersion int             `json:"policy_version"`
			Reason        string          `json:"reason,omitempty"`
			Ref           string          `json:"ref,omitempty"`
			Diff          []string        `json:"diff,omitempty"`
			PrevHash      string          `json:"prev_hash,omitempty"`
			Hash          string          `json:"hash"`
		}{UserID: r.UserID, Seq: r.Seq, At: r.At, Actor: r.Actor, Surface: r.Surface, Op: r.Op, Subject: r.Subject,
			Old: r.Old, New: r.New, Purpose: r.Purpose, PolicyVersion: r.PolicyVersion, PrevHash: r.PrevHash})
		sum := sha256.Sum256(b)
		r.Hash = hex.EncodeToString(sum[:])
		r.ID = "rcpt_" + r.Hash[:24]
		return r
	}
	r1 := old(1, "", "sms")
	r2 := old(2, r1.Hash, "push")
	rs := []consent.Receipt{r1, r2}
	h := consent.Head{UserID: user, Version: 2, LastHash: r2.Hash, Now: t0.Add(time.Hour)}
	if err := consent.VerifyChain(rs, h, nil); err != nil {
		t.Errorf("legacy chain without a key: %v", err)
	}
	if err := consent.VerifyChain(rs, h, testKey); err == nil {
		t.Errorf("legacy chain verifies under a key")
	}
	edited := cloneReceipts(rs)
	edited[0].Subject = "email"
	if err := consent.VerifyChain(edited, h, nil); err == nil {
		t.Errorf("an edited legacy receipt verifies")
	}
}
