package server

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/store"
)

// Art. 27 compliance verification: POST /v1/audits/verification runs
// store.Verify over the whole store under the server's chain key
// (Config.ChainKey) and answers the report (store.VerifyReport) as JSON:
// every user's receipt chain, receipts past retention, redaction after
// erasure, tags the consent state does not allow. For auditor keys. The
// report names users by ID and findings by kind, never personal content.
//
// A run is bounded by verifyTimeout and uses half the server's CPUs, so
// decisions keep being answered; one runs at a time per server (another
// request meanwhile is answered 503 with Retry-After). A store too large to
// verify within the bound is verified with `recguard verify`.

const (
	// verifyTimeout bounds one verification (as auditTimeout bounds an
	// audit: the server's WriteTimeout leaves room for it).
	verifyTimeout = auditTimeout
	// maxVerifyFindings bounds the max_findings query parameter.
	maxVerifyFindings = 10000
)

// postVerification returns the handler of POST /v1/audits/verification.
// Query parameter max_findings (0 to 10000, default 100) bounds the
// findings listed (all are counted).
func (s *Server) postVerification() gin.HandlerFunc {
	busy := make(chan struct{}, 1)
	return func(c *gin.Context) {
		maxFindings := store.DefaultMaxFindings
		if q, ok := c.GetQuery("max_findings"); ok {
			n, err := strconv.Atoi(q)
			if err != nil || n < 0 || n > maxVerifyFindings {
				failCode(c, http.StatusUnprocessableEntity, codeInvalid, "max_findings", "max_findings %q: want 0 to %d", clipID(q), maxVerifyFindings)
				return
			}
			maxFindings = n
			if n == 0 {
				maxFindings = -1 // list none
			}
		}
		select {
		case busy <- struct{}{}:
			defer func() { <-busy }()
		default:
			c.Header("Retry-After", strconv.Itoa(int(verifyTimeout/time.Second)))
			failCode(c, http.StatusServiceUnavailable, codeUnavailable, "", "another verification is running on this server: retry when it ends")
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), verifyTimeout)
		defer cancel()
		rep, err := store.Verify(ctx, s.st, s.cfg.ChainKey, store.VerifyOptions{
			Workers:     max(1, runtime.GOMAXPROCS(0)/2),
			MaxFindings: maxFindings,
			Now:         s.cfg.Now(),
		})
		s.cfg.Logger.Info("verification", "key_id", keyIDOf(c), "request_id", requestIDOf(c), "users", rep.Users,
			"findings", rep.FindingsTotal, "complete", rep.Complete, "seconds", rep.Seconds)
		switch {
		case err == nil:
		case errors.Is(err, errors.ErrUnsupported):
			failCode(c, http.StatusNotImplemented, codeUnavailable, "", "this server's store cannot list its users: run recguard verify against the store")
			return
		case errors.Is(err, context.DeadlineExceeded) && c.Request.Context().Err() == nil:
			failCode(c, http.StatusServiceUnavailable, codeUnavailable, "",
				"the verification did not finish within %s (%d users checked): run recguard verify against the store", verifyTimeout, rep.Users)
			return
		default:
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, rep)
	}
}
