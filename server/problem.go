package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Field names the invalid input field, where there is one.
	Field string `json:"field,omitempty"`
}

// problemTypeBase prefixes every problem type URI.
const problemTypeBase = "https://recguard.dev/problems/"

// Problem codes: the last segment of the type URI.
const (
	codeMalformed    = "malformed-request"
	codeUnauth       = "unauthenticated"
	codeForbidden    = "forbidden"
	codeNotFound     = "not-found"
	codeConflict     = "conflict"
	codeSuppressed   = "tag-suppressed"
	codeConsent      = "consent-required"
	codeTooLarge     = "body-too-large"
	codeMediaType    = "unsupported-media-type"
	codeInvalid      = "invalid-value"
	codeRateLimited  = "rate-limited"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
	codeNotAllowed   = "not-allowed"
	codeNotPropagate = "not-propagated"
)

var titles = map[string]string{
	codeMalformed:    "Malformed request",
	codeUnauth:       "Missing or unknown API key",
	codeForbidden:    "Not allowed for this key's role",
	codeNotFound:     "Not found",
	codeConflict:     "Conflicts with the current state",
	codeSuppressed:   "Tag was deleted by the user and stays deleted",
	codeConsent:      "Consent required",
	codeTooLarge:     "Request body too large",
	codeMediaType:    "Unsupported media type",
	codeInvalid:      "Invalid value",
	codeRateLimited:  "Too many requests",
	codeUnavailable:  "Service unavailable",
	codeInternal:     "Internal error",
	codeNotAllowed:   "The change is not allowed",
	codeNotPropagate: "Recorded, but not confirmed by every instance",
}

// statusOf is the one table from error to HTTP status and problem code.
// Errors not listed are internal (500) and their text is not shown.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, tags.ErrSuppressed):
		return http.StatusConflict, codeSuppressed
	case errors.Is(err, consent.ErrConsentRequired):
		return http.StatusConflict, codeConsent
	case errors.Is(err, consent.ErrForbidden):
		return http.StatusConflict, codeNotAllowed
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, codeConflict
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, codeNotFound
	case errors.Is(err, consent.ErrInvalidUserID), errors.Is(err, consent.ErrInvalidChannel),
		errors.Is(err, consent.ErrUnknownChannel), errors.Is(err, consent.ErrInvalidChange),
		errors.Is(err, consent.ErrInvalidSettings), errors.Is(err, tags.ErrInvalidTag),
		errors.Is(err, tags.ErrInvalidCategory), errors.Is(err, tags.ErrProhibited),
		errors.Is(err, tags.ErrInvalidSegment), errors.Is(err, tags.ErrInvalidTaxonomy),
		errors.Is(err, audit.ErrInvalidSpec),
		errors.Is(err, index.ErrUnknownChannel), errors.Is(err, store.ErrInvalidPosition):
		return http.StatusUnprocessableEntity, codeInvalid
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, index.ErrUnverified),
		errors.Is(err, sdk.ErrClosed), errors.Is(err, store.ErrClosed):
		return http.StatusServiceUnavailable, codeUnavailable
	case errors.Is(err, sdk.ErrNoAudiences):
		return http.StatusNotImplemented, codeUnavailable
	case errors.Is(err, sdk.ErrNotPropagated):
		return http.StatusAccepted, codeNotPropagate
	}
	return http.StatusInternalServerError, codeInternal
}

// fail answers err as problem+json and aborts the request.
func fail(c *gin.Context, err error) {
	status, code := statusOf(err)
	p := Problem{Type: problemTypeBase + code, Title: titles[code], Status: status}
	if status != http.StatusInternalServerError {
		p.Detail = err.Error()
		var fe *consent.FieldError
		if errors.As(err, &fe) {
			p.Field = fe.Field
		}
		var se *tags.SyntaxError
		if errors.As(err, &se) {
			p.Field = "segment"
		}
	} else {
		c.Error(err) // logged, never shown
	}
	problem(c, p)
}

// failCode answers a problem that is not an error value (auth, limits).
func failCode(c *gin.Context, status int, code, field, format string, args ...any) {
	problem(c, Problem{Type: problemTypeBase + code, Title: titles[code], Status: status,
		Detail: fmt.Sprintf(format, args...), Field: field})
}

func problem(c *gin.Context, p Problem) {
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(p.Status, p)
}
