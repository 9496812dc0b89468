package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/internal/redistest"
)

func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"foo":                  12182, // the example in the Redis Cluster specification
		"123456789":            12739, // CRC16/XMODEM check value 0x31C3
		"{user1000}.following": redistest.Slot("user1000"),
		"a{}b":                 redistest.Slot("a{}b"), // empty tag: the whole key
		"rg:{3}:u:alice":       redistest.Slot("3"),
	} {
		if got := redistest.Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if redistest.Slot("a{}b") == redistest.Slot("") {
		t.Error("an empty hash tag must hash the whole key")
	}
}

func TestPauseResume(t *testing.T) {
	s := redistest.StartServer(t)
	c := s.Client(&redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Pause()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := c.Get(short, "k").Err()
	cancel()
	if err == nil {
		t.Fatal("GET answered while the server was paused")
	}
	s.Resume()
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET after Resume: %q, %v", v, err)
	}
}
