package memory

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var _ store.Ledger = (*Store)(nil)

// File names of the ledger in the data directory.
const (
	ledgerFileName = "recguard.ledger"
	ledgerTmpName  = "recguard.ledger.tmp"
)

// ledger is the embedded store's ledger of exposures, pushes and
// provisions: a bounded queue per shard and one of provisions, in memory,
// and with a data directory a file of its own (recguard.ledger) that every
// append extends and Compact rewrites from memory, so that what an erasure
// or a purge removed leaves the file.
//
// Users are kept as random pseudonyms (pseud); the link to the user ID is
// the only place the ID is held, and an erasure deletes it: the user's
// entries stay (counts, the audit's coverage) but name no one.
//
// Lock order: mu is taken before a shard's state lock (AppendLedger checks
// its users under mu), never while one is held; an erasure forgets its
// user after publishing the tombstone.
type ledger struct {
	mu     sync.Mutex
	shards [][]ledgerRec // per shard, oldest first
	prov   []ledgerRec   // provisions, oldest first
	pseud  map[string]string
	users  map[string]string // pseudonym -> user
	drops  map[store.LedgerKind]uint64
	seq    uint64 // orders entries received in one millisecond
	lastMS int64  // the newest entry's time received: times never go back
	// base counts the entries ever dropped from the front of each shard's
	// queue (and provBase of the provisions), so that a scan between two
	// batches knows where it was: its absolute position less base.
	base     []int64
	provBase int64
	maxLen   int
	dirty    bool     // the file holds something memory no longer does
	f        *os.File // nil without a data directory
	dir      string
	noSync   bool
}

// ledgerRec is one kept entry: its user's pseudonym ("" for none), when the
// store received it, and the entry without its UserID.
type ledgerRec struct {
	P   string            `json:"p,omitempty"`
	MS  int64             `json:"ms"`
	Seq uint64            `json:"q"`
	E   store.LedgerEntry `json:"e"`
}

// ledgerLine is one line of the ledger file: an entry (Shard, Rec; Shard
// -1 for a provision), a pseudonym's link (P, U), or drops (Kind, N).
type ledgerLine struct {
	Shard int              `json:"s,omitempty"`
	Rec   *ledgerRec       `json:"r,omitempty"`
	P     string           `json:"p,omitempty"`
	U     string           `json:"u,omitempty"`
	Kind  store.LedgerKind `json:"k,omitempty"`
	N     uint64           `json:"n,omitempty"`
}

func (l *ledger) init(shards int) {
	if l.shards == nil {
		l.shards = make([][]ledgerRec, shards)
		l.base = make([]int64, shards)
		l.pseud, l.users = map[string]string{}, map[string]string{}
		l.drops = map[store.LedgerKind]uint64{}
	}
}

// openLedger loads the ledger file of dir (a damaged final line is
// discarded) and keeps it open for appends.
func (s *Store) openLedger(dir string) error {
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init(len(s.shards))
	l.dir, l.noSync = dir, s.opts.NoSync
	os.Remove(filepath.Join(dir, ledgerTmpName))
	f, err := os.OpenFile(filepath.Join(dir, ledgerFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return unavailable(err)
	}
	r := bufio.NewReader(f)
	var good int64
	for {
		b, err := r.ReadBytes('\n')
		if err == io.EOF && len(b) == 0 {
			break
		}
		payload, perr := parseFrame(b)
		var ln ledgerLine
		if perr != nil || json.Unmarshal(payload, &ln) != nil {
			break // a torn final line: dropped below
		}
		good += int64(len(b))
		l.replay(ln)
		if err != nil {
			break
		}
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return unavailable(err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return unavailable(err)
	}
	l.f = f
	return nil
}

func (l *ledger) replay(ln ledgerLine) {
	switch {
	case ln.Rec != nil:
		l.seq = max(l.seq, ln.Rec.Seq)
		l.lastMS = max(l.lastMS, ln.Rec.MS)
		if ln.Shard < 0 {
			l.prov = append(l.prov, *ln.Rec)
		} else if ln.Shard < len(l.shards) {
			l.shards[ln.Shard] = append(l.shards[ln.Shard], *ln.Rec)
		}
	case ln.P != "" && ln.U != "":
		l.pseud[ln.U], l.users[ln.P] = ln.P, ln.U
	case ln.Kind != 0:
		l.drops[ln.Kind] += ln.N
	}
}

// write appends lines to the file (under l.mu).
func (l *ledger) write(lines []ledgerLine) error {
	if l.f == nil {
		return nil
	}
	var buf []byte
	for i := range lines {
		b, err := json.Marshal(lines[i])
		if err != nil {
			return err
		}
		buf = appendFrame(buf, b)
	}
	if _, err := l.f.Write(buf); err != nil {
		return unavailable(err)
	}
	if !l.noSync {
		if err := l.f.Sync(); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// AppendLedger validates every entry, then appends them: exposures and
// pushes to their user's shard queue (the oldest dropped beyond
// DefaultLedgerMaxLen, or Options.LedgerMaxLen), provisions to theirs.
// Entries of erased users are kept without a user. With a data directory
// the entries are written to the ledger file (synced unless NoSync) before
// they become visible.
func (s *Store) AppendLedger(ctx context.Context, entries []store.LedgerEntry) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	for i := range entries {
		if err := entries[i].Validate(); err != nil {
			return err
		}
	}
	if len(entries) == 0 {
		return nil
	}
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init(len(s.shards))
	// Received times never go back (a clock stepped back): each queue is
	// in (MS, Seq) order, which ScanLedger merges.
	ms := max(time.Now().UnixMilli(), l.lastMS)
	l.lastMS = ms
	// The users' states are read under l.mu: an erasure publishes its
	// tombstone and then forgets its user's link under l.mu, so a user is
	// either seen erased here or forgotten there.
	erased := map[string]bool{}
	for _, e := range entries {
		if e.UserID != "" {
			if _, ok := erased[e.UserID]; !ok {
				erased[e.UserID] = s.shards[store.ShardOf(e.UserID, len(s.shards))].erased(e.UserID)
			}
		}
	}
	var lines []ledgerLine
	newP := map[string]string{}
	recs := make([]ledgerLine, 0, len(entries))
	for _, e := range entries {
		sh := -1
		p := ""
		if e.UserID != "" {
			sh = store.ShardOf(e.UserID, len(s.shards))
			if !erased[e.UserID] {
				p = l.pseud[e.UserID]
				if p == "" {
					p = newP[e.UserID]
				}
				if p == "" {
					p = newPseudonym()
					newP[e.UserID] = p
					lines = append(lines, ledgerLine{P: p, U: e.UserID})
				}
			}
		}
		e.UserID, e.Logged = "", time.Time{}
		l.seq++
		recs = append(recs, ledgerLine{Shard: sh, Rec: &ledgerRec{P: p, MS: ms, Seq: l.seq, E: e}})
	}
	if err := l.write(append(lines, recs...)); err != nil {
		return err
	}
	for u, p := range newP {
		l.pseud[u], l.users[p] = p, u
	}
	maxLen := s.opts.LedgerMaxLen
	for _, ln := range recs {
		if ln.Shard < 0 {
			l.prov = append(l.prov, *ln.Rec)
			continue
		}
		q := append(l.shards[ln.Shard], *ln.Rec)
		if len(q) > maxLen+maxLen/8 {
			// Trimmed in steps of an eighth, so appends stay amortized
			// O(1); at most maxLen+maxLen/8 entries are kept.
			l.base[ln.Shard] += int64(len(q) - maxLen)
			q = slices.Clone(q[len(q)-maxLen:])
			l.dirty = true
		}
		l.shards[ln.Shard] = q
	}
	return nil
}

func newPseudonym() string {
	var b [12]byte
	rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// erased reports whether the user is erased.
func (sh *shard) erased(userID string) bool {
	sh.mu.RLock()
	u := sh.users[userID]
	sh.mu.RUnlock()
	return u != nil && u.rec.State.Erased
}

// ScanLedger calls fn with the entries received in [from, to), oldest
// first, merging the shards and the provisions by the time received.
func (s *Store) ScanLedger(ctx context.Context, from, to time.Time, fn func(store.LedgerEntry) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	l := &s.ledger
	lo, hi := from.UnixMilli(), to.UnixMilli()
	if from.IsZero() {
		lo = math.MinInt64
	}
	if to.IsZero() {
		hi = math.MaxInt64
	}
	// Each queue (the shards', then the provisions') is in (MS, Seq)
	// order: merge them, a batch at a time under l.mu (fn runs without
	// it), reading no further than each queue's end when the scan began.
	// Positions are absolute (base + index), so entries expired between
	// two batches are skipped, not misread.
	l.mu.Lock()
	l.init(len(s.shards))
	nq := len(l.shards) + 1
	queue := func(i int) ([]ledgerRec, int64) {
		if i < len(l.shards) {
			return l.shards[i], l.base[i]
		}
		return l.prov, l.provBase
	}
	pos, end := make([]int64, nq), make([]int64, nq)
	for i := range nq {
		q, base := queue(i)
		pos[i] = base + int64(sort.Search(len(q), func(k int) bool { return q[k].MS >= lo }))
		end[i] = base + int64(len(q))
	}
	l.mu.Unlock()

	const batch = 4096
	buf := make([]store.LedgerEntry, 0, batch)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf = buf[:0]
		l.mu.Lock()
		for len(buf) < batch {
			best, bestMS, bestSeq := -1, int64(0), uint64(0)
			for i := range nq {
				q, base := queue(i)
				k := max(pos[i]-base, 0)
				pos[i] = base + k
				if pos[i] >= end[i] || k >= int64(len(q)) {
					continue
				}
				r := &q[k]
				if r.MS >= hi {
					continue
				}
				if best < 0 || r.MS < bestMS || r.MS == bestMS && r.Seq < bestSeq {
					best, bestMS, bestSeq = i, r.MS, r.Seq
				}
			}
			if best < 0 {
				break
			}
			q, base := queue(best)
			r := &q[pos[best]-base]
			e := r.E
			if r.P != "" {
				e.UserID = l.users[r.P]
			}
			e.Logged = time.UnixMilli(r.MS).UTC()
			buf = append(buf, e)
			pos[best]++
		}
		l.mu.Unlock()
		if len(buf) == 0 {
			return nil
		}
		for i := range buf {
			if err := fn(buf[i]); err != nil {
				return err
			}
		}
	}
}

// UserLedger returns the user's exposures and pushes, oldest first.
func (s *Store) UserLedger(ctx context.Context, userID string) ([]store.LedgerEntry, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := consent.ValidUserID(userID); err != nil {
		return nil, err
	}
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []store.LedgerEntry{}
	p := l.pseud[userID]
	if p == "" || l.shards == nil {
		return out, nil
	}
	for _, r := range l.shards[store.ShardOf(userID, len(s.shards))] {
		if r.P == p {
			e := r.E
			e.UserID, e.Logged = userID, time.UnixMilli(r.MS).UTC()
			out = append(out, e)
		}
	}
	return out, nil
}

// AddLedgerDrops adds n to the drop count of kind.
func (s *Store) AddLedgerDrops(ctx context.Context, kind store.LedgerKind, n uint64) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if kind < store.LedgerExposure || kind > store.LedgerProvision {
		return &consent.FieldError{Field: "kind", Detail: "unknown ledger kind", Err: consent.ErrInvalidChange}
	}
	if n == 0 {
		return nil
	}
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init(len(s.shards))
	if err := l.write([]ledgerLine{{Kind: kind, N: n}}); err != nil {
		return err
	}
	l.drops[kind] += n
	return nil
}

// LedgerDrops returns the drop counts by kind.
func (s *Store) LedgerDrops(ctx context.Context) (map[store.LedgerKind]uint64, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[store.LedgerKind]uint64{}
	for k, n := range l.drops {
		out[k] = n
	}
	return out, nil
}

// forgetUser deletes the link of userID's pseudonym (an erasure): the
// user's entries stay, naming no one. The file forgets it at the next
// Compact.
func (l *ledger) forgetUser(n int, userID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pseud[userID]
	if !ok {
		return
	}
	delete(l.pseud, userID)
	delete(l.users, p)
	if n < len(l.shards) {
		for i := range l.shards[n] {
			if l.shards[n][i].P == p {
				l.shards[n][i].P = ""
			}
		}
	}
	l.dirty = true
}

// expire drops exposures and pushes received before cut and provisions
// received before provCut (Unix ms). It reports whether the file now holds
// more than memory.
func (l *ledger) expire(cut, provCut int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, q := range l.shards {
		k := 0
		for k < len(q) && q[k].MS < cut {
			k++
		}
		if k > 0 {
			l.base[n] += int64(k)
			l.shards[n] = slices.Clone(q[k:])
			l.dirty = true
		}
	}
	k := 0
	for k < len(l.prov) && l.prov[k].MS < provCut {
		k++
	}
	if k > 0 {
		l.provBase += int64(k)
		l.prov = slices.Clone(l.prov[k:])
		l.dirty = true
	}
	// Links of users with no entry left go too.
	live := map[string]bool{}
	for _, q := range l.shards {
		for _, r := range q {
			live[r.P] = true
		}
	}
	for p, u := range l.users {
		if !live[p] {
			delete(l.users, p)
			delete(l.pseud, u)
			l.dirty = true
		}
	}
	return l.dirty
}

// rewrite replaces the ledger file with what memory holds, when it holds
// something memory dropped.
func (l *ledger) rewrite() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || !l.dirty {
		return nil
	}
	var buf []byte
	add := func(ln ledgerLine) error {
		b, err := json.Marshal(ln)
		if err != nil {
			return err
		}
		buf = appendFrame(buf, b)
		return nil
	}
	for p, u := range l.users {
		if err := add(ledgerLine{P: p, U: u}); err != nil {
			return err
		}
	}
	for k, n := range l.drops {
		if err := add(ledgerLine{Kind: k, N: n}); err != nil {
			return err
		}
	}
	for sh, q := range l.shards {
		for i := range q {
			if err := add(ledgerLine{Shard: sh, Rec: &q[i]}); err != nil {
				return err
			}
		}
	}
	for i := range l.prov {
		if err := add(ledgerLine{Shard: -1, Rec: &l.prov[i]}); err != nil {
			return err
		}
	}
	tmp := filepath.Join(l.dir, ledgerTmpName)
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		return unavailable(err)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR, 0o600)
	if err != nil {
		return unavailable(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return unavailable(err)
	}
	if err := os.Rename(tmp, filepath.Join(l.dir, ledgerFileName)); err != nil {
		f.Close()
		return unavailable(err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return unavailable(err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return unavailable(err)
	}
	l.f.Close()
	l.f, l.dirty = f, false
	return nil
}

func (l *ledger) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return unavailable(err)
	}
	return nil
}
