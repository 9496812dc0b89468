package sdk

import (
	"context"
	"errors"
	"time"

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
func (c *Client) followAll(mr store.MultiLogReader) {
	logs := make([]int, c.shards+1)
	for i := range logs {
		logs[i] = c.logOf(i)
	}
	after := make([]store.Position, len(logs))
	fails := 0
	block := time.Duration(0) // the first read does not wait: it confirms at once
	for c.ctx.Err() == nil {
		c.posMu.Lock()
		copy(after, c.applied)
		c.posMu.Unlock()
		start := time.Now()
		evs, err := mr.ReadLogs(c.ctx, logs, after, followBatch, block)
		block = c.cfg.PollBlock
		if errors.Is(err, errors.ErrUnsupported) {
			for i := 0; i <= c.shards; i++ {
				c.goRun(func() { c.followOne(i) })
			}
			return
		}
		if err != nil {
			fails = c.readFailed(err, fails)
			continue
		}
		fails = 0
		per := make([]int, len(logs))
		for i := range evs {
			per[c.index(evs[i].Log)]++
		}
		c.applyEvents(evs)
		for i := range logs {
			if per[i] < followBatch {
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
		after := c.applied[i]
		c.posMu.Unlock()
		start := time.Now()
		evs, err := c.st.ReadChangelog(c.ctx, log, after, followBatch, block)
		block = c.cfg.PollBlock
		if err != nil {
			var te *store.TrimmedError
			if errors.Is(err, store.ErrTrimmed) && !errors.As(err, &te) {
				err = &store.TrimmedError{Log: log, After: after}
			}
			fails = c.readFailed(err, fails)
			continue
		}
		fails = 0
		c.applyEvents(evs)
		if len(evs) < followBatch {
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
	fails++
	d := time.Duration(min(fails, 10)) * 50 * time.Millisecond
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
// the applied positions past them.
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
		case ev.Record != nil:
			c.installRecord(*ev.Record, true)
		}
		if !ev.Receipt.At.IsZero() {
			c.prop.observe(now.Sub(ev.Receipt.At))
		}
	}
	if x := c.idx.Load(); x != nil {
		x.Apply(evs...)
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

// confirm records that log index i was current as of t (when the read that
// proved it was issued).
func (c *Client) confirm(i int, t time.Time) {
	c.confirmed[i].Store(t.UnixNano())
	if time.Since(t) < c.cfg.Lease {
		c.ok[i].Store(true)
	}
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
				if now.Sub(time.Unix(0, c.confirmed[i].Load())) > c.cfg.Lease {
					c.ok[i].Store(false)
				}
			}
		}
	}
}

// rebuild restarts log index i after its changelog was trimmed past the
// follower: the follower jumps to the log's end and every cached view of the
// shard is dropped (or the settings re-read), so nothing is guessed.
func (c *Client) rebuild(i int) {
	c.rebuilds.Add(1)
	c.ok[i].Store(false)
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Lease)
	defer cancel()
	tail, err := c.st.Tail(ctx, c.logOf(i))
	if err != nil {
		return // retried on the next read; the lease keeps answers closed
	}
	if c.idx.Load() != nil {
		// The index cannot be patched either: build it again, and follow
		// log i from where the build read it, so both see what comes after.
		bctx, bcancel := context.WithTimeout(c.ctx, 10*time.Minute)
		x, err := index.Build(bctx, c.st)
		bcancel()
		if err != nil {
			return
		}
		c.idx.Store(x)
		tail = x.Positions()[i]
	}
	if i == c.shards {
		set, err := c.st.Settings(ctx)
		if err != nil {
			return
		}
		// The log was trimmed: take the stored settings as they are now,
		// even if (after a restore) their version went backwards.
		for {
			cur := c.settings.Load()
			if c.settings.CompareAndSwap(cur, &settingsView{set: set, gen: cur.gen + 1}) {
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
