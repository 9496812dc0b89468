package server

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"
)

// Gin context keys of request identity and admin logging.
const (
	ctxReqID    = "recguard.request_id"
	ctxKeyTried = "recguard.key_tried" // the ID of a key verified but perhaps refused its route (403)
	ctxAdmin    = "recguard.admin"     // []any: slog attributes an admin handler adds to its log line
)

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

// newRequestID is 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// requestID gives every request an ID (the client's X-Request-ID when it
// is valid, else a new one) and answers it in X-Request-ID.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Set(ctxReqID, id)
		c.Header(RequestIDHeader, id)
		c.Next()
	}
}

// requestIDOf is the request's ID ("" outside requestID).
func requestIDOf(c *gin.Context) string { return c.GetString(ctxReqID) }

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
	if k := keyOf(c); k.ID != "" {
		return k.ID
	}
	return c.GetString(ctxKeyTried)
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
