package audit

import (
	"context"
	"fmt"
	"io"

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
func StoreSource(ctx context.Context, ol store.OutcomeLog) Source {
	s := &storeSource{batches: make(chan [][]byte, 2), dec: newFastDecoder()}
	go s.read(ctx, ol)
	return s
}

// storeBatchSize is how many events the reader hands over at once.
const storeBatchSize = 256

type storeSource struct {
	batches chan [][]byte
	readErr error // set before batches is closed

	dec  *fastDecoder
	cur  [][]byte
	line int64
	err  error // final: returned by every later Next
}

func (s *storeSource) read(ctx context.Context, ol store.OutcomeLog) {
	defer close(s.batches)
	batch := make([][]byte, 0, storeBatchSize)
	send := func() error {
		select {
		case s.batches <- batch:
			batch = make([][]byte, 0, storeBatchSize)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := ol.ReadOutcomes(ctx, func(e []byte) error {
		// The store may reuse e after fn returns.
		batch = append(batch, append([]byte(nil), e...))
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
	for len(s.cur) == 0 {
		b, ok := <-s.batches
		if !ok {
			s.err = io.EOF
			if s.readErr != nil {
				s.err = fmt.Errorf("audit: reading the store's outcome events: %w", s.readErr)
			}
			return Event{}, s.err
		}
		s.cur = b
	}
	b := s.cur[0]
	s.cur[0] = nil
	s.cur = s.cur[1:]
	s.line++
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
