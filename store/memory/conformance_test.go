package memory_test

import (
	"testing"

	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, memory.Options{Dir: t.TempDir()})
	})
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, memory.Options{})
	})
}
