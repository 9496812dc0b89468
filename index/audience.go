package index

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// Audience is a frozen set of users: counting and paging it are stable
// while the index changes underneath.
type Audience struct {
	bm    *roaring.Bitmap
	count uint64
	ids   []idTable // a snapshot of the index's number -> ID tables (ids.go)
	n     int       // shards
}

// Count returns the number of users in the audience.
func (a *Audience) Count() uint64 { return a.count }

// Page returns up to limit user IDs with numbers after cursor (0 starts at
// the beginning), in number order, and the cursor of the next page (0 when
// there is none).
func (a *Audience) Page(cursor uint32, limit int) (ids []string, next uint32) {
	if limit <= 0 {
		return nil, 0
	}
	it := a.bm.Iterator()
	if cursor > 0 {
		if cursor == ^uint32(0) {
			return nil, 0
		}
		it.AdvanceIfNeeded(cursor + 1)
	}
	pg := newIDPage(min(limit, int(a.count))) // the IDs' bytes, made strings at once (ids.go)
	var last uint32
	for it.HasNext() && pg.len() < limit {
		last = it.Next()
		if last == 0 {
			continue
		}
		shard, local := numberShard(last, a.n)
		pg.add(&a.ids[shard], local)
	}
	if it.HasNext() {
		next = last
	}
	return pg.strings(), next
}

// Numbers returns the audience's user numbers as a bitmap the caller owns.
func (a *Audience) Numbers() *roaring.Bitmap { return a.bm.Clone() }

func numberShard(num uint32, n int) (int, int) {
	i := int(num) - 1
	return i % n, i/n + 1
}

// Audience evaluates seg for a push on channel: the users matching seg,
// minus those who refused the channel, minus erased users and users who
// restricted processing of their data (Art. 23; whatever the settings and
// the segment), and, when the
// push is targeted (targeted is true, or seg uses tags or sensitive
// consents), minus those who may not be personalized (personalization off,
// a minor without current guardian consent). A push audience is for the
// push purpose (consent.PurposePush): a sensitive:<category> atom, and a tag
// of a sensitive namespace, match only users whose separate consent for the
// category was given for push, under the push policy's current version (or
// an earlier one when Settings.KeepOnBump lists push); a consent given for
// personalization or ads never makes a user targetable (Art. 22(4)). Tags
// in a prohibited namespace match no one. The result is, user by user,
// consent.InPushAudience over the users the index knows, less restricted
// users. With the kill
// switch on (Settings.Suspended) the audience is empty. Unknown users (see
// Unknown) are never in an audience. After a settings entry it could not
// read, the index refuses audiences (ErrUnverified) until it is rebuilt.
func (x *Index) Audience(seg *tags.Segment, channel string, targeted bool) (*Audience, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if err := x.audienceOK(channel); err != nil {
		return nil, err
	}
	a := &Audience{n: x.shards, ids: x.idsSnapshot()}
	x.shared.Add(1) // the tables are shared from now on (see setSlot)
	if x.settings.Suspended {
		a.bm = roaring.New()
		return a, nil
	}
	v := variant{channel, targeted || seg.UsesPersonalData()}
	var p plan
	if x.planConj(seg, v, &p) {
		a.bm = x.materialize(&p, v)
	} else {
		r := x.eval(seg, audiencePurpose)
		r.AndNot(x.excludedFor(v))
		a.bm = r
	}
	a.count = a.bm.GetCardinality()
	return a, nil
}

// audienceOK returns why no audience may be taken on channel now, or nil.
func (x *Index) audienceOK(channel string) error {
	if x.staleSettings {
		return fmt.Errorf("%w: a settings changelog entry could not be read; the index needs a rebuild", ErrUnverified)
	}
	if set := &x.settings; !set.HasChannel(channel) {
		return fmt.Errorf("%w: %q is not one of %v", ErrUnknownChannel, channel, set.Channels)
	}
	return nil
}

// Count is Audience(...).Count() without building the audience: a
// conjunction of plain facts with one or two positive facts and no
// negation but those every audience of the channel leaves out anyway (say
// t1 & t2 & !consent:personalization_off, targeted) is counted from the
// positive facts' eligible bitmaps (derived.go) and their dense forms
// (dense.go), building no bitmap (countPair); any other segment is
// evaluated as Audience does.
func (x *Index) Count(seg *tags.Segment, channel string, targeted bool) (uint64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if err := x.audienceOK(channel); err != nil {
		return 0, err
	}
	if x.settings.Suspended {
		return 0, nil
	}
	v := variant{channel, targeted || seg.UsesPersonalData()}
	var p plan
	if !x.planConj(seg, v, &p) {
		r := x.eval(seg, audiencePurpose)
		return r.GetCardinality() - r.AndCardinality(x.excludedFor(v)), nil
	}
	if p.empty {
		return 0, nil
	}
	if len(p.neg) == 0 && len(p.pos) <= 2 {
		if len(p.pos) == 1 {
			return x.eligibleFor(p.pos[0], v).GetCardinality(), nil
		}
		return x.countPair(p.pos[0], p.pos[1], v), nil
	}
	return x.materialize(&p, v).GetCardinality(), nil
}

// Relative costs of counting two eligible bitmaps, per unit, measured on
// 10M users (bench.BenchmarkAudiencePeers10M): a word of a word-by-word
// count of two dense forms (0.8 ns); a value of an array container tested
// against a bitmap container by roaring (0.75 ns); a value tested against
// a dense form (1.7 ns, roaring's iterator included); a value of two array
// containers merged by roaring (2 ns).
const (
	costWord       = 8
	costArrayProbe = 8
	costDenseProbe = 17
	costMerge      = 20
)

// How countPair counts two eligible bitmaps.
const (
	pairRoaring = iota // roaring's AndCardinality
	pairWords          // both dense forms, word by word
	pairProbe          // the smaller's values against the larger's dense form
)

// countPair returns the number of users of facts a and b less the
// exclusion of v: |eligible(a) ∩ eligible(b)|, both eligible bitmaps
// having v's exclusion taken out. Roaring counts two bitmaps of bitmap
// containers word by word (with vector instructions), an array container
// against a bitmap container value by value, and two array containers by
// merging them; when the bitmaps are dense enough to keep dense forms
// (dense.go), a word-by-word count of those or testing the smaller's
// values against the larger's dense form is used instead where it costs
// less (costWord etc.).
func (x *Index) countPair(a, b string, v variant) uint64 {
	d := &x.dv
	d.mu.Lock()
	ea, eb := x.eligibleLocked(a, v), x.eligibleLocked(b, v)
	ca, cb := ea.bm.GetCardinality(), eb.bm.GetCardinality()
	if cb < ca {
		ea, eb, ca, cb = eb, ea, cb, ca
	}
	// ea is the smaller. Readers never modify the bitmaps (writers hold
	// the write lock), so they are read outside d.mu; the entries' dense
	// fields are not (another reader may drop or build one).
	ba, bb := ea.bm, eb.bm
	how := pairRoaring
	if ca > 0 && !bitmapContainers(ba, ca) {
		words := uint64(bb.Maximum())/64 + 1
		best := (ca + cb) * costMerge
		if bitmapContainers(bb, cb) {
			best = ca * costArrayProbe
		}
		if wantDense(ba) && words*costWord < best {
			how, best = pairWords, words*costWord
		}
		if wantDense(bb) && ca*costDenseProbe < best {
			how = pairProbe
		}
	}
	var da, db []uint64
	switch how {
	case pairWords:
		da, db = x.denseLocked(ea), x.denseLocked(eb)
		if da == nil || db == nil {
			how = pairRoaring
		}
	case pairProbe:
		if db = x.denseLocked(eb); db == nil {
			how = pairRoaring
		}
	}
	x.dcount.pairs[how]++
	d.mu.Unlock()
	switch how {
	case pairWords:
		return andCountFast(da, db)
	case pairProbe:
		return probeCount(db, ba)
	}
	return ba.AndCardinality(bb)
}

// bitmapContainers reports whether roaring holds b (of card users) mostly
// as bitmap containers: more than 4,096 users per 65,536 numbers between
// its smallest and largest.
func bitmapContainers(b *roaring.Bitmap, card uint64) bool {
	chunks := uint64(b.Maximum()>>16) - uint64(b.Minimum()>>16) + 1
	return card > 4096*chunks
}

// plan is a segment that is a conjunction of plain facts: the users of
// every fact of pos (ordered by cardinality, smallest first) and of none of
// neg. empty says the conjunction holds no one.
type plan struct {
	pos, neg []string
	cards    []uint64
	empty    bool
	buf      [4]string
	nbuf     [4]string
	cbuf     [4]uint64
}

// planConj reports whether seg is a conjunction of plain facts (tags of an
// ordinary namespace, personalization off, a refused channel, minor,
// erased, everyone, and their negations) and fills p with it for the
// exclusion of v: a negated fact every audience of v leaves out anyway
// (erased, the channel's refusals, personalization off when personal) is
// dropped, and the positive facts are ordered by cardinality.
func (x *Index) planConj(seg *tags.Segment, v variant, p *plan) bool {
	p.pos, p.neg = p.buf[:0], p.nbuf[:0]
	if !x.conj(seg, p) {
		return false
	}
	neg := p.neg[:0]
	for _, f := range p.neg {
		if f == factErased || f == factRefused(v.channel) || v.personal && f == factOff {
			continue
		}
		neg = append(neg, f)
	}
	p.neg = neg
	if len(p.pos) == 0 {
		p.pos = append(p.pos, factAll)
	}
	p.cards = p.cbuf[:0]
	for _, f := range p.pos {
		b := x.bm[f]
		if b == nil {
			p.empty = true
			return true
		}
		p.cards = append(p.cards, b.GetCardinality())
	}
	// Insertion sort: a handful of operands.
	for i := 1; i < len(p.pos); i++ {
		for j := i; j > 0 && p.cards[j] < p.cards[j-1]; j-- {
			p.cards[j], p.cards[j-1] = p.cards[j-1], p.cards[j]
			p.pos[j], p.pos[j-1] = p.pos[j-1], p.pos[j]
		}
	}
	return true
}

// conj adds seg's facts to p, reporting whether seg is a conjunction of
// plain facts.
func (x *Index) conj(seg *tags.Segment, p *plan) bool {
	switch seg.Op {
	case tags.OpAll:
		return true
	case tags.OpAnd:
		return x.conj(seg.X, p) && x.conj(seg.Y, p)
	case tags.OpAtom:
		f, ok := x.plainFact(seg.Atom)
		if ok {
			p.pos = append(p.pos, f)
		}
		return ok
	case tags.OpNot:
		if seg.X.Op != tags.OpAtom {
			return false
		}
		f, ok := x.plainFact(seg.X.Atom)
		if ok {
			p.neg = append(p.neg, f)
		}
		return ok
	}
	return false
}

// plainFact returns the fact whose bitmap is exactly the users atom a
// matches (before the exclusion of an audience), if there is one.
func (x *Index) plainFact(a tags.Atom) (string, bool) {
	switch a.Kind {
	case tags.AtomPersonalizationOff:
		return factOff, true
	case tags.AtomRefused:
		return factRefused(a.Channel), true
	case tags.AtomMinor:
		return factMinor, true
	case tags.AtomErased:
		return factErased, true
	case tags.AtomTag:
		if ns := x.settings.Taxonomy.Lookup(a.Tag); !ns.Prohibited && ns.Sensitive == "" {
			return factTag(a.Tag), true
		}
	}
	return "", false
}

// materialize returns a new bitmap of p's users less the exclusion of v.
func (x *Index) materialize(p *plan, v variant) *roaring.Bitmap {
	if p.empty {
		return roaring.New()
	}
	e := x.eligibleFor(p.pos[0], v)
	var r *roaring.Bitmap
	if len(p.pos) == 1 {
		r = e.Clone()
	} else {
		r = roaring.And(e, x.get(p.pos[1]))
		for _, f := range p.pos[2:] {
			r.And(x.get(f))
		}
	}
	for _, f := range p.neg {
		r.AndNot(x.get(f))
	}
	return r
}

// audiencePurpose is the purpose whose consents count in an audience: an
// audience is for a push.
const audiencePurpose = consent.PurposePush

var empty = roaring.New()

// get returns the bitmap of a fact, or an empty one (never modify it).
func (x *Index) get(fact string) *roaring.Bitmap {
	if b := x.bm[fact]; b != nil {
		return b
	}
	return empty
}

// eval returns a new bitmap of the users matching seg, its sensitive atoms
// and tags counting consents for purpose.
//
// An atom's bitmap is the users for whom consent.AtomHolds holds, except
// that a tag's includes minors without guardian consent (Audience removes
// them from every audience whose segment names a tag), and that a user who
// restricted processing holds no atom but "all" (Audience removes them from
// every audience): the audience is the same.
func (x *Index) eval(seg *tags.Segment, purpose string) *roaring.Bitmap {
	switch seg.Op {
	case tags.OpAll:
		return x.get(factAll).Clone()
	case tags.OpAtom:
		return x.atom(seg.Atom, purpose)
	case tags.OpNot:
		r := x.get(factAll).Clone()
		r.AndNot(x.evalShared(seg.X, purpose))
		return r
	case tags.OpAnd:
		// X & !Y is X minus Y: no complement is ever built.
		a, b := seg.X, seg.Y
		if a.Op == tags.OpNot && b.Op != tags.OpNot {
			a, b = b, a
		}
		// The two-operand forms build the result from shared operands: no
		// clone of the left operand, and no in-place bitmap&array AND
		// (roaring converts the array container to a bitmap for it).
		if b.Op == tags.OpNot {
			return roaring.AndNot(x.evalShared(a, purpose), x.evalShared(b.X, purpose))
		}
		return roaring.And(x.evalShared(a, purpose), x.evalShared(b, purpose))
	case tags.OpOr:
		l := x.eval(seg.X, purpose)
		l.Or(x.evalShared(seg.Y, purpose))
		return l
	}
	return roaring.New()
}

// evalShared is eval for an operand only read: a plain fact's bitmap is
// used as is instead of copied.
func (x *Index) evalShared(seg *tags.Segment, purpose string) *roaring.Bitmap {
	if seg.Op == tags.OpAtom {
		switch seg.Atom.Kind {
		case tags.AtomPersonalizationOff:
			return x.get(factOff)
		case tags.AtomRefused:
			return x.get(factRefused(seg.Atom.Channel))
		case tags.AtomMinor:
			return x.get(factMinor)
		case tags.AtomErased:
			return x.get(factErased)
		case tags.AtomTag:
			ns := x.settings.Taxonomy.Lookup(seg.Atom.Tag)
			if !ns.Prohibited && ns.Sensitive == "" {
				return x.get(factTag(seg.Atom.Tag))
			}
		}
	}
	if seg.Op == tags.OpAll {
		return x.get(factAll)
	}
	return x.eval(seg, purpose)
}

// atom returns a new bitmap of the users an atom matches now, for purpose.
func (x *Index) atom(a tags.Atom, purpose string) *roaring.Bitmap {
	switch a.Kind {
	case tags.AtomTag:
		ns := x.settings.Taxonomy.Lookup(a.Tag)
		if ns.Prohibited {
			return roaring.New()
		}
		r := x.get(factTag(a.Tag)).Clone()
		if ns.Sensitive != "" {
			r.And(x.sensitiveOK(ns.Sensitive, purpose))
		}
		// Minors without guardian consent are removed by Audience (a
		// segment with a tag is always personal).
		return r
	case tags.AtomPersonalizationOff:
		return x.get(factOff).Clone()
	case tags.AtomGuardian:
		r := x.guardianGranted()
		r.And(x.get(factMinor))
		return r
	case tags.AtomRefused:
		return x.get(factRefused(a.Channel)).Clone()
	case tags.AtomSensitive:
		return x.sensitiveOK(a.Category, purpose)
	case tags.AtomMinor:
		return x.get(factMinor).Clone()
	case tags.AtomErased:
		return x.get(factErased).Clone()
	}
	return roaring.New()
}

// guardianGranted returns the users with a guardian consent that counts
// under the guardian policy (consent.Settings.GrantCurrent: the current
// version, or an earlier one when the guardian purpose keeps consents on
// bumps).
func (x *Index) guardianGranted() *roaring.Bitmap {
	r := roaring.New()
	for k, b := range x.grants {
		if k[0] != 'g' {
			continue
		}
		if v, err := strconv.Atoi(k[2:]); err == nil && x.settings.GrantCurrent(consent.PurposeGuardian, v) {
			r.Or(b)
		}
	}
	return r
}

// minorsWithoutGuardian returns the minors whose guardian consent is not
// in force.
func (x *Index) minorsWithoutGuardian() *roaring.Bitmap {
	m := x.bm[factMinor]
	if m == nil || m.IsEmpty() {
		return empty
	}
	r := m.Clone()
	r.AndNot(x.guardianGranted())
	return r
}

// sensitiveOK returns the users whose separate consent for category c
// counts for purpose (consent.State.SensitiveOKFor): given for purpose,
// under a policy version that still counts for it
// (consent.Settings.GrantCurrent), and for a minor given by the guardian.
// Grants for other purposes are never read.
func (x *Index) sensitiveOK(c tags.Category, purpose string) *roaring.Bitmap {
	byUser, byGuardian := roaring.New(), roaring.New()
	prefix := "s:" + string(c) + ":" + purpose + ":"
	for k, b := range x.grants {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		// k = s:<category>:<purpose>:<version>:<u|g>; purposes hold no ':'
		// (consent.Settings.Validate), so the prefix names exactly one.
		rest := k[len(prefix):]
		n := len(rest)
		if n < 3 || rest[n-2] != ':' {
			continue
		}
		v, err := strconv.Atoi(rest[:n-2])
		if err != nil || !x.settings.GrantCurrent(purpose, v) {
			continue
		}
		switch rest[n-1] {
		case 'g':
			byGuardian.Or(b)
		case 'u':
			byUser.Or(b)
		}
	}
	byUser.AndNot(x.get(factMinor))
	byUser.Or(byGuardian)
	return byUser
}
