package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// ErrNoAudiences reports Audience on a client made without
// Config.Audiences.
var ErrNoAudiences = errors.New("sdk: audiences are off (Config.Audiences)")

// openIndex loads the index checkpoint (when the store keeps checkpoints)
// and replays the changelog after it; with no usable checkpoint it builds
// the index from the records.
func (c *Client) openIndex(ctx context.Context) error {
	var x *index.Index
	if cp, ok := c.st.(store.Checkpointer); ok {
		loaded, err := index.LoadCheckpoint(ctx, cp, c.cfg.CheckpointName)
		switch {
		case err == nil:
			x = loaded
		case errors.Is(err, store.ErrNotFound), errors.Is(err, index.ErrCorruptCheckpoint):
			// Build below.
		default:
			return err
		}
	}
	x, _, err := index.CatchUp(ctx, c.st, x)
	if err != nil {
		return fmt.Errorf("sdk: audience index: %w", err)
	}
	c.idx.Store(x)
	return nil
}

// Audience returns the users a push on channel may reach: those matching
// segment (see tags.ParseSegment), minus those who refused the channel,
// minus erased users, and for a push targeted by personal characteristics
// (targeted, or a segment naming tags or sensitive consents) minus those who
// turned personalization off or are minors without guardian consent. With
// the kill switch on the audience is empty. A push is the push purpose: a
// sensitive atom or a tag of a sensitive namespace counts only with a
// consent given for consent.PurposePush (Art. 22(4)). For one user the
// audience is exactly consent.InPushAudience; what each atom means is
// consent.AtomHolds.
//
// The audience is frozen: Count and Page stay stable while the index
// changes. When the client cannot confirm its index is current (a follower's
// lease expired) it returns index.ErrUnverified and no audience: it fails
// closed. A bad segment returns an error wrapping tags.ErrInvalidSegment; an
// unknown channel one wrapping index.ErrUnknownChannel.
func (c *Client) Audience(ctx context.Context, segment, channel string, targeted bool) (*index.Audience, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	x := c.idx.Load()
	if x == nil {
		return nil, ErrNoAudiences
	}
	seg, err := tags.ParseSegment(segment)
	if err != nil {
		return nil, err
	}
	if !c.verified() {
		return nil, index.ErrUnverified
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.settings.Load().set.Suspended {
		return x.Audience(&tags.Segment{Op: tags.OpNot, X: &tags.Segment{Op: tags.OpAll}}, channel, targeted)
	}
	return x.Audience(seg, channel, targeted)
}

// checkpointLoop saves the index every CheckpointEvery, and within
// ErasureCheckpointDelay of an erasure the index applied.
func (c *Client) checkpointLoop() {
	cp, ok := c.st.(store.Checkpointer)
	if !ok {
		return
	}
	delay := c.cfg.ErasureCheckpointDelay
	if delay <= 0 {
		delay = 10 * time.Second
	}
	tick := min(c.cfg.CheckpointEvery, delay)
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	var savedErasures uint64
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			x := c.idx.Load()
			if x == nil {
				continue
			}
			erasures := x.Erasures()
			if now.Sub(last) < c.cfg.CheckpointEvery && erasures == savedErasures {
				continue
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.CheckpointEvery)
			if err := x.Save(ctx, cp, c.cfg.CheckpointName); err == nil {
				last, savedErasures = now, erasures
			}
			cancel()
		}
	}
}

// Checkpoint saves the audience index now (when the store keeps
// checkpoints).
func (c *Client) Checkpoint(ctx context.Context) error {
	x := c.idx.Load()
	if x == nil {
		return ErrNoAudiences
	}
	cp, ok := c.st.(store.Checkpointer)
	if !ok {
		return fmt.Errorf("sdk: store keeps no checkpoints: %w", errors.ErrUnsupported)
	}
	return x.Save(ctx, cp, c.cfg.CheckpointName)
}
