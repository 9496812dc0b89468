package server

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DuplicateKeyError reports a JSON object that names the same member twice
// (or two names encoding/json takes for the same field: it matches field
// names without regard to case). encoding/json would keep the last one, so
// {"enabled":false,"enabled":true} would be an opt-in: such a body is
// refused instead.
type DuplicateKeyError struct {
	// Path is the JSON path of the object holding the key ("" for the
	// top-level object), in the dotted form of Problem.Field.
	Path string
	// Key is the second occurrence's name, as sent (unescaped).
	Key string
}

func (e *DuplicateKeyError) Error() string {
	where := "the top-level object"
	if e.Path != "" {
		where = "object " + e.Path
	}
	return fmt.Sprintf("duplicate key %q in %s: a key may appear once (names differing only in case count as the same)", clipKey(e.Key), where)
}

// Field is the path of the duplicated member.
func (e *DuplicateKeyError) Field() string {
	if e.Path == "" {
		return e.Key
	}
	return e.Path + "." + e.Key
}

func clipKey(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// dupFrame is one open object or array.
type dupFrame struct {
	obj     bool
	keys    map[string]struct{} // folded names seen (objects)
	wantKey bool                // the next token is a key or '}' (objects)
	path    string              // the frame's JSON path
	key     string              // the key whose value is being read (objects)
	index   int                 // the element being read (arrays)
}

// maxDupDepth bounds nesting; deeper bodies are left to the decoder (which
// has its own limit) without a duplicate check of the deeper levels.
const maxDupDepth = 10_000

// checkDuplicateKeys reads one JSON value from r token by token (without
// building it) and returns a *DuplicateKeyError for the first object that
// names a member twice. Syntax errors are not its business: it stops
// there and returns nil, and the decoder reports them.
func checkDuplicateKeys(r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.UseNumber() // no float parsing: only the structure matters
	var stack []*dupFrame
	elemPath := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		var seg string
		if top.obj {
			seg = top.key
		} else {
			seg = strconv.Itoa(top.index)
		}
		if top.path == "" {
			return seg
		}
		return top.path + "." + seg
	}
	// valueDone moves the enclosing frame past a complete value.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.obj {
			top.wantKey = true
		} else {
			top.index++
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or a syntax error the decoder will report
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			top := stack[n-1]
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				valueDone()
				if len(stack) == 0 {
					return nil
				}
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return nil
			}
			f := foldKey(key)
			if _, dup := top.keys[f]; dup {
				return &DuplicateKeyError{Path: top.path, Key: key}
			}
			top.keys[f] = struct{}{}
			top.key, top.wantKey = key, false
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxDupDepth {
					return nil
				}
				fr := &dupFrame{obj: t == '{', path: elemPath(), wantKey: t == '{'}
				if fr.obj {
					fr.keys = map[string]struct{}{}
				}
				stack = append(stack, fr)
			case ']':
				if len(stack) == 0 {
					return nil
				}
				stack = stack[:len(stack)-1]
				valueDone()
				if len(stack) == 0 {
					return nil
				}
			}
		default:
			valueDone()
			if len(stack) == 0 {
				return nil // a scalar top-level value
			}
		}
	}
}

// foldKey folds a member name the way encoding/json matches field names:
// ASCII letters upper-cased, other runes through unicode.ToUpper of
// unicode.ToLower (so "K", "k" and the Kelvin sign are one name).
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b.WriteByte(c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(unicode.ToUpper(unicode.ToLower(r)))
		i += n
	}
	return b.String()
}
