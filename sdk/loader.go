package sdk

import (
	"context"
	"errors"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// loadCall is one user being read on a miss; concurrent misses for the same
// user wait on the same call.
type loadCall struct {
	hash   uint64
	userID string
	ph     *view // the placeholder inserted while loading
	done   chan struct{}
	v      *view
	err    error
}

// load returns the user's view read from the store, sharing one read with
// concurrent misses for the same user.
func (c *Client) load(ctx context.Context, h uint64, userID string) (*view, error) {
	c.loadMu.Lock()
	call, ok := c.inflight[userID]
	if !ok {
		call = &loadCall{hash: h, userID: userID, done: make(chan struct{})}
		call.ph = newPlaceholder(h, userID)
		c.inflight[userID] = call
	}
	c.loadMu.Unlock()
	if !ok {
		// The placeholder goes in before the read, so a changelog event for
		// the user that lands during the read is kept, not lost.
		if cur := c.cache.install(call.ph, false); cur != nil && !cur.loading && cur.gen == uint32(c.settings.Load().gen) {
			// The follower or a write filled it meanwhile: no read needed.
			c.finish(call, cur, nil)
			return cur, nil
		}
		select {
		case c.loadq <- call:
		case <-ctx.Done():
			c.finish(call, nil, ctx.Err())
			return nil, ctx.Err()
		case <-c.ctx.Done():
			c.finish(call, nil, ErrClosed)
			return nil, ErrClosed
		}
	}
	select {
	case <-call.done:
		return call.v, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// finish completes a call once: it publishes the result and wakes waiters.
func (c *Client) finish(call *loadCall, v *view, err error) {
	c.loadMu.Lock()
	if c.inflight[call.userID] != call {
		c.loadMu.Unlock()
		return
	}
	delete(c.inflight, call.userID)
	c.loadMu.Unlock()
	if err != nil {
		c.cache.remove(call.ph)
	}
	call.v, call.err = v, err
	close(call.done)
}

// loader reads queued misses in batches: whatever is queued when it wakes
// (up to MissBatch) goes to the store in one round trip.
func (c *Client) loader() {
	batch := make([]*loadCall, 0, c.cfg.MissBatch)
	ids := make([]string, 0, c.cfg.MissBatch)
	for {
		batch, ids = batch[:0], ids[:0]
		select {
		case <-c.ctx.Done():
			c.drainLoads()
			return
		case call := <-c.loadq:
			batch = append(batch, call)
		}
	fill:
		for len(batch) < c.cfg.MissBatch {
			select {
			case call := <-c.loadq:
				batch = append(batch, call)
			default:
				break fill
			}
		}
		for _, call := range batch {
			ids = append(ids, call.userID)
		}
		recs, err := c.read(ids)
		var bad map[string]bool
		if ids := store.Corrupted(err); ids != nil {
			// Those users are unknown: fail closed for them, serve the rest.
			bad = make(map[string]bool, len(ids))
			for _, id := range ids {
				bad[id] = true
			}
			c.corrupt.Add(uint64(len(ids)))
			if x := c.idx.Load(); x != nil {
				for _, id := range ids {
					x.MarkUnknown(id) // in no audience until a change brings the record back
				}
			}
			c.log().Error("sdk: records missing or corrupt; those users are answered fail closed (data_loss) until restored", "users", len(ids), "err", err)
			err = nil
		}
		var dl *store.DataLossError
		if errors.As(err, &dl) {
			c.markLost(dl.Logs, err)
		}
		sv := c.settings.Load()
		for i, call := range batch {
			if err != nil {
				c.finish(call, nil, err)
				continue
			}
			if bad[call.userID] {
				c.finish(call, nil, &store.CorruptError{UserIDs: []string{call.userID}, Detail: "record missing or corrupt"})
				continue
			}
			v := c.makeView(call.hash, recs[i], "", sv)
			// Install only over our placeholder or an older view: if the
			// user was dropped meanwhile (trimmed changelog), the answer
			// is still fresh for this caller but not cached.
			in := c.cache.install(v, true)
			switch {
			case in == nil || in == v || in.loading:
			case in.version > v.version:
				// Newer news arrived meanwhile, or the store went back in
				// time: the verifier tells which.
				c.verifyLater(call.userID, in.version)
				v = in
			case in.version == v.version && in.lastHash() != recs[i].LastHash:
				c.regress(int(call.hash%uint64(c.shards)), "a record was read at a version already seen with another history")
			default:
				v = in
			}
			c.finish(call, v, nil)
		}
	}
}

// read fetches records for ids in one round trip when the store can.
func (c *Client) read(ids []string) ([]consent.Record, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Lease)
	defer cancel()
	return c.readWith(ctx, ids)
}

// readWith reads the records of ids (GetMany when the store has it). Users
// whose record is missing or corrupt come back as empty records named by a
// *store.CorruptError returned with the records.
func (c *Client) readWith(ctx context.Context, ids []string) ([]consent.Record, error) {
	if bg, ok := c.st.(store.BatchGetter); ok {
		return bg.GetMany(ctx, ids)
	}
	out := make([]consent.Record, len(ids))
	var bad []string
	for i, id := range ids {
		r, err := c.st.Get(ctx, id)
		switch {
		case err == nil || errors.Is(err, store.ErrNotFound):
		case errors.Is(err, store.ErrCorrupt):
			bad = append(bad, id)
			r = consent.NewRecord(id)
		default:
			return nil, err
		}
		out[i] = r
	}
	if bad != nil {
		return out, &store.CorruptError{UserIDs: bad, Detail: "record missing or corrupt"}
	}
	return out, nil
}

// drainLoads fails every queued miss when the client closes.
func (c *Client) drainLoads() {
	for {
		select {
		case call := <-c.loadq:
			c.finish(call, nil, ErrClosed)
		default:
			return
		}
	}
}
