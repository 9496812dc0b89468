package storetest

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/recguard/recguard/store"
)

// testRegression checks that a reader whose position is past the end of a
// log (it applied entries the log no longer has: a failover to a replica
// that missed them, a restore from an older copy) is told so with
// store.ErrRegressed, never with an empty read it would take as "nothing
// new".
func testRegression(t *testing.T, newStore newStoreFunc) {
	ahead := func(t *testing.T, s store.Store, shard int) store.Position {
		t.Helper()
		tail, err := s.Tail(context.Background(), shard)
		if err != nil {
			t.Fatal(err)
		}
		ms, seq := tail.Parts()
		return store.Position(strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq+5, 10))
	}
	parallel(t, "read past the end", newStore, func(t *testing.T, s store.Store) {
		fillShard(t, s, 0, 4)
		after := ahead(t, s, 0)
		for _, block := range []bool{false, true} {
			b := 0 * shortBlock
			if block {
				b = shortBlock
			}
			_, err := s.ReadChangelog(context.Background(), 0, after, 10, b)
			if !errors.Is(err, store.ErrRegressed) {
				t.Fatalf("ReadChangelog after %s (past the tail), block %v: err = %v, want store.ErrRegressed", after, b, err)
			}
			var re *store.RegressedError
			if !errors.As(err, &re) || re.Log != 0 || re.After != after {
				t.Fatalf("error %v: want a *store.RegressedError naming log 0 and %s", err, after)
			}
		}
		// The log itself is unchanged: a reader at the tail reads nothing.
		tail, _ := s.Tail(context.Background(), 0)
		if evs, err := s.ReadChangelog(context.Background(), 0, tail, 10, 0); err != nil || len(evs) != 0 {
			t.Fatalf("read at the tail: %d events, %v; want none, nil", len(evs), err)
		}
	})
	parallel(t, "ReadLogs names the regressed log", newStore, func(t *testing.T, s store.Store) {
		mr, ok := s.(store.MultiLogReader)
		if !ok {
			t.Skip("store has no MultiLogReader")
		}
		fillShard(t, s, 1, 3)
		logs := []int{0, 1, store.SettingsLog}
		after := []store.Position{"", ahead(t, s, 1), ""}
		_, err := mr.ReadLogs(context.Background(), logs, after, 10, 0)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skip("ReadLogs unsupported in this configuration")
		}
		var re *store.RegressedError
		if !errors.As(err, &re) || re.Log != 1 {
			t.Fatalf("ReadLogs with log 1 read past its end: err = %v, want a *store.RegressedError for log 1", err)
		}
	})
}
