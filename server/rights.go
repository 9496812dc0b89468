package server

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// Art. 23 and 25 routes: the restriction of processing, the correction of
// a tag, and what the copy routes (export, receipts) need: the applicant's
// verified identity and a count of each user's copy requests.

// restrictionBody is PUT /v1/users/{id}/restriction.
type restrictionBody struct {
	Restricted *bool `json:"restricted"`
	// By is who makes the change: user (the default), guardian, admin or
	// system. Anyone may restrict; only the user (or a minor's guardian)
	// lifts a restriction (the library refuses the others: 409 not-allowed).
	By string `json:"by"`
	// Ref is the reference to the evidence (the user's request as the app
	// or its support desk recorded it), kept in the receipt.
	Ref     string `json:"ref"`
	Surface string `json:"surface"`
}

// putRestriction restricts processing of the user's data to storage
// (Art. 23), or lifts the restriction. Restricting is restrictive: it
// waits for every instance under WaitForAll. Made by the user, the
// guardian or an admin (on the user's behalf) it is logged as a restrict
// rights request, a lift as consent; by the system it is none.
func (s *Server) putRestriction(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "restrict") // refined below; logged even when the body is rejected
	var b restrictionBody
	if !s.decode(c, &b) {
		return
	}
	if b.Restricted == nil {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "restricted", "restricted (true or false) is required")
		return
	}
	actor := consent.ActorUser
	if b.By != "" {
		actor = consent.Actor(b.By)
		if !actor.Valid() {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "by", "by must be user, guardian, admin or system, got %q", clipID(b.By))
			return
		}
	}
	switch {
	case actor == consent.ActorSystem:
		setKind(c, "")
	case !*b.Restricted:
		setKind(c, "consent")
	}
	ch := consent.Unrestrict(id)
	if *b.Restricted {
		ch = consent.Restrict(id)
	}
	ch = ch.By(actor, surfaceOr(b.Surface))
	ch.Ref = b.Ref
	s.apply(c, ch, http.StatusOK)
}

// correctionBody is POST /v1/users/{id}/tags/{tag}/correct.
type correctionBody struct {
	// Replacement is the right tag.
	Replacement string `json:"replacement"`
	Surface     string `json:"surface"`
}

// postCorrection replaces one of the user's tags with the right one, in
// one change with one receipt (Art. 23 correction, consent.CorrectTag):
// the wrong tag is deleted and stays deleted, the right one is the user's
// declaration. It removes a tag, so under WaitForAll it waits for every
// instance like a deletion. Logged as correct.
func (s *Server) postCorrection(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "correct")
	wrong, err := tags.Parse(c.Param("tag"))
	if err != nil {
		fail(c, &consent.FieldError{Field: "tag", Detail: err.Error(), Err: tags.ErrInvalidTag})
		return
	}
	var b correctionBody
	if !s.decode(c, &b) {
		return
	}
	if b.Replacement == "" {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "replacement", "replacement (the right tag, namespace:value) is required")
		return
	}
	right, err := tags.Parse(b.Replacement)
	if err != nil {
		fail(c, &consent.FieldError{Field: "replacement", Detail: err.Error(), Err: tags.ErrInvalidTag})
		return
	}
	s.apply(c, consent.CorrectTag(id, wrong, right).By(consent.ActorUser, surfaceOr(b.Surface)), http.StatusOK)
}

// waitsForAll reports whether a change is acknowledged only once every
// live instance applied it (under WaitForAll): the restrictive changes
// (consent.Change.Restrictive), and a tag correction, which removes the
// wrong tag like a deletion.
func waitsForAll(ch consent.Change) bool {
	return ch.Restrictive() || ch.Op == consent.OpCorrectTag
}

// HeaderIdentityVerification is the request header that says how the app
// verified the applicant's identity before asking for the user's export
// (Art. 25: the identity is verified before personal information is
// transferred). Required on GET /v1/users/{id}/export.
const HeaderIdentityVerification = "X-Identity-Verification"

// identityMethod is the syntax of an identity verification method: a
// lowercase token (password, sms_otp, face, in_person, guardian, ...).
var identityMethod = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

const ctxVerified = "recguard.verified"

// identityVerified checks the X-Identity-Verification header, answers 400
// when it is missing or malformed, and keeps its value for the rights log.
func identityVerified(c *gin.Context) bool {
	v := c.GetHeader(HeaderIdentityVerification)
	switch {
	case v == "":
		failCode(c, http.StatusBadRequest, codeMalformed, HeaderIdentityVerification,
			"say how the applicant's identity was verified: send %s (password, sms_otp, face, in_person, guardian, ...)", HeaderIdentityVerification)
		return false
	case !identityMethod.MatchString(v):
		failCode(c, http.StatusBadRequest, codeMalformed, HeaderIdentityVerification,
			"%s must be a lowercase token of at most 32 bytes (a letter, then letters, digits or _), got %q", HeaderIdentityVerification, clipID(v))
		return false
	}
	c.Set(ctxVerified, v)
	return true
}

// Copy requests: how many copies (exports and receipt lists) each user
// asked for in the last CopyWindow. Over Config.ExcessiveCopies the
// request is still served, and flagged: in the answer's
// HeaderExcessiveRequests and in recguard_copy_requests_excessive_total.
// The Regulations let a processor charge a fee for transfer requests
// clearly beyond a reasonable number (Art. 25), not refuse them: whether
// to charge is the operator's decision, outside recguard.

// CopyWindow is the window of the per-user count of copy requests.
const CopyWindow = 30 * 24 * time.Hour

// Response headers of the copy routes.
const (
	// HeaderCopyRequests is the number of copy requests (exports and
	// receipt lists) for the user in the last 30 days, this one included.
	HeaderCopyRequests = "X-Copy-Requests"
	// HeaderExcessiveRequests is "true" when that number is over
	// Config.ExcessiveCopies.
	HeaderExcessiveRequests = "X-Excessive-Requests"
)

// copyClass is the store.RequestCounter class of the copy routes.
const copyClass = "copy"

// countCopy counts a copy request of the user (kind: access for the
// receipts, portability for the export) and sets the answer's headers.
// A count that fails is logged and the request served unflagged.
func (s *Server) countCopy(c *gin.Context, userID, kind string) {
	if s.cfg.ExcessiveCopies < 0 {
		return
	}
	n, err := s.counter.CountRequest(c.Request.Context(), userID, copyClass, s.cfg.Now(), CopyWindow)
	if err != nil {
		c.Error(err)
		return
	}
	c.Header(HeaderCopyRequests, strconv.Itoa(n))
	if n > s.cfg.ExcessiveCopies {
		c.Header(HeaderExcessiveRequests, "true")
		s.m.excessive.WithLabelValues(kind).Inc()
	}
}

// memCounter is the store.RequestCounter of one instance, for a store
// without one: in memory, for at most
// maxCountedUsers users (past it, it forgets the users whose last request
// is out of the window, and when none is, starts over).
type memCounter struct {
	mu sync.Mutex
	m  map[string][]time.Time // user and class -> request times, oldest first
}

const (
	// maxCountedUsers bounds memCounter.
	maxCountedUsers = 100_000
	// maxCountedPerUser bounds the times kept per user: the count
	// saturates there, far over any threshold.
	maxCountedPerUser = 1000
)

func newMemCounter() *memCounter { return &memCounter{m: map[string][]time.Time{}} }

// CountRequest implements store.RequestCounter.
func (mc *memCounter) CountRequest(_ context.Context, userID, class string, at time.Time, window time.Duration) (int, error) {
	k := class + "\x00" + userID
	from := at.Add(-window)
	mc.mu.Lock()
	defer mc.mu.Unlock()
	ts := mc.m[k]
	i := 0
	for i < len(ts) && !ts[i].After(from) {
		i++
	}
	ts = append(ts[i:], at)
	if len(ts) > maxCountedPerUser {
		ts = ts[len(ts)-maxCountedPerUser:]
	}
	if _, ok := mc.m[k]; !ok && len(mc.m) >= maxCountedUsers {
		for kk, tt := range mc.m {
			if len(tt) == 0 || !tt[len(tt)-1].After(from) {
				delete(mc.m, kk)
			}
		}
		if len(mc.m) >= maxCountedUsers {
			mc.m = map[string][]time.Time{}
		}
	}
	mc.m[k] = ts
	return len(ts), nil
}

// forget drops what the counter holds about the user (after an erasure).
func (mc *memCounter) forget(userID string) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	delete(mc.m, copyClass+"\x00"+userID)
}
