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
	ids   [][]string // a snapshot of the index's number -> ID table
	n     int        // shards
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
	ids = make([]string, 0, min(limit, int(a.count)))
	var last uint32
	for it.HasNext() && len(ids) < limit {
		last = it.Next()
		if last == 0 {
			continue
		}
		shard, local := numberShard(last, a.n)
		if t := a.ids[shard]; local <= len(t) && t[local-1] != "" {
			ids = append(ids, t[local-1])
		}
	}
	if it.HasNext() {
		next = last
	}
	return ids, next
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
	if x.staleSettings {
		return nil, fmt.Errorf("%w: a settings changelog entry could not be read; the index needs a rebuild", ErrUnverified)
	}
	set := &x.settings
	if !set.HasChannel(channel) {
		return nil, fmt.Errorf("%w: %q is not one of %v", ErrUnknownChannel, channel, set.Channels)
	}
	a := &Audience{n: x.shards, ids: make([][]string, len(x.ids))}
	copy(a.ids, x.ids)
	x.shared.Add(1) // the tables are shared from now on (see setSlot)
	if set.Suspended {
		a.bm = roaring.New()
		return a, nil
	}
	r := x.eval(seg, audiencePurpose)
	r.AndNot(x.unk)
	r.Remove(0)
	r.AndNot(x.get(factRefused(channel)))
	r.AndNot(x.get(factErased))
	r.AndNot(x.get(factRestricted))
	// Any tag atom makes seg personal, so minors without guardian consent
	// leave here, once, instead of at every tag atom.
	if targeted || seg.UsesPersonalData() {
		r.AndNot(x.get(factOff))
		r.AndNot(x.minorsWithoutGuardian())
	}
	a.bm = r
	a.count = r.GetCardinality()
	return a, nil
}

// Count is Audience(...).Count() without keeping the audience.
func (x *Index) Count(seg *tags.Segment, channel string, targeted bool) (uint64, error) {
	a, err := x.Audience(seg, channel, targeted)
	if err != nil {
		return 0, err
	}
	return a.count, nil
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
