package sdk

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Errors of the ledger.
var (
	// ErrNoLedger reports RecordPush or RecordProvision on a client without
	// Config.Ledger.
	ErrNoLedger = errors.New("sdk: no ledger configured")
	// ErrLedgerFull reports a ledger entry dropped because the queue was
	// full. The drop is counted (Stats.LedgerDropped) and reported to the
	// store (store.Ledger.AddLedgerDrops) once it answers.
	ErrLedgerFull = errors.New("sdk: ledger queue full: entry dropped and counted")
)

// ledgerItem is one queued ledger entry: 64 bytes, one cache line,
// holding only the user ID string Recommend already has, so queuing an
// exposure allocates nothing.
type ledgerItem struct {
	kind     store.LedgerKind
	mode     uint8 // 0 none, 1 personalized/allowed, 2 non-personalized/refused
	decided  bool
	targeted bool
	reason   consent.Reason
	_        uint8
	items    uint16 // clamped at 65535
	at       int64  // Unix nanoseconds
	rv, sv   uint32 // the basis's versions; see setBasis
	id       consent.DecisionID
	user     string
	// extra holds what pushes and exposures from elsewhere carry (nil
	// for Recommend's exposures, which are recorded from the SDK).
	extra *ledgerExtra
}

// ledgerExtra is the rest of a push's or a reported exposure's entry.
type ledgerExtra struct {
	channel, campaign, surface string
	tags                       []tags.Tag
	contradicted               bool
	// rv and sv are the versions when one does not fit in 32 bits.
	rv, sv uint64
	big    bool
}

// setBasis records the basis's versions: in the item when they fit in 32
// bits (always, in practice), otherwise in extra (which it makes).
func (it *ledgerItem) setBasis(rv, sv uint64) {
	if rv <= 1<<32-1 && sv <= 1<<32-1 {
		it.rv, it.sv = uint32(rv), uint32(sv)
		return
	}
	if it.extra == nil {
		it.extra = &ledgerExtra{}
	}
	it.extra.rv, it.extra.sv, it.extra.big = rv, sv, true
}

func clampItems(n int) uint16 { return uint16(min(max(n, 0), 1<<16-1)) }

// ledgerState is the client's ledger queue and its counters.
//
// The queue is two buffers: producers append to cur under a mutex (one
// fixed-size copy, no allocation; a full buffer drops the item), and the
// writer swaps cur for its own empty buffer under the same mutex, then
// writes what it took without holding it. The lock is held for a copy or a
// swap, never for the write, so producers rarely wait. The writer wakes
// on its own every ledgerTick: a producer never wakes it (waking a parked
// goroutine from the hot path would schedule the writer on the caller's
// processor, taking its time).
type ledgerState struct {
	mu  sync.Mutex
	cur []ledgerItem // capacity Config.LedgerBuffer, never grown
	_   [40]byte
	// sample is the exposure sampling threshold: an exposure is recorded
	// when a random uint32 is below it (all: every one).
	sample   uint64
	all      bool
	size     int
	sent     atomic.Uint64
	dropped  [4]atomic.Uint64 // by kind: queue full or store error
	pending  [4]atomic.Uint64 // drops not yet reported to the store
	sampled  atomic.Uint64    // exposures left out by sampling
	lastDrop uint64           // drops already logged (writer only)
	// clock is the time (Unix nanoseconds) as of the last tick of
	// runClock, every millisecond: Recommend's exposures read it instead
	// of the clock (a clock read costs 30-60 ns on virtual machines), so
	// their times are to about a millisecond. A client with its own clock
	// (Config.Now) reads that instead.
	clock  atomic.Int64
	ownNow bool
}

func (l *ledgerState) init(cfg Config, ownNow bool) {
	l.size = cfg.LedgerBuffer
	l.cur = make([]ledgerItem, 0, l.size)
	l.all = cfg.LedgerSampling >= 1
	l.sample = uint64(cfg.LedgerSampling * (1 << 32))
	l.ownNow = ownNow
	l.clock.Store(time.Now().UnixNano())
}

// ledgerClockTick is how often the ledger's coarse clock is updated.
const ledgerClockTick = time.Millisecond

// runClock updates the coarse clock until the client closes.
func (c *Client) runClock() {
	t := time.NewTicker(ledgerClockTick)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			_ = now
			c.ledger.clock.Store(time.Now().UnixNano())
		case <-c.ctx.Done():
			return
		}
	}
}

// drop counts n entries of kind that never reached the ledger.
func (l *ledgerState) drop(kind store.LedgerKind, n uint64) {
	l.dropped[kind].Add(n)
	l.pending[kind].Add(n)
}

// enqueue queues it without blocking; a full queue drops it and counts it.
// It does not allocate.
func (l *ledgerState) enqueue(it *ledgerItem) bool {
	l.mu.Lock()
	n := len(l.cur)
	if n == cap(l.cur) {
		l.mu.Unlock()
		l.drop(it.kind, 1)
		return false
	}
	l.cur = append(l.cur, *it)
	l.mu.Unlock()
	return true
}

// take returns the queued items and queues into spare (emptied) from now.
func (l *ledgerState) take(spare []ledgerItem) []ledgerItem {
	l.mu.Lock()
	got := l.cur
	l.cur = spare[:0]
	l.mu.Unlock()
	return got
}

func (l *ledgerState) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur)
}

// ledgerNow is the time of a Recommend exposure, Unix nanoseconds: from
// Config.Now when the client has its own clock, otherwise the coarse clock
// runClock keeps (to about a millisecond, no clock read).
func (c *Client) ledgerNow() int64 {
	if c.ledger.ownNow {
		return c.cfg.Now().UnixNano()
	}
	return c.ledger.clock.Load()
}

// recordExposure queues the exposure of a Recommend answer (sampled). It
// does not allocate.
func (c *Client) recordExposure(userID string, res *Result, items int) {
	l := &c.ledger
	if !l.all && uint64(rand.Uint32()) >= l.sample {
		l.sampled.Add(1)
		return
	}
	it := ledgerItem{kind: store.LedgerExposure, decided: true, reason: res.Reason, items: clampItems(items),
		at: c.ledgerNow(), id: res.ID, user: userID}
	it.setBasis(res.RecordVersion, res.SettingsVersion)
	it.mode = 2
	if res.Personalized {
		it.mode = 1
	}
	l.enqueue(&it)
}

// HasLedger reports whether the client records a ledger (Config.Ledger).
func (c *Client) HasLedger() bool { return c.cfg.Ledger != nil }

// Exposed is an exposure recorded through RecordExposure: a recommendation
// served outside Recommend (for instance one reported to the server).
type Exposed struct {
	UserID string
	// At is when it was served; zero means now.
	At time.Time
	// Personalized says the personalized ranker ran.
	Personalized bool
	// Reason and Basis are the decision's, when the mode was decided
	// (Decided); otherwise the mode was only declared.
	Reason  consent.Reason
	Basis   consent.Basis
	Decided bool
	// Items is how many items were shown.
	Items int
	// Surface says where it was recorded ("http" for the server).
	Surface string
	// Tags are the tags the recommendation was chosen by, if the app
	// reports them (at most store.MaxLedgerTags): the enforcement audit
	// checks each against the user's deletions and sensitive consents.
	Tags []tags.Tag
	// Contradicted says the app declared the exposure personalized under
	// a decision (Basis, Reason) that was not: it is recorded as declared
	// (personalized, whatever Personalized says), and the enforcement
	// audit lists it as a violation.
	Contradicted bool
}

// RecordExposure queues an exposure for the ledger, sampled like
// Recommend's (Config.LedgerSampling), without blocking: a full queue drops
// it and returns ErrLedgerFull. A client without Config.Ledger returns
// ErrNoLedger. The user ID must be valid.
func (c *Client) RecordExposure(x Exposed) error {
	if c.cfg.Ledger == nil {
		return ErrNoLedger
	}
	if err := consent.ValidUserID(x.UserID); err != nil {
		return err
	}
	if err := validTags(x.Tags); err != nil {
		return err
	}
	l := &c.ledger
	if !l.all && uint64(rand.Uint32()) >= l.sample {
		l.sampled.Add(1)
		return nil
	}
	if x.At.IsZero() {
		x.At = c.cfg.Now()
	}
	it := ledgerItem{kind: store.LedgerExposure, decided: x.Decided, reason: x.Reason, items: clampItems(x.Items),
		at: x.At.UnixNano(), id: x.Basis.ID, user: x.UserID, extra: &ledgerExtra{surface: x.Surface, tags: slices.Clone(x.Tags), contradicted: x.Contradicted}}
	it.setBasis(x.Basis.RecordVersion, x.Basis.SettingsVersion)
	it.mode = 2
	if x.Personalized || x.Contradicted {
		it.mode = 1
	}
	if !l.enqueue(&it) {
		return ErrLedgerFull
	}
	return nil
}

// Push is a push the app sent, for RecordPush.
type Push struct {
	UserID string
	// Channel is the channel it was sent on; Targeted says it was chosen
	// from the user's tags or other personal characteristics.
	Channel  string
	Targeted bool
	// Campaign names the campaign (optional; A-Za-z0-9_.:@+=-, at most 128
	// bytes).
	Campaign string
	// At is when it was sent; zero means now.
	At time.Time
	// Decision is the DecidePush answer the push was sent under (its basis
	// goes to the ledger). The zero PushDecision says the app did not ask:
	// the ledger records the push as undecided.
	Decision PushDecision
	// Tags are the tags a targeted push was chosen by (at most
	// store.MaxLedgerTags): the enforcement audit checks each against the
	// user's deletions and sensitive consents at At.
	Tags []tags.Tag
}

// RecordPush records a push the app sent, with the basis of the DecidePush
// answer it was sent under, in the ledger (Art. 42 evidence: an
// enforcement audit replays it against the user's receipts). It checks the
// user ID, that the channel is one the settings configure and the
// campaign's syntax (errors wrap consent.ErrInvalidUserID,
// consent.ErrUnknownChannel or consent.ErrInvalidChange; nothing is
// queued), then queues the entry without blocking: a full queue drops it,
// counts it and returns ErrLedgerFull. The store write happens in the
// background, in batches; a store that fails counts the batch as dropped
// (Stats.LedgerDropped) and reports the count once it answers again.
// A client without Config.Ledger returns ErrNoLedger.
func (c *Client) RecordPush(ctx context.Context, p Push) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.cfg.Ledger == nil {
		return ErrNoLedger
	}
	if err := consent.ValidUserID(p.UserID); err != nil {
		return err
	}
	if p.Channel == "" {
		p.Channel, p.Targeted = p.Decision.Channel, p.Decision.Targeted
	}
	if !c.settings.Load().set.HasChannel(p.Channel) {
		return &consent.FieldError{Field: "channel", Detail: fmt.Sprintf("channel %q is not configured", clip(p.Channel)), Err: consent.ErrUnknownChannel}
	}
	if p.Campaign != "" {
		if err := store.ValidLabel("campaign", p.Campaign); err != nil {
			return err
		}
	}
	if err := validTags(p.Tags); err != nil {
		return err
	}
	if p.At.IsZero() {
		p.At = c.cfg.Now()
	}
	d := p.Decision
	it := ledgerItem{kind: store.LedgerPush, targeted: p.Targeted, at: p.At.UnixNano(), user: p.UserID, extra: &ledgerExtra{channel: p.Channel, campaign: p.Campaign, surface: "sdk", tags: slices.Clone(p.Tags)}}
	if !d.ID.IsZero() {
		it.decided, it.reason, it.id = true, d.Reason, d.ID
		it.setBasis(d.RecordVersion, d.SettingsVersion)
		it.mode = 2
		if d.Allowed && d.Channel == p.Channel && (d.Targeted || !p.Targeted) {
			it.mode = 1
		}
	}
	if !c.ledger.enqueue(&it) {
		return ErrLedgerFull
	}
	return nil
}

// RecordPushDecided is RecordPush for a push whose decision a server
// verified from a signed decision ID: the entry carries the decision as
// signed. Surface says where it was recorded.
func (c *Client) RecordPushDecided(p Push, sd *consent.SignedDecision, surface string) error {
	if c.cfg.Ledger == nil {
		return ErrNoLedger
	}
	if p.At.IsZero() {
		p.At = c.cfg.Now()
	}
	it := ledgerItem{kind: store.LedgerPush, targeted: p.Targeted, at: p.At.UnixNano(), user: p.UserID, extra: &ledgerExtra{channel: p.Channel, campaign: p.Campaign, surface: surface, tags: slices.Clone(p.Tags)}}
	if sd != nil {
		it.decided, it.reason, it.id = true, sd.Reason, sd.ID
		it.setBasis(sd.RecordVersion, sd.SettingsVersion)
		it.mode = 2
		if sd.Kind == consent.DecisionPush && sd.Allowed && sd.Channel == p.Channel && (sd.Targeted || !p.Targeted) {
			it.mode = 1
		}
	}
	if !c.ledger.enqueue(&it) {
		return ErrLedgerFull
	}
	return nil
}

// validTags checks the tags an exposure or a push reports: at most
// store.MaxLedgerTags, each of valid syntax (errors wrap
// consent.ErrInvalidChange).
func validTags(ts []tags.Tag) error {
	if len(ts) > store.MaxLedgerTags {
		return &consent.FieldError{Field: "tags", Detail: fmt.Sprintf("%d tags: at most %d", len(ts), store.MaxLedgerTags), Err: consent.ErrInvalidChange}
	}
	for _, t := range ts {
		if _, err := tags.Parse(string(t)); err != nil {
			return &consent.FieldError{Field: "tags", Detail: err.Error(), Err: consent.ErrInvalidChange}
		}
	}
	return nil
}

// Provision is an audience handed to a recipient (Art. 12), for
// RecordProvision.
type Provision struct {
	// Recipient is who received the user IDs (a push vendor, a partner);
	// Purpose what for. Both A-Za-z0-9_.:@+=-, 1 to 128 bytes.
	Recipient, Purpose string
	// Segment is the audience's segment expression; Channel and Targeted
	// the push it was built for.
	Segment  string
	Channel  string
	Targeted bool
	// Count is how many user IDs were handed over.
	Count int
	// At is when; zero means now.
	At time.Time
}

// RecordProvision writes a provision record to the ledger at once (not
// queued: an export must not go out unrecorded, so the caller should hand
// the audience over only when this returns nil). Provision records are
// kept at least three years (store.ProvisionRetention), whatever the
// ledger's retention.
func (c *Client) RecordProvision(ctx context.Context, p Provision) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.cfg.Ledger == nil {
		return ErrNoLedger
	}
	if p.At.IsZero() {
		p.At = c.cfg.Now()
	}
	e := store.LedgerEntry{Kind: store.LedgerProvision, At: p.At, Recipient: p.Recipient, Purpose: p.Purpose, Segment: p.Segment,
		Channel: p.Channel, Targeted: p.Targeted, Count: p.Count, Surface: "sdk"}
	if err := e.Validate(); err != nil {
		return err
	}
	if err := c.cfg.Ledger.AppendLedger(ctx, []store.LedgerEntry{e}); err != nil {
		c.ledger.drop(store.LedgerProvision, 1)
		return err
	}
	c.ledger.sent.Add(1)
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// entry turns a queued item into a store entry.
func (it *ledgerItem) entry() store.LedgerEntry {
	at := time.Unix(0, it.at).UTC()
	e := store.LedgerEntry{Kind: it.kind, UserID: it.user, At: at, DecisionID: it.id, RecordVersion: uint64(it.rv), SettingsVersion: uint64(it.sv),
		Reason: it.reason, Decided: it.decided, Surface: "sdk", Items: int(it.items), Targeted: it.targeted}
	if x := it.extra; x != nil {
		e.Channel, e.Campaign, e.Tags, e.Contradicted = x.channel, x.campaign, x.tags, x.contradicted
		if x.surface != "" {
			e.Surface = x.surface
		}
		if x.big {
			e.RecordVersion, e.SettingsVersion = x.rv, x.sv
		}
	}
	if it.decided {
		e.DecidedAt = at
	}
	switch {
	case it.mode == 1 && it.kind == store.LedgerExposure:
		e.Mode = store.ModePersonalized
	case it.mode == 2 && it.kind == store.LedgerExposure:
		e.Mode = store.ModeNonPersonalized
	case it.mode == 1:
		e.Mode = store.ModeAllowed
	case it.mode == 2:
		e.Mode = store.ModeRefused
	}
	return e
}

// ledgerBatch is the most entries written in one AppendLedger.
const ledgerBatch = 512

// ledgerTick is how often the writer takes what is queued: with the
// default queue (8192) the writer keeps up with 4 million entries a second.
const ledgerTick = 2 * time.Millisecond

// drainLedger writes queued entries to the store every ledgerTick, in
// batches of up to ledgerBatch, reports drops to the store once it
// answers, and logs new drops at most once per second.
func (c *Client) drainLedger() {
	l := &c.ledger
	spare := make([]ledgerItem, 0, l.size)
	batch := make([]store.LedgerEntry, 0, ledgerBatch)
	lastLog := time.Now()
	flush := func() {
		buf := l.take(spare)
		ok := true
		for off := 0; off < len(buf); off += ledgerBatch {
			part := buf[off:min(off+ledgerBatch, len(buf))]
			batch = batch[:0]
			for i := range part {
				batch = append(batch, part[i].entry())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := c.cfg.Ledger.AppendLedger(ctx, batch)
			cancel()
			if err != nil {
				ok = false
				for i := range batch {
					l.drop(batch[i].Kind, 1)
				}
				c.log().Warn("sdk: ledger write failed; entries dropped and counted", "entries", len(batch), "err", err)
			} else {
				l.sent.Add(uint64(len(batch)))
			}
			clear(batch)
		}
		// Not cleared: the writer touching the buffer would make the
		// producers' next writes to it cross-core misses. What it holds
		// (user IDs) is overwritten as it refills.
		spare = buf[:0]
		if ok {
			c.reportDrops()
		}
	}
	t := time.NewTicker(ledgerTick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			flush()
			if time.Since(lastLog) >= time.Second {
				var n uint64
				for i := range l.dropped {
					n += l.dropped[i].Load()
				}
				if n > l.lastDrop {
					c.log().Warn("sdk: ledger entries dropped (queue full or store unavailable)", "new", n-l.lastDrop, "total", n)
					l.lastDrop, lastLog = n, time.Now()
				}
			}
		case <-c.ctx.Done():
			flush()
			return
		}
	}
}

// reportDrops adds the drops not yet reported to the store's counts.
func (c *Client) reportDrops() {
	l := &c.ledger
	for k := store.LedgerExposure; k <= store.LedgerProvision; k++ {
		n := l.pending[k].Swap(0)
		if n == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.cfg.Ledger.AddLedgerDrops(ctx, k, n)
		cancel()
		if err != nil {
			l.pending[k].Add(n)
			return
		}
	}
}
