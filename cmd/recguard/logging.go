package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/recguard/recguard/store"
)

// newLogger is the slog logger of a command: text or JSON lines on w.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// redisLogger sends go-redis's own log lines (pool and dial failures,
// discarded connections, ...) to slog at Warn, at most a few a second:
// during an outage go-redis logs on every failed dial, and the log must not
// become the next outage. Lines past the rate are counted, and the next
// line logged says how many were suppressed. Set it with redis.SetLogger.
type redisLogger struct {
	log *slog.Logger
	lim *rate.Limiter
	now func() time.Time

	mu         sync.Mutex
	suppressed int
}

// Rate of redisLogger: lines per second, and burst.
const (
	redisLogRate  = 5
	redisLogBurst = 20
)

func newRedisLogger(l *slog.Logger) *redisLogger {
	return &redisLogger{log: l, lim: rate.NewLimiter(redisLogRate, redisLogBurst), now: time.Now}
}

// Printf implements go-redis's internal.Logging.
func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if !l.lim.AllowN(l.now(), 1) {
		l.mu.Lock()
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.mu.Lock()
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	attrs := []any{"text", strings.TrimSpace(fmt.Sprintf(format, v...))}
	if n > 0 {
		attrs = append(attrs, "suppressed_before", n)
	}
	l.log.Log(ctx, slog.LevelWarn, "go-redis", attrs...)
}

// osUser names who runs a CLI admin action, for its log line.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// logAdmin logs an admin action made from the command line (key creation
// and revocation): what, on which key, the outcome, by whom. Never the
// key's secret.
func logAdmin(log *slog.Logger, action, keyID string, err error, attrs ...any) {
	outcome, level := "applied", slog.LevelInfo
	switch {
	case errors.Is(err, store.ErrNotReplicated):
		outcome, level = "recorded, not confirmed", slog.LevelWarn
	case err != nil:
		outcome, level = "failed", slog.LevelError
	}
	a := append([]any{"action", action, "key_id", keyID, "actor", "cli", "os_user", osUser(), "outcome", outcome}, attrs...)
	if err != nil {
		a = append(a, "err", err.Error())
	}
	log.Log(context.Background(), level, "admin action", a...)
}
