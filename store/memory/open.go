package memory

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// Open opens the store described by opts: a new, purely in-memory one
// without opts.Dir, else the one kept in opts.Dir, created when missing.
//
// Opening replays the data file: a damaged final line (a write cut short
// by a crash) is discarded and the file truncated after the last good line;
// any other damage fails with an error wrapping ErrCorrupt. When the file is
// much bigger than its live data (see Options.CompactMinBytes) Open compacts
// it. A directory held by another open Store fails with ErrLocked.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return newStore(opts, cmp.Or(opts.Shards, store.DefaultShards)), nil
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, unavailable(err)
	}
	lock, err := lockDir(filepath.Join(opts.Dir, lockName))
	if err != nil {
		return nil, err
	}
	ab, err := loadAbilities(opts.Dir, opts.NoSync)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s, err := open(ctx, opts, lock)
	if err != nil {
		ab.close()
		lock.Close()
		return nil, err
	}
	s.ab = ab
	if err := s.openLedger(opts.Dir); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, opts Options, lock *os.File) (*Store, error) {
	if err := os.Remove(filepath.Join(opts.Dir, tmpName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, unavailable(err)
	}
	path := dataPath(opts.Dir)
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0 {
		return create(ctx, opts, lock)
	} else if err != nil {
		return nil, unavailable(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, unavailable(err)
	}
	s, rp, err := replay(f, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	if rp.torn {
		if err := f.Truncate(rp.good); err != nil {
			f.Close()
			return nil, unavailable(err)
		}
	}
	// Whatever the replay found is made durable before anything new is
	// written after it.
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, unavailable(err)
	}
	s.aof = newAOF(opts.Dir, path, opts.NoSync, f, rp.good, rp.n)
	s.lock = lock
	compacted := false
	if opts.CompactMinBytes >= 0 && rp.good >= opts.CompactMinBytes && rp.lines > 2*s.liveLines() {
		if err := s.Compact(ctx); err != nil {
			s.aof.close()
			return nil, err
		}
		compacted = true
	}
	s.startCompactor()
	if s.replayedErasures && !compacted {
		// The file still holds what an erasure or a purge removed
		// (the store was closed before its compaction): compact soon.
		s.compactSoon()
	}
	return s, nil
}

// create makes a new store in opts.Dir: its first snapshot is written to a
// temporary file and renamed into place, so the data file either does not
// exist or is complete.
func create(ctx context.Context, opts Options, lock *os.File) (*Store, error) {
	s := newStore(opts, cmp.Or(opts.Shards, store.DefaultShards))
	path := dataPath(opts.Dir)
	tmp := filepath.Join(opts.Dir, tmpName)
	f, size, err := writeSnapshot(ctx, tmp, s.snapshot())
	if err != nil {
		return nil, unavailable(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, unavailable(err)
	}
	if err := syncDir(opts.Dir); err != nil {
		f.Close()
		return nil, unavailable(err)
	}
	s.aof = newAOF(opts.Dir, path, opts.NoSync, f, size, 0)
	s.lock = lock
	s.startCompactor()
	return s, nil
}

// replayed says what replay found.
type replayed struct {
	good  int64  // bytes of good lines
	lines int64  // number of good lines
	n     uint64 // number of the last operation line
	torn  bool   // the file has a damaged final line after good
}

// replay reads the file from the start and rebuilds the store it describes.
func replay(f *os.File, opts Options) (*Store, replayed, error) {
	var rp replayed
	var s *Store
	snapLeft := 0 // snapshot lines still expected after the meta line
	r := bufio.NewReaderSize(f, 1<<20)
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: line %d at byte %d: %s", ErrCorrupt, f.Name(), rp.lines+1, rp.good, fmt.Sprintf(format, args...))
	}
	for {
		b, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, rp, unavailable(rerr)
		}
		if len(b) == 0 {
			break
		}
		payload, err := parseFrame(b)
		if err != nil {
			if (rerr == io.EOF || atEOF(r)) && s != nil && snapLeft == 0 {
				rp.torn = true // a write cut short
				break
			}
			return nil, rp, corrupt("%v (and it is not the last line of a complete file)", err)
		}
		var l line
		if err := json.Unmarshal(payload, &l); err != nil {
			return nil, rp, corrupt("%v", err)
		}
		switch {
		case s == nil:
			s, err = openMeta(&l, opts)
			if errors.Is(err, ErrInvalidOptions) {
				return nil, rp, err
			}
			snapLeft, rp.n = l.Snapshot, l.After
			if s != nil {
				s.snapLines = l.Snapshot
			}
		case snapLeft > 0:
			if l.N != 0 || !snapshotOp(l.Op) {
				return nil, rp, corrupt("%s line numbered %d where snapshot line %d of %d belongs", l.Op, l.N, rp.lines, rp.lines+int64(snapLeft)-1)
			}
			snapLeft--
			err = s.replayLine(&l)
		default:
			if l.N != rp.n+1 || snapshotOp(l.Op) {
				return nil, rp, corrupt("%s line numbered %d, want operation %d", l.Op, l.N, rp.n+1)
			}
			rp.n++
			err = s.replayLine(&l)
		}
		if err != nil {
			return nil, rp, corrupt("%s: %v", l.Op, err)
		}
		rp.good += int64(len(b))
		rp.lines++
		if rerr == io.EOF {
			break
		}
	}
	if s == nil || snapLeft > 0 {
		return nil, rp, corrupt("the snapshot at the start of the file is incomplete")
	}
	for i, sh := range s.shards {
		for j, id := range sh.ids {
			if id == "" {
				return nil, rp, corrupt("shard %d has no user with local number %d", i, j+1)
			}
		}
	}
	return s, rp, nil
}

// snapshotOp reports whether op is the operation of a snapshot line.
func snapshotOp(op string) bool {
	switch op {
	case opSettings, opUser, opTrim, opEvent:
		return true
	}
	return false
}

// atEOF reports whether r has nothing more to read.
func atEOF(r *bufio.Reader) bool {
	_, err := r.Peek(1)
	return err == io.EOF
}

// openMeta checks the first line and returns the empty store it describes.
func openMeta(l *line, opts Options) (*Store, error) {
	if l.Op != opMeta {
		return nil, fmt.Errorf("first line is %q, not %q", l.Op, opMeta)
	}
	if l.Format != fileFormat {
		return nil, fmt.Errorf("format %d, want %d", l.Format, fileFormat)
	}
	if l.Shards < 1 || l.Shards > MaxShards {
		return nil, fmt.Errorf("%d shards", l.Shards)
	}
	if l.Snapshot < 1 {
		return nil, fmt.Errorf("snapshot of %d lines, want at least the settings", l.Snapshot)
	}
	if opts.Shards != 0 && opts.Shards != l.Shards {
		return nil, fmt.Errorf("%w: Shards is %d but the data in %s has %d", ErrInvalidOptions, opts.Shards, opts.Dir, l.Shards)
	}
	return newStore(opts, l.Shards), nil
}

// replayLine applies one line of the file to the store being opened.
func (s *Store) replayLine(l *line) error {
	switch l.Op {
	case opApply, opUser:
		if l.Record == nil {
			return errors.New("no record")
		}
		id := l.Record.UserID
		if err := consent.ValidUserID(id); err != nil {
			return err
		}
		n := store.ShardOf(id, len(s.shards))
		sh := s.shards[n]
		if l.Op == opUser {
			if _, dup := sh.users[id]; dup {
				return fmt.Errorf("user %q listed twice in the snapshot", id)
			}
			if _, local := store.NumberShard(l.Record.Number, len(s.shards)); l.Record.Number != 0 && local > s.snapLines {
				return fmt.Errorf("user %q has number %d, beyond the snapshot's %d lines", id, l.Record.Number, s.snapLines)
			}
			if err := sh.placeID(n, len(s.shards), l.Record); err != nil {
				return err
			}
			rs := l.Receipts
			if v := erasedUpTo(l.Record, rs); v > 0 && slices.ContainsFunc(rs, func(r consent.Receipt) bool { return r.Seq <= v && !r.Redacted }) {
				// A snapshot writes an erased user's receipts redacted;
				// one that does not is made to (defence in depth).
				rs = slices.Clone(rs)
				for i := range rs {
					if rs[i].Seq <= v {
						rs[i] = rs[i].Redact()
					}
				}
			}
			sh.users[id] = &user{rec: l.Record, receipts: rs}
			return nil
		}
		if l.Log != n || l.Receipt == nil {
			return fmt.Errorf("log %d for shard %d, or no receipt", l.Log, n)
		}
		ms, seq, pos, err := s.replayPos(sh.log, l.Pos)
		if err != nil {
			return err
		}
		u := sh.users[id]
		var prev uint64
		prevRec := &consent.Record{UserID: id, Number: l.Record.Number}
		if u != nil {
			prev = u.rec.Version
			prevRec = u.rec
			if l.Record.Number != u.rec.Number {
				return fmt.Errorf("user %q changed number from %d to %d", id, u.rec.Number, l.Record.Number)
			}
		} else if want := store.UserNumber(n, len(sh.ids)+1, len(s.shards)); l.Record.Number != want {
			return fmt.Errorf("new user %q has number %d, want %d", id, l.Record.Number, want)
		} else {
			sh.ids = append(sh.ids, id)
		}
		if l.Record.Version != prev+1 || l.Receipt.Seq != l.Record.Version || l.Receipt.UserID != id {
			return fmt.Errorf("record version %d, receipt seq %d for %q after version %d", l.Record.Version, l.Receipt.Seq, l.Receipt.UserID, prev)
		}
		rc := l.Receipt
		nu := &user{rec: l.Record}
		if u != nil {
			nu.receipts = u.receipts
		}
		if l.Record.State.Erased {
			// An erasure, replayed as Apply made it: the earlier lines
			// of the file hold the user's content until the next
			// compaction; the state does not.
			r := rc.Redact()
			rc, prevRec = &r, nil
			nu.receipts = redactAll(nu.receipts, len(nu.receipts)+1)
			sh.log.entries = shredEntries(sh.log.entries, id)
			s.replayedErasures = true
		}
		nu.receipts = append(nu.receipts, *rc)
		sh.users[id] = nu
		sh.log.append(logEntry{ms: ms, seq: seq, pos: pos, rec: l.Record, prev: prevRec, rc: rc})
	case opSetSettings:
		if l.Settings == nil || l.Receipt == nil {
			return errors.New("no settings or no receipt")
		}
		p := s.set
		ms, seq, pos, err := s.replayPos(p.log, l.Pos)
		if err != nil {
			return err
		}
		if old := p.cur.Load(); l.Settings.Version != old.Version+1 || l.Receipt.Seq != p.seq+1 {
			return fmt.Errorf("settings version %d, receipt seq %d after version %d, seq %d", l.Settings.Version, l.Receipt.Seq, old.Version, p.seq)
		}
		p.cur.Store(l.Settings)
		p.receipts = append(p.receipts, *l.Receipt)
		p.seq, p.head = l.Receipt.Seq, l.Receipt.Hash
		p.log.append(logEntry{ms: ms, seq: seq, pos: pos, set: l.Settings, rc: l.Receipt})
	case opSettings:
		if l.Settings == nil {
			return errors.New("no settings")
		}
		p := s.set
		p.cur.Store(l.Settings)
		p.receipts, p.seq, p.head = l.Receipts, l.Seq, l.Head
	case opPurge:
		lg, _, err := s.logOf(l.Log)
		if err != nil {
			return err
		}
		var trimMs, trimSeq uint64
		if l.Pos != "" {
			if trimMs, trimSeq, err = splitPos(l.Pos); err != nil {
				return err
			}
		}
		if l.Log == store.SettingsLog {
			p := s.set
			if l.Count < 0 || l.Count > len(p.receipts) || len(l.Drop) > 0 {
				return fmt.Errorf("purge of %d settings receipts out of %d", l.Count, len(p.receipts))
			}
			p.receipts = p.receipts[l.Count:]
		} else {
			sh := s.shards[l.Log]
			anchors := make(map[string]consent.Anchor, len(l.Drop))
			for id, k := range l.Drop {
				u := sh.users[id]
				if u == nil || k <= 0 || k > len(u.receipts) {
					return fmt.Errorf("purge of %d receipts of user %q that has fewer", k, id)
				}
				a, ok := l.Anchors[id]
				if !ok {
					// A line written before purges left anchors.
					a = consent.NewAnchor(u.receipts[k-1], s.opts.ChainKey)
				}
				anchors[id] = a
			}
			if len(l.Anchors) > len(l.Drop) {
				return fmt.Errorf("%d anchors for %d users purged", len(l.Anchors), len(l.Drop))
			}
			sh.dropReceipts(l.Drop, anchors)
		}
		if l.Pos != "" {
			if err := lg.expireTo(trimMs, trimSeq); err != nil {
				return err
			}
		}
		s.replayedErasures = true
	case opTrim:
		lg, _, err := s.logOf(l.Log)
		if err != nil {
			return err
		}
		ms, seq, err := splitPos(l.Pos)
		if err != nil {
			return err
		}
		lg.setTrimmed(ms, seq, makePos(ms, seq))
	case opEvent:
		lg, _, err := s.logOf(l.Log)
		if err != nil {
			return err
		}
		if l.Receipt == nil || (l.Record == nil) == (l.Settings == nil) || (l.Record != nil) != (l.Log != store.SettingsLog) {
			return errors.New("event without receipt, or with the wrong payload for its log")
		}
		ms, seq, pos, err := s.replayPos(lg, l.Pos)
		if err != nil {
			return err
		}
		rec := l.Record
		e := logEntry{ms: ms, seq: seq, pos: pos, rec: rec, prev: l.Prev, set: l.Settings, rc: l.Receipt, shredded: l.Shredded && rec != nil}
		if rec != nil && !e.shredded {
			u := s.shards[l.Log].users[rec.UserID]
			if u != nil && u.rec.Version == rec.Version && sameAnchor(u.rec.Purged, rec.Purged) {
				// Share the record with the user when it is the
				// current one.
				e.rec = u.rec
			}
			if u != nil {
				// A snapshot writes the entries of an erased user
				// shredded; one that does not is made to (defence in
				// depth).
				switch v := erasedUpTo(u.rec, u.receipts); {
				case rec.Version < v:
					e = shredEntry(&e)
				case rec.Version == v && !e.rc.Redacted:
					r := e.rc.Redact()
					e.rc = &r
				}
			}
		}
		if e.shredded || (e.rec != nil && e.rec.State.Erased) {
			e.prev = nil
		}
		lg.append(e)
	default:
		return fmt.Errorf("unknown operation %q", l.Op)
	}
	return nil
}

// replayPos parses a position read from the file, checks that it comes
// after the last one of log l and returns it in canonical form.
func (s *Store) replayPos(l *changelog, p store.Position) (ms, seq uint64, pos store.Position, err error) {
	ms, seq, err = splitPos(p)
	if err != nil {
		return 0, 0, "", err
	}
	if cmpPos(ms, seq, l.lastMs, l.lastSeq) <= 0 {
		return 0, 0, "", fmt.Errorf("position %s of log %d is not after %s", p, l.id, l.last.String())
	}
	return ms, seq, makePos(ms, seq), nil
}

// splitPos parses a non-zero position.
func splitPos(p store.Position) (ms, seq uint64, err error) {
	if _, err := store.ParsePosition(string(p)); err != nil {
		return 0, 0, err
	}
	ms, seq = p.Parts()
	if ms == 0 && seq == 0 {
		return 0, 0, fmt.Errorf("zero position")
	}
	return ms, seq, nil
}

// erasedUpTo returns the version up to which the user's changes were
// erased: the record's when it is a tombstone, else the Seq of the newest
// erase receipt kept, else 0.
func erasedUpTo(rec *consent.Record, rs []consent.Receipt) uint64 {
	if rec.State.Erased {
		return rec.Version
	}
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Op == consent.OpErase {
			return rs[i].Seq
		}
	}
	return 0
}

// sameAnchor reports whether a and b are the same purge anchor.
func sameAnchor(a, b consent.Anchor) bool {
	return a.Seq == b.Seq && a.Hash == b.Hash && a.MAC == b.MAC && a.At.Equal(b.At)
}

// liveLines is the number of lines a snapshot of s would have.
func (s *Store) liveLines() int64 { return 1 + int64(s.snapshot().lines()) }

// placeID records a snapshot user's ID under its number while replaying.
func (sh *shard) placeID(shard, shards int, rec *consent.Record) error {
	if rec.Number == 0 {
		return fmt.Errorf("user %q has no number", rec.UserID)
	}
	s, local := store.NumberShard(rec.Number, shards)
	if s != shard {
		return fmt.Errorf("user %q has number %d of shard %d, lives in shard %d", rec.UserID, rec.Number, s, shard)
	}
	for len(sh.ids) < local {
		sh.ids = append(sh.ids, "")
	}
	if sh.ids[local-1] != "" {
		return fmt.Errorf("users %q and %q share number %d", sh.ids[local-1], rec.UserID, rec.Number)
	}
	sh.ids[local-1] = rec.UserID
	return nil
}
