package memory

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
)

// decodeFile splits a data file into its decoded lines.
func decodeFile(t *testing.T, data []byte) []line {
	t.Helper()
	var out []line
	for _, b := range bytes.SplitAfter(data, []byte("\n")) {
		if len(b) == 0 {
			continue
		}
		p, err := parseFrame(b)
		if err != nil {
			t.Fatalf("test file: %v", err)
		}
		var l line
		if err := json.Unmarshal(p, &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// encodeFile frames ls as a data file, with valid checksums: what someone
// who can write the file but does not hold the chain key can produce.
func encodeFile(t *testing.T, ls []line) []byte {
	t.Helper()
	var out []byte
	for i := range ls {
		p, err := json.Marshal(&ls[i])
		if err != nil {
			t.Fatal(err)
		}
		out = appendFrame(out, p)
	}
	return out
}

// verifyOpened opens a store on data and verifies user's receipts against
// the record: it returns the Open error or the VerifyChain error.
func verifyOpened(t *testing.T, data []byte, key consent.ChainKey, user string, now time.Time) error {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), Options{Dir: dir, ChainKey: key, CompactDelay: -1})
	if err != nil {
		return err
	}
	defer s.Close()
	rec, err := s.Get(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Receipts(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := s.Settings(t.Context())
	return consent.VerifyChain(rs, consent.HeadOf(rec, &set, now), key)
}

// TestTruncatedFileFailsVerification removes receipts from the data file,
// keeping every line's framing valid, and checks that the store refuses the
// file or that its receipts no longer verify against the record.
func TestTruncatedFileFailsVerification(t *testing.T) {
	key := consent.ChainKey("truncation test key, not a secret")
	const u, other = "trunc", "other"
	now := time.Now().UTC().Truncate(time.Second)
	dir := t.TempDir()
	s, err := Open(t.Context(), Options{Dir: dir, ChainKey: key, CompactDelay: -1, CompactMinBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range []consent.Change{
		consent.SetPersonalization(u, false), consent.RefuseChannel(u, "sms"),
		consent.SetPersonalization(u, true), consent.AllowChannel(u, "sms"),
		consent.RefuseChannel(u, "push"),
	} {
		if _, err := s.Apply(t.Context(), consent.SetPersonalization(other, i%2 == 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(t.Context(), at(ch, now.Add(-time.Hour+time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opsFile, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), Options{Dir: dir, ChainKey: key, CompactDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	snapFile, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"operation lines": opsFile, "snapshot": snapFile} {
		if err := verifyOpened(t, data, key, u, now); err != nil {
			t.Fatalf("the untouched file (%s) does not verify: %v", name, err)
		}
	}

	t.Run("snapshot", func(t *testing.T) {
		ls := decodeFile(t, snapFile)
		idx := -1
		for i := range ls {
			if ls[i].Op == opUser && ls[i].Record.UserID == u {
				idx = i
			}
		}
		if idx < 0 || len(ls[idx].Receipts) != 5 {
			t.Fatalf("no snapshot line of %s with 5 receipts", u)
		}
		rs := ls[idx].Receipts
		edit := func(keep []consent.Receipt, purged consent.Anchor) []byte {
			c := append([]line(nil), ls...)
			rec := *c[idx].Record
			rec.Purged = purged
			c[idx].Record, c[idx].Receipts = &rec, keep
			return encodeFile(t, c)
		}
		cat := func(a, b []consent.Receipt) []consent.Receipt {
			return append(append([]consent.Receipt(nil), a...), b...)
		}
		cases := map[string][]byte{
			"the oldest dropped": edit(rs[1:], consent.Anchor{}),
			"a middle one":       edit(cat(rs[:2], rs[3:]), consent.Anchor{}),
			"the newest dropped": edit(rs[:4], consent.Anchor{}),
			"the two newest":     edit(rs[:3], consent.Anchor{}),
			"all dropped":        edit(nil, consent.Anchor{}),
			"an anchor forged":   edit(rs[1:], consent.NewAnchor(rs[0], consent.ChainKey("not the store's key"))),
			"an unkeyed anchor":  edit(rs[1:], consent.NewAnchor(rs[0], nil)),
			"the store's anchor": edit(rs[1:], consent.NewAnchor(rs[0], key)), // within the retention
		}
		for name, data := range cases {
			err := verifyOpened(t, data, key, u, now)
			t.Logf("%s: %v", name, err)
			if err == nil {
				t.Errorf("%s: the store opens and the receipts verify", name)
			} else if !errors.Is(err, consent.ErrBrokenChain) {
				t.Errorf("%s: %v, want the chain found broken", name, err)
			}
		}
	})

	t.Run("operation lines", func(t *testing.T) {
		ls := decodeFile(t, opsFile)
		var mine []int // indexes of the user's apply lines
		for i := range ls {
			if ls[i].Op == opApply && ls[i].Record.UserID == u {
				mine = append(mine, i)
			}
		}
		if len(mine) != 5 {
			t.Fatalf("%d apply lines of %s, want 5", len(mine), u)
		}
		// drop removes line i and renumbers the operations after it, as
		// someone rewriting the file would.
		drop := func(i int) []byte {
			c := append(append([]line(nil), ls[:i]...), ls[i+1:]...)
			for j := i; j < len(c); j++ {
				c[j].N--
			}
			return encodeFile(t, c)
		}
		for name, i := range map[string]int{"the oldest": mine[0], "a middle one": mine[2], "the second newest": mine[3]} {
			err := verifyOpened(t, drop(i), key, u, now)
			t.Logf("%s dropped: %v", name, err)
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, consent.ErrBrokenChain) {
				t.Errorf("%s dropped: %v, want the file refused or the chain found broken", name, err)
			}
		}
		// (Dropping the user's newest apply line rolls the record back
		// with its receipt: a consistent older state, which the chain
		// cannot tell from the real one. The snapshot cases above keep
		// the record and drop receipts.)
		//
		// A receipt renumbered to hide a gap: refused.
		c := append([]line(nil), ls...)
		last := mine[4]
		l := c[last]
		rc := *l.Receipt
		rc.Seq-- // claims to be the fourth
		l.Receipt = &rc
		c[last] = l
		if err := verifyOpened(t, encodeFile(t, c), key, u, now); err == nil {
			t.Errorf("a receipt renumbered in the file: the store opens and the receipts verify")
		}
	})
}

func at(ch consent.Change, t time.Time) consent.Change {
	ch.At = t
	return ch
}

// TestReplayRedactsAnErasedSnapshot replays a snapshot that holds an erased
// user's receipts and changelog entries in clear (a snapshot never does):
// the store redacts and shreds them as it reads them.
func TestReplayRedactsAnErasedSnapshot(t *testing.T) {
	const u = "clear"
	dir := t.TempDir()
	s, err := Open(t.Context(), Options{Dir: dir, Shards: 1, CompactDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []consent.Change{consent.DeclareTag(u, "interest:skiqzm"), consent.RefuseChannel(u, "sms").Because("reason-qzm")} {
		if _, err := s.Apply(t.Context(), ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	erased, err := s.Apply(t.Context(), consent.Erase(u))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot before the erasure, its user line turned into the
	// tombstone with the clear receipts and the (redacted) erase receipt.
	ls := decodeFile(t, data)
	var c []line
	for _, l := range ls {
		if l.Op == opApply {
			continue // the erasure, now in the snapshot
		}
		if l.Op == opMeta {
			l.After++
		}
		if l.Op == opUser && l.Record.UserID == u {
			l.Record = &erased.Record
			l.Receipts = append(l.Receipts, erased.Receipt.Redact())
		}
		c = append(c, l)
	}
	if err := os.WriteFile(filepath.Join(dir, fileName), encodeFile(t, c), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), Options{Dir: dir, CompactDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Receipts(t.Context(), u)
	evs, err := s.ReadChangelog(t.Context(), 0, "", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if !r.Redacted {
			t.Errorf("receipt %d read back in clear", r.Seq)
		}
	}
	if len(evs) != 2 || !evs[0].Shredded || !evs[1].Shredded {
		t.Errorf("changelog = %+v, want 2 shredded entries", evs)
	}
	b, _ := json.Marshal([]any{rs, evs})
	if bytes.Contains(b, []byte("qzm")) {
		t.Errorf("the store gives back the erased user's content: %s", b)
	}
	set, _ := s.Settings(t.Context())
	if err := consent.VerifyChain(rs, consent.HeadOf(erased.Record, &set, time.Now()), nil); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
}
