package sdk

import (
	"context"
	"errors"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/store"
)

// followBatch is the most events one changelog read returns per log.
const followBatch = 512

// startFollowers follows every changelog: with one blocking read over all
// logs when the store can (store.MultiLogReader), else one goroutine per log.
func (c *Client) startFollowers() {
	if mr, ok := c.st.(store.MultiLogReader); ok {
		c.goRun(func() { c.followAll(mr) })
		return
	}
	for i := 0; i <= c.shards; i++ {
		c.goRun(func() { c.followOne(i) })
	}
}

// followAll reads every log with one blocking read. If the store turns out
// not to support that (a Redis Cluster), it hands over to per-log followers.
// A log whose slot lost its data is handed to a follower of its own, so the
// others keep confirming.
func (c *Client) followAll(mr store.MultiLogReader) {
	var idx []int // log indexes read here
	for i := 0; i <= c.shards; i++ {
		idx = append(idx, i)
	}
	fails := 0
	block := time.Duration(0) // the first read does not wait: it confirms at once
	for c.ctx.Err() == nil && len(idx) > 0 {
		for _, i := range idx {
			if c.resync[i].Load() && c.rebuild(i) {
				c.resync[i].Store(false)
			}
		}
		logs := make([]int, len(idx))
		after := make([]store.Position, len(idx))
		wrote := make([]store.Position, len(idx))
		c.posMu.Lock()
		for j, i := range idx {
			logs[j] = c.logOf(i)
			after[j] = c.applied[i]
			wrote[j] = c.wrote[i]
		}
		c.posMu.Unlock()
		start := time.Now()
		evs, err := mr.ReadLogs(c.ctx, logs, after, followBatch, block)
		block = c.cfg.PollBlock
		if errors.Is(err, errors.ErrUnsupported) {
			for _, i := range idx {
				c.goRun(func() { c.followOne(i) })
			}
			return
		}
		var dl *store.DataLossError
		if errors.As(err, &dl) {
			c.markLost(dl.Logs, err)
			// Follow the lost logs on their own; keep reading the others.
			keep := idx[:0:0]
			for _, i := range idx {
				if c.lost[i].Load() {
					c.goRun(func() { c.followOne(i) })
				} else {
					keep = append(keep, i)
				}
			}
			idx = keep
			continue
		}
		if err != nil {
			fails = c.readFailed(err, fails)
			continue
		}
		fails = 0
		per := make([]int, c.shards+1)
		for i := range evs {
			per[c.index(evs[i].Log)]++
		}
		c.applyEvents(evs)
		for j, i := range idx {
			if per[i] < followBatch && !c.resync[i].Load() && !c.lostWrite(i, wrote[j]) {
				c.confirm(i, start)
			}
		}
	}
}

// followOne follows one log (index i) on its own.
func (c *Client) followOne(i int) {
	log := c.logOf(i)
	fails := 0
	block := time.Duration(0) // the first read does not wait: it confirms at once
	for c.ctx.Err() == nil {
		c.posMu.Lock()
		after, wrote := c.applied[i], c.wrote[i]
		c.posMu.Unlock()
		start := time.Now()
		evs, err := c.st.ReadChangelog(c.ctx, log, after, followBatch, block)
		block = c.cfg.PollBlock
		if err != nil {
			var te *store.TrimmedError
			if errors.Is(err, store.ErrTrimmed) && !errors.As(err, &te) {
				err = &store.TrimmedError{Log: log, After: after}
			}
			var re *store.RegressedError
			if errors.Is(err, store.ErrRegressed) && !errors.As(err, &re) {
				err = &store.RegressedError{Log: log, After: after}
			}
			var dl *store.DataLossError
			if errors.Is(err, store.ErrDataLoss) && !errors.As(err, &dl) {
				err = &store.DataLossError{Logs: []int{log}, Detail: err.Error()}
			}
			fails = c.readFailed(err, fails)
			continue
		}
		fails = 0
		if !c.found(i) {
			continue
		}
		if c.resync[i].Load() {
			if c.rebuild(i) {
				c.resync[i].Store(false)
			}
			continue
		}
		c.applyEvents(evs)
		if len(evs) < followBatch && !c.lostWrite(i, wrote) {
			c.confirm(i, start)
		}
	}
}

// readFailed handles a failed changelog read: a trimmed log is rebuilt;
// anything else is waited out with growing pauses, while the lease runs out
// and answers fail closed. It returns the new failure count.
func (c *Client) readFailed(err error, fails int) int {
	if c.ctx.Err() != nil {
		return fails
	}
	var te *store.TrimmedError
	if errors.As(err, &te) {
		c.rebuild(c.index(te.Log))
		return 0
	}
	var re *store.RegressedError
	if errors.As(err, &re) {
		c.regressed.Add(1)
		c.log().Warn("sdk: changelog behind what this instance applied (failover or restore); shard fails closed until re-read", "log", re.Log, "applied", re.After.String(), "log_tail", re.Tail.String())
		c.rebuild(c.index(re.Log))
		return 0
	}
	var dl *store.DataLossError
	if errors.As(err, &dl) {
		c.markLost(dl.Logs, err)
	}
	fails++
	// Short pauses (50 ms growing to 200 ms): long enough not to spin on a
	// dead store, short enough to add little to the recovery once it heals.
	d := time.Duration(min(fails, 4)) * 50 * time.Millisecond
	select {
	case <-c.ctx.Done():
	case <-time.After(d):
	}
	return fails
}

func (c *Client) index(log int) int {
	if log == store.SettingsLog {
		return c.shards
	}
	return log
}

// applyEvents installs the records and settings carried by evs and moves
// the applied positions past them. A Shredded event (its user was erased
// after the change) installs nothing: it drops the user's view (see
// forgetUser), so the next answer reads the store again. An erase event
// installs the tombstone like any other record (its Prev, nil, is not
// read here).
func (c *Client) applyEvents(evs []store.Event) {
	if len(evs) == 0 {
		return
	}
	now := time.Now()
	for i := range evs {
		ev := &evs[i]
		switch {
		case ev.Settings != nil:
			c.installSettings(*ev.Settings)
		case ev.Shredded:
			switch {
			case ev.Record != nil:
				c.forgetUser(ev.Record.UserID, ev.Record.Version)
			case ev.Receipt.UserID != "":
				c.forgetUser(ev.Receipt.UserID, ev.Receipt.Seq)
			}
		case ev.Record != nil:
			c.installRecord(*ev.Record, ev.Pos, true)
		}
		if !ev.Receipt.At.IsZero() {
			c.prop.observe(now.Sub(ev.Receipt.At))
		}
	}
	if x := c.idx.Load(); x != nil {
		x.Apply(evs...)
		if x.NeedsRebuild() {
			// An event the index could not place (it names no user): one
			// rebuild (of the index from the records, and of this log's
			// views) before the next read confirms anything.
			c.resync[c.index(evs[0].Log)].Store(true)
		}
	}
	c.posMu.Lock()
	for i := range evs {
		ix := c.index(evs[i].Log)
		if evs[i].Pos.Compare(c.applied[ix]) > 0 {
			c.applied[ix] = evs[i].Pos
		}
	}
	c.posMu.Unlock()
	// Tell the other instances without holding up the next read.
	select {
	case c.announceNow <- struct{}{}:
	default: // one is already pending; it will carry these positions too
	}
}

// lostWrite checks, after a read of log index i that caught up with the
// log, that the read reached wrote, this client's newest write to the log
// acknowledged before the read began. When it did not, the store lost an
// acknowledged write (a failover to a replica that had not received it, a
// restart from an older copy): the shard is resynced and stays unconfirmed.
func (c *Client) lostWrite(i int, wrote store.Position) bool {
	if wrote == "" {
		return false
	}
	c.posMu.Lock()
	applied := c.applied[i]
	c.posMu.Unlock()
	if applied.Compare(wrote) >= 0 {
		return false
	}
	c.regressed.Add(1)
	c.log().Warn("sdk: the store lost a write this instance made and saw acknowledged; shard fails closed until re-read", "log", c.logOf(i), "write", wrote.String(), "log_reaches", applied.String())
	if c.rebuild(i) {
		c.posMu.Lock()
		if c.wrote[i].Compare(wrote) <= 0 {
			c.wrote[i] = ""
		}
		c.posMu.Unlock()
	}
	return true
}

// confirm records that log index i was current as of t (when the read that
// proved it was issued).
func (c *Client) confirm(i int, t time.Time) {
	c.confirmed[i].Store(t.UnixNano())
	if time.Since(t) < c.leaseOf(i) {
		c.ok[i].Store(true)
	}
}

// leaseOf is the lease of log index i: SettingsLease for the settings log,
// Lease for a shard.
func (c *Client) leaseOf(i int) time.Duration {
	if i == c.shards {
		return c.cfg.SettingsLease
	}
	return c.cfg.Lease
}

// watchdog withdraws the trust of every log whose follower has not
// confirmed within the lease. It runs 16 times per lease, so trust ends at
// most Lease/16 after the lease.
func (c *Client) watchdog() {
	t := time.NewTicker(c.cfg.Lease / 16)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			for i := range c.ok {
				if now.Sub(time.Unix(0, c.confirmed[i].Load())) > c.leaseOf(i) {
					c.ok[i].Store(false)
				}
			}
		}
	}
}

// rebuild restarts log index i after its changelog was trimmed past the
// follower, or found behind it (a regression): the follower jumps to the
// log's end and every cached view of the shard is dropped (or the settings
// re-read), so nothing is guessed. It reports whether it succeeded; until
// it does the log stays unconfirmed and its answers fail closed.
func (c *Client) rebuild(i int) bool {
	c.rebuilds.Add(1)
	c.ok[i].Store(false)
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Lease)
	defer cancel()
	tail, err := c.st.Tail(ctx, c.logOf(i))
	if err != nil {
		return false // retried on the next read; the lease keeps answers closed
	}
	if c.idx.Load() != nil {
		// The index cannot be patched either: build it again, and follow
		// log i from where the build read it, so both see what comes after.
		bctx, bcancel := context.WithTimeout(c.ctx, 10*time.Minute)
		x, err := index.Build(bctx, c.st)
		bcancel()
		if err != nil {
			return false
		}
		c.idx.Store(x)
		tail = x.Positions()[i]
	}
	if i == c.shards {
		set, err := c.st.Settings(ctx)
		if err != nil {
			return false
		}
		// The log was trimmed: take the stored settings as they are now,
		// even if (after a restore) their version went backwards.
		for {
			cur := c.settings.Load()
			if c.settings.CompareAndSwap(cur, newSettingsView(set, cur.gen+1)) {
				break
			}
		}
	} else {
		shard := uint64(i)
		n := uint64(c.shards)
		c.cache.drop(func(v *view) bool { return v.hash%n == shard })
	}
	c.posMu.Lock()
	c.applied[i] = tail
	c.posMu.Unlock()
	return true
}

// heartbeat announces the instance and its applied positions regularly,
// and at once after the followers applied new events.
func (c *Client) heartbeat() {
	c.announce()
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.announce()
		case <-c.announceNow:
			c.announce()
		}
	}
}

// announce tells the store how far this instance has applied each log.
func (c *Client) announce() {
	p, ok := c.st.(store.Presence)
	if !ok {
		return
	}
	c.posMu.Lock()
	applied := append([]store.Position(nil), c.applied...)
	c.posMu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Heartbeat)
	defer cancel()
	_ = p.Announce(ctx, c.id, applied, 3*c.cfg.Heartbeat)
}

// verifyCall asks the verifier to re-read a user whose cached view has a
// higher version than a record just read from the store.
type verifyCall struct {
	userID  string
	version uint64 // the cached version
}

// verifyLater queues a verification without waiting (dropped when the
// queue is full: the next read of the user queues it again).
func (c *Client) verifyLater(userID string, cached uint64) {
	select {
	case c.verifyq <- verifyCall{userID, cached}:
	default:
	}
}

// verifier runs queued verifications.
func (c *Client) verifier() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case v := <-c.verifyq:
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Lease)
			c.verify(ctx, v.userID, v.version)
			cancel()
		}
	}
}

// verify re-reads userID, whose view was cached at version cached. Versions
// of a record never go down in a store that lost nothing, and the view was
// installed before this read began, so a lower version now means the store
// went back in time: the shard's views are dropped, the shard fails closed
// until its follower re-read the truth, and the record read is installed.
// When the read fails the view is dropped (the next answer re-reads).
func (c *Client) verify(ctx context.Context, userID string, cached uint64) {
	h := xxhash.Sum64String(userID)
	shard := int(h % uint64(c.shards))
	recs, err := c.readWith(ctx, []string{userID})
	if err != nil {
		c.cache.drop(func(v *view) bool { return v.hash == h && v.userID() == userID })
		return
	}
	if recs[0].Version < cached {
		c.regress(shard, "a record was read at a lower version than one already applied")
		c.installRecord(recs[0], "", false)
	}
}

// regress handles evidence that shard's history went back in time (a
// failover to a replica that missed changes, a restore): the shard fails
// closed at once, its views are dropped, and its follower re-reads the
// truth (rebuild) before it confirms again.
func (c *Client) regress(shard int, why string) {
	c.regressed.Add(1)
	c.ok[shard].Store(false)
	c.resync[shard].Store(true)
	n := uint64(c.shards)
	c.cache.drop(func(v *view) bool { return v.hash%n == uint64(shard) })
	c.log().Warn("sdk: the store went back in time; shard fails closed until re-read", "shard", shard, "why", why)
}

// markLost records that the store reported data loss for logs (shards or
// store.SettingsLog): their answers fail closed with consent.ReasonDataLoss
// until a follower read shows the data is back.
func (c *Client) markLost(logs []int, err error) {
	for _, l := range logs {
		i := c.index(l)
		if i < 0 || i > c.shards {
			continue
		}
		c.lost[i].Store(true)
		c.ok[i].Store(false)
	}
	if !c.lostLogged.Swap(true) {
		c.log().Error("sdk: the store lost data (keyspace emptied or replaced); answers fail closed with reason data_loss until it is restored", "logs", logs, "err", err)
	}
}

// found clears log index i's data-loss mark after a successful read: the
// data is back (restored), but from an unknown point in time, so the shard
// is rebuilt before it is trusted.
func (c *Client) found(i int) bool {
	if !c.lost[i].Load() {
		return true
	}
	if !c.rebuild(i) {
		return false
	}
	c.lost[i].Store(false)
	c.log().Warn("sdk: data is back on a log that had lost it; rebuilt", "log", c.logOf(i))
	for j := range c.lost {
		if c.lost[j].Load() {
			return true
		}
	}
	c.lostLogged.Store(false)
	return true
}
