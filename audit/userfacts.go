package audit

import (
	"context"
	"hash/maphash"
)

// fileFacts is a users file's facts, held without pointers but for the
// distinct facts themselves: the users' IDs back to back in one byte
// slice, each user's facts as numbers into dict back to back in another
// slice, and an open-addressing table (load at most 1/2) over the IDs'
// hashes. A map from ID to a slice of facts held two objects per user for
// the garbage collector to mark on every cycle of the audit that follows
// (the 500,000 users of the 10M-event benchmark: ~1.5 million objects);
// this holds none.
type fileFacts struct {
	seed  maphash.Seed
	ids   []byte
	facts []uint32
	dict  []string          // distinct canonical facts
	dictN map[string]uint32 // dict's numbers (while reading the file)
	slots []factSlot
	n     int
}

// factSlot is one user of fileFacts: the hash of their ID (0: an empty
// slot), where the ID is in ids and their facts in facts.
type factSlot struct {
	h     uint64
	idOff uint64
	fOff  uint64
	idLen uint32
	fN    uint32
}

func newFileFacts() *fileFacts {
	return &fileFacts{seed: maphash.MakeSeed(), dictN: map[string]uint32{}, slots: make([]factSlot, 1024)}
}

func (f *fileFacts) hash(id string) uint64 {
	return maphash.String(f.seed, id) | 1 // never 0, the empty slot
}

// find returns the slot of id, or of the empty slot where it would go.
func (f *fileFacts) find(id string, h uint64) *factSlot {
	mask := uint64(len(f.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &f.slots[i]
		if s.h == 0 || s.h == h && string(f.ids[s.idOff:s.idOff+uint64(s.idLen)]) == id {
			return s
		}
	}
}

// has reports whether the file lists id.
func (f *fileFacts) has(id string) bool {
	return f.find(id, f.hash(id)).h != 0
}

// add records id (not listed yet) with facts (canonical).
func (f *fileFacts) add(id string, facts []string) {
	if 2*(f.n+1) > len(f.slots) {
		f.grow()
	}
	h := f.hash(id)
	s := f.find(id, h)
	*s = factSlot{h: h, idOff: uint64(len(f.ids)), fOff: uint64(len(f.facts)), idLen: uint32(len(id)), fN: uint32(len(facts))}
	f.ids = append(f.ids, id...)
	for _, x := range facts {
		k, ok := f.dictN[x]
		if !ok {
			k = uint32(len(f.dict))
			f.dict = append(f.dict, x)
			f.dictN[x] = k
		}
		f.facts = append(f.facts, k)
	}
	f.n++
}

func (f *fileFacts) grow() {
	old := f.slots
	f.slots = make([]factSlot, 2*len(old))
	mask := uint64(len(f.slots) - 1)
	for _, s := range old {
		if s.h == 0 {
			continue
		}
		i := s.h & mask
		for f.slots[i].h != 0 {
			i = (i + 1) & mask
		}
		f.slots[i] = s
	}
}

// done ends the reading: the spare room goes, and the facts' numbers.
func (f *fileFacts) done() {
	f.ids = append([]byte(nil), f.ids...)
	f.facts = append([]uint32(nil), f.facts...)
	f.dictN = nil
}

func (f *fileFacts) Facts(ctx context.Context, ids []string) (map[string][]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(ids))
	for _, id := range ids {
		s := f.find(id, f.hash(id))
		if s.h == 0 {
			continue
		}
		fs := make([]string, s.fN)
		for i, k := range f.facts[s.fOff : s.fOff+uint64(s.fN)] {
			fs[i] = f.dict[k]
		}
		out[id] = fs
	}
	return out, nil
}
