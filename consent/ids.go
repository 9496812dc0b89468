package consent

import "fmt"

// Limits of identifiers.
const (
	// MaxUserIDLen is the longest user ID, in bytes.
	MaxUserIDLen = 128
	// MaxChannelLen is the longest channel name, in bytes.
	MaxChannelLen = 32
	// MaxPurposeLen is the longest purpose name, in bytes.
	MaxPurposeLen = 64
	// MaxReasonLen is the longest free-text reason on a change, in bytes.
	MaxReasonLen = 512
)

// ValidUserID checks a user ID: 1 to MaxUserIDLen bytes of ASCII letters,
// digits and the punctuation _ - . @ + = (no spaces, no braces, nothing a key
// or a log line could be confused by), and not "." or ".." (which a URL path
// or a file name would take for a directory). The error is a *FieldError
// wrapping ErrInvalidUserID.
func ValidUserID(id string) error {
	if len(id) == 0 || len(id) > MaxUserIDLen {
		return fieldErr("user_id", ErrInvalidUserID, "must be 1 to %d bytes, got %d", MaxUserIDLen, len(id))
	}
	if id == "." || id == ".." {
		return fieldErr("user_id", ErrInvalidUserID, "%q is a path segment, not an ID", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '.' || c == '@' || c == '+' || c == '=') {
			return fieldErr("user_id", ErrInvalidUserID, "byte %d (%q) not in [A-Za-z0-9_.@+=-]", i, c)
		}
	}
	return nil
}

// ValidChannelName checks the syntax of a channel name: a lowercase letter
// followed by lowercase letters, digits or '_', at most MaxChannelLen bytes.
// Whether the channel exists is a question for Settings.HasChannel.
func ValidChannelName(ch string) error {
	if err := ident(ch, MaxChannelLen); err != nil {
		return fieldErr("channel", ErrInvalidChannel, "%q: %v", clip(ch), err)
	}
	return nil
}

// validPurpose checks a purpose name with the same syntax as a channel name.
func validPurpose(p string) error {
	if err := ident(p, MaxPurposeLen); err != nil {
		return fieldErr("purpose", ErrInvalidChange, "%q: %v", clip(p), err)
	}
	return nil
}

func ident(s string, max int) error {
	if len(s) == 0 || len(s) > max {
		return fmt.Errorf("must be 1 to %d bytes", max)
	}
	if s[0] < 'a' || s[0] > 'z' {
		return fmt.Errorf("must start with a lowercase letter")
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("byte %d (%q) not in [a-z0-9_]", i, c)
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
