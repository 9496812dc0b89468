package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Position is a place in a changelog, written like a Redis stream ID:
// "<milliseconds>-<sequence>". The zero Position is before every entry.
type Position string

// ParsePosition validates s as a Position. The empty string and "0" are the
// zero Position.
func ParsePosition(s string) (Position, error) {
	if s == "" || s == "0" || s == "0-0" {
		return "", nil
	}
	if _, _, err := splitPos(s); err != nil {
		return "", err
	}
	return Position(s), nil
}

// Parts returns the milliseconds and sequence of p (0, 0 for the zero
// Position or a malformed one).
func (p Position) Parts() (ms, seq uint64) {
	ms, seq, _ = splitPos(string(p))
	return ms, seq
}

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Position) Compare(q Position) int {
	a1, a2 := p.Parts()
	b1, b2 := q.Parts()
	switch {
	case a1 < b1 || a1 == b1 && a2 < b2:
		return -1
	case a1 == b1 && a2 == b2:
		return 0
	}
	return 1
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { ms, seq := p.Parts(); return ms == 0 && seq == 0 }

// String returns p as a stream ID ("0-0" for the zero Position).
func (p Position) String() string {
	if p == "" {
		return "0-0"
	}
	return string(p)
}

func splitPos(s string) (uint64, uint64, error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = "0"
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("%w %q", ErrInvalidPosition, s)
	}
	return ms, seq, nil
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
