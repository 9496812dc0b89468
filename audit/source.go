package audit

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Source yields events. Next returns io.EOF at the end, or a *LineError for
// a malformed line, after which the caller may call Next again to skip it;
// any other error is final.
//
// The pointer fields of the events a Source returns stay valid (and are not
// changed by the Source) after later calls to Next.
type Source interface {
	Next() (Event, error)
}

// LineError reports one malformed input line: the Source skips it and goes
// on if Next is called again.
type LineError struct {
	File   string
	Line   int64 // 1-based
	Reason string
}

// Error returns "file:line: reason" (or "line N: reason" without a file).
func (e *LineError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// Problem returns the error as a LineProblem for a Report.
func (e *LineError) Problem() LineProblem {
	return LineProblem{File: e.File, Line: e.Line, Reason: e.Reason}
}

// ErrTooManyMalformed is wrapped by the error of an audit whose input is
// mostly malformed: a *MalformedError (see Report.CheckMalformed).
var ErrTooManyMalformed = errors.New("audit: too many malformed input lines")

// DefaultMaxMalformed is the share of malformed input lines an audit
// skips before it fails instead: more than 10% fails.
const DefaultMaxMalformed = 0.10

// maxMalformedShown is how many malformed lines a MalformedError names.
const maxMalformedShown = 5

// MalformedError says an audit's input was mostly malformed: more lines
// than the share allowed, or every line. It unwraps to
// ErrTooManyMalformed.
type MalformedError struct {
	// Lines counts the input lines read, events and malformed lines (blank
	// lines are not counted); Malformed the malformed ones.
	Lines, Malformed int64
	// Max is the share of malformed lines allowed.
	Max float64
	// First are the first malformed lines (at most 5).
	First []LineProblem
}

// Error says how many lines were malformed and names the first.
func (e *MalformedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrTooManyMalformed.Error())
	b.WriteString(": ")
	b.WriteString(e.Summary("input line", "input lines"))
	for i, p := range e.First {
		if i == 0 {
			b.WriteString("; the first: ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString((&LineError{File: p.File, Line: p.Line, Reason: p.Reason}).Error())
	}
	if more := e.Malformed - int64(len(e.First)); more > 0 && len(e.First) > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	return b.String()
}

// Summary says how many lines were malformed, against what was allowed,
// without naming any; one and many name a line ("input line", "input
// lines"; the server says "event", "events").
func (e *MalformedError) Summary(one, many string) string {
	if e.Malformed >= e.Lines {
		if e.Lines == 1 {
			return "the only " + one + " is malformed"
		}
		return fmt.Sprintf("all %d %s are malformed", e.Lines, many)
	}
	share := float64(e.Malformed) / float64(e.Lines)
	// One decimal, more when it would round to what is allowed.
	d := 1
	for d < 6 && roundTo(share*100, d) == roundTo(e.Max*100, d) {
		d++
	}
	return fmt.Sprintf("%d of %d %s are malformed (%s%%), more than the %s%% allowed",
		e.Malformed, e.Lines, many, strconv.FormatFloat(roundTo(share*100, d), 'f', -1, 64),
		strconv.FormatFloat(roundTo(e.Max*100, d), 'f', -1, 64))
}

// Unwrap returns ErrTooManyMalformed.
func (e *MalformedError) Unwrap() error { return ErrTooManyMalformed }

// roundTo rounds v to d decimals.
func roundTo(v float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

// CheckMalformed fails a report whose input was mostly malformed: when
// more than maxShare of its input lines (Events + Skipped) were malformed,
// or every one was whatever maxShare (a run that read nothing usable is
// never a report). maxShare is a share (0.1 is 10%; DefaultMaxMalformed);
// under 0 it counts as 0 (any malformed line fails, once all are read: use
// Options.Strict to stop at the first). The error is a *MalformedError
// naming the first malformed lines; nil when the input is good enough.
func (r *Report) CheckMalformed(maxShare float64) error {
	if r.Skipped <= 0 {
		return nil
	}
	if math.IsNaN(maxShare) || maxShare < 0 {
		maxShare = 0
	}
	lines := r.Events + r.Skipped
	if r.Skipped < lines && float64(r.Skipped)/float64(lines) <= maxShare {
		return nil
	}
	return &MalformedError{Lines: lines, Malformed: r.Skipped, Max: maxShare,
		First: slices.Clone(r.Problems[:min(len(r.Problems), maxMalformedShown)])}
}

// MaxLineBytes is the longest input line the readers accept; a longer line
// is malformed.
const MaxLineBytes = 1 << 20

// validateEvent checks what every event needs: a user, an item, a time and
// a known mode, and finite numbers.
func validateEvent(ev *Event) string {
	switch {
	case ev.UserID == "":
		return "missing user"
	case ev.Item == "":
		return "missing item"
	case ev.Time.IsZero():
		return "missing time"
	case ev.Mode == "":
		return "missing mode"
	case ev.Mode != ModePersonalized && ev.Mode != ModeNonPersonalized:
		return fmt.Sprintf("mode %q is not %q or %q", clipText(ev.Mode), ModePersonalized, ModeNonPersonalized)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"rank", ev.Rank}, {"price", ev.Price}, {"discount", ev.Discount}, {"latency_ms", ev.LatencyMS}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			return f.name + " is not a finite number"
		}
		if f.v != nil && *f.v < 0 {
			return fmt.Sprintf("%s %v is negative", f.name, *f.v)
		}
	}
	for k, v := range ev.Fields {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "field " + strconv.Quote(clipText(k)) + " is not a finite number"
		}
	}
	return ""
}

func clipText(s string) string {
	if len(s) <= 64 {
		return s
	}
	n := 64
	for n > 60 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// ---------------------------------------------------------------- lines

// lineReader reads lines of at most MaxLineBytes, counting them.
type lineReader struct {
	r    *bufio.Reader
	line int64
	long []byte
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 1<<20)}
}

// next returns the next line without its "\n" or "\r\n"; tooLong reports a
// line over MaxLineBytes (its content is dropped). The slice is valid until
// the next call.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	b, err := lr.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		lr.long = append(lr.long[:0], b...)
		for err == bufio.ErrBufferFull {
			b, err = lr.r.ReadSlice('\n')
			if len(lr.long) <= MaxLineBytes {
				lr.long = append(lr.long, b...)
			}
		}
		b = lr.long
	}
	if err != nil && err != io.EOF {
		return nil, false, err
	}
	if len(b) == 0 && err == io.EOF {
		return nil, false, io.EOF
	}
	lr.line++
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > MaxLineBytes {
		return nil, true, nil
	}
	return b, false, nil
}

func blankLine(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------- JSONL

// ReadJSONL returns a Source reading one JSON Event per line from r; name
// is the file name given in LineErrors. Blank lines are ignored; line
// numbers are 1-based and count every line. A line that is not one JSON
// object of the Event fields (unknown fields are malformed), or whose event
// lacks user, item, time or a known mode, is a *LineError.
//
// The yes/no fields (shown, clicked, converted) take true or false, or the
// numbers 0 and 1 (also written 0.0, 1.0: booleans exported as numbers);
// null is "not recorded". A JSON string is refused, even "true" or "1": a
// string is not a yes/no value in JSON, as "9.5" is not a price. ReadCSV,
// whose cells are all text, takes the same values as text (and yes/no,
// t/f, y/n in any case): a value JSON takes, CSV takes with the same
// meaning.
//
// Common lines (no escapes in strings, no nulls, no duplicate keys) are
// decoded by a hand-written fast path that gives the same result as
// encoding/json; any other line goes through encoding/json.
func ReadJSONL(r io.Reader, name string) Source {
	return &jsonlSource{lr: newLineReader(r), name: name, dec: newFastDecoder()}
}

type jsonlSource struct {
	lr   *lineReader
	name string
	dec  *fastDecoder
	err  error
	ev   Event // decoded here, so it is not allocated per line
}

func (s *jsonlSource) Next() (Event, error) {
	if s.err != nil {
		return Event{}, s.err
	}
	for {
		b, tooLong, err := s.lr.next()
		if err != nil {
			s.err = err
			return Event{}, err
		}
		if tooLong {
			return Event{}, s.lineErr(tooLongReason)
		}
		if blankLine(b) {
			continue
		}
		ev := &s.ev
		*ev = Event{}
		if reason := decodeLine(s.dec, b, ev); reason != "" {
			return Event{}, s.lineErr(reason)
		}
		return *ev, nil
	}
}

// tooLongReason is the LineError reason of a line over MaxLineBytes.
var tooLongReason = fmt.Sprintf("line longer than %d bytes", MaxLineBytes)

// decodeLine decodes event line b into ev (zero) with dec, or encoding/json
// where dec leaves it, and validates it: the reason the line is malformed,
// or "".
func decodeLine(dec *fastDecoder, b []byte, ev *Event) string {
	if !dec.decode(b, ev) {
		*ev = Event{}
		if err := decodeJSONEvent(b, ev); err != nil {
			return err.Error()
		}
	}
	return validateEvent(ev)
}

func (s *jsonlSource) lineErr(reason string) *LineError {
	return &LineError{File: s.name, Line: s.lr.line, Reason: reason}
}

// decodeJSONEvent is the reference decoder: encoding/json, unknown fields
// rejected, nothing after the object, the yes/no fields read by
// jsonBoolField.
func decodeJSONEvent(b []byte, ev *Event) error {
	var in jsonEventIn
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		msg := strings.NewReplacer("jsonEventIn.eventJSON.", "Event.", "jsonEventIn.", "Event.").Replace(err.Error())
		return errors.New(strings.TrimPrefix(msg, "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	*ev = Event(in.eventJSON)
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  **bool
	}{{"shown", in.Shown, &ev.Shown}, {"clicked", in.Clicked, &ev.Clicked}, {"converted", in.Converted, &ev.Converted}} {
		v, set, err := jsonBoolField(f.name, f.raw)
		if err != nil {
			return err
		}
		if set {
			*f.dst = &v
		}
	}
	return nil
}

// eventJSON is Event without its methods, for jsonEventIn.
type eventJSON Event

// jsonEventIn is what decodeJSONEvent decodes: an Event whose yes/no
// fields are kept raw (they shadow the embedded ones) for jsonBoolField.
type jsonEventIn struct {
	eventJSON
	Shown     json.RawMessage `json:"shown"`
	Clicked   json.RawMessage `json:"clicked"`
	Converted json.RawMessage `json:"converted"`
}

// jsonBoolField reads the raw JSON value of the yes/no field name: true,
// false, or a number written 0 or 1 (with an optional fraction of zeros:
// 1.0, 0.00); null or absent is "not recorded" (set is false). A string,
// even "true" or "1", is refused: in JSON a string is not a yes/no value,
// as it is not a number for rank or price (see ReadJSONL).
func jsonBoolField(name string, raw json.RawMessage) (v, set bool, err error) {
	switch s := string(raw); {
	case s == "" || s == "null":
		return false, false, nil
	case s == "true":
		return true, true, nil
	case s == "false":
		return false, true, nil
	case s[0] == '"':
		return false, false, fmt.Errorf("%s %s is a string: write true, false, 1 or 0, without quotes", name, clipText(s))
	}
	if v, ok := boolNumber(raw); ok {
		return v, true, nil
	}
	return false, false, fmt.Errorf("%s %s is not true, false, 1 or 0", name, clipText(string(raw)))
}

// boolNumber reads a yes/no number: 0 or 1, optionally followed by a
// fraction of zeros (1.0, 0.000), as exporters write booleans turned into
// numbers. Nothing else (no sign, no exponent, no 2) is one.
func boolNumber[T ~[]byte | ~string](lit T) (v, ok bool) {
	if len(lit) == 0 || (lit[0] != '0' && lit[0] != '1') {
		return false, false
	}
	if len(lit) > 1 {
		if lit[1] != '.' || len(lit) == 2 {
			return false, false
		}
		for k := 2; k < len(lit); k++ {
			if lit[k] != '0' {
				return false, false
			}
		}
	}
	return lit[0] == '1', true
}

// jsonBoolNumber reads a yes/no number (boolNumber) at b[i] in the fast
// path: false when the value there is anything else, or is followed by
// more of a number, which the reference decoder then judges.
func jsonBoolNumber(b []byte, i int) (next int, v, ok bool) {
	j := i
	for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == '-' || b[j] == '+' || b[j] == 'e' || b[j] == 'E') {
		j++
	}
	if v, ok := boolNumber(b[i:j]); ok {
		return j, v, true
	}
	return 0, false, false
}

// fastDecoder decodes the common shape of an event line without
// encoding/json. decode returns false whenever the line is anything but
// plain (escapes, nulls, duplicate or unknown keys, unusual times, invalid
// UTF-8, bad syntax): the caller then uses encoding/json, which decides.
// Strings are interned (a bounded table), and the values behind the
// pointer fields come from slabs, so a common line allocates nothing.
type fastDecoder struct {
	// raw leaves UserID and Item pointing into the line (valid until the
	// next line is read) instead of copying them: Run's reader, which
	// copies what it keeps, sets it.
	raw    bool
	rawF   [8]float64 // raw mode: the line's numbers
	rawB   [8]bool    // raw mode: the line's yes/no fields
	rawNF  int
	rawNB  int
	intern map[string]string
	floats []float64
	bools  []bool
	strs   []string
	zones  map[int]*time.Location
}

const (
	maxInterned = 1 << 20
	slabSize    = 4096
)

func newFastDecoder() *fastDecoder {
	return &fastDecoder{intern: make(map[string]string), zones: make(map[int]*time.Location)}
}

func (d *fastDecoder) str(b []byte) string {
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	if len(d.intern) >= maxInterned {
		clear(d.intern)
	}
	s := string(b)
	d.intern[s] = s
	return s
}

// lineString returns b as a string: a copy, or in raw mode b itself.
func (d *fastDecoder) lineString(b []byte) string {
	if d.raw && len(b) > 0 {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

func (d *fastDecoder) float(v float64) *float64 {
	return slabPtr(d.raw, d.rawF[:], &d.rawNF, &d.floats, v)
}

func (d *fastDecoder) bool(v bool) *bool {
	return slabPtr(d.raw, d.rawB[:], &d.rawNB, &d.bools, v)
}

// slabPtr returns a pointer to a copy of v: from the caller's reusable
// slab (raw mode, next free index *n) while it lasts, else from a shared
// slab that is refilled slabSize values at a time.
func slabPtr[T any](raw bool, rawSlab []T, n *int, slab *[]T, v T) *T {
	if raw && *n < len(rawSlab) {
		p := &rawSlab[*n]
		*n++
		*p = v
		return p
	}
	if len(*slab) == 0 {
		*slab = make([]T, slabSize)
	}
	p := &(*slab)[0]
	*slab = (*slab)[1:]
	*p = v
	return p
}

func (d *fastDecoder) strSlice(n int) []string {
	if n > 64 {
		return make([]string, 0, n)
	}
	if len(d.strs) < n {
		d.strs = make([]string, slabSize)
	}
	s := d.strs[:0:n]
	d.strs = d.strs[n:]
	return s
}

// Keys of an event line, as bits for duplicate detection.
const (
	kUser = 1 << iota
	kItem
	kTime
	kMode
	kRank
	kPrice
	kDiscount
	kShown
	kClicked
	kConverted
	kLatency
	kFields
	kAttrs
)

func jsonSkipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// plainString reads a JSON string without escapes starting at b[i] == '"';
// it returns the content and the index after the closing quote.
func jsonPlainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	i++
	start := i
	ascii := true
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			s := b[start:i]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, i + 1, true
		}
		if c == '\\' || c < 0x20 {
			return nil, 0, false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return nil, 0, false
}

// number reads a JSON number at b[i].
func jsonNumber(b []byte, i int) (float64, int, bool) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, 0, false
		}
	}
	lit := b[start:i]
	if v, ok := simpleDecimal(lit); ok {
		return v, i, true
	}
	// ParseFloat does not keep its argument (errors copy it), so the
	// string may share the line's bytes.
	v, err := strconv.ParseFloat(unsafe.String(&lit[0], len(lit)), 64)
	if err != nil {
		return 0, 0, false
	}
	return v, i, true
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// simpleDecimal converts a JSON number without exponent and with at most 15
// digits exactly as strconv.ParseFloat does: the digits form an integer m
// < 2^53 and the fraction has d <= 15 digits, so m and 10^d are exact
// float64s and m / 10^d is the correctly rounded quotient (Clinger's fast
// path). Anything else is left to ParseFloat.
func simpleDecimal(lit []byte) (float64, bool) {
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	var m uint64
	nd, frac := 0, -1
	for k, c := range lit {
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			nd++
		case c == '.':
			frac = k
		default:
			return 0, false
		}
	}
	if nd > 15 {
		return 0, false
	}
	v := float64(m)
	if frac >= 0 {
		v /= pow10[len(lit)-frac-1]
	}
	if neg {
		v = -v
	}
	return v, true
}

func jsonLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return 0, false
}

func (d *fastDecoder) decode(b []byte, ev *Event) bool {
	d.rawNF, d.rawNB = 0, 0
	i := jsonSkipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = jsonSkipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return jsonSkipWS(b, i+1) == len(b)
	}
	seen := 0
	for {
		key, j, ok := jsonKey(b, i)
		if !ok {
			return false
		}
		i = j
		var bit int
		switch string(key) {
		case "user", "item", "mode":
			s, j, ok := jsonPlainString(b, i)
			if !ok {
				return false
			}
			i = j
			switch string(key) {
			case "user":
				bit, ev.UserID = kUser, d.lineString(s)
			case "item":
				bit, ev.Item = kItem, d.lineString(s)
			default:
				bit = kMode
				switch string(s) {
				case ModePersonalized:
					ev.Mode = ModePersonalized
				case ModeNonPersonalized:
					ev.Mode = ModeNonPersonalized
				default:
					ev.Mode = d.str(s)
				}
			}
		case "time":
			s, j, ok := jsonPlainString(b, i)
			if !ok {
				return false
			}
			t, ok := d.parseTime(s)
			if !ok {
				return false
			}
			i, bit, ev.Time = j, kTime, t
		case "rank", "price", "discount", "latency_ms":
			v, j, ok := jsonNumber(b, i)
			if !ok {
				return false
			}
			i = j
			p := d.float(v)
			switch string(key) {
			case "rank":
				bit, ev.Rank = kRank, p
			case "price":
				bit, ev.Price = kPrice, p
			case "discount":
				bit, ev.Discount = kDiscount, p
			default:
				bit, ev.LatencyMS = kLatency, p
			}
		case "shown", "clicked", "converted":
			var v bool
			if j, ok := jsonLiteral(b, i, "true"); ok {
				i, v = j, true
			} else if j, ok := jsonLiteral(b, i, "false"); ok {
				i = j
			} else if j, n, ok := jsonBoolNumber(b, i); ok {
				i, v = j, n
			} else {
				return false
			}
			p := d.bool(v)
			switch string(key) {
			case "shown":
				bit, ev.Shown = kShown, p
			case "clicked":
				bit, ev.Clicked = kClicked, p
			default:
				bit, ev.Converted = kConverted, p
			}
		case "attrs":
			j, ok := d.attrs(b, i, ev)
			if !ok {
				return false
			}
			i, bit = j, kAttrs
		case "fields":
			j, ok := d.fields(b, i, ev)
			if !ok {
				return false
			}
			i, bit = j, kFields
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		i = jsonSkipWS(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = jsonSkipWS(b, i+1)
		case '}':
			return jsonSkipWS(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func (d *fastDecoder) attrs(b []byte, i int, ev *Event) (int, bool) {
	if i >= len(b) || b[i] != '[' {
		return 0, false
	}
	i = jsonSkipWS(b, i+1)
	// Count the elements first so the slice is cut from the slab once.
	n, k := 0, i
	if k < len(b) && b[k] != ']' {
		for {
			_, j, ok := jsonPlainString(b, k)
			if !ok {
				return 0, false
			}
			n++
			k = jsonSkipWS(b, j)
			if k < len(b) && b[k] == ',' {
				k = jsonSkipWS(b, k+1)
				continue
			}
			if k < len(b) && b[k] == ']' {
				break
			}
			return 0, false
		}
	} else if k >= len(b) {
		return 0, false
	}
	out := d.strSlice(n)
	for range n {
		s, j, _ := jsonPlainString(b, i)
		out = append(out, d.str(s))
		i = jsonSkipWS(b, j)
		if b[i] == ',' {
			i = jsonSkipWS(b, i+1)
		}
	}
	ev.Attrs = out
	return k + 1, true
}

func (d *fastDecoder) fields(b []byte, i int, ev *Event) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = jsonSkipWS(b, i+1)
	m := map[string]float64{}
	if i < len(b) && b[i] == '}' {
		ev.Fields = m
		return i + 1, true
	}
	for {
		k, j, ok := jsonPlainString(b, i)
		if !ok {
			return 0, false
		}
		i = jsonSkipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		i = jsonSkipWS(b, i+1)
		v, j, ok := jsonNumber(b, i)
		if !ok {
			return 0, false
		}
		if _, dup := m[string(k)]; dup {
			return 0, false
		}
		m[d.str(k)] = v
		i = jsonSkipWS(b, j)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = jsonSkipWS(b, i+1)
		case '}':
			ev.Fields = m
			return i + 1, true
		default:
			return 0, false
		}
	}
}

func atoiDigits(b []byte, n int) (int, bool) {
	if len(b) < n {
		return 0, false
	}
	v := 0
	for _, c := range b[:n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseTime parses the plain RFC 3339 form YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
// with every field in range; anything else is left to time.Parse.
func (d *fastDecoder) parseTime(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	y, ok1 := atoiDigits(s[0:], 4)
	mo, ok2 := atoiDigits(s[5:], 2)
	dd, ok3 := atoiDigits(s[8:], 2)
	h, ok4 := atoiDigits(s[11:], 2)
	mi, ok5 := atoiDigits(s[14:], 2)
	sec, ok6 := atoiDigits(s[17:], 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || dd < 1 || dd > daysInMonth(mo, y) || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[19:]
	ns := 0
	if rest[0] == '.' {
		k := 1
		for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
			k++
		}
		nd := k - 1
		if nd < 1 || nd > 9 {
			return time.Time{}, false
		}
		v, _ := atoiDigits(rest[1:], nd)
		for range 9 - nd {
			v *= 10
		}
		ns = v
		rest = rest[k:]
	}
	var loc *time.Location
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
		loc = time.UTC
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := atoiDigits(rest[1:], 2)
		om, ok2 := atoiDigits(rest[4:], 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		off := (oh*60 + om) * 60
		if rest[0] == '-' {
			off = -off
		}
		if loc = d.zones[off]; loc == nil {
			if len(d.zones) > 64 {
				clear(d.zones)
			}
			loc = time.FixedZone("", off)
			d.zones[off] = loc
		}
	default:
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), dd, h, mi, sec, ns, loc), true
}

func daysInMonth(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// ---------------------------------------------------------------- CSV

// ReadCSV returns a Source reading events from CSV with a header row. The
// header names the columns: user, item, time (RFC 3339), mode, rank, price,
// discount, latency_ms (numbers), shown, clicked, converted (yes/no:
// true/false, yes/no, t/f, y/n in any case, or 1/0, also written 1.0/0.0;
// see ReadJSONL), attrs (';'-separated); any other column is a free numeric
// field of that name. An empty cell is "not recorded". The header must name
// user, item, time and mode, each column once. Line numbers in LineErrors
// are those of the file (a quoted cell may span lines: the record's first
// line).
func ReadCSV(r io.Reader, name string) (Source, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("audit: %s: empty CSV, no header row", name)
		}
		return nil, fmt.Errorf("audit: %s: header: %w", name, err)
	}
	s := &srcCSVSource{cr: cr, name: name, cols: make([]srcCSVCol, len(head)), dec: newFastDecoder()}
	idx := map[string]int{}
	for i, h := range head {
		h = strings.TrimSpace(h)
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		if h == "" {
			return nil, fmt.Errorf("audit: %s: header column %d has no name", name, i+1)
		}
		if _, dup := idx[h]; dup {
			return nil, fmt.Errorf("audit: %s: header names column %q twice", name, h)
		}
		idx[h] = i
		s.cols[i] = srcCSVCol{name: h, kind: srcCSVKinds[h]}
		if s.cols[i].kind == 0 {
			s.cols[i].kind = srcColField
		}
	}
	var missing []string
	for _, need := range []string{"user", "item", "time", "mode"} {
		if _, ok := idx[need]; !ok {
			missing = append(missing, need)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("audit: %s: header lacks column %s", name, strings.Join(missing, ", "))
	}
	return s, nil
}

type srcColKind uint8

const (
	srcColUser srcColKind = iota + 1
	srcColItem
	srcColTime
	srcColMode
	srcColRank
	srcColPrice
	srcColDiscount
	srcColLatency
	srcColShown
	srcColClicked
	srcColConverted
	srcColAttrs
	srcColField
)

var srcCSVKinds = map[string]srcColKind{
	"user": srcColUser, "item": srcColItem, "time": srcColTime, "mode": srcColMode,
	"rank": srcColRank, "price": srcColPrice, "discount": srcColDiscount, "latency_ms": srcColLatency,
	"shown": srcColShown, "clicked": srcColClicked, "converted": srcColConverted, "attrs": srcColAttrs,
}

type srcCSVCol struct {
	name string
	kind srcColKind
}

type srcCSVSource struct {
	cr   *csv.Reader
	name string
	cols []srcCSVCol
	dec  *fastDecoder
	err  error
}

func (s *srcCSVSource) Next() (Event, error) {
	if s.err != nil {
		return Event{}, s.err
	}
	for {
		rec, err := s.cr.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return Event{}, &LineError{File: s.name, Line: int64(pe.StartLine), Reason: pe.Err.Error()}
			}
			s.err = err
			return Event{}, err
		}
		line, _ := s.cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(s.cols) {
			return Event{}, &LineError{File: s.name, Line: int64(line), Reason: fmt.Sprintf("%d cells for %d columns", len(rec), len(s.cols))}
		}
		ev, reason := s.event(rec)
		if reason == "" {
			reason = validateEvent(&ev)
		}
		if reason != "" {
			return Event{}, &LineError{File: s.name, Line: int64(line), Reason: reason}
		}
		return ev, nil
	}
}

func (s *srcCSVSource) event(rec []string) (Event, string) {
	var ev Event
	for i, cell := range rec {
		c := s.cols[i]
		cell = strings.TrimSpace(cell)
		switch c.kind {
		case srcColUser:
			ev.UserID = s.dec.str([]byte(cell))
		case srcColItem:
			ev.Item = s.dec.str([]byte(cell))
		case srcColMode:
			ev.Mode = s.dec.str([]byte(cell))
		case srcColTime:
			if cell == "" {
				continue
			}
			t, ok := s.dec.parseTime([]byte(cell))
			if !ok {
				var err error
				if t, err = time.Parse(time.RFC3339Nano, cell); err != nil {
					return ev, fmt.Sprintf("time %q is not RFC 3339", clipText(cell))
				}
			}
			ev.Time = t
		case srcColAttrs:
			if cell == "" {
				continue
			}
			for a := range strings.SplitSeq(cell, ";") {
				if a = strings.TrimSpace(a); a != "" {
					ev.Attrs = append(ev.Attrs, s.dec.str([]byte(a)))
				}
			}
		case srcColShown, srcColClicked, srcColConverted:
			if cell == "" {
				continue
			}
			v, ok := csvBool(cell)
			if !ok {
				return ev, fmt.Sprintf("%s %q is not true, false, 1 or 0", c.name, clipText(cell))
			}
			p := s.dec.bool(v)
			switch c.kind {
			case srcColShown:
				ev.Shown = p
			case srcColClicked:
				ev.Clicked = p
			default:
				ev.Converted = p
			}
		default:
			if cell == "" {
				continue
			}
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return ev, fmt.Sprintf("%s %q is not a number", c.name, clipText(cell))
			}
			switch c.kind {
			case srcColRank:
				ev.Rank = s.dec.float(v)
			case srcColPrice:
				ev.Price = s.dec.float(v)
			case srcColDiscount:
				ev.Discount = s.dec.float(v)
			case srcColLatency:
				ev.LatencyMS = s.dec.float(v)
			default:
				if ev.Fields == nil {
					ev.Fields = map[string]float64{}
				}
				ev.Fields[c.name] = v
			}
		}
	}
	return ev, ""
}

// csvBool reads a yes/no cell: true, false, yes, no, t, f, y, n in any
// case, or a number boolNumber takes (1, 0, 1.0, 0.0).
func csvBool(cell string) (v, ok bool) {
	switch strings.ToLower(cell) {
	case "true", "yes", "t", "y":
		return true, true
	case "false", "no", "f", "n":
		return false, true
	}
	return boolNumber(cell)
}

// jsonKey reads an object key and its colon at b[i:]: it returns the key
// and the index of the value after them.
func jsonKey(b []byte, i int) (key []byte, next int, ok bool) {
	key, j, ok := jsonPlainString(b, i)
	if !ok {
		return nil, 0, false
	}
	i = jsonSkipWS(b, j)
	if i >= len(b) || b[i] != ':' {
		return nil, 0, false
	}
	return key, jsonSkipWS(b, i+1), true
}
