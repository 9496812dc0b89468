package storetest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/store/storetest"
)

// TestMemory runs the suite against the embedded store, with a data
// directory (every write appended to a file and fsynced) and without.
func TestMemory(t *testing.T) {
	for _, c := range []struct {
		name string
		opts func(t *testing.T) memory.Options
	}{
		{"file", func(t *testing.T) memory.Options {
			return memory.Options{Dir: t.TempDir(), ChainKey: storetest.ChainKey}
		}},
		{"in-memory", func(t *testing.T) memory.Options { return memory.Options{ChainKey: storetest.ChainKey} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) store.Store {
				s, err := memory.Open(context.Background(), c.opts(t))
				if err != nil {
					t.Fatalf("memory.Open: %v", err)
				}
				t.Cleanup(func() {
					if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
						t.Errorf("Close: %v", err)
					}
				})
				return s
			})
		})
	}
}
