package memory

import (
	"sort"
	"strconv"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// logEntry is one changelog entry as kept in memory. It is never modified
// once appended: rec and set point to values that are immutable too.
type logEntry struct {
	ms, seq uint64
	pos     store.Position
	rec     *consent.Record
	prev    *consent.Record // the user's record before the change
	set     *consent.Settings
	rc      consent.Receipt
}

// changelog is one log (a shard's or the settings'). Its owner's locks guard
// it: the writer lock and the state lock for appends, the state lock for
// reads.
//
// entries is only ever appended to or resliced from the front, never written
// in place, so a copy of the slice header taken under the locks (by
// compaction) stays valid after they are released.
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
	ev := store.Event{Log: l.id, Pos: e.pos, Receipt: e.rc}
	if e.rec != nil {
		r := cloneRecord(*e.rec)
		ev.Record = &r
		p := consent.Record{UserID: r.UserID, Number: r.Number}
		if e.prev != nil {
			p = cloneRecord(*e.prev)
		}
		ev.Prev = &p
	}
	if e.set != nil {
		s := e.set.Clone()
		ev.Settings = &s
	}
	return ev
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

// cloneSlice copies s, keeping nil nil and empty empty.
func cloneSlice[S ~[]E, E any](s S) S {
	if s == nil {
		return nil
	}
	return append(make(S, 0, len(s)), s...)
}
