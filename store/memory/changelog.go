package memory

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// logEntry is one changelog entry as kept in memory. It is never modified
// once appended: rec, prev, set and rc point to values that are immutable
// too. An erasure replaces the entries of its user (see shredEntries).
type logEntry struct {
	ms, seq uint64
	pos     store.Position
	rec     *consent.Record
	// prev is the user's record before the change; nil for the user's
	// first change, an erasure and a shredded entry.
	prev *consent.Record
	set  *consent.Settings
	rc   *consent.Receipt
	// shredded marks the entry of a user erased since: rec holds only the
	// user's ID, number, version and chain head, rc is redacted.
	shredded bool
}

// changelog is one log (a shard's or the settings'). Its owner's locks guard
// it: the writer lock and the state lock for appends, the state lock for
// reads.
//
// entries is only ever appended to, resliced from the front or replaced by
// a new slice (an erasure's shredding, an expiry), never written in place,
// so a copy of the slice header taken under the locks (by compaction) stays
// valid after they are released.
type changelog struct {
	id      int
	max     int
	entries []logEntry
	// lastMs, lastSeq is the newest position ever appended; new positions
	// come after it.
	lastMs, lastSeq uint64
	last            store.Position
	// trimMs, trimSeq is the newest position trimmed away (0-0: none).
	trimMs, trimSeq uint64
	trimmed         store.Position
	// notify is closed and replaced on every append, waking blocked reads.
	notify chan struct{}
}

func newChangelog(id, max int) *changelog {
	return &changelog{id: id, max: max, notify: make(chan struct{})}
}

// next returns the position for a new entry appended at wall-clock time now:
// now in milliseconds with sequence 0, or the last position's milliseconds
// with the next sequence when the clock has not moved past it.
func (l *changelog) next(now time.Time) (ms, seq uint64, pos store.Position) {
	ms = 0
	if m := now.UnixMilli(); m > 0 {
		ms = uint64(m)
	}
	if ms <= l.lastMs {
		ms, seq = l.lastMs, l.lastSeq+1
	}
	return ms, seq, makePos(ms, seq)
}

// append adds e, which must come after the last position, trims the log to
// its maximum length and wakes blocked readers.
func (l *changelog) append(e logEntry) {
	l.entries = append(l.entries, e)
	l.lastMs, l.lastSeq, l.last = e.ms, e.seq, e.pos
	if n := len(l.entries) - l.max; n > 0 {
		t := &l.entries[n-1]
		l.trimMs, l.trimSeq, l.trimmed = t.ms, t.seq, t.pos
		l.entries = l.entries[n:]
	}
	close(l.notify)
	l.notify = make(chan struct{})
}

// setTrimmed raises the trim horizon to (ms, seq) (from a snapshot).
func (l *changelog) setTrimmed(ms, seq uint64, pos store.Position) {
	if cmpPos(ms, seq, l.trimMs, l.trimSeq) > 0 {
		l.trimMs, l.trimSeq, l.trimmed = ms, seq, pos
	}
	if cmpPos(ms, seq, l.lastMs, l.lastSeq) > 0 {
		l.lastMs, l.lastSeq, l.last = ms, seq, pos
	}
}

// isTrimmed reports whether entries after (ms, seq) were trimmed away.
func (l *changelog) isTrimmed(ms, seq uint64) bool {
	return cmpPos(l.trimMs, l.trimSeq, ms, seq) > 0
}

// regressedError returns a *store.RegressedError when (ms, seq) is after
// the newest position ever appended: the reader applied entries this log
// does not have (it was restored from an older copy).
func (l *changelog) regressedError(ms, seq uint64, after store.Position) error {
	if cmpPos(ms, seq, l.lastMs, l.lastSeq) > 0 {
		return &store.RegressedError{Log: l.id, After: after, Tail: l.last}
	}
	return nil
}

// after returns copies of up to count entries after (ms, seq), as events.
func (l *changelog) after(ms, seq uint64, count int) []store.Event {
	es := l.entries
	i := sort.Search(len(es), func(i int) bool { return cmpPos(es[i].ms, es[i].seq, ms, seq) > 0 })
	n := min(len(es)-i, count)
	out := make([]store.Event, n)
	for j := range out {
		out[j] = l.event(&es[i+j])
	}
	return out
}

// event returns e as an Event that shares no mutable memory with it.
func (l *changelog) event(e *logEntry) store.Event {
	ev := store.Event{Log: l.id, Pos: e.pos, Receipt: cloneReceipt(*e.rc), Shredded: e.shredded}
	if e.rec != nil {
		r := cloneRecord(*e.rec)
		ev.Record = &r
		// A shredded entry and an erasure have no previous record: the
		// reader drops what it holds about the user.
		if !e.shredded && !r.State.Erased {
			p := consent.Record{UserID: r.UserID, Number: r.Number}
			if e.prev != nil {
				p = cloneRecord(*e.prev)
			}
			ev.Prev = &p
		}
	}
	if e.set != nil {
		s := e.set.Clone()
		ev.Settings = &s
	}
	return ev
}

// shredEntries returns es with every entry of userID replaced by its
// shredded form (see logEntry.shredded), in a new slice; es itself when it
// holds no entry of the user to shred. es is not modified.
func shredEntries(es []logEntry, userID string) []logEntry {
	first := -1
	for i := range es {
		if e := &es[i]; e.rec != nil && !e.shredded && e.rec.UserID == userID {
			first = i
			break
		}
	}
	if first < 0 {
		return es
	}
	// Room for the appends that follow (the erasure's own first), as
	// append would leave: the copy is the cost of an erasure.
	out := make([]logEntry, len(es), len(es)+len(es)/4+16)
	copy(out, es)
	for i := first; i < len(out); i++ {
		if e := &out[i]; e.rec != nil && !e.shredded && e.rec.UserID == userID {
			*e = shredEntry(e)
		}
	}
	return out
}

// shredEntry returns e's shredded form.
func shredEntry(e *logEntry) logEntry {
	rc := e.rc.Redact()
	rec := &consent.Record{UserID: e.rec.UserID, Number: e.rec.Number, Version: e.rec.Version, LastHash: rc.Hash}
	return logEntry{ms: e.ms, seq: e.seq, pos: e.pos, rec: rec, rc: &rc, shredded: true}
}

// expiredPrefix returns how many entries at the start of the log are
// older than cutoffMs (Unix milliseconds of their positions).
func (l *changelog) expiredPrefix(cutoffMs int64) int {
	if cutoffMs <= 0 {
		return 0
	}
	c := uint64(cutoffMs)
	return sort.Search(len(l.entries), func(i int) bool { return l.entries[i].ms >= c })
}

// expire removes the oldest k entries, raising the trim horizon to the
// last of them. The rest is copied, so the removed entries' memory is
// released.
func (l *changelog) expire(k int) {
	if k <= 0 {
		return
	}
	t := &l.entries[k-1]
	l.trimMs, l.trimSeq, l.trimmed = t.ms, t.seq, t.pos
	l.entries = cloneSlice(l.entries[k:])
}

// expireTo removes the entries up to and including position (ms, seq),
// replayed from the file: that position was the newest expired entry. It
// must not be after the newest position of the log.
func (l *changelog) expireTo(ms, seq uint64) error {
	if cmpPos(ms, seq, l.lastMs, l.lastSeq) > 0 {
		return fmt.Errorf("log %d expired up to %s, after its newest entry %s", l.id, makePos(ms, seq).String(), l.last.String())
	}
	k := sort.Search(len(l.entries), func(i int) bool { return cmpPos(l.entries[i].ms, l.entries[i].seq, ms, seq) > 0 })
	l.entries = cloneSlice(l.entries[k:])
	l.setTrimmed(ms, seq, makePos(ms, seq))
	return nil
}

func makePos(ms, seq uint64) store.Position {
	b := make([]byte, 0, 24)
	b = strconv.AppendUint(b, ms, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 10)
	return store.Position(b)
}

func cmpPos(am, as, bm, bs uint64) int {
	switch {
	case am < bm || am == bm && as < bs:
		return -1
	case am == bm && as == bs:
		return 0
	}
	return 1
}

// cloneRecord returns a deep copy of r.
func cloneRecord(r consent.Record) consent.Record {
	r.State.RefusedChannels = cloneSlice(r.State.RefusedChannels)
	r.State.Sensitive = cloneSlice(r.State.Sensitive)
	r.State.Refusals = cloneSlice(r.State.Refusals)
	if r.State.Guardian != nil {
		g := *r.State.Guardian
		r.State.Guardian = &g
	}
	r.Tags.Entries = cloneSlice(r.Tags.Entries)
	r.Tags.Suppressed = cloneSlice(r.Tags.Suppressed)
	return r
}

// cloneReceipt returns a copy of r that shares no slice with it.
func cloneReceipt(r consent.Receipt) consent.Receipt {
	r.Diff = cloneSlice(r.Diff)
	return r
}

// cloneSlice copies s, keeping nil nil and empty empty.
func cloneSlice[S ~[]E, E any](s S) S {
	if s == nil {
		return nil
	}
	return append(make(S, 0, len(s)), s...)
}
