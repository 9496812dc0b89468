package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sort"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// checkpointMagic starts every serialized index; its body ends with the
// CRC-32C (Castagnoli, big-endian) of everything before it. Version 3 holds
// no erased user's ID (their number is a hole in the number -> ID table,
// which an older reader would take for damage) and no empty bitmap.
// Checkpoints of version 2 (the same layout; erased users' IDs kept) and
// of version 1 (no checksum) are still read, and the IDs of erased users
// they hold are dropped on load.
const (
	checkpointMagic   = "RGIDX3\n"
	checkpointMagicV2 = "RGIDX2\n"
	checkpointMagicV1 = "RGIDX1\n"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type header struct {
	Shards    int              `json:"shards"`
	Positions []store.Position `json:"positions"`
	Settings  consent.Settings `json:"settings"`
	Facts     []string         `json:"facts"`
	Users     []int            `json:"users"` // IDs kept per shard
}

// ErrNeedsRebuild reports a checkpoint asked of an index that saw a
// changelog entry it could not attribute (see Index.NeedsRebuild): saving it
// would carry its doubt into the next start.
var ErrNeedsRebuild = errors.New("index: needs a rebuild; not checkpointed")

// MarshalBinary serializes the index: a JSON header (shards, positions,
// settings, fact names), each non-empty fact's roaring bitmap
// (length-prefixed; the unknown users' numbers are one of them), the
// number -> user ID table, and a CRC-32C of all that. An index that
// NeedsRebuild returns ErrNeedsRebuild.
//
// An erased user's ID is not in it (a hole in the table), and their number
// is in no bitmap but "all" and "erased"; a fact no user holds any more
// (say, a tag only an erased user had) is left out, name and all.
func (x *Index) MarshalBinary() ([]byte, error) {
	// RunOptimize changes the bitmaps, so it runs under the write lock;
	// the serialization itself only reads.
	x.mu.Lock()
	for _, b := range x.bm {
		b.RunOptimize()
	}
	x.mu.Unlock()
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.needsRebuild {
		return nil, ErrNeedsRebuild
	}
	h := header{Shards: x.shards, Positions: x.pos, Settings: x.settings}
	for k, b := range x.bm {
		if !b.IsEmpty() {
			h.Facts = append(h.Facts, k)
		}
	}
	sort.Strings(h.Facts)
	for s := range x.ids {
		h.Users = append(h.Users, x.ids[s].n)
	}
	var buf bytes.Buffer
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	size := len(checkpointMagic) + len(hj) + 2*binary.MaxVarintLen64 + crc32.Size
	for _, k := range h.Facts {
		size += binary.MaxVarintLen64 + int(x.bm[k].GetSerializedSizeInBytes())
	}
	for s := range x.ids {
		size += x.ids[s].encodedSize()
	}
	buf.Grow(size)
	buf.WriteString(checkpointMagic)
	writeUvarint(&buf, uint64(len(hj)))
	buf.Write(hj)
	for _, k := range h.Facts {
		b := x.bm[k]
		writeUvarint(&buf, b.GetSerializedSizeInBytes())
		if _, err := b.WriteTo(&buf); err != nil {
			return nil, err
		}
	}
	for s := range x.ids {
		x.ids[s].encode(&buf)
	}
	var sum [crc32.Size]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(buf.Bytes(), crcTable))
	buf.Write(sum[:])
	return buf.Bytes(), nil
}

func writeUvarint(w *bytes.Buffer, v uint64) {
	var b [binary.MaxVarintLen64]byte
	w.Write(b[:binary.PutUvarint(b[:], v)])
}

// Unmarshal decodes an index serialized by MarshalBinary. A checkpoint that
// does not decode, fails its checksum, or holds an impossible header
// (shards, positions, settings) returns an error wrapping
// ErrCorruptCheckpoint. Within a checkpoint that decodes, users the bitmaps
// and the number -> ID table disagree about (a number with facts but no
// valid ID of its shard, facts outside "all", number 0) are unknown (see
// Index.Unknown), not an error.
func Unmarshal(data []byte) (*Index, error) {
	bad := func(what string, err error) (*Index, error) {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptCheckpoint, what, err)
	}
	var p []byte
	switch {
	case bytes.HasPrefix(data, []byte(checkpointMagic)), bytes.HasPrefix(data, []byte(checkpointMagicV2)):
		if len(data) < len(checkpointMagic)+crc32.Size {
			return bad("checksum", io.ErrUnexpectedEOF)
		}
		body := data[:len(data)-crc32.Size]
		if got, want := crc32.Checksum(body, crcTable), binary.BigEndian.Uint32(data[len(body):]); got != want {
			return bad("checksum", fmt.Errorf("%08x, checkpoint says %08x", got, want))
		}
		p = body[len(checkpointMagic):]
	case bytes.HasPrefix(data, []byte(checkpointMagicV1)):
		p = data[len(checkpointMagicV1):]
	default:
		return bad("magic", errors.New("not an index checkpoint"))
	}
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	n, ok := uv()
	if !ok || n > uint64(len(p)) {
		return bad("header length", io.ErrUnexpectedEOF)
	}
	hj := p[:n]
	p = p[n:]
	var h header
	if err := json.Unmarshal(hj, &h); err != nil {
		return bad("header", err)
	}
	if h.Shards < 1 || h.Shards > 1<<20 || len(h.Positions) != h.Shards+1 || len(h.Users) != h.Shards {
		return bad("header", fmt.Errorf("%d shards, %d positions, %d user tables", h.Shards, len(h.Positions), len(h.Users)))
	}
	for i, ps := range h.Positions {
		if _, err := store.ParsePosition(string(ps)); err != nil {
			return bad("header", fmt.Errorf("position %d: %v", i, err))
		}
	}
	if err := h.Settings.Validate(); err != nil {
		return bad("header", fmt.Errorf("settings: %v", err))
	}
	x := New(h.Shards, h.Settings)
	copy(x.pos, h.Positions)
	for _, k := range h.Facts {
		size, ok := uv()
		if !ok || size > uint64(len(p)) {
			return bad("bitmap "+k, io.ErrUnexpectedEOF)
		}
		b := roaring.New()
		if err := readBitmap(b, p[:size]); err != nil {
			return bad("bitmap "+k, err)
		}
		p = p[size:]
		x.bm[k] = b
		x.bmList = nil
		if isGrant(k) {
			x.grants[k] = b
		}
	}
	if u := x.bm[factUnknown]; u != nil {
		x.unk = u
	} else {
		x.bm[factUnknown] = x.unk
	}
	x.bmList = nil
	// One string holds every ID; each ID is a substring of it. A first
	// pass finds where each shard's table starts; the shards' IDs are then
	// checked on every core.
	all := string(p)
	starts := make([]int, len(h.Users)+1)
	off := 0
	for s, count := range h.Users {
		if count < 0 || count > len(p) {
			return bad("user table", fmt.Errorf("shard %d: %d users", s, count))
		}
		starts[s] = off
		for range count {
			l, n := binary.Uvarint(p[off:])
			if n <= 0 || l > consent.MaxUserIDLen || uint64(len(p)-off-n) < l {
				return bad("user table", io.ErrUnexpectedEOF)
			}
			off += n + int(l)
		}
	}
	starts[len(h.Users)] = off
	if off != len(p) {
		return bad("trailer", errors.New("data after the user table"))
	}
	invalids := make([][]uint32, h.Shards) // numbers with an ID that is not a valid one of their shard
	holess := make([][]uint32, h.Shards)   // numbers without an ID
	eachJob(h.Shards, runtime.GOMAXPROCS(0), func(s int) {
		var block [idBlockSlots]string
		t := &x.ids[s]
		off := starts[s]
		for i := range h.Users[s] {
			l, n := binary.Uvarint(p[off:])
			off += n
			id := all[off : off+int(l)]
			off += int(l)
			// A hole (a number with no user, or an erased one) or an ID
			// that is not one of the shard: its number may hold no facts
			// (a hole: none but an erased user's).
			switch {
			case id == "":
				holess[s] = append(holess[s], x.number(s, i+1))
			case consent.ValidUserID(id) != nil || store.ShardOf(id, h.Shards) != s:
				invalids[s] = append(invalids[s], x.number(s, i+1))
				id = ""
			}
			block[i%idBlockSlots] = id
			if i%idBlockSlots == idBlockSlots-1 || i == h.Users[s]-1 {
				t.pushBlock(block[:i%idBlockSlots+1], 0)
			}
		}
	})
	invalid, holes := roaring.New(), roaring.New()
	for s := range h.Shards {
		invalid.AddMany(invalids[s])
		holes.AddMany(holess[s])
	}
	x.forgetErasedIDs(holes)
	x.validate(invalid, holes)
	x.flushClears()
	return x, nil
}

// forgetErasedIDs drops the IDs of erased users from a decoded checkpoint's
// table (one of version 2 or 1 keeps them), adding their numbers to holes.
// The index is not shared yet: the slots are written in place.
func (x *Index) forgetErasedIDs(holes *roaring.Bitmap) {
	er := x.bm[factErased]
	if er == nil {
		return
	}
	it := er.Iterator()
	for it.HasNext() {
		num := it.Next()
		if num == 0 {
			continue
		}
		shard, local := store.NumberShard(num, x.shards)
		if x.ids[shard].slot(local) != nil {
			x.setSlot(shard, local, "")
			holes.Add(num)
		}
	}
}

// readBitmap decodes a serialized roaring bitmap, turning a panic of the
// decoder on hostile input into an error.
func readBitmap(b *roaring.Bitmap, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bitmap does not decode: %v", r)
		}
	}()
	_, err = b.ReadFrom(bytes.NewReader(data))
	if err == nil {
		err = b.Validate()
	}
	return err
}

// Save writes the index as checkpoint name through the store's
// Checkpointer ability.
func (x *Index) Save(ctx context.Context, cp store.Checkpointer, name string) error {
	data, err := x.MarshalBinary()
	if err != nil {
		return err
	}
	return cp.SaveCheckpoint(ctx, name, data)
}

// LoadCheckpoint reads checkpoint name. It returns store.ErrNotFound when
// there is none; the caller then Builds.
func LoadCheckpoint(ctx context.Context, cp store.Checkpointer, name string) (*Index, error) {
	data, err := cp.LoadCheckpoint(ctx, name)
	if err != nil {
		return nil, err
	}
	return Unmarshal(data)
}

// Build builds the index from scratch from the store's records: positions
// first (every change after them will be replayed), then every user of
// every shard, read in batches. The store must list users
// (store.UserLister) and read them in batches (store.BatchGetter).
//
// A listed user whose record is missing or corrupt (named by a
// *store.CorruptError from GetMany, a record never written, one whose ID or
// number disagrees with the list) and a list entry that is not a valid user
// of its shard are unknown (see Index.Unknown): in no audience, logged, and
// the build goes on. An error that fails the whole batch (one wrapping
// store.ErrUnavailable or store.ErrDataLoss) fails the build.
func Build(ctx context.Context, st store.Store) (*Index, error) {
	ul, ok1 := st.(store.UserLister)
	bg, ok2 := st.(store.BatchGetter)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("index: Build needs a store that lists users and reads them in batches: %w", errors.ErrUnsupported)
	}
	n := st.Shards()
	if n < 1 {
		return nil, fmt.Errorf("index: store has %d shards", n)
	}
	pos := make([]store.Position, n+1)
	for i := range pos {
		log := i
		if i == n {
			log = store.SettingsLog
		}
		p, err := st.Tail(ctx, log)
		if err != nil {
			return nil, err
		}
		pos[i] = p
	}
	set, err := st.Settings(ctx)
	if err != nil {
		return nil, err
	}
	x := New(n, set)
	x.startBulk("build")
	defer x.endBulk()
	const page = 1000
	valid := make([]string, 0, page)
	at := make([]int, 0, page)
	for shard := 0; shard < n; shard++ {
		for from := 1; ; from += page {
			ids, err := ul.ListUsers(ctx, shard, from, page)
			if err != nil {
				return nil, err
			}
			valid, at = valid[:0], at[:0]
			for i, id := range ids {
				if consent.ValidUserID(id) != nil || store.ShardOf(id, n) != shard {
					x.buildUnknown(shard, x.number(shard, from+i), "", "user list entry that is not a valid user ID of the shard")
					continue
				}
				valid, at = append(valid, id), append(at, i)
			}
			if err := x.buildBatch(ctx, bg, shard, from, valid, at); err != nil {
				return nil, err
			}
			if len(ids) < page {
				break
			}
		}
	}
	x.compact()
	copy(x.pos, pos)
	return x, nil
}

// buildBatch reads the users listed at local numbers from+at[i] of shard
// and loads them.
func (x *Index) buildBatch(ctx context.Context, bg store.BatchGetter, shard, from int, ids []string, at []int) error {
	if len(ids) == 0 {
		return nil
	}
	recs, err := bg.GetMany(ctx, ids)
	var corrupt map[string]bool
	if err != nil {
		var ce *store.CorruptError
		if !errors.As(err, &ce) || len(ce.UserIDs) == 0 || errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrDataLoss) {
			return err
		}
		corrupt = make(map[string]bool, len(ce.UserIDs))
		for _, id := range ce.UserIDs {
			corrupt[id] = true
		}
	}
	if len(recs) != len(ids) {
		return fmt.Errorf("index: the store returned %d records for %d users", len(recs), len(ids))
	}
	good := recs[:0] // the records that agree with the list, in order
	for i := range recs {
		rec, id, num := &recs[i], ids[i], x.number(shard, from+at[i])
		switch {
		case corrupt[id]:
			x.buildUnknown(shard, num, id, "record missing or corrupt in the store")
		case rec.Version == 0:
			x.buildUnknown(shard, num, id, "listed user without a record")
		case rec.UserID != id || rec.Number != num:
			x.buildUnknown(shard, num, id, "record whose ID or number disagrees with the user list")
		default:
			good = append(good, *rec)
		}
	}
	x.loadMany(good, runtime.GOMAXPROCS(0))
	return nil
}

// buildUnknown makes the user at number num of shard unknown during a
// build: num has no facts yet, so it only joins the unknown users; id (when
// valid) is kept under num, so a later changelog event of that user with
// their whole record makes them known again.
func (x *Index) buildUnknown(shard int, num uint32, id, reason string) {
	_, local := store.NumberShard(num, x.shards)
	if id != "" || local > x.ids[shard].n {
		x.setSlot(shard, local, id)
	}
	if !x.unk.Contains(num) {
		x.touch(num)
		x.unk.Add(num)
		x.logUnknown(shard, num, reason)
	}
}

// Equal reports whether two indexes hold the same users and facts (used to
// check that checkpoint + replay equals a rebuild). Positions are not
// compared: two indexes can reflect the same data at different positions.
func (x *Index) Equal(o *Index) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	o.mu.RLock()
	defer o.mu.RUnlock()
	nonEmpty := func(m map[string]*roaring.Bitmap) map[string]*roaring.Bitmap {
		out := map[string]*roaring.Bitmap{}
		for k, b := range m {
			if !b.IsEmpty() {
				out[k] = b
			}
		}
		return out
	}
	a, b := nonEmpty(x.bm), nonEmpty(o.bm)
	if len(a) != len(b) || x.shards != o.shards {
		return false
	}
	for k, bx := range a {
		if by, ok := b[k]; !ok || !bx.Equals(by) {
			return false
		}
	}
	for s := range x.ids {
		if !x.ids[s].equal(&o.ids[s]) {
			return false
		}
	}
	return true
}
