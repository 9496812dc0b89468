package sdk

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// view is the immutable cached answer for one user. A new view replaces the
// old one with an atomic pointer store; readers never see a view change.
//
// It is compact: a large app caches millions of users, so a view holds what
// the hot path reads (the record version, the decision's per-user tags and a
// pointer to the decision's parts many users share) and, in enc, the user
// ID, the changelog position and the whole record, encoded losslessly (see
// encoder.record). decision builds the decision by value without allocating;
// record decodes the record (off the hot path: a settings change, ShouldAsk,
// a history check).
type view struct {
	hash uint64
	// enc is uvarint(len(userID)) userID, pos, body: pos is the changelog
	// position the record was written at, when known (a changelog event,
	// this client's write; empty for a record read), as appendPos writes
	// it, and body the encoded record (empty for a placeholder).
	enc string
	// version is the record's Version.
	version uint64
	// dtags are the decision's Tags (shared among users who have the same).
	dtags []tags.Tag
	// dec is the rest of the decision, shared among users.
	dec *decShared
	// full is the record when it cannot be encoded (a time that is not UTC
	// or carries a monotonic reading, a year outside 1 to 9999): then the
	// body is empty.
	full *consent.Record
	// gen is the settings generation dec was computed under (the low 32
	// bits of settingsView.gen).
	gen uint32
	// loading marks a placeholder inserted when a miss starts loading, so
	// changelog events for the user that arrive during the load are kept.
	loading bool
	// erased is the record's State.Erased.
	erased bool
}

// decShared is the part of a decision that does not depend on the user's
// tags or record version; few distinct values exist, so views share them.
// Never modified once made.
type decShared struct {
	settingsVersion   uint64
	channels, refused []string
	personalized      bool
	reason, pushBlock consent.Reason
}

// placeholderDec is the decision part of placeholders (never answered).
var placeholderDec = &decShared{}

// newPlaceholder returns the placeholder view of a user being loaded.
func newPlaceholder(h uint64, userID string) *view {
	return &view{hash: h, enc: string(appendHeader(nil, userID, "")), dec: placeholderDec, loading: true}
}

func appendHeader(b []byte, userID string, pos store.Position) []byte {
	b = binary.AppendUvarint(b, uint64(len(userID)))
	b = append(b, userID...)
	return appendPos(b, pos)
}

// appendPos appends pos: uvarint 0 for none; 1, then uvarint ms and seq,
// for a canonical stream ID ("ms-seq", as the stores write them);
// otherwise uvarint len<<1|1 then the bytes (never 1: len > 0).
func appendPos(b []byte, pos store.Position) []byte {
	if pos == "" {
		return append(b, 0)
	}
	if ms, seq, ok := canonicalPos(string(pos)); ok {
		b = append(b, 1)
		b = binary.AppendUvarint(b, ms)
		return binary.AppendUvarint(b, seq)
	}
	b = binary.AppendUvarint(b, uint64(len(pos))<<1|1)
	return append(b, pos...)
}

// canonicalPos parses s as "ms-seq", two decimal numbers without leading
// zeros (a lone 0 aside) that fit in 64 bits: the form splitPos gives
// back exactly.
func canonicalPos(s string) (ms, seq uint64, ok bool) {
	i := strings.IndexByte(s, '-')
	if i < 0 {
		return 0, 0, false
	}
	ms, ok1 := canonicalUint(s[:i])
	seq, ok2 := canonicalUint(s[i+1:])
	return ms, seq, ok1 && ok2
}

func canonicalUint(s string) (uint64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || len(s) > 20 {
		return 0, false
	}
	var x uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if x > (1<<64-1-d)/10 {
			return 0, false
		}
		x = x*10 + d
	}
	return x, true
}

// splitPos returns the position s starts with (as appendPos was given it)
// and what follows.
func splitPos(s string) (store.Position, string) {
	x, k := uvarintStr(s)
	switch {
	case x == 0:
		return "", s[k:]
	case x == 1:
		d := decoder{s: s, i: k}
		ms, seq := d.uvarint(), d.uvarint()
		b := strconv.AppendUint(make([]byte, 0, 41), ms, 10)
		b = append(b, '-')
		return store.Position(strconv.AppendUint(b, seq, 10)), s[d.i:]
	}
	n := int(x >> 1)
	return store.Position(s[k : k+n]), s[k+n:]
}

// userID returns the user's ID. It does not allocate.
func (v *view) userID() string {
	if s := v.enc; s[0] < 0x80 { // IDs under 128 bytes: one length byte
		return s[1 : 1+s[0]]
	}
	return v.longUserID()
}

func (v *view) longUserID() string {
	n, k := uvarintStr(v.enc)
	return v.enc[k : k+int(n)]
}

// pos returns the changelog position the record was written at (empty when
// unknown).
func (v *view) pos() store.Position {
	n, k := uvarintStr(v.enc)
	p, _ := splitPos(v.enc[k+int(n):])
	return p
}

// body returns the encoded record.
func (v *view) body() string {
	n, k := uvarintStr(v.enc)
	s := v.enc[k+int(n):]
	x, k := uvarintStr(s)
	switch {
	case x == 0:
		return s[k:]
	case x == 1:
		d := decoder{s: s, i: k}
		d.uvarint()
		d.uvarint()
		return s[d.i:]
	}
	return s[k+int(x>>1):]
}

// decision returns the user's decision (Basis.ID zero). It does not
// allocate: its slices are shared and must not be modified.
func (v *view) decision() consent.Decision {
	var d consent.Decision
	v.fill(&d)
	return d
}

// fill writes the decision into d (all but d.ID).
func (v *view) fill(d *consent.Decision) {
	s := v.dec
	d.Personalized, d.Reason, d.Tags = s.personalized, s.reason, v.dtags
	d.Channels, d.Refused, d.PushBlock = s.channels, s.refused, s.pushBlock
	d.RecordVersion, d.SettingsVersion = v.version, s.settingsVersion
}

// record returns the cached record, exactly as it was given to newView
// (after newView's restriction rule). The in is the interner of the cache
// the view was made for.
func (v *view) record(in *interner) consent.Record {
	if v.full != nil {
		return *v.full
	}
	return decodeRecord(in, v.userID(), v.version, v.body(), false)
}

// state returns the cached record's State (decoding no more than it).
func (v *view) state(in *interner) consent.State {
	if v.full != nil {
		return v.full.State
	}
	return decodeRecord(in, v.userID(), v.version, v.body(), true).State
}

// lastHash returns the record's LastHash.
func (v *view) lastHash() string {
	if v.full != nil {
		return v.full.LastHash
	}
	d := decoder{s: v.body()}
	f := d.byte()
	return d.hashIf(f&flagLastHashRaw != 0)
}

// newView builds the view of rec under sv, written at pos (empty when
// unknown). The view of a user who restricted processing (Art. 23) keeps
// no tags: its decision uses none, and the data of such a user is stored
// (by the store), not held here.
func newView(in *interner, h uint64, rec consent.Record, pos store.Position, sv *settingsView) *view {
	if rec.State.Restricted {
		rec.Tags = tags.Set{}
	}
	d := consent.Evaluate(rec.State, rec.Tags, &sv.set)
	v := &view{hash: h, version: rec.Version, gen: uint32(sv.gen), erased: rec.State.Erased}
	in.mu.Lock()
	v.dtags = in.tagList(d.Tags)
	v.dec = in.decision(&d, sv.set.Version)
	e := encoder{b: appendHeader(in.scratch[:0], rec.UserID, pos), in: in, ok: true}
	e.record(&rec)
	if !e.ok {
		e.b = appendHeader(e.b[:0], rec.UserID, pos) // the record is v.full
	}
	v.enc = string(e.b)
	if cap(e.b) <= 4096 {
		clear(e.b) // it held a user's data: keep none once the view is made
		in.scratch = e.b[:0]
	}
	in.mu.Unlock()
	if !e.ok {
		full := rec
		v.full = &full
	}
	return v
}

// Interning bounds: at most maxInterned strings of at most maxInternLen
// bytes, and as many lists, are shared; past them values stay the user's
// own (correct, only larger), so a vocabulary that never repeats cannot
// grow the tables without bound.
const (
	maxInterned  = 1 << 16
	maxInternLen = 128
	maxListKey   = 1024
)

// interner holds what the views of a cache share: strings (tags, tag
// sources, channel names, consent kinds, sensitive categories, purposes),
// numbered so a view's encoded record names them by number; tag lists (a
// decision's tags); and the shared parts of decisions. Shared values are
// never modified, and numbers are never reused.
type interner struct {
	mu       sync.Mutex
	ids      map[string]uint32
	strs     []string // by number
	tagLists map[string][]tags.Tag
	decs     map[string]*decShared
	// maxTagLists bounds tagLists (maxInterned; tests lower it to measure
	// users whose tag lists are their own).
	maxTagLists int
	// scratch is newView's encoding buffer (used under mu).
	scratch []byte
}

func newInterner() interner {
	return interner{ids: map[string]uint32{}, tagLists: map[string][]tags.Tag{}, decs: map[string]*decShared{}, maxTagLists: maxInterned}
}

// idLocked returns s's number, numbering it when there is room.
func (in *interner) idLocked(s string) (uint32, bool) {
	if s == "" || len(s) > maxInternLen {
		return 0, false
	}
	if id, ok := in.ids[s]; ok {
		return id, true
	}
	if len(in.strs) >= maxInterned {
		return 0, false
	}
	s = strings.Clone(s)
	id := uint32(len(in.strs))
	in.strs = append(in.strs, s)
	in.ids[s] = id
	return id, true
}

// table returns the numbered strings (a snapshot: numbers below its length
// never change).
func (in *interner) table() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.strs
}

// sharedLocked returns the shared copy of s when s is numbered, else s.
func (in *interner) sharedLocked(s string) string {
	if id, ok := in.idLocked(s); ok {
		return in.strs[id]
	}
	return s
}

// tagList returns the shared copy of ts (nil for nil, an empty list for an
// empty one), or a copy of its own at its exact length.
func (in *interner) tagList(ts []tags.Tag) []tags.Tag {
	if len(ts) == 0 {
		return ts
	}
	var buf [maxListKey]byte
	key, ok := buf[:0], true
	for _, t := range ts {
		if len(key)+len(t)+1 > maxListKey {
			ok = false
			break
		}
		key = append(key, t...)
		key = append(key, 0)
	}
	if ok {
		if l, found := in.tagLists[string(key)]; found {
			return l
		}
	}
	out := make([]tags.Tag, len(ts))
	for i, t := range ts {
		out[i] = tags.Tag(in.sharedLocked(string(t)))
	}
	if ok && len(in.tagLists) < in.maxTagLists {
		in.tagLists[string(key)] = out
	}
	return out
}

// forgetLists drops the shared tag lists and decision parts. It runs when
// an erasure is seen (a tombstone installed, a user's entries shredded):
// no combination of the erased user's tags (closer to
// a fingerprint than one tag) stays in the interner. Views keep the lists
// they hold (never modified), so dropping the tables is always safe; what
// is lost is only sharing with views made later. The numbered strings
// stay: encoded records name them by number (tags are a taxonomy's
// vocabulary, linked to no user).
func (in *interner) forgetLists() {
	in.mu.Lock()
	clear(in.tagLists)
	clear(in.decs)
	in.mu.Unlock()
}

// decision returns the shared part of d under settings version sv.
func (in *interner) decision(d *consent.Decision, sv uint64) *decShared {
	var buf [maxListKey]byte
	key := binary.LittleEndian.AppendUint64(buf[:0], sv)
	flags := byte(0)
	if d.Personalized {
		flags = 1
	}
	key = append(key, flags, byte(d.Reason), byte(d.PushBlock))
	ok := true
	for _, l := range [2][]string{d.Channels, d.Refused} {
		if l == nil {
			key = append(key, 0)
		} else {
			key = binary.AppendUvarint(key, uint64(len(l))+1)
		}
		for _, s := range l {
			if len(key)+len(s)+1 > maxListKey {
				ok = false
				break
			}
			key = append(key, s...)
			key = append(key, 0)
		}
	}
	ok = ok && len(key) <= maxListKey
	if ok {
		if s, found := in.decs[string(key)]; found {
			return s
		}
	}
	s := &decShared{settingsVersion: sv, personalized: d.Personalized, reason: d.Reason, pushBlock: d.PushBlock,
		channels: in.strList(d.Channels), refused: in.strList(d.Refused)}
	if ok && len(in.decs) < maxInterned {
		in.decs[string(key)] = s
	}
	return s
}

func (in *interner) strList(ss []string) []string {
	if len(ss) == 0 {
		return ss
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = in.sharedLocked(s)
	}
	return out
}

// The record's encoding (the body), in order:
//
//	flags            byte: PersonalizationOff, Minor, Restricted, Erased,
//	                 Guardian != nil, Purged non-zero, LastHash raw, HeadMAC raw
//	LastHash         32 bytes when raw (64 lower-case hex digits), else str
//	Number           uvarint
//	UpdatedAt        time (from timeBase)
//	RefusedChannels  list of str
//	Sensitive        list of (str Category, grant)
//	Guardian         grant, when flagged
//	Refusals         list of (str Kind, time)
//	Tags.Entries     list of (str Tag with the Source in 2 low bits, time)
//	Tags.Suppressed  list of (str Tag, time)
//	Purged           uvarint Seq, hash Hash, time At, hash MAC, when flagged
//	HeadMAC          32 bytes when raw, else str
//
// list: uvarint 0 for nil, n+1 for n items. str: uvarint id<<1|1 for a
// numbered string (interner), len<<1 then the bytes for another; a str
// "with k low bits" shifts that code left by k to make room for them
// (Source: 1 declared, 2 inferred, 0 another, written as a str after).
// hash: 1 then 32 bytes when raw, 0 then a str otherwise. grant: byte
// (Granted, ByGuardian), str Purpose, zigzag uvarint PolicyVersion, time At.
//
// time: uvarint 0 for the zero time; otherwise a UTC time without a
// monotonic reading, as uvarint c<<2|k of its distance d from a base
// (timeBase for UpdatedAt itself, else UpdatedAt when it is not zero): k=1
// c=zigzag(d in whole seconds); k=2 c=zigzag(d in milliseconds); k=3
// c=zigzag(d in nanoseconds) when |d| < 2^31 s; k=0 c=zigzag(d in whole
// seconds)+1, then uvarint nanoseconds. Any other time makes the record
// unencodable: the view keeps it whole.
const timeBase = 1_750_000_000 // Unix seconds (June 2025)

// Bounds on the Unix seconds an encoded time may have (years 1 to 9999).
const (
	minUnix = -62135596800
	maxUnix = 253402300799
)

const (
	flagPersOff = 1 << iota
	flagMinor
	flagRestricted
	flagErased
	flagGuardian
	flagPurged
	flagLastHashRaw
	flagHeadMACRaw
)

// Sources in an entry's tag code's low bits.
const (
	srcOther    = 0
	srcDeclared = 1
	srcInferred = 2
)

type encoder struct {
	b    []byte
	in   *interner // locked by the caller
	ok   bool
	base int64
}

func (e *encoder) uvarint(x uint64) { e.b = binary.AppendUvarint(e.b, x) }

func (e *encoder) count(n int, isNil bool) {
	if isNil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

func (e *encoder) str(s string) { e.strLow(s, 0, 0) }

// strLow writes s as a str with the k low bits low.
func (e *encoder) strLow(s string, k uint, low uint64) {
	if id, ok := e.in.idLocked(s); ok {
		e.uvarint((uint64(id)<<1|1)<<k | low)
		return
	}
	e.uvarint(uint64(len(s))<<1<<k | low)
	e.b = append(e.b, s...)
}

func isRawHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// hashAs writes s raw (raw: isRawHash(s)) or as a str.
func (e *encoder) hashAs(s string, raw bool) {
	if !raw {
		e.uvarint(uint64(len(s)) << 1)
		e.b = append(e.b, s...)
		return
	}
	for i := 0; i < 64; i += 2 {
		e.b = append(e.b, unhex(s[i])<<4|unhex(s[i+1]))
	}
}

// hash writes s with its own tag byte.
func (e *encoder) hash(s string) {
	raw := isRawHash(s)
	if raw {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
	e.hashAs(s, raw)
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

func zig(x int64) uint64   { return uint64(x<<1) ^ uint64(x>>63) }
func unzig(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func (e *encoder) time(t time.Time) {
	if t == (time.Time{}) {
		e.uvarint(0)
		return
	}
	sec := t.Unix()
	if t.Location() != time.UTC || t != t.Round(0) || sec < minUnix || sec > maxUnix {
		e.ok = false
		e.uvarint(0)
		return
	}
	d, ns := sec-e.base, int64(t.Nanosecond())
	switch {
	case ns == 0:
		e.uvarint(zig(d)<<2 | 1)
	case ns%1e6 == 0:
		e.uvarint(zig(d*1000+ns/1e6)<<2 | 2)
	case -1<<31 < d && d < 1<<31:
		e.uvarint(zig(d*1e9+ns)<<2 | 3)
	default:
		e.uvarint((zig(d) + 1) << 2)
		e.uvarint(uint64(ns))
	}
}

func (e *encoder) grant(g *consent.Grant) {
	var f byte
	if g.Granted {
		f |= 1
	}
	if g.ByGuardian {
		f |= 2
	}
	e.b = append(e.b, f)
	e.str(g.Purpose)
	e.uvarint(zig(int64(g.PolicyVersion)))
	e.time(g.At)
}

// record appends r's encoding. e.ok turns false when r cannot be encoded.
func (e *encoder) record(r *consent.Record) {
	s := &r.State
	var f byte
	if s.PersonalizationOff {
		f |= flagPersOff
	}
	if s.Minor {
		f |= flagMinor
	}
	if s.Restricted {
		f |= flagRestricted
	}
	if s.Erased {
		f |= flagErased
	}
	if s.Guardian != nil {
		f |= flagGuardian
	}
	if r.Purged != (consent.Anchor{}) {
		f |= flagPurged
	}
	lastRaw, macRaw := isRawHash(r.LastHash), isRawHash(r.HeadMAC)
	if lastRaw {
		f |= flagLastHashRaw
	}
	if macRaw {
		f |= flagHeadMACRaw
	}
	e.b = append(e.b, f)
	e.hashAs(r.LastHash, lastRaw)
	e.uvarint(uint64(r.Number))
	e.base = timeBase
	e.time(r.UpdatedAt)
	if !r.UpdatedAt.IsZero() && e.ok {
		e.base = r.UpdatedAt.Unix()
	}
	e.count(len(s.RefusedChannels), s.RefusedChannels == nil)
	for _, c := range s.RefusedChannels {
		e.str(c)
	}
	e.count(len(s.Sensitive), s.Sensitive == nil)
	for i := range s.Sensitive {
		e.str(string(s.Sensitive[i].Category))
		e.grant(&s.Sensitive[i].Grant)
	}
	if s.Guardian != nil {
		e.grant(s.Guardian)
	}
	e.count(len(s.Refusals), s.Refusals == nil)
	for _, x := range s.Refusals {
		e.str(string(x.Kind))
		e.time(x.At)
	}
	e.count(len(r.Tags.Entries), r.Tags.Entries == nil)
	for _, x := range r.Tags.Entries {
		switch x.Source {
		case tags.Declared:
			e.strLow(string(x.Tag), 2, srcDeclared)
		case tags.Inferred:
			e.strLow(string(x.Tag), 2, srcInferred)
		default:
			e.strLow(string(x.Tag), 2, srcOther)
			e.str(string(x.Source))
		}
		e.time(x.At)
	}
	e.count(len(r.Tags.Suppressed), r.Tags.Suppressed == nil)
	for _, x := range r.Tags.Suppressed {
		e.str(string(x.Tag))
		e.time(x.At)
	}
	if f&flagPurged != 0 {
		e.uvarint(r.Purged.Seq)
		e.hash(r.Purged.Hash)
		e.time(r.Purged.At)
		e.hash(r.Purged.MAC)
	}
	e.hashAs(r.HeadMAC, macRaw)
}

// decoder reads what encoder wrote. The input is the cache's own encoding,
// so a malformed one is a bug: it panics.
type decoder struct {
	s    string
	i    int
	strs []string
	base int64
}

func uvarintStr(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<(7*i), i + 1
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	panic("sdk: malformed cached view")
}

func (d *decoder) uvarint() uint64 {
	x, n := uvarintStr(d.s[d.i:])
	d.i += n
	return x
}

func (d *decoder) byte() byte {
	b := d.s[d.i]
	d.i++
	return b
}

func (d *decoder) bytes(n int) string {
	s := d.s[d.i : d.i+n]
	d.i += n
	return s
}

// count returns a list's length and whether it is nil.
func (d *decoder) count() (int, bool) {
	n := d.uvarint()
	if n == 0 {
		return 0, true
	}
	return int(n - 1), false
}

func (d *decoder) str() string {
	s, _ := d.strLow(0)
	return s
}

// strLow reads a str with k low bits, and those bits.
func (d *decoder) strLow(k uint) (string, uint64) {
	x := d.uvarint()
	low := x & (1<<k - 1)
	x >>= k
	if x&1 == 1 {
		return d.strs[x>>1], low
	}
	return d.bytes(int(x >> 1)), low
}

// hashIf reads a hash written raw or as a str.
func (d *decoder) hashIf(raw bool) string {
	if raw {
		var h [64]byte
		hex.Encode(h[:], []byte(d.bytes(32)))
		return string(h[:])
	}
	return d.bytes(int(d.uvarint() >> 1))
}

// hash reads a hash written with its tag byte.
func (d *decoder) hash() string { return d.hashIf(d.byte() == 1) }

func (d *decoder) time() time.Time {
	x := d.uvarint()
	if x == 0 {
		return time.Time{}
	}
	switch c := x >> 2; x & 3 {
	case 1:
		return time.Unix(d.base+unzig(c), 0).UTC()
	case 2:
		return time.UnixMilli(d.base*1000 + unzig(c)).UTC()
	case 3:
		return time.Unix(d.base, unzig(c)).UTC()
	default:
		return time.Unix(d.base+unzig(c-1), int64(d.uvarint())).UTC()
	}
}

func (d *decoder) grant() consent.Grant {
	f := d.byte()
	g := consent.Grant{Granted: f&1 != 0, ByGuardian: f&2 != 0}
	g.Purpose = d.str()
	g.PolicyVersion = int(unzig(d.uvarint()))
	g.At = d.time()
	return g
}

// decodeRecord decodes body; with stateOnly, only the record's State (the
// other fields it gives are partial).
func decodeRecord(in *interner, userID string, version uint64, body string, stateOnly bool) consent.Record {
	d := decoder{s: body, strs: in.table(), base: timeBase}
	r := consent.Record{UserID: userID, Version: version}
	f := d.byte()
	if stateOnly && f&flagLastHashRaw != 0 {
		d.i += 32 // not needed: skip the hex encoding
	} else {
		r.LastHash = d.hashIf(f&flagLastHashRaw != 0)
	}
	r.Number = uint32(d.uvarint())
	r.UpdatedAt = d.time()
	if !r.UpdatedAt.IsZero() {
		d.base = r.UpdatedAt.Unix()
	}
	s := &r.State
	s.PersonalizationOff, s.Minor = f&flagPersOff != 0, f&flagMinor != 0
	s.Restricted, s.Erased = f&flagRestricted != 0, f&flagErased != 0
	if n, isNil := d.count(); !isNil {
		s.RefusedChannels = make([]string, n)
		for i := range n {
			s.RefusedChannels[i] = d.str()
		}
	}
	if n, isNil := d.count(); !isNil {
		s.Sensitive = make([]consent.SensitiveConsent, n)
		for i := range n {
			s.Sensitive[i].Category = tags.Category(d.str())
			s.Sensitive[i].Grant = d.grant()
		}
	}
	if f&flagGuardian != 0 {
		g := d.grant()
		s.Guardian = &g
	}
	if n, isNil := d.count(); !isNil {
		s.Refusals = make([]consent.Refusal, n)
		for i := range n {
			s.Refusals[i].Kind = consent.Kind(d.str())
			s.Refusals[i].At = d.time()
		}
	}
	if stateOnly {
		return r
	}
	if n, isNil := d.count(); !isNil {
		r.Tags.Entries = make([]tags.Entry, n)
		for i := range n {
			e := &r.Tags.Entries[i]
			t, src := d.strLow(2)
			e.Tag = tags.Tag(t)
			switch src {
			case srcDeclared:
				e.Source = tags.Declared
			case srcInferred:
				e.Source = tags.Inferred
			default:
				e.Source = tags.Source(d.str())
			}
			e.At = d.time()
		}
	}
	if n, isNil := d.count(); !isNil {
		r.Tags.Suppressed = make([]tags.Suppression, n)
		for i := range n {
			r.Tags.Suppressed[i].Tag = tags.Tag(d.str())
			r.Tags.Suppressed[i].At = d.time()
		}
	}
	if f&flagPurged != 0 {
		r.Purged.Seq = d.uvarint()
		r.Purged.Hash = d.hash()
		r.Purged.At = d.time()
		r.Purged.MAC = d.hash()
	}
	r.HeadMAC = d.hashIf(f&flagHeadMACRaw != 0)
	if d.i != len(d.s) {
		panic("sdk: malformed cached view")
	}
	return r
}
