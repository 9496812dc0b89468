package tags

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the segment syntax.
const (
	// MaxSegmentLen is the longest segment expression ParseSegment accepts,
	// in bytes.
	MaxSegmentLen = 4096
	// MaxSegmentDepth is the deepest nesting of parentheses ParseSegment
	// accepts.
	MaxSegmentDepth = 64
)

// maxChannelLen is the longest channel name in a refused:<channel> flag; it
// is consent.MaxChannelLen (this package cannot import consent).
const maxChannelLen = 32

// AtomKind says what an Atom tests.
type AtomKind uint8

// The kinds of atom. The zero AtomKind is not a kind: an Atom with it is
// malformed.
const (
	// AtomTag is a tag namespace:value: the user has the tag.
	AtomTag AtomKind = iota + 1
	// AtomPersonalizationOff is the flag consent:personalization_off: the
	// user turned personalized recommendation off (Art. 42).
	AtomPersonalizationOff
	// AtomGuardian is the flag consent:guardian: the user is a minor whose
	// guardian's consent is in force.
	AtomGuardian
	// AtomRefused is the flag refused:<channel>: the user refused the push
	// channel.
	AtomRefused
	// AtomSensitive is the flag sensitive:<category>: the user's separate
	// consent for the sensitive category is in force (Art. 22).
	AtomSensitive
	// AtomMinor is the flag minor: the user is a minor.
	AtomMinor
	// AtomErased is the flag erased: the user's personal data was erased.
	AtomErased
)

var atomKindNames = [...]string{
	AtomTag:                "tag",
	AtomPersonalizationOff: "personalization_off",
	AtomGuardian:           "guardian",
	AtomRefused:            "refused",
	AtomSensitive:          "sensitive",
	AtomMinor:              "minor",
	AtomErased:             "erased",
}

func (k AtomKind) valid() bool { return k >= AtomTag && k <= AtomErased }

// String returns the name of the kind, for messages.
func (k AtomKind) String() string {
	if k.valid() {
		return atomKindNames[k]
	}
	return "AtomKind(" + strconv.Itoa(int(k)) + ")"
}

// Atom is one test of a segment expression on one user. Kind says which
// field is used: Tag for AtomTag, Channel for AtomRefused, Category for
// AtomSensitive; the other fields are empty. Atoms are comparable with ==.
type Atom struct {
	Kind     AtomKind
	Tag      Tag
	Channel  string
	Category Category
}

// String returns the atom as it is written in a segment expression.
func (a Atom) String() string {
	switch a.Kind {
	case AtomTag:
		return string(a.Tag)
	case AtomPersonalizationOff:
		return "consent:personalization_off"
	case AtomGuardian:
		return "consent:guardian"
	case AtomRefused:
		return "refused:" + a.Channel
	case AtomSensitive:
		return "sensitive:" + string(a.Category)
	case AtomMinor:
		return "minor"
	case AtomErased:
		return "erased"
	}
	return "<invalid atom>"
}

// Op is the operator of a Segment node.
type Op uint8

// The operators. The zero Op is not an operator: a Segment with it (the zero
// Segment included) is malformed, so a forgotten field never means "all
// users".
const (
	// OpAll is "*": every user.
	OpAll Op = iota + 1
	// OpAtom is a single Atom.
	OpAtom
	// OpNot is "!X".
	OpNot
	// OpAnd is "X & Y".
	OpAnd
	// OpOr is "X | Y".
	OpOr
)

var opNames = [...]string{OpAll: "all", OpAtom: "atom", OpNot: "not", OpAnd: "and", OpOr: "or"}

// String returns the name of the operator, for messages.
func (o Op) String() string {
	if o >= OpAll && o <= OpOr {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Segment is a parsed segment expression: the set of users a push is
// targeted at. It is a tree: Atom is used by OpAtom, X by OpNot, X and Y by
// OpAnd and OpOr (binary nodes; a chain a & b & c is left-associative,
// ((a & b) & c)). Parentheses leave no trace in the tree. What an atom means
// for a user's record (consent, suppression, sensitive categories, the
// purpose) is defined once, by consent.AtomHolds; this package only parses.
//
// ParseSegment builds well-formed trees. A tree built by hand is well-formed
// when every node has a known Op, the operands its Op uses are non-nil and
// every atom has a known Kind (the zero Segment and a nil *Segment are not
// well-formed). On a malformed tree the methods fail closed: Eval reports
// false, UsesPersonalData reports true, Atoms skips atoms of unknown kind and
// String prints "<nil>" or "<invalid ...>", which do not parse.
//
// The syntax:
//
//	expr    = or .
//	or      = and { "|" and } .
//	and     = unary { "&" unary } .
//	unary   = { "!" } primary .
//	primary = "(" or ")" | "*" | atom .
//	atom    = tag | flag .
//	tag     = namespace ":" value .         (as Parse; not a reserved namespace)
//	flag    = "consent:personalization_off" | "consent:guardian"
//	        | "refused:" channel | "sensitive:" category
//	        | "minor" | "erased" .
//
// "!" binds tightest, then "&", then "|"; "&" and "|" are left-associative.
// A channel is a lowercase letter followed by lowercase letters, digits and
// '_', at most 32 bytes (the syntax of consent.ValidChannelName). A category
// is one of Categories. Spaces, tabs, carriage returns and newlines may
// appear anywhere between tokens and mean nothing; an atom ends at the first
// of those or of the bytes ! & | ( ) *. An expression is at most
// MaxSegmentLen bytes with at most MaxSegmentDepth nested parentheses, and
// its canonical form (String) is at most MaxSegmentLen bytes too, so the
// canonical form of any parsed expression parses again. (A compact input
// such as "a:b&a:b&..." near the limit can have a longer canonical form.)
//
// The meaning of each atom for one user:
//
//	namespace:value              the user has the tag
//	consent:personalization_off  the user turned personalization off (Art. 42)
//	consent:guardian             the user is a minor whose guardian's consent is in force
//	refused:<channel>            the user refused the push channel
//	sensitive:<category>         the user's separate consent for the category is in force
//	minor                        the user is a minor
//	erased                       the user's personal data was erased
//	*                            every user
//
// Examples:
//
//	interest:ski & region:sh
//	(interest:ski | interest:snowboard) & !refused:sms & !consent:personalization_off
//	* & !erased
type Segment struct {
	Op   Op
	Atom Atom
	X, Y *Segment
}

// SyntaxError is the error ParseSegment returns: the byte offset where the
// expression went wrong, what the parser expected there and what it found.
// It unwraps to ErrInvalidSegment.
type SyntaxError struct {
	// Input is the expression given to ParseSegment, cut to MaxSegmentLen
	// bytes.
	Input string
	// Pos is the 0-based byte offset into Input of the problem (0 when the
	// canonical form of the whole expression is too long).
	Pos int
	// Expected says what would have been valid at Pos.
	Expected string
	// Found says what is at Pos instead: a quoted token (a long word is cut
	// to 40 bytes and marked "..."), a quoted character, "end of input", or
	// a size for the limits.
	Found string
}

// Error returns, for example for "(a:x | b:y) & ()",
//
//	tags: invalid segment expression at 15: expected tag, flag, "*", "!" or "(", found ")"
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s at %d: expected %s, found %s", ErrInvalidSegment.Error(), e.Pos, e.Expected, e.Found)
}

// Unwrap returns ErrInvalidSegment.
func (e *SyntaxError) Unwrap() error { return ErrInvalidSegment }

// Expectations in syntax errors.
const (
	expOperand    = `tag, flag, "*", "!" or "("`
	expAfterTop   = `"&", "|" or end of input`
	expAfterInner = `"&", "|" or ")"`
	eofText       = "end of input"
)

// ParseSegment parses a segment expression (the syntax is in the Segment
// documentation). The error is a *SyntaxError wrapping ErrInvalidSegment.
func ParseSegment(s string) (*Segment, error) {
	if len(s) > MaxSegmentLen {
		return nil, &SyntaxError{
			Input:    s[:MaxSegmentLen],
			Pos:      MaxSegmentLen,
			Expected: fmt.Sprintf("expression of at most %d bytes", MaxSegmentLen),
			Found:    fmt.Sprintf("%d bytes", len(s)),
		}
	}
	p := &parser{in: s}
	x, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.in) {
		return nil, p.errHere(expAfterTop)
	}
	// The canonical form adds spaces around "&" and "|"; it must stay
	// parseable, so it is held to the same limit.
	if n := x.canonicalLen(); n > MaxSegmentLen {
		return nil, p.err(0, fmt.Sprintf("expression whose canonical form is at most %d bytes", MaxSegmentLen),
			fmt.Sprintf("canonical form of %d bytes", n))
	}
	return x, nil
}

// MustParseSegment is ParseSegment for expressions written in code; it panics
// on an invalid expression.
func MustParseSegment(s string) *Segment {
	x, err := ParseSegment(s)
	if err != nil {
		panic(err)
	}
	return x
}

type parser struct {
	in    string
	pos   int
	opens []int // offsets of the "(" not yet closed
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDelim(c byte) bool {
	switch c {
	case '!', '&', '|', '(', ')', '*':
		return true
	}
	return isSpace(c)
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

func isIdentByte(c byte) bool { return isLower(c) || c >= '0' && c <= '9' || c == '_' }

func (p *parser) skipSpace() {
	for p.pos < len(p.in) && isSpace(p.in[p.pos]) {
		p.pos++
	}
}

// wordEnd returns the end of the atom-like word starting at i.
func (p *parser) wordEnd(i int) int {
	for i < len(p.in) && !isDelim(p.in[i]) {
		i++
	}
	return i
}

// charAt describes the character at offset i.
func (p *parser) charAt(i int) string {
	if i >= len(p.in) {
		return eofText
	}
	_, n := utf8.DecodeRuneInString(p.in[i:])
	return strconv.Quote(p.in[i : i+n])
}

// tokenAt describes the token at offset i (a whole word, or one character).
func (p *parser) tokenAt(i int) string {
	if i >= len(p.in) {
		return eofText
	}
	if isDelim(p.in[i]) {
		return strconv.Quote(p.in[i : i+1])
	}
	return quoteWord(p.in[i:p.wordEnd(i)])
}

// maxFound is how much of a word a SyntaxError quotes, in bytes.
const maxFound = 40

// quoteWord quotes w for a SyntaxError, cut to maxFound bytes at a rune
// boundary.
func quoteWord(w string) string {
	if len(w) <= maxFound {
		return strconv.Quote(w)
	}
	n := maxFound
	for n > maxFound-utf8.UTFMax && !utf8.RuneStart(w[n]) {
		n--
	}
	return strconv.Quote(w[:n]) + "..."
}

func (p *parser) err(pos int, expected, found string) *SyntaxError {
	return &SyntaxError{Input: p.in, Pos: pos, Expected: expected, Found: found}
}

func (p *parser) errHere(expected string) *SyntaxError {
	return p.err(p.pos, expected, p.tokenAt(p.pos))
}

func (p *parser) parseOr() (*Segment, error) {
	x, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '|' {
			return x, nil
		}
		p.pos++
		y, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		x = &Segment{Op: OpOr, X: x, Y: y}
	}
}

func (p *parser) parseAnd() (*Segment, error) {
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '&' {
			return x, nil
		}
		p.pos++
		y, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		x = &Segment{Op: OpAnd, X: x, Y: y}
	}
}

func (p *parser) parseUnary() (*Segment, error) {
	nots := 0
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '!' {
			break
		}
		p.pos++
		nots++
	}
	x, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	for ; nots > 0; nots-- {
		x = &Segment{Op: OpNot, X: x}
	}
	return x, nil
}

func (p *parser) parsePrimary() (*Segment, error) {
	p.skipSpace()
	if p.pos >= len(p.in) {
		return nil, p.errHere(expOperand)
	}
	switch p.in[p.pos] {
	case '(':
		if len(p.opens) == MaxSegmentDepth {
			return nil, p.err(p.pos, fmt.Sprintf("at most %d nested parentheses", MaxSegmentDepth),
				fmt.Sprintf("nesting depth %d", MaxSegmentDepth+1))
		}
		p.opens = append(p.opens, p.pos)
		p.pos++
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ')' {
			open := p.opens[len(p.opens)-1]
			return nil, p.errHere(fmt.Sprintf(`%s (to close "(" at %d)`, expAfterInner, open))
		}
		p.pos++
		p.opens = p.opens[:len(p.opens)-1]
		return x, nil
	case '*':
		p.pos++
		return &Segment{Op: OpAll}, nil
	case '!', '&', '|', ')':
		return nil, p.errHere(expOperand)
	}
	a, err := p.parseAtom()
	if err != nil {
		return nil, err
	}
	return &Segment{Op: OpAtom, Atom: a}, nil
}

// parseAtom parses the word at p.pos (which is not empty) as an atom.
func (p *parser) parseAtom() (Atom, error) {
	start := p.pos
	end := p.wordEnd(start)
	w := p.in[start:end]
	p.pos = end
	switch w {
	case "minor":
		return Atom{Kind: AtomMinor}, nil
	case "erased":
		return Atom{Kind: AtomErased}, nil
	}
	i := strings.IndexByte(w, ':')
	if i < 0 {
		return Atom{}, p.err(start, expOperand, quoteWord(w))
	}
	ns, v, vpos := w[:i], w[i+1:], start+i+1
	found := func() string {
		if v == "" {
			return p.charAt(vpos)
		}
		return quoteWord(v)
	}
	switch ns {
	case "consent":
		switch v {
		case "personalization_off":
			return Atom{Kind: AtomPersonalizationOff}, nil
		case "guardian":
			return Atom{Kind: AtomGuardian}, nil
		}
		return Atom{}, p.err(vpos, `"personalization_off" or "guardian" after "consent:"`, found())
	case "refused":
		if err := p.checkIdent(vpos, v, "channel name", maxChannelLen); err != nil {
			return Atom{}, err
		}
		return Atom{Kind: AtomRefused, Channel: v}, nil
	case "sensitive":
		c := Category(v)
		if !c.Valid() {
			return Atom{}, p.err(vpos, "sensitive category ("+categoryList()+")", found())
		}
		return Atom{Kind: AtomSensitive, Category: c}, nil
	}
	if err := p.checkIdent(start, ns, "namespace", MaxNamespaceLen); err != nil {
		return Atom{}, err
	}
	if v == "" {
		return Atom{}, p.err(vpos, "tag value", p.charAt(vpos))
	}
	for j := 0; j < len(v); j++ {
		if j == MaxValueLen {
			return Atom{}, p.err(vpos+j, fmt.Sprintf("tag value of at most %d bytes", MaxValueLen), fmt.Sprintf("%d bytes", len(v)))
		}
		c := v[j]
		if !(isIdentByte(c) || c == '-' || c == '.') {
			return Atom{}, p.err(vpos+j, "tag value byte in [a-z0-9_.-]", p.charAt(vpos+j))
		}
	}
	t, err := Parse(w)
	if err != nil { // unreachable: the checks above are Parse's
		return Atom{}, p.err(start, "tag", quoteWord(w))
	}
	return Atom{Kind: AtomTag, Tag: t}, nil
}

// checkIdent checks s, found at offset off, against the namespace/channel
// syntax: a lowercase letter, then [a-z0-9_], at most max bytes.
func (p *parser) checkIdent(off int, s, what string, max int) error {
	if s == "" || !isLower(s[0]) {
		return p.err(off, what+" starting with a lowercase letter", p.charAt(off))
	}
	for j := 1; j < len(s); j++ {
		if j == max {
			return p.err(off+j, fmt.Sprintf("%s of at most %d bytes", what, max), fmt.Sprintf("%d bytes", len(s)))
		}
		if !isIdentByte(s[j]) {
			return p.err(off+j, what+" byte in [a-z0-9_]", p.charAt(off+j))
		}
	}
	return nil
}

func categoryList() string {
	cs := Categories()
	var b strings.Builder
	b.WriteString("one of ")
	for i, c := range cs {
		switch {
		case i == len(cs)-1:
			b.WriteString(" or ")
		case i > 0:
			b.WriteString(", ")
		}
		b.WriteString(string(c))
	}
	return b.String()
}

// String returns the canonical form of s: single spaces around "&" and "|",
// none after "!", and parentheses only where precedence (! over & over |)
// and left associativity need them, so a right operand with the same
// operator is parenthesized. For every well-formed s whose canonical form is
// within the limits, ParseSegment(s.String()) is Equal to s, and printing is
// a fixed point: parsing the canonical form and printing it again gives the
// same string. Every segment ParseSegment returns is within the limits; for
// one built by hand, within the limits means a canonical form of at most
// MaxSegmentLen bytes and MaxSegmentDepth nested parentheses, and atoms that
// ParseSegment accepts.
func (s *Segment) String() string {
	var b strings.Builder
	s.write(&b)
	return b.String()
}

// canonicalLen is len(s.String()) for a well-formed s, without building the
// string.
func (s *Segment) canonicalLen() int {
	n := 0
	s.walk(func(x *Segment) {
		switch x.Op {
		case OpAll:
			n++
		case OpAtom:
			n += len(x.Atom.String())
		case OpNot:
			n++
			if x.X.prec() < 3 {
				n += 2
			}
		case OpAnd:
			n += 3
			if x.X.prec() < 2 {
				n += 2
			}
			if x.Y.prec() <= 2 {
				n += 2
			}
		case OpOr:
			n += 3
			if x.Y.prec() <= 1 {
				n += 2
			}
		}
	})
	return n
}

// prec is the binding strength of a node's operator (higher binds tighter).
func (s *Segment) prec() int {
	if s == nil {
		return 4
	}
	switch s.Op {
	case OpOr:
		return 1
	case OpAnd:
		return 2
	case OpNot:
		return 3
	}
	return 4
}

func (s *Segment) write(b *strings.Builder) {
	if s == nil {
		b.WriteString("<nil>")
		return
	}
	switch s.Op {
	case OpAll:
		b.WriteByte('*')
	case OpAtom:
		b.WriteString(s.Atom.String())
	case OpNot:
		b.WriteByte('!')
		s.X.writeOperand(b, s.X.prec() < 3)
	case OpAnd:
		s.X.writeOperand(b, s.X.prec() < 2)
		b.WriteString(" & ")
		s.Y.writeOperand(b, s.Y.prec() <= 2)
	case OpOr:
		s.X.write(b)
		b.WriteString(" | ")
		s.Y.writeOperand(b, s.Y.prec() <= 1)
	default:
		b.WriteString("<invalid " + s.Op.String() + ">")
	}
}

func (s *Segment) writeOperand(b *strings.Builder, parens bool) {
	if parens {
		b.WriteByte('(')
	}
	s.write(b)
	if parens {
		b.WriteByte(')')
	}
}

// Equal reports whether s and o are the same tree: the same operator at
// every node, the same atoms, and operands in the same order. Fields an
// operator does not use are ignored. Two nil segments are equal.
func (s *Segment) Equal(o *Segment) bool {
	if s == nil || o == nil {
		return s == o
	}
	if s.Op != o.Op {
		return false
	}
	switch s.Op {
	case OpAll:
		return true
	case OpAtom:
		return s.Atom == o.Atom
	case OpNot:
		return s.X.Equal(o.X)
	case OpAnd, OpOr:
		return s.X.Equal(o.X) && s.Y.Equal(o.Y)
	}
	return s.Atom == o.Atom && s.X.Equal(o.X) && s.Y.Equal(o.Y)
}

// Atoms returns the distinct atoms of s in the order they first appear in
// the expression (left to right). It returns nil when s has no atom.
func (s *Segment) Atoms() []Atom {
	var out []Atom
	seen := make(map[Atom]struct{})
	s.walk(func(n *Segment) {
		if n.Op != OpAtom || !n.Atom.Kind.valid() {
			return
		}
		if _, ok := seen[n.Atom]; !ok {
			seen[n.Atom] = struct{}{}
			out = append(out, n.Atom)
		}
	})
	return out
}

// walk calls f on every non-nil node of s in expression order.
func (s *Segment) walk(f func(*Segment)) {
	if s == nil {
		return
	}
	switch s.Op {
	case OpNot:
		f(s)
		s.X.walk(f)
	case OpAnd, OpOr:
		s.X.walk(f)
		f(s)
		s.Y.walk(f)
	default:
		f(s)
	}
}

// wellFormed reports whether every node has a known operator, the operands
// it uses and an atom of a known kind.
func (s *Segment) wellFormed() bool {
	if s == nil {
		return false
	}
	switch s.Op {
	case OpAll:
		return true
	case OpAtom:
		return s.Atom.Kind.valid()
	case OpNot:
		return s.X.wellFormed()
	case OpAnd, OpOr:
		return s.X.wellFormed() && s.Y.wellFormed()
	}
	return false
}

// Eval reports whether one user is in the segment. has is the user's atom
// oracle: it reports whether the atom holds for the user (see the meanings in
// the Segment documentation). "*" holds for everyone. Eval evaluates "&" and
// "|" left to right and stops early, so has may not be asked about every
// atom. A malformed s (see Segment) holds for no one.
func (s *Segment) Eval(has func(Atom) bool) bool {
	return s.wellFormed() && s.eval(has)
}

func (s *Segment) eval(has func(Atom) bool) bool {
	switch s.Op {
	case OpAll:
		return true
	case OpAtom:
		return has(s.Atom)
	case OpNot:
		return !s.X.eval(has)
	case OpAnd:
		return s.X.eval(has) && s.Y.eval(has)
	default: // OpOr; wellFormed excluded the rest
		return s.X.eval(has) || s.Y.eval(has)
	}
}

// UsesPersonalData reports whether s selects users by personal
// characteristics, which makes a push built on it targeted (Art. 42): true
// when s contains a tag or a sensitive:<category> flag anywhere, negated or
// not. Expressions built only from "*", consent:..., refused:..., minor and
// erased are not targeted. A malformed s is reported as targeted.
func (s *Segment) UsesPersonalData() bool {
	if !s.wellFormed() {
		return true
	}
	uses := false
	s.walk(func(n *Segment) {
		if n.Op == OpAtom && (n.Atom.Kind == AtomTag || n.Atom.Kind == AtomSensitive) {
			uses = true
		}
	})
	return uses
}
