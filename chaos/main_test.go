package chaos_test

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// silent drops go-redis's own log lines: trials kill Redis on purpose, and
// every refused dial would print one.
type silent struct{}

func (silent) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	flag.Parse()
	goredis.SetLogger(silent{})
	// The SDK logs data loss and regressions through slog's default
	// logger; the trials check the answers instead. -v keeps them.
	if !testing.Verbose() {
		slog.SetDefault(quiet)
	}
	code := m.Run()
	cleanupBuild()
	os.Exit(code)
}
