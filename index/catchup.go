package index

import (
	"context"
	"errors"
	"log/slog"

	"github.com/recguard/recguard/store"
)

// CatchUp brings x up to the end of every changelog by replaying what came
// after its positions. When the index cannot be trusted it builds a new one
// from scratch and returns it instead (rebuilt reports which happened):
// when a log was trimmed past x's position (store.ErrTrimmed), when a log is
// behind it (store.ErrRegressed, or a position of x beyond the log's tail: a
// failover to a lagging replica, a restore from an older snapshot, a
// checkpoint of another keyspace), when a changelog entry cannot be read
// (store.ErrCorrupt), when x has another shard count than the store, and
// when x NeedsRebuild. x may be nil: then it builds.
func CatchUp(ctx context.Context, st store.Store, x *Index) (out *Index, rebuilt bool, err error) {
	rebuild := func(why string, attrs ...any) (*Index, bool, error) {
		if x != nil {
			slog.Warn("index: rebuilding from the records: "+why, attrs...)
		}
		x, err := Build(ctx, st)
		if err != nil {
			return nil, true, err
		}
		return x, true, nil
	}
	if x == nil {
		return rebuild("")
	}
	n := st.Shards()
	if x.shards != n {
		return rebuild("the index has another shard count than the store", "index_shards", x.shards, "store_shards", n)
	}
	if x.NeedsRebuild() {
		return rebuild("a changelog entry could not be attributed")
	}
	for i := 0; i <= n; i++ {
		log := i
		if i == n {
			log = store.SettingsLog
		}
		tail, err := st.Tail(ctx, log)
		if err != nil {
			return nil, false, err
		}
		if after := x.Positions()[i]; after.Compare(tail) > 0 {
			return rebuild("a changelog is behind the index's position", "log", log, "index_at", after.String(), "log_tail", tail.String())
		}
		for {
			after := x.Positions()[i]
			evs, err := st.ReadChangelog(ctx, log, after, 1000, 0)
			switch {
			case errors.Is(err, store.ErrTrimmed):
				return rebuild("a changelog was trimmed past the index's position", "log", log)
			case errors.Is(err, store.ErrRegressed):
				return rebuild("a changelog is behind the index's position", "log", log, "err", err)
			case errors.Is(err, store.ErrCorrupt):
				return rebuild("a changelog entry cannot be read", "log", log)
			case err != nil:
				return nil, false, err
			}
			x.Apply(evs...)
			if len(evs) < 1000 {
				break
			}
		}
	}
	if x.NeedsRebuild() {
		return rebuild("a changelog entry could not be attributed")
	}
	return x, false, nil
}
