package server

import (
	"context"
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
	// RequestID is the request's ID (also answered in X-Request-ID) on
	// 5xx answers: the line logged about the error carries it.
	RequestID string `json:"request_id,omitempty"`
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
	codeNotReplicate = "not-replicated"
	codeDataLoss     = "data-loss"
	codeCorrupt      = "record-corrupt"
	codeInferenceOff = "inference-refused"
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
	codeNotReplicate: "Recorded on the primary, but not confirmed by the required replicas",
	codeDataLoss:     "The store lost data",
	codeCorrupt:      "The user's record is missing or corrupt",
	codeInferenceOff: "No inferred tags while the user's personalization is off or the service is suspended",
	codeWeakens:      "The settings change loosens a consent rule",
}

// safeDetails are the details of answers whose error text is not shown
// (5xx, 202): the error may hold internal addresses or backing-store text,
// so it is logged and one of these fixed sentences is answered instead.
var safeDetails = map[string]string{
	codeUnavailable: "store unreachable, too slow or not confirmed current: nothing is guessed; retry later (a change sent now may or may not have been recorded: read it back)",
	codeDataLoss:    "the store lost data it should hold (its keyspace was emptied or replaced): recguard answers nothing from it and changes nothing until an operator restores it or accepts the loss",
	codeCorrupt:     "this user's record is missing or cannot be read: the user is treated as unknown (answers fail closed) and changes to them are refused until the record is restored",
	codeNotPropagate: "the change is recorded and stands, but not every live recguard instance confirmed applying it in time: " +
		"for a moment some may still answer from the state before it; sending the same request again waits again",
	codeNotReplicate: "the change is recorded and stands on the Redis primary, but fewer replicas than the durability option requires confirmed it in time: " +
		"a failover now could lose it; read it back later and send it again if it is gone",
}

// closedDetail is the detail of a 503 from a closed client or store.
const closedDetail = "the server is shutting down (its store client is closed)"

// statusOf is the one table from error to HTTP status and problem code.
// Errors not listed are internal (500) and their text is not shown.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, store.ErrDataLoss):
		return http.StatusServiceUnavailable, codeDataLoss
	case errors.Is(err, store.ErrCorrupt):
		return http.StatusServiceUnavailable, codeCorrupt
	case errors.Is(err, store.ErrNotReplicated):
		return http.StatusAccepted, codeNotReplicate
	case errors.Is(err, tags.ErrSuppressed):
		return http.StatusConflict, codeSuppressed
	case errors.Is(err, consent.ErrConsentRequired):
		return http.StatusConflict, codeConsent
	case errors.Is(err, consent.ErrInferenceRefused):
		return http.StatusConflict, codeInferenceOff
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
		errors.Is(err, sdk.ErrClosed), errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrRegressed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, codeUnavailable
	case errors.Is(err, sdk.ErrNoAudiences):
		return http.StatusNotImplemented, codeUnavailable
	case errors.Is(err, sdk.ErrNotPropagated):
		return http.StatusAccepted, codeNotPropagate
	}
	return http.StatusInternalServerError, codeInternal
}

// fail answers err as problem+json and aborts the request. The error's
// text is the detail of 4xx answers only; behind 5xx and 202 it may hold
// internal addresses or backing-store text, so it is logged (c.Error) and
// the detail is a fixed sentence (none for 500).
//
// When the request's StoreTimeout ran out, a 5xx is 503 unavailable with
// a fixed detail that says so, whatever error the cut store call returned.
func fail(c *gin.Context, err error) {
	status, code := statusOf(err)
	p := Problem{Type: problemTypeBase + code, Title: titles[code], Status: status}
	switch {
	case status >= 500 && storeTimedOut(c):
		c.Error(err) // logged, never shown
		p.Type, p.Title, p.Status = problemTypeBase+codeUnavailable, titles[codeUnavailable], http.StatusServiceUnavailable
		p.Detail = storeTimeoutDetail
	case status >= 500 || status < 400:
		c.Error(err) // logged, never shown
		p.Detail = safeDetail(status, code, err)
	default:
		p.Detail = err.Error()
		var fe *consent.FieldError
		if errors.As(err, &fe) {
			p.Field = fe.Field
		}
		var se *tags.SyntaxError
		if errors.As(err, &se) {
			p.Field = "segment"
		}
	}
	problem(c, p)
}

// safeDetail is the fixed detail of a 5xx or 202 answer for err.
func safeDetail(status int, code string, err error) string {
	switch {
	case status == http.StatusInternalServerError:
		return ""
	case status == http.StatusNotImplemented:
		return "this server runs without what the route needs (started without an audience index, or on a store without it)"
	case errors.Is(err, sdk.ErrClosed), errors.Is(err, store.ErrClosed):
		return closedDetail
	}
	return safeDetails[code]
}

// failCode answers a problem that is not an error value (auth, limits).
func failCode(c *gin.Context, status int, code, field, format string, args ...any) {
	problem(c, Problem{Type: problemTypeBase + code, Title: titles[code], Status: status,
		Detail: fmt.Sprintf(format, args...), Field: field})
}

func problem(c *gin.Context, p Problem) {
	if p.Status >= 500 {
		p.RequestID = requestIDOf(c)
	}
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(p.Status, p)
}
