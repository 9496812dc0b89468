package consent

import (
	"errors"
	"fmt"
)

// Sentinel errors of the consent model. Every error this package returns for
// bad input wraps one of them (or one of package tags) and is a *FieldError
// naming the offending field, so callers use errors.Is and errors.As.
var (
	// ErrInvalidUserID reports a user ID outside the documented syntax.
	ErrInvalidUserID = errors.New("consent: invalid user ID")
	// ErrInvalidChannel reports a channel name outside the documented syntax.
	ErrInvalidChannel = errors.New("consent: invalid channel name")
	// ErrUnknownChannel reports a channel name the settings do not list.
	ErrUnknownChannel = errors.New("consent: unknown channel")
	// ErrInvalidChange reports a change that is malformed: unknown operation,
	// actor or surface, or a missing or superfluous field.
	ErrInvalidChange = errors.New("consent: invalid change")
	// ErrConsentRequired reports a change that needs a consent the user has
	// not given: a sensitive tag without that category's separate consent, a
	// minor's data without guardian consent, a minor's sensitive consent not
	// given by the guardian.
	ErrConsentRequired = errors.New("consent: consent required")
	// ErrForbidden reports a change the actor may not make, such as an admin
	// granting consent on a user's behalf.
	ErrForbidden = errors.New("consent: actor may not make this change")
	// ErrInferenceRefused reports a tag inferred while the user turned
	// personalization off or while the service is suspended: the platform
	// may not build a profile the user said no to (Art. 42), unless
	// Settings.AllowInferenceWhileOff says otherwise.
	ErrInferenceRefused = errors.New("consent: inference refused while personalization is off or the service is suspended")
	// ErrInvalidSettings reports settings that do not validate.
	ErrInvalidSettings = errors.New("consent: invalid settings")
	// ErrBrokenChain reports a receipt chain that fails verification: an
	// edited receipt or a gap.
	ErrBrokenChain = errors.New("consent: receipt chain broken")
)

// FieldError is a validation error that names the input field at fault.
// It wraps a sentinel error, so errors.Is sees through it.
type FieldError struct {
	Field  string // the field at fault, e.g. "user_id", "channel", "tag"
	Detail string // a human-readable explanation
	Err    error  // the sentinel, e.g. ErrUnknownChannel or tags.ErrInvalidTag
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%v: %s: %s", e.Err, e.Field, e.Detail)
}

// Unwrap returns the sentinel.
func (e *FieldError) Unwrap() error { return e.Err }

// wrapField turns err, which wraps or is about sentinel, into a *FieldError
// whose detail does not repeat the sentinel's text.
func wrapField(field string, sentinel, err error) error {
	d := err.Error()
	for _, p := range []string{sentinel.Error(), "tags: invalid taxonomy"} {
		if len(d) > len(p) && d[:len(p)] == p {
			d = d[len(p):]
			for len(d) > 0 && (d[0] == ':' || d[0] == ' ') {
				d = d[1:]
			}
		}
	}
	return &FieldError{Field: field, Detail: d, Err: sentinel}
}

func fieldErr(field string, err error, format string, args ...any) error {
	return &FieldError{Field: field, Detail: fmt.Sprintf(format, args...), Err: err}
}
