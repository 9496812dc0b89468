package tags

import (
	"fmt"
	"strings"
	"time"
)

// Limits of the tag syntax.
const (
	// MaxNamespaceLen is the longest namespace, in bytes.
	MaxNamespaceLen = 32
	// MaxValueLen is the longest value, in bytes.
	MaxValueLen = 64
)

// Tag is a user tag written namespace:value.
//
// The namespace starts with a lowercase letter and continues with lowercase
// letters, digits and '_' (at most MaxNamespaceLen bytes). The value is one or
// more of lowercase letters, digits, '_', '-' and '.' (at most MaxValueLen
// bytes). The namespaces "consent", "refused" and "sensitive" are reserved for
// segment flags (see ReservedNamespaces) and hold no tags. Parse is the only
// way to get a Tag from untrusted input.
type Tag string

// Parse validates s and returns it as a Tag in its canonical form: spaces
// and tabs around the tag and around the colon are dropped and ASCII letters are
// lowercased, so "Interest : Ski" is the tag interest:ski. Every variant of a
// tag is the same tag, so a deleted tag's suppression catches them all. A tag
// in one of the ReservedNamespaces is rejected: in a segment expression
// (ParseSegment) it would read as a flag. The error wraps ErrInvalidTag.
func Parse(s string) (Tag, error) {
	orig := s
	s = canonical(s)
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return "", fmt.Errorf("%w %q: want namespace:value", ErrInvalidTag, clip(orig))
	}
	if err := validNamespace(s[:i]); err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrInvalidTag, clip(orig), err)
	}
	if isReserved(s[:i]) {
		return "", fmt.Errorf("%w %q: namespace %q is reserved for segment flags", ErrInvalidTag, clip(orig), s[:i])
	}
	v := s[i+1:]
	if len(v) == 0 || len(v) > MaxValueLen {
		return "", fmt.Errorf("%w %q: value must be 1 to %d bytes", ErrInvalidTag, clip(orig), MaxValueLen)
	}
	for j := 0; j < len(v); j++ {
		c := v[j]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "", fmt.Errorf("%w %q: value byte %d (%q) not in [a-z0-9_.-]", ErrInvalidTag, clip(orig), j, c)
		}
	}
	return Tag(s), nil
}

// MustParse is Parse for tags written in code; it panics on an invalid tag.
func MustParse(s string) Tag {
	t, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return t
}

// Namespace returns the part before the colon.
func (t Tag) Namespace() string {
	if i := strings.IndexByte(string(t), ':'); i >= 0 {
		return string(t[:i])
	}
	return ""
}

// Value returns the part after the colon.
func (t Tag) Value() string {
	if i := strings.IndexByte(string(t), ':'); i >= 0 {
		return string(t[i+1:])
	}
	return ""
}

// ReservedNamespaces returns the namespaces that segment expressions use for
// flags ("consent", "refused", "sensitive"), in that order. No tag may be in
// one of them: Parse rejects such a tag. The slice is a fresh copy.
func ReservedNamespaces() []string {
	return []string{"consent", "refused", "sensitive"}
}

func isReserved(ns string) bool {
	switch ns {
	case "consent", "refused", "sensitive":
		return true
	}
	return false
}

// ValidNamespace reports whether ns is a valid namespace; the error wraps
// ErrInvalidTag. It checks the syntax only: a reserved namespace (see
// ReservedNamespaces) is syntactically valid, but Parse still rejects tags in
// it.
func ValidNamespace(ns string) error {
	if err := validNamespace(ns); err != nil {
		return fmt.Errorf("%w: namespace %q: %v", ErrInvalidTag, clip(ns), err)
	}
	return nil
}

// canonical trims spaces and tabs around s and around its first colon and
// lowercases its ASCII letters. It allocates only when s changes.
func canonical(s string) string {
	clean := true
	for j := 0; j < len(s); j++ {
		if c := s[j]; c >= 'A' && c <= 'Z' || c == ' ' || c == '\t' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	s = strings.Trim(s, " \t")
	if ns, v, ok := strings.Cut(s, ":"); ok {
		s = strings.Trim(ns, " \t") + ":" + strings.Trim(v, " \t")
	}
	b := []byte(s)
	for j, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[j] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func validNamespace(ns string) error {
	if len(ns) == 0 || len(ns) > MaxNamespaceLen {
		return fmt.Errorf("namespace must be 1 to %d bytes", MaxNamespaceLen)
	}
	if c := ns[0]; c < 'a' || c > 'z' {
		return fmt.Errorf("namespace must start with a lowercase letter")
	}
	for j := 1; j < len(ns); j++ {
		c := ns[j]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("namespace byte %d (%q) not in [a-z0-9_]", j, c)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Source says where a tag came from.
type Source string

// The sources of a tag.
const (
	// Declared tags were stated by the user (or their guardian).
	Declared Source = "declared"
	// Inferred tags were derived by the platform from behaviour.
	Inferred Source = "inferred"
)

// Valid reports whether s is one of the known sources.
func (s Source) Valid() bool { return s == Declared || s == Inferred }

// Entry is one tag a user has, with its source and when it was set.
type Entry struct {
	Tag    Tag       `json:"tag"`
	Source Source    `json:"source"`
	At     time.Time `json:"at"`
}

// Suppression records that the user deleted a tag. While it exists the tag
// cannot be added back except by the user's own declaration.
type Suppression struct {
	Tag Tag       `json:"tag"`
	At  time.Time `json:"at"`
}
