package audit

import (
	"runtime"
	"sync"
)

// Reading a JSONL source on several cores. Decoding is the largest part
// of reading (about a third of an audit's CPU time), and one goroutine
// decoding while another aggregates leaves a core idle much of the time.
// So for ReadJSONL's source, Run splits the reading goroutine in three:
//
//   - the splitter reads the lines (through the source's line reader, so
//     a FingerprintReader below still hashes every byte) and copies a
//     chunk's worth into the chunk's buffer, with each line's number;
//   - decoders, one per core, decode chunks as they come, each with a
//     decoder of its own, and do for each event what prepareLocal does
//     (nothing shared is written);
//   - the sequencer takes the chunks in the order read, once decoded,
//     numbers their items and users (numberItem, numberUsers: the numbers
//     depend on the order) and hands them to the aggregating goroutine.
//
// The chunks in flight are at most maxChunks (33 on two cores), each
// holding at most chunkSize lines and chunkBytes bytes plus one line: a
// file of lines near MaxLineBytes takes ~40 MiB of chunks, not 512 lines
// of a megabyte each (TestParallelChunkBytesBounded).
//
// The chunks reach the aggregating goroutine in the order read, each
// holding exactly the items the one-goroutine reader would have made
// (the same events, the same *LineErrors with the same line numbers, the
// same final error after the last line), so the report is the same.

// parallelReading lets Run decode a JSONL source in parallel (tests turn it
// off to compare with the one-goroutine reader on the same cores).
var parallelReading = true

// minParallelDecode is the fewest cores for which Run decodes in parallel,
// maxDecoders the most decoding goroutines, and freeChunks the room for
// spare chunks (read's free channel).
const (
	minParallelDecode = 2
	maxDecoders       = 8
	freeChunks        = 128
	chunkBytes        = 256 << 10 // the most bytes of lines a chunk takes before the next line
)

// parLines is what the splitter hands a decoder for one chunk: the lines,
// back to back in buf, ending at ends[i] (-1: a line longer than
// MaxLineBytes, dropped), read as line numbers lines[i].
type parLines struct {
	buf   []byte
	ends  []int32
	lines []int64
	ready chan struct{} // closed once the chunk's items are made
}

// fill reads lines from lr into p until p holds chunkSize lines or
// chunkBytes bytes (so that the chunks in flight hold a bounded number of
// bytes whatever the lines' length: at most chunkBytes plus one line of
// MaxLineBytes each), or lr ends: it returns lr's error then (io.EOF at
// the end). Blank lines are skipped (their numbers still counted); a line
// over MaxLineBytes is kept as a -1 end.
func (p *parLines) fill(lr *lineReader) error {
	for len(p.ends) < chunkSize && len(p.buf) < chunkBytes {
		b, tooLong, err := lr.next()
		if err != nil {
			return err
		}
		if tooLong {
			p.ends = append(p.ends, -1)
			p.lines = append(p.lines, lr.line)
			continue
		}
		if blankLine(b) {
			continue
		}
		p.buf = append(p.buf, b...)
		p.ends = append(p.ends, int32(len(p.buf)))
		p.lines = append(p.lines, lr.line)
	}
	return nil
}

func (p *parLines) reset() {
	p.buf, p.ends, p.lines = p.buf[:0], p.ends[:0], p.lines[:0]
	p.ready = make(chan struct{})
}

// parallelRead starts the splitter, the decoders and the sequencer of js
// (see above); they send the chunks, in order, on out, take spare chunks
// from free, close out when done or stopped, and close done once all have
// ended.
func (e *engine) parallelRead(js *jsonlSource, out chan *chunk, free chan *chunk, stop <-chan struct{}, done chan<- struct{}) {
	workers := min(runtime.GOMAXPROCS(0), maxDecoders)
	jobs := make(chan *chunk, 2*workers)
	order := make(chan *chunk, 4*workers)
	// Every chunk is in one place at a time: being split, in jobs, being
	// decoded, in order, being sequenced, in out, being aggregated, or in
	// free; so maxChunks, at least all those places hold, bounds the
	// memory, and each chunk comes back through free (which has room for
	// them all, so the aggregating goroutine never drops one).
	maxChunks := cap(jobs) + workers + cap(order) + 1 + cap(out) + 2
	if maxChunks > cap(free) {
		panic("audit: free has no room for every chunk")
	}
	var wg sync.WaitGroup
	wg.Add(2 + workers)
	go func() {
		wg.Wait()
		close(done)
	}()
	// The splitter.
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(jobs)
		lr := js.lr
		made := 0 // chunks allocated: at most maxChunks, then reused
		for {
			var c *chunk
			select {
			case <-stop:
				return
			case c = <-free:
			default:
				if made < maxChunks {
					made++
					c = &chunk{items: make([]readItem, 0, chunkSize), lines: &parLines{}}
					break
				}
				select {
				case <-stop:
					return
				case c = <-free:
				}
			}
			c.items, c.ids = c.items[:0], c.ids[:0]
			c.final = nil
			p := c.lines
			p.reset()
			if err := p.fill(lr); err != nil {
				js.err = err
				c.final = err
			}
			select {
			case jobs <- c:
			case <-stop:
				return
			}
			select {
			case order <- c:
			case <-stop:
				return
			}
			if c.final != nil {
				return
			}
		}
	}()
	// The decoders.
	for range workers {
		go func() {
			defer wg.Done()
			dec := newFastDecoder()
			dec.raw = true
			for c := range jobs {
				e.decodeChunk(js.name, dec, c)
				close(c.lines.ready)
			}
		}()
	}
	// The sequencer.
	go func() {
		defer wg.Done()
		defer close(out)
		for c := range order {
			select {
			case <-c.lines.ready:
			case <-stop:
				return
			}
			for i := range c.items {
				it := &c.items[i]
				if it.err == nil && it.inWindow && it.ev.Item != "" {
					e.numberItem(it, it.ev.Item)
					it.ev.Item = ""
				}
			}
			e.numberUsers(c)
			select {
			case out <- c:
			case <-stop:
				return
			}
		}
	}()
}

// decodeChunk makes the items of c from its lines, as jsonlSource.Next and
// prepare would one by one, except that an item's ID to number is left in
// ev.Item (pointing into c's buffer) for the sequencer.
func (e *engine) decodeChunk(name string, dec *fastDecoder, c *chunk) {
	p := c.lines
	start := int32(0)
	for k, end := range p.ends {
		if end < 0 {
			c.items = append(c.items, readItem{err: &LineError{File: name, Line: p.lines[k], Reason: tooLongReason}})
			continue
		}
		b := p.buf[start:end]
		start = end
		c.items = append(c.items, readItem{})
		it := &c.items[len(c.items)-1]
		if reason := decodeLine(dec, b, &it.ev); reason != "" {
			*it = readItem{err: &LineError{File: name, Line: p.lines[k], Reason: reason}}
			continue
		}
		if item, ok := e.prepareLocal(c, it); ok {
			it.ev.Item = item
		}
	}
}
