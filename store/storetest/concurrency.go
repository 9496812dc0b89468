package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Load of the concurrency tests.
const (
	writers         = 8  // goroutines writing at once
	changesPerUser  = 25 // effective changes each writer makes to the one user
	manyUsers       = 12 // users of the many-users test
	roundsPerWriter = 5  // rounds each writer makes over every user
)

// flipTag returns the i-th change of a writer that alternately declares and
// deletes its own tag: every change is effective.
func flipTag(user string, writer, i int) consent.Change {
	t := tags.Tag(fmt.Sprintf("conc:w%d", writer))
	if i%2 == 1 {
		return consent.DeleteTag(user, t)
	}
	return consent.RedeclareTag(user, t)
}

func testConcurrency(t *testing.T, newStore newStoreFunc) {
	parallel(t, "many writers on one user", newStore, func(t *testing.T, s store.Store) {
		const u = "hot-user"
		const total = writers * changesPerUser
		shard := store.ShardOf(u, s.Shards())

		// A follower reads the user's shard log while the writers run.
		followCtx, stopFollower := context.WithTimeout(t.Context(), 15*time.Second)
		defer stopFollower()
		followed := make(chan []uint64, 1)
		followErr := make(chan error, 1)
		go func() {
			var versions []uint64
			var after store.Position
			for len(versions) < total {
				evs, err := s.ReadChangelog(followCtx, shard, after, 50, 100*time.Millisecond)
				if err != nil {
					followErr <- err
					break
				}
				for _, ev := range evs {
					after = ev.Pos
					if ev.Record != nil && ev.Record.UserID == u {
						versions = append(versions, ev.Record.Version)
					}
				}
			}
			followed <- versions
		}()

		versions := make(chan uint64, total)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range changesPerUser {
					ch := flipTag(u, w, i)
					a, err := s.Apply(t.Context(), ch)
					if err != nil {
						t.Errorf("writer %d, change %d (%s): %v", w, i, describe(ch), err)
						return
					}
					if a.Receipt == nil {
						t.Errorf("writer %d, change %d (%s): no receipt, want an effective change", w, i, describe(ch))
						return
					}
					if a.Receipt.Seq != a.Record.Version {
						t.Errorf("writer %d: receipt seq %d for record version %d", w, a.Receipt.Seq, a.Record.Version)
					}
					versions <- a.Record.Version
				}
			})
		}
		wg.Wait()
		close(versions)
		var got []uint64
		for v := range versions {
			got = append(got, v)
		}
		slices.Sort(got)
		checkEqual(t, "versions returned by the concurrent Applies, sorted", got, seq(total))

		rec := mustGet(t, s, u)
		if rec.Version != total {
			t.Errorf("final Version = %d, want %d", rec.Version, total)
		}
		if len(rec.Tags.Entries) != writers || len(rec.Tags.Suppressed) != 0 {
			t.Errorf("final tags %s: want the %d writers' tags declared, none suppressed", show(rec.Tags), writers)
		}
		rs := mustReceipts(t, s, u)
		var seqs []uint64
		for _, r := range rs {
			seqs = append(seqs, r.Seq)
		}
		checkEqual(t, "receipt seqs", seqs, seq(total))
		mustVerify(t, "Receipts after concurrent writers", rs)
		if len(rs) > 0 && rec.LastHash != rs[len(rs)-1].Hash {
			t.Errorf("record LastHash %q is not the last receipt's hash %q", rec.LastHash, rs[len(rs)-1].Hash)
		}

		evs := eventsOf(mustReadAll(t, s, shard), u)
		var logged []uint64
		for i, ev := range evs {
			logged = append(logged, ev.Record.Version)
			if i < len(rs) {
				checkEqual(t, fmt.Sprintf("receipt of changelog event %d", i), ev.Receipt, rs[i])
			}
		}
		checkEqual(t, "versions in the changelog, in order", logged, seq(total))
		if len(evs) > 0 {
			checkEqual(t, "record of the last changelog event", *evs[len(evs)-1].Record, rec)
		}

		seen := <-followed
		select {
		case err := <-followErr:
			t.Errorf("follower: %v", err)
		default:
		}
		checkEqual(t, "versions the follower saw while the writers ran", seen, seq(total))
	})

	parallel(t, "many writers on many users", newStore, func(t *testing.T, s store.Store) {
		var users []string
		for i := range manyUsers {
			users = append(users, fmt.Sprintf("busy-%d", i))
		}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range roundsPerWriter {
					for _, u := range users {
						ch := flipTag(u, w, i)
						if _, err := s.Apply(t.Context(), ch); err != nil {
							t.Errorf("writer %d (%s): %v", w, describe(ch), err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		const total = writers * roundsPerWriter
		logs := map[int][]store.Event{}
		for _, u := range users {
			rec := mustGet(t, s, u)
			if rec.Version != total {
				t.Errorf("%s: Version = %d, want %d", u, rec.Version, total)
			}
			rs := mustReceipts(t, s, u)
			if len(rs) != total {
				t.Errorf("%s: %d receipts, want %d", u, len(rs), total)
			}
			mustVerify(t, "Receipts of "+u, rs)
			if len(rs) > 0 && rec.LastHash != rs[len(rs)-1].Hash {
				t.Errorf("%s: record LastHash %q is not the last receipt's hash %q", u, rec.LastHash, rs[len(rs)-1].Hash)
			}
			shard := store.ShardOf(u, s.Shards())
			if _, ok := logs[shard]; !ok {
				logs[shard] = mustReadAll(t, s, shard)
			}
			var logged []uint64
			for _, ev := range eventsOf(logs[shard], u) {
				logged = append(logged, ev.Record.Version)
			}
			checkEqual(t, "versions of "+u+" in the changelog, in order", logged, seq(total))
		}
	})
}

// seq returns 1, 2, ..., n.
func seq(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}
