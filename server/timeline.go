package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/store"
)

// Consent timelines (issue 14 part 4): GET /v1/audits/consent-timeline
// answers store.ConsentTimeline as JSON for auditor keys: opt-outs,
// refusals per channel, sensitive consents, restrictions and erasures by
// time bucket, and today's state; counts only, no user's data. Query
// parameters from and to (RFC 3339, optional) bound the receipts counted,
// bucket (a Go duration, 1h to 366 days, default 24h) is the bucket width.
// Bounded and one at a time, like the verification.

func (s *Server) getConsentTimeline() gin.HandlerFunc {
	busy := make(chan struct{}, 1)
	return func(c *gin.Context) {
		var opts store.TimelineOptions
		for _, p := range []struct {
			name string
			dst  *time.Time
		}{{"from", &opts.From}, {"to", &opts.To}} {
			if q, ok := c.GetQuery(p.name); ok {
				t, err := time.Parse(time.RFC3339, q)
				if err != nil {
					failCode(c, http.StatusUnprocessableEntity, codeInvalid, p.name, "%s %q: want an RFC 3339 time", p.name, clipID(q))
					return
				}
				*p.dst = t
			}
		}
		if q, ok := c.GetQuery("bucket"); ok {
			d, err := time.ParseDuration(q)
			if err != nil || d <= 0 {
				failCode(c, http.StatusUnprocessableEntity, codeInvalid, "bucket", "bucket %q: want a duration from 1h to 8784h", clipID(q))
				return
			}
			opts.Bucket = d
		}
		select {
		case busy <- struct{}{}:
			defer func() { <-busy }()
		default:
			c.Header("Retry-After", strconv.Itoa(int(verifyTimeout/time.Second)))
			failCode(c, http.StatusServiceUnavailable, codeUnavailable, "", "another consent timeline is being read on this server: retry when it ends")
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), verifyTimeout)
		defer cancel()
		tl, err := store.ConsentTimeline(ctx, s.st, opts)
		s.cfg.Logger.Info("consent timeline", "key_id", keyIDOf(c), "request_id", requestIDOf(c), "users", tl.Users, "receipts", tl.Receipts)
		switch {
		case err == nil:
		case errors.Is(err, store.ErrInvalidTimeline):
			field := "bucket"
			if opts.Bucket == 0 || (opts.Bucket >= time.Hour && opts.Bucket <= 366*24*time.Hour) {
				field = "to"
			}
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, field, "%s", err.Error())
			return
		case errors.Is(err, errors.ErrUnsupported):
			failCode(c, http.StatusNotImplemented, codeUnavailable, "", "this server's store cannot list its users")
			return
		case errors.Is(err, context.DeadlineExceeded) && c.Request.Context().Err() == nil:
			failCode(c, http.StatusServiceUnavailable, codeUnavailable, "", "the consent timeline did not finish within %s", verifyTimeout)
			return
		default:
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, tl)
	}
}
