package tags

import "errors"

// Sentinel errors of the tag model. Callers match them with errors.Is; the
// errors returned by this package wrap them with the offending value.
var (
	// ErrInvalidTag reports a tag that is not namespace:value in the
	// documented character set and length.
	ErrInvalidTag = errors.New("tags: invalid tag")
	// ErrInvalidCategory reports an unknown sensitive category.
	ErrInvalidCategory = errors.New("tags: invalid sensitive category")
	// ErrInvalidTaxonomy reports a taxonomy that does not validate.
	ErrInvalidTaxonomy = errors.New("tags: invalid taxonomy")
	// ErrSuppressed reports an attempt to add a tag the user deleted. Only
	// the user's own re-declaration lifts a suppression.
	ErrSuppressed = errors.New("tags: tag was deleted by the user and is suppressed")
	// ErrProhibited reports a tag in a namespace the taxonomy prohibits.
	ErrProhibited = errors.New("tags: tag namespace is prohibited")
	// ErrInvalidSegment reports a segment expression that does not parse
	// (see ParseSegment). The errors ParseSegment returns are *SyntaxError
	// values that unwrap to it.
	ErrInvalidSegment = errors.New("tags: invalid segment expression")
)
