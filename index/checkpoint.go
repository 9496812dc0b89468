package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// checkpointMagic starts every serialized index.
const checkpointMagic = "RGIDX1\n"

type header struct {
	Shards    int              `json:"shards"`
	Positions []store.Position `json:"positions"`
	Settings  consent.Settings `json:"settings"`
	Facts     []string         `json:"facts"`
	Users     []int            `json:"users"` // IDs kept per shard
}

// MarshalBinary serializes the index: a JSON header (shards, positions,
// settings, fact names), each fact's roaring bitmap (length-prefixed), and
// the number -> user ID table.
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
	h := header{Shards: x.shards, Positions: x.pos, Settings: x.settings}
	for k := range x.bm {
		h.Facts = append(h.Facts, k)
	}
	sort.Strings(h.Facts)
	for _, ids := range x.ids {
		h.Users = append(h.Users, len(ids))
	}
	var buf bytes.Buffer
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	size := len(checkpointMagic) + len(hj) + 2*binary.MaxVarintLen64
	for _, k := range h.Facts {
		size += binary.MaxVarintLen64 + int(x.bm[k].GetSerializedSizeInBytes())
	}
	for _, ids := range x.ids {
		for _, id := range ids {
			size += 1 + len(id)
		}
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
	for _, ids := range x.ids {
		for _, id := range ids {
			writeUvarint(&buf, uint64(len(id)))
			buf.WriteString(id)
		}
	}
	return buf.Bytes(), nil
}

func writeUvarint(w *bytes.Buffer, v uint64) {
	var b [binary.MaxVarintLen64]byte
	w.Write(b[:binary.PutUvarint(b[:], v)])
}

// Unmarshal decodes an index serialized by MarshalBinary. The error wraps
// ErrCorruptCheckpoint.
func Unmarshal(data []byte) (*Index, error) {
	bad := func(what string, err error) (*Index, error) {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptCheckpoint, what, err)
	}
	if !bytes.HasPrefix(data, []byte(checkpointMagic)) {
		return bad("magic", errors.New("not an index checkpoint"))
	}
	p := data[len(checkpointMagic):]
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
	if h.Shards < 1 || len(h.Positions) != h.Shards+1 || len(h.Users) != h.Shards {
		return bad("header", fmt.Errorf("%d shards, %d positions, %d user tables", h.Shards, len(h.Positions), len(h.Users)))
	}
	x := New(h.Shards, h.Settings)
	copy(x.pos, h.Positions)
	for _, k := range h.Facts {
		size, ok := uv()
		if !ok || size > uint64(len(p)) {
			return bad("bitmap "+k, io.ErrUnexpectedEOF)
		}
		b := roaring.New()
		if _, err := b.ReadFrom(bytes.NewReader(p[:size])); err != nil {
			return bad("bitmap "+k, err)
		}
		p = p[size:]
		x.bm[k] = b
		if isGrant(k) {
			x.grants[k] = b
		}
	}
	// One string holds every ID; each ID is a substring of it.
	all := string(p)
	off := 0
	for s, count := range h.Users {
		if count < 0 || count > len(data) {
			return bad("user table", fmt.Errorf("shard %d: %d users", s, count))
		}
		ids := make([]string, count)
		for i := range ids {
			l, n := binary.Uvarint(p[off:])
			if n <= 0 || l > consent.MaxUserIDLen || uint64(len(p)-off-n) < l {
				return bad("user table", io.ErrUnexpectedEOF)
			}
			off += n
			ids[i] = all[off : off+int(l)]
			off += int(l)
		}
		x.ids[s] = ids
	}
	if off != len(p) {
		return bad("trailer", errors.New("data after the user table"))
	}
	return x, nil
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
func Build(ctx context.Context, st store.Store) (*Index, error) {
	ul, ok1 := st.(store.UserLister)
	bg, ok2 := st.(store.BatchGetter)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("index: Build needs a store that lists users and reads them in batches: %w", errors.ErrUnsupported)
	}
	n := st.Shards()
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
	const page = 1000
	for shard := 0; shard < n; shard++ {
		for from := 1; ; from += page {
			ids, err := ul.ListUsers(ctx, shard, from, page)
			if err != nil {
				return nil, err
			}
			recs, err := bg.GetMany(ctx, ids)
			if err != nil {
				return nil, err
			}
			for i := range recs {
				x.Load(&recs[i])
			}
			if len(ids) < page {
				break
			}
		}
	}
	copy(x.pos, pos)
	return x, nil
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
		if len(x.ids[s]) != len(o.ids[s]) {
			return false
		}
		for i := range x.ids[s] {
			if x.ids[s][i] != o.ids[s][i] {
				return false
			}
		}
	}
	return true
}
