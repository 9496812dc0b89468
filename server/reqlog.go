package server

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/textproto"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/store"
)

// Gin context keys of the request's state and admin logging.
const (
	ctxState = "recguard.state" // *reqState
	ctxAdmin = "recguard.admin" // []any: slog attributes an admin handler adds to its log line
)

// reqState is what the middleware learn about one request, kept in one gin
// context value: one allocation per request rather than one per value (a
// string or a key boxed into an interface each allocate).
type reqState struct {
	// id is the request's ID (requestID).
	id string
	// keyTried is the ID of a key verified but perhaps refused its route
	// (403); key is the authenticated key once authenticate let the
	// request in (authed).
	keyTried string
	key      store.APIKey
	authed   bool
	// orig is the request's context before storeBound; store is its
	// StoreTimeout bound, budget its decision budget (authenticate): both
	// made lazily (deadlineCtx), zero when their middleware did not run.
	// Each of those middleware is in a route's chain at most once.
	orig   context.Context
	store  deadlineCtx
	budget deadlineCtx
}

// state returns the request's state, making it when no middleware did.
func state(c *gin.Context) *reqState {
	if st := stateOf(c); st != nil {
		return st
	}
	st := &reqState{}
	c.Set(ctxState, st)
	return st
}

// stateOf returns the request's state, or nil.
func stateOf(c *gin.Context) *reqState {
	v, _ := c.Get(ctxState)
	st, _ := v.(*reqState)
	return st
}

// RequestIDHeader carries a request's ID: answered on every response, and
// accepted from the client when short and safe (validRequestID).
const RequestIDHeader = "X-Request-ID"

// maxRequestIDLen bounds an incoming request ID.
const maxRequestIDLen = 64

// validRequestID reports whether a client's request ID may be used as
// ours: 8 to 64 bytes of ASCII letters, digits and . _ : - (nothing a log
// line or a header could be confused by).
func validRequestID(id string) bool {
	if len(id) < 8 || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// newRequestID is 16 random bytes in hex. They come from math/rand/v2's
// generator (ChaCha8, seeded by the runtime from the system's entropy):
// a request ID names a request in logs, it guards nothing (a client may
// choose its own), and this costs no system call.
func newRequestID() string {
	var b [16]byte
	var out [32]byte
	for i := 0; i < len(b); i += 8 {
		u := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(u >> (8 * j))
		}
	}
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// requestIDHeaderKey is RequestIDHeader in canonical form, so answering it
// need not canonicalize the name on every request.
var requestIDHeaderKey = textproto.CanonicalMIMEHeaderKey(RequestIDHeader)

// requestID gives every request an ID (the client's X-Request-ID when it
// is valid, else a new one) and answers it in X-Request-ID. It makes the
// request's state (reqState).
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		var id string
		if v := c.Request.Header[requestIDHeaderKey]; len(v) > 0 { // c.GetHeader canonicalizes the name each time
			id = v[0]
		}
		if !validRequestID(id) {
			id = newRequestID()
		}
		st := &reqState{id: id}
		c.Set(ctxState, st)
		c.Writer.Header()[requestIDHeaderKey] = []string{id}
		c.Next()
	}
}

// requestIDOf is the request's ID ("" outside requestID).
func requestIDOf(c *gin.Context) string {
	if st := stateOf(c); st != nil {
		return st.id
	}
	return ""
}

// routeOf is the request's route template, never its raw path (which
// holds user IDs).
func routeOf(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// keyIDOf is the ID of the key the request was made with, when it was
// verified (also when its role was refused), else "".
func keyIDOf(c *gin.Context) string {
	st := stateOf(c)
	switch {
	case st == nil:
		return ""
	case st.authed && st.key.ID != "":
		return st.key.ID
	}
	return st.keyTried
}

// logRequests logs every request at Info once it is answered.
func (s *Server) logRequests() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		attrs := []any{"method", methodLabel(c.Request.Method), "route", routeOf(c), "status", c.Writer.Status(),
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "request_id", requestIDOf(c)}
		if id := keyIDOf(c); id != "" {
			attrs = append(attrs, "key_id", id)
		}
		s.cfg.Logger.Info("request", attrs...)
	}
}

// adminLog logs every admin action (a request other than a read on an
// admin route) once it is answered: the key that made it, the route, the
// status and outcome, and what the handler adds (adminDetail). Refused
// attempts are logged too, at Warn. Nothing secret is logged.
func (s *Server) adminLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if c.Request.Method == "GET" || c.Request.Method == "HEAD" {
			return
		}
		status := c.Writer.Status()
		outcome, level := "applied", slog.LevelInfo
		switch {
		case status >= 500:
			outcome, level = "failed", slog.LevelError
		case status >= 400:
			outcome, level = "refused", slog.LevelWarn
		case status == 202:
			outcome, level = "recorded, not confirmed", slog.LevelWarn
		}
		attrs := []any{"key_id", keyIDOf(c), "method", methodLabel(c.Request.Method), "route", routeOf(c),
			"status", status, "outcome", outcome, "request_id", requestIDOf(c)}
		if v, ok := c.Get(ctxAdmin); ok {
			if more, ok := v.([]any); ok {
				attrs = append(attrs, more...)
			}
		}
		s.cfg.Logger.Log(c.Request.Context(), level, "admin action", attrs...)
	}
}

// adminDetail adds slog attributes to the request's admin-action log line.
func adminDetail(c *gin.Context, attrs ...any) {
	var cur []any
	if v, ok := c.Get(ctxAdmin); ok {
		cur, _ = v.([]any)
	}
	c.Set(ctxAdmin, append(cur, attrs...))
}
