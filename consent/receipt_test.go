package consent_test

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// chain returns the receipts of a history of n >= 5 changes of user.
func chain(tb testing.TB) []consent.Receipt {
	tb.Helper()
	_, rs := replay(tb, testSettings(),
		consent.SetPersonalization(user, false),
		consent.RefuseChannel(user, "sms"),
		consent.GrantSensitive(user, tags.Religion, "personalization"),
		consent.DeclareTag(user, "religion:buddhism"),
		consent.DeleteTag(user, "religion:buddhism"),
		consent.AllowChannel(user, "sms"),
	)
	if len(rs) != 6 {
		tb.Fatalf("setup produced %d receipts, want 6", len(rs))
	}
	return rs
}

func cloneReceipts(rs []consent.Receipt) []consent.Receipt {
	return append([]consent.Receipt(nil), rs...)
}

// reseal recomputes the hashes of rs[from:] so that only the change made to
// rs[from] itself (not its hash) can be detected, relinking the rest.
func reseal(rs []consent.Receipt, from int) {
	for i := from; i < len(rs); i++ {
		if i > from {
			rs[i].PrevHash = rs[i-1].Hash
		}
		rs[i].Seal()
	}
}

func TestSeal(t *testing.T) {
	r := consent.Receipt{UserID: user, Seq: 1, At: t0, Actor: consent.ActorUser, Surface: consent.SurfaceWeb,
		Op: consent.OpSetChannel, Subject: "sms", Old: "allowed", New: "refused", Purpose: "push", PolicyVersion: 1}
	r.Seal()
	if len(r.Hash) != 64 {
		t.Fatalf("Hash = %q, want 64 hex digits", r.Hash)
	}
	if _, err := hex.DecodeString(r.Hash); err != nil {
		t.Errorf("Hash %q is not hex: %v", r.Hash, err)
	}
	if r.ID != "rcpt_"+r.Hash[:24] {
		t.Errorf("ID = %q, want rcpt_ + the first 24 hex digits of %q", r.ID, r.Hash)
	}
	h := r.Hash

	// Sealing again, or with a different ID or Hash already set, gives the
	// same hash: they are not part of the content.
	again := r
	again.ID, again.Hash = "rcpt_forged", "00"
	again.Seal()
	if again.Hash != h {
		t.Errorf("re-sealed hash = %q, want %q", again.Hash, h)
	}
	// The same instant in another zone hashes the same.
	zoned := r
	zoned.At = r.At.In(time.FixedZone("CST", 8*3600))
	zoned.Seal()
	if zoned.Hash != h {
		t.Errorf("hash with At in +08:00 = %q, want %q", zoned.Hash, h)
	}

	// Every field of the content is covered by the hash.
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
		"PrevHash":      func(r *consent.Receipt) { r.PrevHash = h },
	}
	for field, mutate := range mutations {
		m := r
		mutate(&m)
		m.Seal()
		if m.Hash == h {
			t.Errorf("changing %s does not change the hash", field)
		}
	}
}

func TestVerifyChainAccepts(t *testing.T) {
	rs := chain(t)
	cases := []struct {
		name string
		rs   []consent.Receipt
	}{
		{"nil", nil},
		{"empty", []consent.Receipt{}},
		{"first receipt only", rs[:1]},
		{"whole chain", rs},
		{"prefix", rs[:3]},
		{"starts after seq 1 (older receipts expired)", rs[2:]},
		{"single receipt after seq 1", rs[4:5]},
		{"middle section", rs[1:4]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := consent.VerifyChain(c.rs); err != nil {
				t.Errorf("VerifyChain = %v, want nil", err)
			}
		})
	}
}

func TestVerifyChainRejects(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func([]consent.Receipt) []consent.Receipt
		wantMsg string
	}{
		{
			name:    "edited content",
			tamper:  func(rs []consent.Receipt) []consent.Receipt { rs[2].New = "granted for ads under policy v9"; return rs },
			wantMsg: "receipt 2 (seq 3): content or ID does not match its hash",
		},
		{
			name:    "edited time",
			tamper:  func(rs []consent.Receipt) []consent.Receipt { rs[0].At = rs[0].At.Add(time.Second); return rs },
			wantMsg: "receipt 0 (seq 1): content or ID does not match its hash",
		},
		{
			name:    "edited hash",
			tamper:  func(rs []consent.Receipt) []consent.Receipt { rs[5].Hash = strings.Repeat("0", 64); return rs },
			wantMsg: "receipt 5 (seq 6): content or ID does not match its hash",
		},
		{
			name: "edited and re-sealed receipt no longer chains",
			tamper: func(rs []consent.Receipt) []consent.Receipt {
				rs[1].Actor = consent.ActorAdmin
				rs[1].Seal()
				return rs
			},
			wantMsg: "receipt seq 3 does not chain to seq 2",
		},
		{
			name:    "gap: a receipt removed",
			tamper:  func(rs []consent.Receipt) []consent.Receipt { return append(rs[:2], rs[3:]...) },
			wantMsg: "gap between seq 2 and 4",
		},
		{
			name:    "reordered",
			tamper:  func(rs []consent.Receipt) []consent.Receipt { rs[2], rs[3] = rs[3], rs[2]; return rs },
			wantMsg: "gap between seq 2 and 4",
		},
		{
			name:    "newest first",
			tamper:  func(rs []consent.Receipt) []consent.Receipt { return []consent.Receipt{rs[1], rs[0]} },
			wantMsg: "gap between seq 2 and 1",
		},
		{
			name:    "duplicated receipt",
			tamper:  func(rs []consent.Receipt) []consent.Receipt { return []consent.Receipt{rs[0], rs[1], rs[1]} },
			wantMsg: "gap between seq 2 and 2",
		},
		{
			name: "wrong PrevHash, re-sealed",
			tamper: func(rs []consent.Receipt) []consent.Receipt {
				rs[3].PrevHash = rs[1].Hash
				reseal(rs, 3)
				return rs
			},
			wantMsg: "receipt seq 4 does not chain to seq 3",
		},
		{
			name: "renumbered to hide a removal",
			tamper: func(rs []consent.Receipt) []consent.Receipt {
				rs = append(rs[:2], rs[3:]...)
				for i := 2; i < len(rs); i++ {
					rs[i].Seq = uint64(i + 1)
				}
				reseal(rs, 2)
				return rs
			},
			wantMsg: "receipt seq 3 does not chain to seq 2",
		},
		{
			name: "first receipt with a predecessor",
			tamper: func(rs []consent.Receipt) []consent.Receipt {
				rs[0].PrevHash = strings.Repeat("a", 64)
				reseal(rs, 0)
				return rs
			},
			wantMsg: "first receipt has a predecessor hash",
		},
		{
			name: "receipt of another user spliced in",
			tamper: func(rs []consent.Receipt) []consent.Receipt {
				rs[4].UserID = "u2"
				rs[4].Seal()
				rs = rs[:5]
				return rs
			},
			wantMsg: "receipt seq 5 is for another user",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := chain(t)
			rs := c.tamper(cloneReceipts(orig))
			err := consent.VerifyChain(rs)
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
	if err := consent.VerifyChain(rs); err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, rs); got != snap {
		t.Errorf("VerifyChain modified the receipts")
	}
}
