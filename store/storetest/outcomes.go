package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// testOutcomes checks the OutcomeLog ability when the store has it: every
// event appended is read back once, in order within its user's shard, and
// bad input appends nothing.
func testOutcomes(t *testing.T, newStore newStoreFunc) {
	parallel(t, "append and read", newStore, func(t *testing.T, s store.Store) {
		ol, ok := s.(store.OutcomeLog)
		if !ok {
			t.Skip("store has no OutcomeLog ability")
		}
		ctx := context.Background()
		read := func() []string {
			var out []string
			if err := ol.ReadOutcomes(ctx, func(e []byte) error { out = append(out, string(e)); return nil }); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if got := read(); len(got) != 0 {
			t.Fatalf("new store has %d outcomes", len(got))
		}
		var users []string
		var events [][]byte
		for i := 0; i < 40; i++ {
			u := fmt.Sprintf("o%d", i%7)
			users = append(users, u)
			events = append(events, []byte(fmt.Sprintf(`{"user":%q,"i":%d}`, u, i)))
		}
		if err := ol.AppendOutcomes(ctx, users, events); err != nil {
			t.Fatal(err)
		}
		got := read()
		if len(got) != len(events) {
			t.Fatalf("read %d outcomes, appended %d", len(got), len(events))
		}
		// Within one shard the order is the order appended.
		pos := map[string]int{}
		for i, e := range got {
			pos[e] = i
		}
		for i := 1; i < len(events); i++ {
			for j := 0; j < i; j++ {
				if store.ShardOf(users[i], s.Shards()) == store.ShardOf(users[j], s.Shards()) && pos[string(events[j])] > pos[string(events[i])] {
					t.Fatalf("event %d read before event %d of the same shard", i, j)
				}
			}
		}
		sorted := append([]string(nil), got...)
		sort.Strings(sorted)
		for i := 1; i < len(sorted); i++ {
			if sorted[i] == sorted[i-1] {
				t.Fatalf("event %s read twice", sorted[i])
			}
		}
		if err := ol.AppendOutcomes(ctx, []string{"ok", "bad id"}, [][]byte{[]byte(`{}`), []byte(`{}`)}); !errors.Is(err, consent.ErrInvalidUserID) {
			t.Fatalf("invalid user: %v, want ErrInvalidUserID", err)
		}
		if err := ol.AppendOutcomes(ctx, []string{"ok"}, nil); err == nil {
			t.Fatal("mismatched lengths: nil error")
		}
		if n := len(read()); n != len(events) {
			t.Fatalf("after rejected appends: %d outcomes, want %d", n, len(events))
		}
		stop := errors.New("stop")
		n := 0
		if err := ol.ReadOutcomes(ctx, func([]byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Fatalf("ReadOutcomes with a failing fn: err %v after %d calls, want stop after 1", err, n)
		}
	})
}
