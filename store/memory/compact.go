package memory

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// snapshot is the state captured for a snapshot: slice headers and
// immutable values, valid after the locks are released.
type snapshot struct {
	shards      int
	settings    *consent.Settings
	setReceipts []consent.Receipt
	setSeq      uint64
	setHead     string
	users       []map[string]*user
	logs        []logSnapshot
	base        int64  // the file's size at the capture
	after       uint64 // the number of the last operation line included
}

type logSnapshot struct {
	id      int
	entries []logEntry
	trimmed store.Position
}

// lines returns the number of lines the snapshot takes after its meta line.
func (snap *snapshot) lines() int {
	n := 1 // settings
	for _, u := range snap.users {
		n += len(u)
	}
	for _, lg := range snap.logs {
		n += len(lg.entries)
		if lg.trimmed != "" {
			n++
		}
	}
	return n
}

// Compact rewrites the data file as a snapshot of the live data (the
// settings and their receipts, every user's record and receipts, the kept
// changelog entries and each log's trim horizon), through a temporary file
// that is synced and renamed over the old one. The snapshot holds the state
// as it is: an erased user's receipts redacted and changelog entries
// shredded, purged receipts and expired entries gone, so once Compact
// returns the file holds nothing of them but what was written after the
// state was captured. Writes wait only while the
// state is captured and while the lines written meanwhile are copied over;
// reads never wait. Without a data directory it does nothing. An I/O error
// wraps store.ErrUnavailable and leaves the old file in use, except when the
// directory cannot be synced after the rename: the store then refuses
// further writes, as after any failed write.
func (s *Store) Compact(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if s.closed.Load() {
		return store.ErrClosed
	}
	if s.aof == nil {
		return nil
	}
	if err := s.ledger.rewrite(); err != nil {
		return err
	}
	snap, err := s.capture()
	if err != nil {
		return err
	}
	a := s.aof
	tmp := filepath.Join(a.dir, tmpName)
	f, size, err := writeSnapshot(ctx, tmp, snap)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return unavailable(err)
	}
	if err := a.replace(f, tmp, size, snap); err != nil {
		return unavailable(err)
	}
	return nil
}

// capture takes every writer lock, so that the state matches the file up
// to its current size, and copies what a snapshot needs.
func (s *Store) capture() (*snapshot, error) {
	unlock := s.lockWriters()
	defer unlock()
	// Every writer waits for its line with its writer lock held, so with
	// all of them taken nothing is buffered or being flushed.
	a := s.aof
	a.mu.Lock()
	base, n, err := a.size, a.n, a.err
	quiet := !a.flushing && len(a.pending) == 0 && a.durable == n
	a.mu.Unlock()
	if err != nil {
		return nil, unavailable(err)
	}
	if !quiet {
		return nil, errors.New("memory: lines in flight while every writer lock is held")
	}
	snap := s.snapshot()
	snap.base, snap.after = base, n
	return snap, nil
}

// snapshot copies the state. The caller holds every writer lock or is alone
// with s.
func (s *Store) snapshot() *snapshot {
	p := s.set
	snap := &snapshot{
		shards:      len(s.shards),
		settings:    p.cur.Load(),
		setReceipts: p.receipts,
		setSeq:      p.seq,
		setHead:     p.head,
	}
	snap.logs = append(snap.logs, logSnapshot{id: store.SettingsLog, entries: p.log.entries, trimmed: p.log.trimmed})
	for i, sh := range s.shards {
		users := make(map[string]*user, len(sh.users))
		for id, u := range sh.users {
			users[id] = u
		}
		snap.users = append(snap.users, users)
		snap.logs = append(snap.logs, logSnapshot{id: i, entries: sh.log.entries, trimmed: sh.log.trimmed})
	}
	return snap
}

// writeSnapshot writes snap to a new file at path and syncs it. It returns
// the file, open for appending, and its size. On error it removes the file.
func writeSnapshot(ctx context.Context, path string, snap *snapshot) (_ *os.File, _ int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	var buf []byte
	n := 0
	put := func(l *line) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		p, err := json.Marshal(l)
		if err != nil {
			return err
		}
		buf = appendFrame(buf[:0], p)
		size += int64(len(buf))
		_, err = w.Write(buf)
		return err
	}
	if err := put(&line{Op: opMeta, Format: fileFormat, Shards: snap.shards, After: snap.after, Snapshot: snap.lines()}); err != nil {
		return nil, 0, err
	}
	if err := put(&line{Op: opSettings, Log: store.SettingsLog, Settings: snap.settings, Receipts: snap.setReceipts, Seq: snap.setSeq, Head: snap.setHead}); err != nil {
		return nil, 0, err
	}
	for _, users := range snap.users {
		ids := make([]string, 0, len(users))
		for id := range users {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			u := users[id]
			if err := put(&line{Op: opUser, Record: u.rec, Receipts: u.receipts}); err != nil {
				return nil, 0, err
			}
		}
	}
	for _, lg := range snap.logs {
		if lg.trimmed != "" {
			if err := put(&line{Op: opTrim, Log: lg.id, Pos: lg.trimmed}); err != nil {
				return nil, 0, err
			}
		}
		for i := range lg.entries {
			e := &lg.entries[i]
			if err := put(&line{Op: opEvent, Log: lg.id, Pos: e.pos, Record: e.rec, Prev: e.prev, Settings: e.set, Receipt: e.rc, Shredded: e.shredded}); err != nil {
				return nil, 0, err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return nil, 0, err
	}
	if err := f.Sync(); err != nil {
		return nil, 0, err
	}
	return f, size, nil
}

// replace makes f (written at tmp, size bytes, from snap) the data file:
// it appends the lines written to the old file since the capture, syncs,
// renames tmp over the old file and syncs the directory. Lines still
// buffered go to the new file with the next flush.
func (a *aof) replace(f *os.File, tmp string, size int64, snap *snapshot) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.idle()
	defer a.cond.Broadcast()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	switch {
	case a.err != nil:
		return fail(a.err)
	case a.f == nil:
		return fail(store.ErrClosed)
	}
	if tail := a.size - snap.base; tail > 0 {
		if err := copyRange(f, a.f, snap.base, tail); err != nil {
			return fail(fmt.Errorf("copy to %s: %w", tmp, err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("sync %s: %w", tmp, err))
		}
		size += tail
	}
	if err := os.Rename(tmp, a.path); err != nil {
		return fail(err)
	}
	old := a.f
	a.f, a.size = f, size
	old.Close()
	if err := syncDir(a.dir); err != nil {
		// The rename may not survive a crash while writes go to the new
		// file: refuse them.
		a.err = fmt.Errorf("sync directory %s: %w", a.dir, err)
		return a.err
	}
	return nil
}

// compactSoon asks the background compactor for a compaction after
// Options.CompactDelay (see compactor). It never blocks, and does nothing
// without a data directory or with a negative CompactDelay.
func (s *Store) compactSoon() {
	if s.compactReq == nil {
		return
	}
	select {
	case s.compactReq <- struct{}{}:
	default: // one is pending already: it covers this request too
	}
}

// startCompactor starts the background compactor of a store with a data
// directory. Close stops it (bgCancel) and waits for it (bgDone).
func (s *Store) startCompactor() {
	if s.opts.CompactDelay < 0 || s.aof == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.compactReq = make(chan struct{}, 1)
	s.bgCancel = cancel
	s.bgDone = make(chan struct{})
	go s.compactor(ctx)
}

// compactor runs the compactions that compactSoon requests: it waits for a
// request, then Options.CompactDelay (collecting further requests: they are
// covered by the capture that follows), then compacts. A request made
// during a compaction, whose change may have been captured too late, makes
// another after the next delay, and so does a failed compaction. Close
// cancels ctx: a wait ends at once and a compaction in progress stops at
// its next check of ctx, so Close never waits for a whole compaction; the
// compactor takes compactMu and the writer locks in the order Close does.
func (s *Store) compactor(ctx context.Context) {
	defer close(s.bgDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.compactReq:
		}
		t := time.NewTimer(s.opts.CompactDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		select {
		case <-s.compactReq: // made before the capture: covered by it
		default:
		}
		if err := s.Compact(ctx); err != nil {
			if ctx.Err() != nil || s.closed.Load() {
				return
			}
			s.compactSoon() // retry after the delay
		}
	}
}
