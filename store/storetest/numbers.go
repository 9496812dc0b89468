package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// testNumbers checks dense user numbers and the Prev record on changelog
// events: a user's first change assigns Number = UserNumber(shard, k, n) with
// k counting the shard's users from 1; it never changes, not even on
// erasure; no two users share one; a no-op assigns none; and every event
// carries the record before the change.
func testNumbers(t *testing.T, newStore newStoreFunc) {
	parallel(t, "assigned once, dense per shard, unique", newStore, func(t *testing.T, s store.Store) {
		n := s.Shards()
		// A no-op for a new user assigns nothing.
		a := mustApply(t, s, consent.SetPersonalization("noop-user", true))
		if a.Receipt != nil || a.Record.Number != 0 {
			t.Fatalf("no-op first change: receipt %v, number %d; want none", a.Receipt, a.Record.Number)
		}
		var mu sync.Mutex
		nums := map[uint32]string{}
		perShard := make([]int, n)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					u := fmt.Sprintf("num-%d-%d", w, i)
					a, err := s.Apply(context.Background(), consent.SetPersonalization(u, false))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if other, dup := nums[a.Record.Number]; dup || a.Record.Number == 0 {
						t.Errorf("%s got number %d (already %q)", u, a.Record.Number, other)
					}
					nums[a.Record.Number] = u
					perShard[a.Shard]++
					mu.Unlock()
				}
			}(w)
		}
		wg.Wait()
		for num, u := range nums {
			shard, local := store.NumberShard(num, n)
			if shard != store.ShardOf(u, n) || local < 1 || local > perShard[shard] {
				t.Errorf("%s: number %d = shard %d local %d; want shard %d, local in 1..%d", u, num, shard, local, store.ShardOf(u, n), perShard[shard])
			}
			rec := mustGet(t, s, u)
			if rec.Number != num {
				t.Errorf("Get(%s).Number = %d, Apply said %d", u, rec.Number, num)
			}
		}
		// Later changes and erasure keep the number.
		u := "num-0-0"
		want := mustGet(t, s, u).Number
		mustApplyEffective(t, s, consent.DeclareTag(u, tagSki))
		mustApplyEffective(t, s, consent.Erase(u))
		if got := mustGet(t, s, u).Number; got != want {
			t.Fatalf("number after more changes and erasure = %d, want %d", got, want)
		}
		if gm, ok := s.(store.BatchGetter); ok {
			recs, err := gm.GetMany(context.Background(), []string{u, "never-seen"})
			if err != nil {
				t.Fatal(err)
			}
			if recs[0].Number != want || recs[1].Number != 0 {
				t.Fatalf("GetMany numbers %d, %d; want %d, 0", recs[0].Number, recs[1].Number, want)
			}
		}
		if ul, ok := s.(store.UserLister); ok {
			for shard := 0; shard < n; shard++ {
				ids, err := ul.ListUsers(context.Background(), shard, 1, 1000)
				if err != nil {
					t.Fatal(err)
				}
				if len(ids) != perShard[shard] {
					t.Fatalf("ListUsers(shard %d) = %d users, want %d", shard, len(ids), perShard[shard])
				}
				for i, id := range ids {
					if want := store.UserNumber(shard, i+1, n); nums[want] != id {
						t.Errorf("ListUsers(shard %d)[%d] = %q, number %d belongs to %q", shard, i, id, want, nums[want])
					}
				}
				if perShard[shard] > 1 {
					page, err := ul.ListUsers(context.Background(), shard, 2, 1)
					if err != nil || len(page) != 1 || page[0] != ids[1] {
						t.Errorf("ListUsers(shard %d, from 2, count 1) = %v, %v; want [%s]", shard, page, err, ids[1])
					}
				}
			}
			if _, err := ul.ListUsers(context.Background(), -1, 1, 1); !errors.Is(err, store.ErrInvalidPosition) {
				t.Errorf("ListUsers(shard -1): %v, want ErrInvalidPosition", err)
			}
		}
	})
	parallel(t, "events carry the record before the change", newStore, func(t *testing.T, s store.Store) {
		u := "prev-user"
		a1 := mustApplyEffective(t, s, consent.DeclareTag(u, tagSki))
		a2 := mustApplyEffective(t, s, consent.SetPersonalization(u, false))
		evs := eventsOf(mustReadAll(t, s, a1.Shard), u)
		if len(evs) != 2 {
			t.Fatalf("%d events for %s, want 2", len(evs), u)
		}
		p0 := evs[0].Prev
		if p0 == nil || p0.Version != 0 || p0.UserID != u || len(p0.Tags.Entries) != 0 {
			t.Fatalf("first event's Prev = %s, want the empty record of %s at version 0", show(p0), u)
		}
		if evs[1].Prev == nil {
			t.Fatal("second event has no Prev")
		}
		checkEqual(t, "second event's Prev", *evs[1].Prev, a1.Record)
		checkEqual(t, "second event's Record", *evs[1].Record, a2.Record)
		if evs[1].Prev.Number != a1.Record.Number {
			t.Errorf("Prev.Number = %d, want %d", evs[1].Prev.Number, a1.Record.Number)
		}
	})
}

// testCheckpoints checks the Checkpointer ability when the store has it.
func testCheckpoints(t *testing.T, newStore newStoreFunc) {
	parallel(t, "save and load", newStore, func(t *testing.T, s store.Store) {
		cp, ok := s.(store.Checkpointer)
		if !ok {
			t.Skip("store has no Checkpointer ability")
		}
		ctx := context.Background()
		if _, err := cp.LoadCheckpoint(ctx, "idx"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LoadCheckpoint before any save: %v, want ErrNotFound", err)
		}
		big := make([]byte, 20<<20+17) // more than one Redis chunk
		for i := range big {
			big[i] = byte(i * 7)
		}
		for _, data := range [][]byte{[]byte("first"), big, {}} {
			if err := cp.SaveCheckpoint(ctx, "idx", data); err != nil {
				t.Fatal(err)
			}
			got, err := cp.LoadCheckpoint(ctx, "idx")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(data) {
				t.Fatalf("LoadCheckpoint returned %d bytes, saved %d (or different content)", len(got), len(data))
			}
		}
		if err := cp.SaveCheckpoint(ctx, "Bad Name", nil); err == nil {
			t.Error("SaveCheckpoint with an invalid name: nil error")
		}
	})
}
