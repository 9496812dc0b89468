package memory_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// User numbers and the shard user lists survive a restart and a
// compaction, and numbering goes on where it stopped.
func TestNumbersSurviveRestartAndCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *memory.Store {
		s, err := memory.Open(ctx, memory.Options{Dir: dir, Shards: 2})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	list := func(s *memory.Store) [2][]string {
		var out [2][]string
		for sh := 0; sh < 2; sh++ {
			ids, err := s.ListUsers(ctx, sh, 1, 100)
			if err != nil {
				t.Fatal(err)
			}
			out[sh] = ids
		}
		return out
	}
	s := open()
	for i := 0; i < 10; i++ {
		if _, err := s.Apply(ctx, consent.SetPersonalization(fmt.Sprintf("n%d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	before := list(s)
	s.Close()
	s = open()
	if after := list(s); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("after reopening: %v, want %v", after, before)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open()
	defer s.Close()
	if after := list(s); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("after compaction and reopening: %v, want %v", after, before)
	}
	a, err := s.Apply(ctx, consent.SetPersonalization("n-new", false))
	if err != nil {
		t.Fatal(err)
	}
	if want := store.UserNumber(a.Shard, len(before[a.Shard])+1, 2); a.Record.Number != want {
		t.Fatalf("next user's number %d, want %d", a.Record.Number, want)
	}
	evs, err := s.ReadChangelog(ctx, a.Shard, "", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Prev == nil || ev.Prev.Version+1 != ev.Record.Version || ev.Prev.Number != ev.Record.Number {
			t.Fatalf("event %s after compaction: Prev %+v for Record v%d #%d", ev.Pos, ev.Prev, ev.Record.Version, ev.Record.Number)
		}
	}
}
