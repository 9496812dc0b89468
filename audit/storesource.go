package audit

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// StoreSource reads the outcome events kept by a store (store.OutcomeLog:
// recorded by the SDK's exposure sink or posted to /v1/events), as a Source
// named "store". The read streams: events pass through a small bounded
// queue, never all in memory at once. Cancel ctx to stop it early (the
// reading goroutine then ends even if Next is never called again).
//
// Each stored event is one "line": the n-th event read is line n of
// "store" in LineErrors. An event that cannot be decoded (not one JSON
// object of the Event fields, missing what every event needs, empty, over
// MaxLineBytes) is a *LineError that the caller skips and counts, as Run
// does; it never ends the read. An event spread over several lines (JSON
// with newlines) is still one event. An error of the store itself (say
// store.ErrUnavailable) is final: Next returns it, so an audit never reports
// a partial read as complete.
//
// When ol is also a store.Store, the events of users who restricted
// processing of their data (Art. 23) or were erased (Art. 24) are left out
// (see Excluded), whatever the store's ReadOutcomes already leaves out:
// their records are read in batches as their events come (a user is read
// once while the source remembers them; it remembers up to 65,536 users at
// a time). Those events keep their line numbers, and Run counts them in
// Report.Excluded. A user whose record is missing or corrupt is not left
// out (as StoreFacts, which gives them no facts).
func StoreSource(ctx context.Context, ol store.OutcomeLog) Source {
	s := &storeSource{batches: make(chan [][]byte, 2), dec: newFastDecoder()}
	if st, ok := ol.(store.Store); ok {
		s.filter = &exclusionFilter{st: st, dec: newFastDecoder(), known: map[string]bool{}}
		s.filter.dec.raw = true // the IDs are used while the batch lives
	}
	go s.read(ctx, ol)
	return s
}

// storeBatchSize is how many events the reader hands over at once.
const storeBatchSize = 256

type storeSource struct {
	batches chan [][]byte
	readErr error            // set before batches is closed
	filter  *exclusionFilter // nil when ol is no store.Store

	dec  *fastDecoder
	cur  [][]byte
	line int64
	err  error // final: returned by every later Next
}

func (s *storeSource) read(ctx context.Context, ol store.OutcomeLog) {
	defer close(s.batches)
	batch := make([][]byte, 0, storeBatchSize)
	send := func() error {
		if s.filter != nil {
			if err := s.filter.apply(ctx, batch); err != nil {
				return err
			}
		}
		select {
		case s.batches <- batch:
			batch = make([][]byte, 0, storeBatchSize)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := ol.ReadOutcomes(ctx, func(e []byte) error {
		// The store may reuse e after fn returns. The copy is never nil,
		// even for an empty event: nil marks an event left out (see
		// exclusionFilter).
		batch = append(batch, append([]byte{}, e...))
		if len(batch) == storeBatchSize {
			return send()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = send()
	}
	s.readErr = err
}

func (s *storeSource) Next() (Event, error) {
	if s.err != nil {
		return Event{}, s.err
	}
	var b []byte
	for b == nil {
		for len(s.cur) == 0 {
			nb, ok := <-s.batches
			if !ok {
				s.err = io.EOF
				if s.readErr != nil {
					s.err = fmt.Errorf("audit: reading the store's outcome events: %w", s.readErr)
				}
				return Event{}, s.err
			}
			s.cur = nb
		}
		// nil is an event of a user left out (exclusionFilter): it keeps
		// its line number.
		b = s.cur[0]
		s.cur[0] = nil
		s.cur = s.cur[1:]
		s.line++
	}
	switch {
	case len(b) > MaxLineBytes:
		return Event{}, s.lineErr(fmt.Sprintf("event longer than %d bytes", MaxLineBytes))
	case blankLine(b):
		return Event{}, s.lineErr("empty event")
	}
	var ev Event
	if !s.dec.decode(b, &ev) {
		ev = Event{}
		if err := decodeJSONEvent(b, &ev); err != nil {
			return Event{}, s.lineErr(err.Error())
		}
	}
	if reason := validateEvent(&ev); reason != "" {
		return Event{}, s.lineErr(reason)
	}
	return ev, nil
}

func (s *storeSource) lineErr(reason string) *LineError {
	return &LineError{File: "store", Line: s.line, Reason: reason}
}

// excludedEvents returns how many events the source left out because their
// user is restricted or erased; Run adds them to Report.Excluded.
func (s *storeSource) excludedEvents() int64 {
	if s.filter == nil {
		return 0
	}
	return s.filter.n.Load()
}

// maxKnownUsers bounds the users an exclusionFilter remembers.
const maxKnownUsers = 1 << 16

// exclusionFilter leaves out, batch by batch, the events of users who
// restricted processing or were erased, reading the records of users it
// does not remember in one round trip per batch. It runs in the reading
// goroutine.
type exclusionFilter struct {
	st    store.Store
	dec   *fastDecoder    // raw: IDs point into the batch's events
	known map[string]bool // user ID -> excluded
	n     atomic.Int64    // events left out
	ids   []string        // per event of the batch: its user, or ""
	ask   []string
}

// apply replaces the events of excluded users in batch by nil. An event
// that does not decode (or names no valid user) is kept: Next reports it.
// An error of the store is returned (the read ends with it).
func (f *exclusionFilter) apply(ctx context.Context, batch [][]byte) error {
	if len(f.known)+len(batch) > maxKnownUsers {
		clear(f.known)
	}
	f.ids, f.ask = f.ids[:0], f.ask[:0]
	for _, b := range batch {
		id := f.userOf(b)
		if id != "" {
			if _, ok := f.known[id]; !ok {
				id = strings.Clone(id)
				f.known[id] = false // asked below
				f.ask = append(f.ask, id)
			}
		}
		f.ids = append(f.ids, id)
	}
	if len(f.ask) > 0 {
		recs, err := readRecords(ctx, f.st, f.ask)
		if err != nil {
			return err
		}
		for i := range recs {
			if Excluded(&recs[i]) {
				f.known[f.ask[i]] = true
			}
		}
	}
	for i, id := range f.ids {
		if id != "" && f.known[id] {
			batch[i] = nil
			f.n.Add(1)
		}
	}
	return nil
}

// userOf returns the user of a stored event, or "" when it does not decode
// or names no valid user ID.
func (f *exclusionFilter) userOf(b []byte) string {
	if len(b) > MaxLineBytes || blankLine(b) {
		return ""
	}
	var ev Event
	if !f.dec.decode(b, &ev) {
		ev = Event{}
		if decodeJSONEvent(b, &ev) != nil {
			return ""
		}
	}
	if consent.ValidUserID(ev.UserID) != nil {
		return ""
	}
	return ev.UserID
}
