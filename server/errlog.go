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

// middleware logs the errors a request recorded with c.Error once it is
// answered.
func (l *errLog) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 {
			return
		}
		status := c.Writer.Status()
		if !l.lim.Allow() {
			l.mu.Lock()
			l.suppressed += len(c.Errors)
			l.mu.Unlock()
			return
		}
		l.mu.Lock()
		n := l.suppressed
		l.suppressed = 0
		l.mu.Unlock()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		level := slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
		}
		for _, e := range c.Errors {
			attrs := []any{"method", methodLabel(c.Request.Method), "route", route, "status", status, "err", e.Err.Error()}
			if n > 0 {
				attrs = append(attrs, "suppressed_before", n)
				n = 0
			}
			l.log.Log(c.Request.Context(), level, "request failed", attrs...)
		}
	}
}
