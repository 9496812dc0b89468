package server

import (
	"log/slog"
	"sync"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// errLog logs the errors answers do not show (store errors behind 5xx,
// failed propagation), at most a few lines a second: during an outage every
// request fails the same way, and the log must not become the next outage.
type errLog struct {
	log *slog.Logger
	lim *rate.Limiter

	mu         sync.Mutex
	suppressed int
}

func newErrLog(l *slog.Logger) *errLog {
	return &errLog{log: l, lim: rate.NewLimiter(10, 50)}
}

// middleware logs, once a request is answered, the errors it recorded
// with c.Error, and every 5xx answer (with or without one), each with the
// request's ID, route and key ID. Past the rate, lines are counted and the
// next line logged says how many were suppressed.
func (l *errLog) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		status := c.Writer.Status()
		if len(c.Errors) == 0 && status < 500 {
			return
		}
		n := max(len(c.Errors), 1)
		if !l.lim.Allow() {
			l.mu.Lock()
			l.suppressed += n
			l.mu.Unlock()
			return
		}
		l.mu.Lock()
		supp := l.suppressed
		l.suppressed = 0
		l.mu.Unlock()
		level := slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
		}
		base := []any{"method", methodLabel(c.Request.Method), "route", routeOf(c), "status", status, "request_id", requestIDOf(c)}
		if id := keyIDOf(c); id != "" {
			base = append(base, "key_id", id)
		}
		logOne := func(errText string) {
			attrs := append([]any(nil), base...)
			if errText != "" {
				attrs = append(attrs, "err", errText)
			}
			if supp > 0 {
				attrs = append(attrs, "suppressed_before", supp)
				supp = 0
			}
			l.log.Log(c.Request.Context(), level, "request failed", attrs...)
		}
		if len(c.Errors) == 0 {
			logOne("")
			return
		}
		for _, e := range c.Errors {
			logOne(e.Err.Error())
		}
	}
}
