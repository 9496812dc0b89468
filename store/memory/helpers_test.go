package memory_test

import (
	"testing"

	"github.com/recguard/recguard/store/memory"
)

// mustOpen opens a store and closes it when the test ends.
func mustOpen(tb testing.TB, opts memory.Options) *memory.Store {
	tb.Helper()
	s, err := memory.Open(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("Open(%+v): %v", opts, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
