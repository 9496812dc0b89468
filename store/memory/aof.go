package memory

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// File names in the data directory.
const (
	fileName = "recguard.aof"
	tmpName  = "recguard.aof.tmp"
	lockName = "LOCK"
)

// fileFormat is the format written in the meta line.
const fileFormat = 1

// Operations of the lines of the file.
const (
	opMeta        = "meta"         // first line: Format, Shards, After, Snapshot
	opApply       = "apply"        // a change: Log, Pos, Record, Receipt
	opSetSettings = "set_settings" // a settings change: Pos, Settings, Receipt
	opPurge       = "purge"        // PurgeExpired: Log; Drop and Anchors (shard) or Count (settings); Pos (newest expired entry)
	opSettings    = "settings"     // snapshot: Settings, Receipts, Seq, Head
	opUser        = "user"         // snapshot: Record, Receipts
	opTrim        = "trim"         // snapshot: Log, Pos (the newest trimmed position)
	opEvent       = "event"        // snapshot: Log, Pos, Record or Settings, Prev, Receipt, Shredded
)

// line is the JSON payload of one line of the file.
//
// The lines of operations (apply, set_settings, purge) are numbered in N
// from 1 without gaps over the life of the store; the number is spliced in
// when the line is appended, under the file's lock. A snapshot starts with
// a meta line that says how many snapshot lines follow it (Snapshot) and
// the number of the last operation they include (After); the snapshot lines
// themselves carry no number. Replay checks both, so a missing, repeated or
// reordered line is corruption even when its own checksum is fine.
type line struct {
	N        uint64            `json:"n,omitempty"`
	Op       string            `json:"op"`
	Format   int               `json:"format,omitempty"`
	Shards   int               `json:"shards,omitempty"`
	After    uint64            `json:"after,omitempty"`
	Snapshot int               `json:"snapshot,omitempty"`
	Log      int               `json:"log"`
	Pos      store.Position    `json:"pos,omitempty"`
	Record   *consent.Record   `json:"record,omitempty"`
	Prev     *consent.Record   `json:"prev,omitempty"`
	Settings *consent.Settings `json:"settings,omitempty"`
	Receipt  *consent.Receipt  `json:"receipt,omitempty"`
	Receipts []consent.Receipt `json:"receipts,omitempty"`
	Drop     map[string]int    `json:"drop,omitempty"`
	// Anchors are the purge anchors of the users in Drop (see
	// consent.Record.Purged).
	Anchors  map[string]consent.Anchor `json:"anchors,omitempty"`
	Shredded bool                      `json:"shredded,omitempty"`
	Count    int                       `json:"count,omitempty"`
	Seq      uint64                    `json:"seq,omitempty"`
	Head     string                    `json:"head,omitempty"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends payload framed as one line to b.
func appendFrame(b, payload []byte) []byte {
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	var sum [4]byte
	c := crc32.Checksum(payload, crcTable)
	sum[0], sum[1], sum[2], sum[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	b = hex.AppendEncode(b, sum[:])
	b = append(b, ' ')
	b = append(b, payload...)
	return append(b, '\n')
}

// errBadFrame reports a line whose framing does not check out.
var errBadFrame = errors.New("bad frame")

// parseFrame returns the payload of one framed line, including its '\n'.
func parseFrame(b []byte) ([]byte, error) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: no end of line", errBadFrame)
	}
	b = b[:len(b)-1]
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 || sp > 10 {
		return nil, fmt.Errorf("%w: no length", errBadFrame)
	}
	n, err := strconv.ParseUint(string(b[:sp]), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: length: %v", errBadFrame, err)
	}
	rest := b[sp+1:]
	if len(rest) < 9 || rest[8] != ' ' {
		return nil, fmt.Errorf("%w: no checksum", errBadFrame)
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], rest[:8]); err != nil {
		return nil, fmt.Errorf("%w: checksum: %v", errBadFrame, err)
	}
	payload := rest[9:]
	if uint64(len(payload)) != n {
		return nil, fmt.Errorf("%w: payload is %d bytes, frame says %d", errBadFrame, len(payload), n)
	}
	want := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	if got := crc32.Checksum(payload, crcTable); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, frame says %08x", errBadFrame, got, want)
	}
	return payload, nil
}

// aof is the open append-only file, with group commit: append frames a
// line into a buffer under mu, and wait makes it durable. The first waiter
// to find no flush in progress becomes the leader: it takes every buffered
// line, writes them with one write and one fsync, outside mu, and wakes the
// others. Lines buffered during a flush go out together in the next one.
//
// With noSync, append writes the line at once and wait returns at once.
//
// Lines are identified by their number (line.N), which compaction keeps, so
// a waiter is not confused when the file is replaced under it.
type aof struct {
	dir, path string
	noSync    bool

	mu       sync.Mutex
	cond     sync.Cond // on mu; broadcast when durable, err, flushing or f change
	f        *os.File
	size     int64  // bytes written to f
	n        uint64 // number of the last line appended
	durable  uint64 // number of the last line written (and synced unless noSync)
	pending  []byte // framed lines durable+1..n, not yet written
	spare    []byte // the buffer of the last flush, for reuse
	flushing bool   // a leader is writing and syncing
	err      error  // sticky: once a write or sync failed, every write fails
	body     []byte // scratch space for append
}

func newAOF(dir, path string, noSync bool, f *os.File, size int64, n uint64) *aof {
	a := &aof{dir: dir, path: path, noSync: noSync, f: f, size: size, n: n, durable: n}
	a.cond.L = &a.mu
	return a
}

// append numbers payload, the JSON encoding of an operation line without N,
// and frames it; it returns the line's number for wait.
func (a *aof) append(payload []byte) (uint64, error) {
	if len(payload) < 2 || payload[0] != '{' {
		return 0, fmt.Errorf("memory: payload %.20q is not a JSON object", payload)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return 0, a.err
	}
	if a.f == nil {
		return 0, store.ErrClosed
	}
	n := a.n + 1
	// {"n":<n>,<payload without its opening brace>
	a.body = append(a.body[:0], `{"n":`...)
	a.body = strconv.AppendUint(a.body, n, 10)
	a.body = append(a.body, ',')
	a.body = append(a.body, payload[1:]...)
	if !a.noSync {
		a.pending = appendFrame(a.pending, a.body)
		a.n = n
		return n, nil
	}
	buf := appendFrame(a.spare[:0], a.body)
	a.spare = buf
	if err := a.write(a.f, buf); err != nil {
		a.err = err
		return 0, err
	}
	a.n, a.durable = n, n
	return n, nil
}

// write writes buf to f, the current file, and advances size. The caller
// holds mu, and no flush is in progress.
func (a *aof) write(f *os.File, buf []byte) error {
	w, err := f.Write(buf)
	if err != nil {
		// Best effort: drop a partial line now rather than on the next
		// Open. The store refuses writes from here on either way.
		_ = f.Truncate(a.size)
		return fmt.Errorf("append to %s: %w", a.path, err)
	}
	a.size += int64(w)
	return nil
}

// wait returns once line n is durable, or the error that keeps it from
// being so.
func (a *aof) wait(n uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		switch {
		case a.durable >= n:
			return nil
		case a.err != nil:
			return a.err
		case a.f == nil:
			return store.ErrClosed
		case a.flushing:
			a.cond.Wait()
			continue
		}
		// Lead: write and sync everything buffered.
		buf, upto, f, size := a.pending, a.n, a.f, a.size
		a.pending, a.flushing = a.spare[:0], true
		a.mu.Unlock()
		w, err := f.Write(buf)
		if err == nil {
			err = f.Sync()
		} else {
			_ = f.Truncate(size)
		}
		a.mu.Lock()
		a.flushing = false
		if err != nil {
			a.err = fmt.Errorf("append to %s: %w", a.path, err)
		} else {
			a.size += int64(w)
			a.durable = upto
		}
		if cap(buf) <= 1<<20 { // do not keep a huge batch's buffer
			a.spare = buf[:0]
		}
		a.cond.Broadcast()
	}
}

// idle waits until no flush is in progress. The caller holds mu.
func (a *aof) idle() {
	for a.flushing {
		a.cond.Wait()
	}
}

// close writes and syncs what is buffered and closes the file.
func (a *aof) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.idle()
	if a.f == nil {
		return nil
	}
	var err error
	if len(a.pending) > 0 && a.err == nil { // lines nobody waits for: keep them
		if err = a.write(a.f, a.pending); err != nil {
			a.err = err
		}
		a.pending = nil
	}
	if e := a.f.Sync(); err == nil {
		err = e
	}
	if e := a.f.Close(); err == nil {
		err = e
	}
	a.f = nil
	a.cond.Broadcast()
	return err
}

// syncDir fsyncs a directory, making a create or rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// unavailable wraps an I/O error as store.ErrUnavailable.
func unavailable(err error) error {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: memory: %w", store.ErrUnavailable, err)
}

// copyRange copies n bytes of src from off to dst.
func copyRange(dst io.Writer, src io.ReaderAt, off, n int64) error {
	if n <= 0 {
		return nil
	}
	_, err := io.Copy(dst, io.NewSectionReader(src, off, n))
	return err
}

func dataPath(dir string) string { return filepath.Join(dir, fileName) }
