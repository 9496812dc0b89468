package memory_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/store/storetest"
)

func TestConformance(t *testing.T) {
	var dirs sync.Map // *memory.Store -> its data directory
	storetest.Run(t, func(t *testing.T) store.Store {
		dir := t.TempDir()
		s := mustOpen(t, memory.Options{Dir: dir, ChainKey: storetest.ChainKey})
		dirs.Store(s, dir)
		return s
	}, storetest.WithRaw(func(tb testing.TB, s store.Store) []byte {
		tb.Helper()
		return rawBytes(tb, s, &dirs)
	}))
}

// rawBytes compacts s and returns the content of every file in its data
// directory (nil for a store without one, which holds nothing outside
// memory).
func rawBytes(tb testing.TB, s store.Store, dirs *sync.Map) []byte {
	tb.Helper()
	d, ok := dirs.Load(s)
	if !ok {
		return nil
	}
	if err := s.(*memory.Store).Compact(tb.Context()); err != nil {
		tb.Fatalf("Compact: %v", err)
	}
	ents, err := os.ReadDir(d.(string))
	if err != nil {
		tb.Fatal(err)
	}
	var out []byte
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.(string), e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, memory.Options{ChainKey: storetest.ChainKey})
	})
}
