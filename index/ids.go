package index

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
)

// The number -> ID table of a shard, packed.
//
// A shard's table is cut into blocks of idBlockSlots consecutive local
// numbers. A block's data is one length byte per slot (0: no ID, a hole)
// followed by the slots' IDs, byte after byte, in slot order: about 1 byte
// per user besides the ID itself, where a []string took a 16-byte header
// and a separately allocated string (32 bytes a user for the IDs of
// 10 million users), and nothing the garbage collector has to scan.
//
// An ID taken out of a slot (an erased user's, one replaced) is gone from
// the table: the block's later IDs move up over it and the freed bytes at
// its end are zeroed, or the block is copied without it and the old data,
// when no audience holds it, is zeroed.
//
// Frozen audiences share the blocks and read them without the lock (see
// Index.shared). A block's data is written in place only when its gen is
// the current value of Index.shared, that is when it was made (or copied)
// after the last audience was taken; otherwise a write copies it. The
// blocks slice of a shard is copied at the first write since the last
// audience (Index.owned), so an audience's copy of it never changes.

// idBlockSlots is the number of slots of a block of the ID table.
const idBlockSlots = 64

// maxIDLen is the longest ID a slot holds (its length is one byte);
// consent.MaxUserIDLen is below it.
const maxIDLen = 255

// idBlock is idBlockSlots slots of a shard's number -> ID table.
type idBlock struct {
	data []byte // idBlockSlots lengths, then the IDs one after another
	gen  uint64 // the Index.shared value data was made under
}

// idTable is one shard's number -> ID table: slots 1..n (local numbers).
type idTable struct {
	blocks []idBlock
	n      int
}

// sumLens returns the sum of the bytes of b (lengths), 8 at a time.
func sumLens(b []byte) int {
	s := 0
	for len(b) >= 8 {
		v := binary.LittleEndian.Uint64(b)
		v = v&0x00ff00ff00ff00ff + v>>8&0x00ff00ff00ff00ff // 4 lanes of 16 bits, each <= 510
		s += int(v * 0x0001000100010001 >> 48)
		b = b[8:]
	}
	for _, c := range b {
		s += int(c)
	}
	return s
}

// slot returns the bytes of the ID in slot local (nil for a hole or a slot
// beyond the table). The caller only reads them, and not after a write.
func (t *idTable) slot(local int) []byte {
	if local < 1 || local > t.n {
		return nil
	}
	k := local - 1
	d := t.blocks[k/idBlockSlots].data
	i := k % idBlockSlots
	l := int(d[i])
	if l == 0 {
		return nil
	}
	start := idBlockSlots + sumLens(d[:i])
	return d[start : start+l : start+l]
}

// id returns the ID in slot local, "" for none.
func (t *idTable) id(local int) string {
	return string(t.slot(local))
}

// holds reports whether slot local holds id ("" for a hole; a slot beyond
// the table holds nothing, not even a hole).
func (t *idTable) holds(local int, id string) bool {
	return local >= 1 && local <= t.n && string(t.slot(local)) == id
}

// each calls f with every slot's local number and ID bytes (holes
// skipped), in order, until f returns false.
func (t *idTable) each(f func(local int, id []byte) bool) {
	for b := range t.blocks {
		d := t.blocks[b].data
		off := idBlockSlots
		for i := range idBlockSlots {
			l := int(d[i])
			if l == 0 {
				continue
			}
			if !f(b*idBlockSlots+i+1, d[off:off+l:off+l]) {
				return
			}
			off += l
		}
	}
}

// find calls f with the local number of every slot holding id.
func (t *idTable) find(id string, f func(local int)) {
	if id == "" || len(id) > maxIDLen {
		return
	}
	l := byte(len(id))
	for b := range t.blocks {
		d := t.blocks[b].data
		off := idBlockSlots
		for i, li := range d[:idBlockSlots] {
			if li == l && string(d[off:off+int(l)]) == id {
				f(b*idBlockSlots + i + 1)
			}
			off += int(li)
		}
	}
}

// set writes id ("" for a hole) in slot local, growing the table with holes
// as needed, under generation gen (Index.shared): blocks of another
// generation are copied, not written. The caller has copied the blocks
// slice when an audience may share it. It panics on an ID longer than
// maxIDLen (every ID the index keeps is a valid one, consent.ValidUserID).
func (t *idTable) set(local int, id string, gen uint64) {
	if len(id) > maxIDLen {
		panic(fmt.Sprintf("index: user ID of %d bytes", len(id)))
	}
	if local < 1 {
		return
	}
	k := local - 1
	b, i := k/idBlockSlots, k%idBlockSlots
	appending := local > t.n // the slots from local on are holes
	for len(t.blocks) <= b {
		t.blocks = append(t.blocks, idBlock{data: make([]byte, idBlockSlots, idBlockSlots+idBlockSlots*(len(id)+1)), gen: gen})
	}
	t.n = max(t.n, local)
	blk := &t.blocks[b]
	d := blk.data
	old := int(d[i])
	var start int
	if appending && old == 0 {
		start = len(d)
	} else {
		start = idBlockSlots + sumLens(d[:i])
	}
	if old == len(id) && string(d[start:start+old]) == id {
		return
	}
	size := len(d) - old + len(id)
	if blk.gen == gen && size <= cap(d) {
		// In place: the IDs after the slot move, and bytes no longer used
		// are zeroed.
		if size > len(d) {
			d = d[:size]
		}
		copy(d[start+len(id):], d[start+old:len(blk.data)])
		copy(d[start:], id)
		if size < len(d) {
			clear(d[size:])
			d = d[:size]
		}
		d[i] = byte(len(id))
		blk.data = d
		return
	}
	c := cap(d)
	if size > c {
		c = max(size, c+c/4)
	} else if blk.gen != gen {
		c = size // a copy for writing: no more room than it needs
	}
	nd := make([]byte, size, c)
	copy(nd, d[:start])
	copy(nd[start:], id)
	copy(nd[start+len(id):], d[start+old:])
	nd[i] = byte(len(id))
	if blk.gen == gen {
		clear(d[:cap(d)]) // no audience holds it: nothing of it is left readable
	}
	blk.data, blk.gen = nd, gen
}

// compact gives back the blocks' spare room, under generation gen: a block
// with room is copied to one without, and the old one is zeroed when no
// audience holds it. The caller has copied the blocks slice when an
// audience may share it.
func (t *idTable) compact(gen uint64) {
	for b := range t.blocks {
		blk := &t.blocks[b]
		if cap(blk.data) == len(blk.data) {
			continue
		}
		nd := make([]byte, len(blk.data)) // cap == len: compact again skips it
		copy(nd, blk.data)
		if blk.gen == gen {
			clear(blk.data[:cap(blk.data)])
		}
		blk.data, blk.gen = nd, gen
	}
	if cap(t.blocks) > len(t.blocks) {
		t.blocks = slices.Clone(t.blocks)
	}
}

// pushBlock appends a block holding ids ("" for a hole; at most
// idBlockSlots) to a table whose slots fill its blocks, under generation
// gen. The block takes exactly the room it needs.
func (t *idTable) pushBlock(ids []string, gen uint64) {
	if t.n%idBlockSlots != 0 || len(ids) > idBlockSlots {
		panic("index: pushBlock on a partial block")
	}
	size := idBlockSlots
	for _, id := range ids {
		if len(id) > maxIDLen {
			panic(fmt.Sprintf("index: user ID of %d bytes", len(id)))
		}
		size += len(id)
	}
	d := make([]byte, idBlockSlots, size)
	for i, id := range ids {
		d[i] = byte(len(id))
		d = append(d, id...)
	}
	t.blocks = append(t.blocks, idBlock{data: d, gen: gen})
	t.n += len(ids)
}

// encodedSize is the most bytes encode writes.
func (t *idTable) encodedSize() int {
	size := 0
	for _, blk := range t.blocks {
		size += len(blk.data) - idBlockSlots
	}
	return size + binary.MaxVarintLen16*t.n
}

// encode writes every slot of the table, in order, as a checkpoint holds
// it: the ID's length (a uvarint, 0 for a hole), then the ID.
func (t *idTable) encode(w *bytes.Buffer) {
	var lb [binary.MaxVarintLen16]byte
	for b, blk := range t.blocks {
		d := blk.data
		off := idBlockSlots
		for i := range min(idBlockSlots, t.n-b*idBlockSlots) {
			l := int(d[i])
			w.Write(lb[:binary.PutUvarint(lb[:], uint64(l))])
			w.Write(d[off : off+l])
			off += l
		}
	}
}

// equal reports whether two tables hold the same slots (the layout of a
// block is canonical: equal slots, equal bytes).
func (t *idTable) equal(o *idTable) bool {
	if t.n != o.n || len(t.blocks) != len(o.blocks) {
		return false
	}
	for b := range t.blocks {
		if string(t.blocks[b].data) != string(o.blocks[b].data) {
			return false
		}
	}
	return true
}

// idPage collects the IDs of an audience's page: their bytes in one
// buffer, made into strings with one allocation for them all.
type idPage struct {
	buf  []byte
	ends []int32
}

// newIDPage returns a page with room for n IDs.
func newIDPage(n int) idPage {
	return idPage{buf: make([]byte, 0, 16*n), ends: make([]int32, 0, n)}
}

// len returns the number of IDs collected.
func (p *idPage) len() int { return len(p.ends) }

// add collects the ID in slot local of t, if any.
func (p *idPage) add(t *idTable, local int) {
	if b := t.slot(local); b != nil {
		p.buf = append(p.buf, b...)
		p.ends = append(p.ends, int32(len(p.buf)))
	}
}

// strings returns the IDs collected, in order: substrings of one string.
func (p *idPage) strings() []string {
	all := string(p.buf)
	out := make([]string, len(p.ends))
	start := int32(0)
	for i, e := range p.ends {
		out[i] = all[start:e]
		start = e
	}
	return out
}

// setSlot writes id as the local-th user of shard ("" for a hole), growing
// the table with holes as needed. A block an audience may share is copied,
// not written (see Index.shared).
func (x *Index) setSlot(shard, local int, id string) {
	if shard >= len(x.ids) || local < 1 {
		return
	}
	t := &x.ids[shard]
	if t.holds(local, id) {
		return
	}
	gen := x.shared.Load()
	if x.owned[shard] != gen {
		// An audience may hold this blocks slice: write a copy. (Blocks
		// appended past its end are not its: appending alone would do,
		// but a write may also replace one of its blocks.)
		t.blocks = slices.Clone(t.blocks)
		x.owned[shard] = gen
	}
	t.set(local, id, gen)
}

// compactIDs gives back the spare room of every shard's table (see
// idTable.compact), on every core; blocks an audience holds are copied,
// not written.
func (x *Index) compactIDs() {
	gen := x.shared.Load()
	eachJob(len(x.ids), runtime.GOMAXPROCS(0), func(s int) {
		if x.owned[s] != gen {
			x.ids[s].blocks = slices.Clone(x.ids[s].blocks)
			x.owned[s] = gen
		}
		x.ids[s].compact(gen)
	})
}

// idsSnapshot returns a copy of the tables an audience keeps and reads
// without the lock; the caller then counts it in x.shared.
func (x *Index) idsSnapshot() []idTable {
	return slices.Clone(x.ids)
}
