package memory_test

import (
	"bytes"
	"context"
	"fmt"
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

// ScanLedger merges the shards' queues a batch at a time without holding
// the ledger while fn runs: every entry comes once, oldest first; entries
// appended during the scan are not chased (the scan ends where the ledger
// ended when it began); entries expired between two batches are skipped,
// not misread; a user erased during the scan is not named afterwards.
func TestLedgerScanBatches(t *testing.T) {
	ctx := context.Background()
	s, err := memory.Open(ctx, memory.Options{Shards: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	const n = 10_000
	for b := 0; b < n/1000; b++ {
		var es []store.LedgerEntry
		for i := b * 1000; i < (b+1)*1000; i++ {
			es = append(es, store.LedgerEntry{Kind: store.LedgerExposure, UserID: fmt.Sprintf("u%d", i%97), At: now, Items: i, Surface: "sdk"})
		}
		if err := s.AppendLedger(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	check := func(got []store.LedgerEntry) {
		t.Helper()
		seen := map[int]bool{}
		last := map[string]int{}
		for i, e := range got {
			if seen[e.Items] {
				t.Fatalf("entry %d read twice", e.Items)
			}
			seen[e.Items] = true
			if i > 0 && e.Logged.Before(got[i-1].Logged) {
				t.Fatalf("entry %d received before entry %d", i, i-1)
			}
			// Appended in order: each user's entries come in that order.
			if p, ok := last[e.UserID]; ok && e.UserID != "" && e.Items < p {
				t.Fatalf("user %s: entry %d after %d", e.UserID, e.Items, p)
			}
			last[e.UserID] = e.Items
		}
	}
	all := scan(t, s)
	if len(all) != n {
		t.Fatalf("scanned %d entries, appended %d", len(all), n)
	}
	check(all)
	named := 0
	for _, e := range all {
		if e.UserID == "u5" {
			named++
		}
	}
	if named < 100 {
		t.Fatalf("u5 is named by %d entries, want about %d", named, n/97)
	}

	// Appends during the scan are not chased.
	var got []store.LedgerEntry
	err = s.ScanLedger(ctx, time.Time{}, time.Time{}, func(e store.LedgerEntry) error {
		if len(got) == 0 {
			if err := s.AppendLedger(ctx, []store.LedgerEntry{{Kind: store.LedgerExposure, UserID: "late", At: now, Items: n + 1}}); err != nil {
				return err
			}
		}
		got = append(got, e)
		return nil
	})
	if err != nil || len(got) != n {
		t.Fatalf("scan with an append inside: %d entries, %v; want %d", len(got), err, n)
	}
	check(got)

	// An erasure during the scan: the user's later entries name no one.
	if _, err := s.Apply(ctx, consent.SetPersonalization("u5", false)); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	erasedAt := -1
	err = s.ScanLedger(ctx, time.Time{}, time.Time{}, func(e store.LedgerEntry) error {
		if len(got) == 10 {
			if _, err := s.Apply(ctx, consent.Erase("u5")); err != nil {
				return err
			}
			erasedAt = len(got)
		}
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check(got)
	for i, e := range got {
		if i >= 4096 && e.UserID == "u5" { // past the batch read before the erasure
			t.Fatalf("entry %d names u5, erased at entry %d", i, erasedAt)
		}
	}

	// Everything expires between two batches: the scan ends with what it
	// had read, nothing twice, nothing misread.
	got = got[:0]
	err = s.ScanLedger(ctx, time.Time{}, time.Time{}, func(e store.LedgerEntry) error {
		if len(got) == 100 {
			if _, err := s.PurgeExpired(ctx, now.Add(store.DefaultLedgerRetention+48*time.Hour)); err != nil {
				return err
			}
		}
		got = append(got, e)
		return nil
	})
	if err != nil || len(got) == 0 || len(got) >= n {
		t.Fatalf("scan across an expiry: %d entries, %v; want the first batch only", len(got), err)
	}
	check(got)
	if rest := scan(t, s); len(rest) != 0 {
		t.Fatalf("after the purge %d entries remain", len(rest))
	}
}
