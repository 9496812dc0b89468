package audit

import (
	"context"
	"hash/maphash"
)

// fileFacts is a users file's facts, held without pointers but for the
// distinct facts themselves: the users numbered in file order by their
// ID's two hashes (a userTable, as Run numbers the users of events: two
// IDs equal on both hashes, a chance near 2^-96 per pair, would be one
// user), each user's facts as numbers into dict back to back. A map from
// ID to a slice of facts held two objects per user for the garbage
// collector to mark on every cycle of the audit that follows (the 500,000
// users of the 10M-event benchmark: ~1.5 million objects); this holds
// none.
type fileFacts struct {
	seed1, seed2 maphash.Seed
	users        userTable
	ends         []uint32          // by user number: the end of their facts in facts
	facts        []uint32          // numbers into dict
	dict         []string          // distinct canonical facts
	dictN        map[string]uint32 // dict's numbers (while reading the file)
}

func newFileFacts() *fileFacts {
	return &fileFacts{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), dictN: map[string]uint32{}}
}

func (f *fileFacts) hashes(id string) (uint64, uint32) {
	return maphash.String(f.seed1, id), uint32(maphash.String(f.seed2, id))
}

// has reports whether the file lists id.
func (f *fileFacts) has(id string) bool {
	_, ok := f.users.lookup(f.hashes(id))
	return ok
}

// add records id (not listed yet) with facts (canonical).
func (f *fileFacts) add(id string, facts []string) {
	f.users.number(f.hashes(id))
	for _, x := range facts {
		k, ok := f.dictN[x]
		if !ok {
			k = uint32(len(f.dict))
			f.dict = append(f.dict, x)
			f.dictN[x] = k
		}
		f.facts = append(f.facts, k)
	}
	f.ends = append(f.ends, uint32(len(f.facts)))
}

// done ends the reading: the spare room goes, and the facts' numbers.
func (f *fileFacts) done() {
	f.ends = append([]uint32(nil), f.ends...)
	f.facts = append([]uint32(nil), f.facts...)
	f.dictN = nil
}

func (f *fileFacts) Facts(ctx context.Context, ids []string) (map[string][]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(ids))
	for _, id := range ids {
		num, ok := f.users.lookup(f.hashes(id))
		if !ok {
			continue
		}
		start := uint32(0)
		if num > 0 {
			start = f.ends[num-1]
		}
		fs := make([]string, f.ends[num]-start)
		for i, k := range f.facts[start:f.ends[num]] {
			fs[i] = f.dict[k]
		}
		out[id] = fs
	}
	return out, nil
}
