package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// checkTable compares t with want (slot local at want[local-1], "" a hole)
// by every read path of the table.
func checkTable(tb testing.TB, t *idTable, want []string) {
	tb.Helper()
	if t.n != len(want) {
		tb.Fatalf("%d slots, want %d", t.n, len(want))
	}
	for i, w := range want {
		if got := t.id(i + 1); got != w {
			tb.Fatalf("slot %d holds %q, want %q", i+1, got, w)
		}
		if !t.holds(i+1, w) || (w != "" && t.holds(i+1, "")) {
			tb.Fatalf("slot %d: holds(%q) wrong", i+1, w)
		}
	}
	if t.slot(0) != nil || t.slot(len(want)+1) != nil || t.holds(len(want)+1, "") {
		tb.Fatal("a slot beyond the table holds something")
	}
	var seen []string
	t.each(func(local int, id []byte) bool {
		if want[local-1] != string(id) || len(id) == 0 {
			tb.Fatalf("each: slot %d %q, want %q", local, id, want[local-1])
		}
		seen = append(seen, string(id))
		return true
	})
	n := 0
	for _, w := range want {
		if w != "" {
			n++
		}
	}
	if len(seen) != n {
		tb.Fatalf("each saw %d IDs, want %d", len(seen), n)
	}
	for i, w := range want {
		if w == "" {
			continue
		}
		found := false
		t.find(w, func(local int) {
			if want[local-1] != w {
				tb.Fatalf("find(%q) gave slot %d holding %q", w, local, want[local-1])
			}
			found = found || local == i+1
		})
		if !found {
			tb.Fatalf("find(%q) missed slot %d", w, i+1)
		}
	}
	// The layout is canonical: each block is its lengths then its IDs,
	// with nothing else (so Equal can compare bytes).
	for b, blk := range t.blocks {
		size := idBlockSlots
		for i := range idBlockSlots {
			k := b*idBlockSlots + i
			l := 0
			if k < len(want) {
				l = len(want[k])
			}
			if int(blk.data[i]) != l {
				tb.Fatalf("block %d: length byte %d is %d, want %d", b, i, blk.data[i], l)
			}
			size += l
		}
		if len(blk.data) != size {
			tb.Fatalf("block %d: %d bytes, want %d", b, len(blk.data), size)
		}
		// Its spare room is zeros: no byte of an ID taken out (or moved
		// up) is left there.
		if spare := blk.data[len(blk.data):cap(blk.data)]; bytes.Count(spare, []byte{0}) != len(spare) {
			tb.Fatalf("block %d: spare room not zeroed", b)
		}
	}
	var enc bytes.Buffer
	t.encode(&enc)
	var wantEnc []byte
	for _, w := range want {
		wantEnc = append(wantEnc, encUvarint(len(w))...)
		wantEnc = append(wantEnc, w...)
	}
	if !bytes.Equal(enc.Bytes(), wantEnc) || enc.Len() > t.encodedSize() {
		tb.Fatalf("encoded %d bytes (size bound %d), want %d bytes as a checkpoint lays them", enc.Len(), t.encodedSize(), len(wantEnc))
	}
}

func encUvarint(v int) []byte {
	var b bytes.Buffer
	writeUvarint(&b, uint64(v))
	return b.Bytes()
}

// Random writes (new slots past the end with holes between, IDs replaced
// by longer, shorter and equal ones, slots cleared), with and without a
// compact between: the table reads as a plain []string model does.
func TestIDTableSetClear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tab idTable
	var want []string
	randID := func() string {
		switch r.IntN(4) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("x", consent.MaxUserIDLen) // 2-byte uvarint in a checkpoint
		}
		return "u" + strconv.Itoa(r.IntN(1<<r.IntN(30)))
	}
	for step := range 4000 {
		local := 1 + r.IntN(len(want)+3*idBlockSlots/2)
		if r.IntN(3) == 0 && len(want) > 0 {
			local = 1 + r.IntN(len(want))
		}
		id := randID()
		tab.set(local, id, 0)
		for len(want) < local {
			want = append(want, "")
		}
		want[local-1] = id
		if step%500 == 499 {
			tab.compact(0)
			for _, blk := range tab.blocks {
				if cap(blk.data) != len(blk.data) {
					t.Fatal("compact left spare room in a block")
				}
			}
		}
		if step%97 == 0 {
			checkTable(t, &tab, want)
		}
	}
	checkTable(t, &tab, want)
	// A table built a block at a time (as a checkpoint's) reads the same.
	var built idTable
	for i := 0; i < len(want); i += idBlockSlots {
		built.pushBlock(want[i:min(i+idBlockSlots, len(want))], 0)
	}
	checkTable(t, &built, want)
	if !built.equal(&tab) {
		t.Fatal("a table built by blocks is not equal to the same slots set one by one")
	}
	built.set(1, want[0]+"z", 0)
	if built.equal(&tab) {
		t.Fatal("tables with different slots are equal")
	}
}

// sumLens sums 8 bytes at a time without carrying between lanes.
func TestSumLens(t *testing.T) {
	b := bytes.Repeat([]byte{255}, idBlockSlots)
	for i := range len(b) + 1 {
		if got := sumLens(b[:i]); got != 255*i {
			t.Fatalf("sum of %d bytes of 255: %d", i, got)
		}
	}
}

// Erase means gone: once a slot is cleared (or given another ID), its
// old ID's bytes are nowhere in the block's memory, whether the block is
// written in place (the IDs after it move up, the freed end is zeroed) or
// copied to a larger one (the old memory is zeroed).
func TestIDTableErasedBytesGone(t *testing.T) {
	secret := "SECRET-user-42"
	var tab idTable
	for i := range 3 * idBlockSlots {
		tab.set(i+1, "u"+strconv.Itoa(i), 0)
	}
	tab.compact(0)
	// In place: clear the secret's slot after putting it in the middle.
	tab.set(70, secret, 0) // longer: the block is copied, room exact
	tab.compact(0)
	old := tab.blocks[1].data[:cap(tab.blocks[1].data)]
	tab.set(70, "", 0) // shorter: in place
	if d := tab.blocks[1].data; bytes.Contains(d[:cap(d)], []byte("SECRET")) {
		t.Fatal("the cleared ID's bytes are still in the block")
	}
	if &old[0] != &tab.blocks[1].data[0] {
		t.Fatal("clearing a slot did not write the block in place")
	}
	// Copied: a longer ID where there is no room leaves the old memory
	// zeroed.
	tab.set(71, secret, 0)
	tab.compact(0)
	old = tab.blocks[1].data[:cap(tab.blocks[1].data)]
	tab.set(72, strings.Repeat("y", 100), 0) // no room: a new block
	if &old[0] == &tab.blocks[1].data[0] {
		t.Fatal("the block was not copied")
	}
	if bytes.Contains(old, []byte("SECRET")) {
		t.Fatal("the old block memory still holds an ID")
	}
	tab.set(71, "u70", 0)
	if d := tab.blocks[1].data; bytes.Contains(d[:cap(d)], []byte("SECRET")) {
		t.Fatal("a replaced ID's bytes are still in the block")
	}
	// The last ID of a block cleared in place: nothing moves over it, so
	// its bytes are zeroed.
	tab.set(2*idBlockSlots, secret, 0)
	tab.set(2*idBlockSlots, "", 0)
	if d := tab.blocks[1].data; bytes.Contains(d[:cap(d)], []byte("SECRET")) {
		t.Fatal("the block's last ID, cleared, is still in its memory")
	}
}

// Through the index: an erase takes the ID out of the table's memory, and
// so does a checkpoint load that drops an erased user's ID (version 2).
func TestErasedIDNotInArena(t *testing.T) {
	x := healthy(t)
	v := user(2, 2, 1, false)
	if !bytes.Contains(tableMemory(x, 2), []byte(v.UserID)) {
		t.Fatal("the ID is not in the table to begin with")
	}
	x.Apply(store.Event{Log: 2, Pos: "5-1", Record: tombstone(v, 2)})
	if bytes.Contains(tableMemory(x, 2), []byte(v.UserID)) || x.UserID(v.Number) != "" {
		t.Fatal("an erased user's ID is still in the table's memory")
	}
	// A version 2 checkpoint holding the erased ID: dropped on load.
	x.mu.Lock()
	x.setSlot(2, 2, v.UserID)
	x.mu.Unlock()
	data, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := Unmarshal(withMagic(data, checkpointMagicV2))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(tableMemory(y, 2), []byte(v.UserID)) {
		t.Fatal("an erased user's ID from an old checkpoint is still in the table's memory")
	}
}

// tableMemory returns every byte of shard s's blocks, spare room included.
func tableMemory(x *Index, s int) []byte {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []byte
	for _, blk := range x.ids[s].blocks {
		out = append(out, blk.data[:cap(blk.data)]...)
	}
	return out
}

// Frozen audiences share the blocks without the lock: no write after an
// audience changes a byte it can read (its blocks and its blocks slice),
// while the index sees its writes, and the erased ID is gone from the
// index's own table (only the audience taken before the erasure holds it).
func TestIDTableCopyOnWrite(t *testing.T) {
	x := New(1, consent.DefaultSettings())
	rec := func(i int, v uint64) *consent.Record {
		return &consent.Record{UserID: "user-" + strconv.Itoa(i), Number: uint32(i), Version: v,
			Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:a"}}}}
	}
	const n = 3*idBlockSlots + 5
	for i := 1; i <= n; i++ {
		x.Load(rec(i, 1))
	}
	seg := tags.MustParseSegment("interest:a")
	a, err := x.Audience(seg, "sms", true)
	if err != nil {
		t.Fatal(err)
	}
	frozen := func(a *Audience) [][]byte {
		var out [][]byte
		for _, blk := range a.ids[0].blocks {
			out = append(out, bytes.Clone(blk.data[:cap(blk.data)]))
		}
		return out
	}
	before, pageBefore := frozen(a), pageAll(t, a)
	if len(pageBefore) != n {
		t.Fatalf("audience pages %d users, want %d", len(pageBefore), n)
	}
	// Erase users in every block, then bring one back, append users, and
	// take a second audience between the writes.
	pos := 0
	apply := func(r, prev *consent.Record) {
		pos++
		x.Apply(store.Event{Log: 0, Pos: store.Position("1-" + strconv.Itoa(pos)), Record: r, Prev: prev})
	}
	for _, i := range []int{3, 70, 130, n} {
		apply(tombstone(rec(i, 1), 2), nil)
	}
	b, _ := x.Audience(seg, "sms", true)
	mid := frozen(b)
	apply(rec(70, 3), tombstone(rec(70, 1), 2))
	apply(tombstone(rec(5, 1), 2), nil)
	for i := n + 1; i <= n+idBlockSlots; i++ {
		apply(rec(i, 1), &consent.Record{UserID: rec(i, 1).UserID})
	}
	for i, blk := range frozen(a) {
		if !bytes.Equal(blk, before[i]) {
			t.Fatalf("block %d of the first audience changed under it", i)
		}
	}
	for i, blk := range frozen(b) {
		if !bytes.Equal(blk, mid[i]) {
			t.Fatalf("block %d of the second audience changed under it", i)
		}
	}
	// Compact copies the blocks with room to spare, leaving the audiences'
	// (one taken just before: Compact is the first write since).
	c, _ := x.Audience(seg, "sms", true)
	justBefore := frozen(c)
	x.Compact()
	for i, blk := range frozen(c) {
		if !bytes.Equal(blk, justBefore[i]) {
			t.Fatalf("block %d of the audience taken before Compact changed under it", i)
		}
	}
	for _, blk := range x.ids[0].blocks {
		if cap(blk.data) != len(blk.data) {
			t.Fatal("Compact left spare room in a block of IDs")
		}
	}
	for i, blk := range frozen(a) {
		if !bytes.Equal(blk, before[i]) {
			t.Fatalf("block %d of the first audience changed under it (Compact)", i)
		}
	}
	if got := pageAll(t, a); strings.Join(got, ",") != strings.Join(pageBefore, ",") {
		t.Fatal("the first audience pages other users than when it was taken")
	}
	for _, i := range []int{3, 5, 130, n} {
		if x.UserID(uint32(i)) != "" {
			t.Fatalf("erased user %d still has an ID", i)
		}
		if bytes.Contains(tableMemory(x, 0), []byte("user-"+strconv.Itoa(i)+"\x00")) {
			t.Fatalf("erased user %d's ID is in the index's table memory", i)
		}
	}
	if x.UserID(70) != "user-70" || x.UserID(n+idBlockSlots) != "user-"+strconv.Itoa(n+idBlockSlots) {
		t.Fatal("the index does not see its own writes")
	}
}

func pageAll(t *testing.T, a *Audience) []string {
	t.Helper()
	ids, next := a.Page(0, 1<<20)
	if next != 0 {
		t.Fatal("more than one page")
	}
	return ids
}

// A checkpoint round trip keeps every slot (holes, the longest IDs, blocks
// cut anywhere), and the bytes saved again are the same; a damaged ID
// table is ErrCorruptCheckpoint.
func TestCheckpointIDTableRoundTrip(t *testing.T) {
	x := New(testShards, consent.DefaultSettings())
	long := func(s int) string {
		for i := 0; ; i++ {
			id := strings.Repeat("L", consent.MaxUserIDLen-4) + strconv.Itoa(1000+i)
			if store.ShardOf(id, testShards) == s {
				return id
			}
		}
	}
	for s := range testShards {
		for l := 1; l <= 2*idBlockSlots+s*7; l++ {
			r := user(s, l, 1, l%5 == 0)
			switch {
			case l == 22:
				r.UserID = long(s) // 128 bytes: a 2-byte length in the checkpoint
			case l%13 == 0:
				continue // a hole
			}
			x.Load(r)
		}
	}
	x.Apply(store.Event{Log: 1, Pos: "9-1", Record: tombstone(user(1, 4, 1, false), 2)})
	data, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if !y.Equal(x) || y.Unknown() != 0 {
		t.Fatalf("round trip: equal %v, %d unknown", y.Equal(x), y.Unknown())
	}
	for s := range testShards {
		for l := 1; l <= x.ids[s].n+1; l++ {
			num := store.UserNumber(s, l, testShards)
			if x.UserID(num) != y.UserID(num) {
				t.Fatalf("number %d: %q, after the round trip %q", num, x.UserID(num), y.UserID(num))
			}
		}
	}
	if y.UserID(store.UserNumber(0, 22, testShards)) != long(0) {
		t.Fatal("the longest ID did not survive")
	}
	again, err := y.MarshalBinary()
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("saved again: %v, same bytes %v", err, bytes.Equal(again, data))
	}
	// An ID longer than any valid one, or a table cut short: corrupt.
	i := bytes.LastIndex(data, []byte(long(0)))
	bad := bytes.Clone(data[:len(data)-4])
	bad[i-2], bad[i-1] = 0xff, 0x01 // uvarint 255
	for _, d := range [][]byte{fixCRC(bad), fixCRC(data[:i])} {
		if _, err := Unmarshal(d); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("damaged ID table: %v, want ErrCorruptCheckpoint", err)
		}
	}
}

// fixCRC appends a valid checksum to body (a checkpoint without its own).
func fixCRC(body []byte) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, crcTable))
}

// A page of IDs is a handful of allocations, not one per ID: the IDs are
// copied out of the blocks into one buffer made into one string.
func TestPageAllocations(t *testing.T) {
	x := New(2, consent.DefaultSettings())
	var count [2]int
	for i := range 5000 {
		id := "user-" + strconv.Itoa(i)
		s := store.ShardOf(id, 2)
		count[s]++
		x.Load(&consent.Record{UserID: id, Number: store.UserNumber(s, count[s], 2), Version: 1,
			Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:a"}}}})
	}
	a, err := x.Audience(tags.MustParseSegment("interest:a"), "sms", true)
	if err != nil {
		t.Fatal(err)
	}
	ids, next := a.Page(0, 3000)
	rest, end := a.Page(next, 3000)
	if len(ids) != 3000 || len(rest) != 2000 || end != 0 {
		t.Fatalf("pages of %d and %d IDs (next %d)", len(ids), len(rest), end)
	}
	seen := map[string]bool{}
	for _, id := range append(ids, rest...) {
		if seen[id] || !strings.HasPrefix(id, "user-") {
			t.Fatalf("ID %q twice or wrong", id)
		}
		seen[id] = true
	}
	if n := testing.AllocsPerRun(5, func() { a.Page(0, 3000) }); n > 20 {
		t.Fatalf("a page of 3000 IDs: %.0f allocations", n)
	}
}
