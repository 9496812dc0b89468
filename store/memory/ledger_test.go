package memory_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

func scan(t *testing.T, s *memory.Store) []store.LedgerEntry {
	t.Helper()
	var out []store.LedgerEntry
	if err := s.ScanLedger(context.Background(), time.Time{}, time.Time{}, func(e store.LedgerEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// The ledger survives a restart (its own file), a torn final line is
// dropped, and after an erasure and Compact the file no longer names the
// user.
func TestLedgerPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	now := time.Now().UTC()
	s, err := memory.Open(ctx, memory.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const u = "ledger-persist-user"
	if _, err := s.Apply(ctx, consent.DeclareTag(u, "interest:ski")); err != nil {
		t.Fatal(err)
	}
	es := []store.LedgerEntry{
		{Kind: store.LedgerExposure, UserID: u, At: now, Reason: consent.ReasonPersonalized, Mode: store.ModePersonalized, Items: 3},
		{Kind: store.LedgerPush, UserID: u, At: now, Channel: "sms", Reason: consent.ReasonAllowed, Mode: store.ModeAllowed},
		{Kind: store.LedgerProvision, At: now, Recipient: "vendor", Purpose: "push", Segment: "*", Count: 9},
	}
	if err := s.AppendLedger(ctx, es); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLedgerDrops(ctx, store.LedgerPush, 4); err != nil {
		t.Fatal(err)
	}
	before := scan(t, s)
	s.Close()
	// A torn write at the end of the file.
	f, err := os.OpenFile(filepath.Join(dir, "recguard.ledger"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`40 0000 {"s":1,"r":{"p":"`)
	f.Close()

	s = mustOpen(t, memory.Options{Dir: dir})
	after := scan(t, s)
	if len(after) != 3 || after[0].UserID != u || after[1].UserID != u || after[2].Count != 9 || !after[0].Logged.Equal(before[0].Logged) {
		t.Fatalf("after a restart: %+v, want %+v", after, before)
	}
	if d, _ := s.LedgerDrops(ctx); d[store.LedgerPush] != 4 {
		t.Errorf("drops after a restart: %v", d)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "recguard.ledger"))
	if !bytes.Contains(raw, []byte(u)) {
		t.Fatalf("test bug: the ledger file does not name the user before the erasure")
	}
	if _, err := s.Apply(ctx, consent.Erase(u)); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(filepath.Join(dir, "recguard.ledger"))
	if bytes.Contains(raw, []byte(u)) {
		t.Errorf("after the erasure and Compact the ledger file still names the user")
	}
	s.Close()
	s = mustOpen(t, memory.Options{Dir: dir})
	for _, e := range scan(t, s) {
		if e.UserID == u {
			t.Errorf("after a restart an entry names the erased user: %+v", e)
		}
	}
	if n := len(scan(t, s)); n != 3 {
		t.Errorf("%d entries after the erasure and a restart, want 3 (naming no one)", n)
	}
}
