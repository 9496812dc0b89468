package index

import (
	"context"
	"errors"
	"log/slog"

	"github.com/recguard/recguard/store"
)

// CatchUp pages: events read a call, and events applied a call (one
// holding of the write lock: readers wait for it, but an erasure's number
// is cleared out of every bitmap once per call, not once per event).
// (Variables for the tests.)
var (
	catchUpPage  = 1000
	catchUpBatch = 1 << 16
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
//
// Events are applied up to catchUpBatch (65,536) at a time, each batch one
// write: readers wait for it (on 10 million users, about a third of a
// second a batch), and see the index before or after it, never part of it.
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
		// Pages are applied catchUpBatch events at a time: one write
		// each, whose erasures are cleared all at once (see clear.go).
		after := x.Positions()[i]
		buf := make([]store.Event, 0, min(catchUpBatch, catchUpPage))
		for {
			evs, err := st.ReadChangelog(ctx, log, after, catchUpPage, 0)
			switch {
			case errors.Is(err, store.ErrTrimmed):
				return rebuild("a changelog was trimmed past the index's position", "log", log)
			case errors.Is(err, store.ErrRegressed):
				return rebuild("a changelog is behind the index's position", "log", log, "err", err)
			case errors.Is(err, store.ErrCorrupt):
				return rebuild("a changelog entry cannot be read", "log", log)
			case err != nil:
				x.Apply(buf...)
				return nil, false, err
			}
			buf = append(buf, evs...)
			if len(evs) > 0 {
				after = evs[len(evs)-1].Pos
			}
			if len(evs) < catchUpPage || len(buf) >= catchUpBatch {
				x.Apply(buf...)
				clear(buf)
				buf = buf[:0]
			}
			if len(evs) < catchUpPage {
				break
			}
		}
	}
	if x.NeedsRebuild() {
		return rebuild("a changelog entry could not be attributed")
	}
	return x, false, nil
}
