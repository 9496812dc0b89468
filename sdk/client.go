package sdk

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/store"
)

// settingsView is one published version of the settings with its
// generation; views computed under an older generation are recomputed on
// their next hit.
type settingsView struct {
	set consent.Settings
	gen uint64
	// suspended is the answer while set.Suspended: the kill switch, on
	// these settings' version.
	suspended consent.Decision
}

// newSettingsView publishes set as generation gen.
func newSettingsView(set consent.Settings, gen uint64) *settingsView {
	sv := &settingsView{set: set, gen: gen}
	sv.suspended = consent.Decision{Reason: consent.ReasonSuspended, PushBlock: consent.ReasonSuspended}
	sv.suspended.SettingsVersion = set.Version
	return sv
}

// Client answers Decide, CanPush and Recommend from a cache kept current by
// following the store's changelogs. It is safe for concurrent use.
type Client struct {
	st     store.Store
	cfg    Config
	shards int
	id     string
	cache  *cache

	settings atomic.Pointer[settingsView]
	// ok[i] says log i (shards 0..n-1, then the settings log at index n)
	// confirmed it was current within the lease.
	ok        []atomic.Bool
	confirmed []atomic.Int64 // unix nanos of each log's last confirmation
	// lost[i] says the store reported log i's slot lost its data
	// (store.ErrDataLoss): answers for its users fail closed with
	// consent.ReasonDataLoss until a read shows the data is back.
	lost []atomic.Bool
	// resync[i] asks log i's follower to drop the shard's views and re-read
	// the truth before confirming again (a record regressed).
	resync []atomic.Bool
	// lostLogged says a data loss was logged (once per episode).
	lostLogged atomic.Bool
	verifyq    chan verifyCall

	posMu   sync.Mutex
	applied []store.Position // per log index, what the follower applied
	// wrote is, per log index, the newest position of a write this client
	// made: a follower that caught up without reaching it (the read began
	// after the write was acknowledged) shows the write was lost.
	wrote []store.Position

	// hits counts cache hits per stripe of users; a stripe's count doubles
	// as the sequence number of the answers it counts (see idOf), so a hit
	// costs no second atomic.
	hits [64]paddedCounter
	// answers numbers the other answers (misses and fail-closed ones).
	answers atomic.Uint64
	// nonce starts every DecisionID this client makes: 8 random bytes
	// chosen in New.
	nonce      uint64
	misses     atomic.Uint64
	rebuilds   atomic.Uint64
	regressed  atomic.Uint64
	corrupt    atomic.Uint64
	dropped    atomic.Uint64
	sent       atomic.Uint64
	prop       histogram
	unverified consent.Decision
	unavail    consent.Decision
	dataLoss   consent.Decision

	loadMu   sync.Mutex
	inflight map[string]*loadCall
	loadq    chan *loadCall

	expq chan Exposure

	ledger ledgerState // Config.Ledger's queue and counters (ledger.go)

	announceNow chan struct{} // wakes the heartbeat after applied events

	idx atomic.Pointer[index.Index] // nil unless Config.Audiences

	closed atomic.Bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type paddedCounter struct {
	n atomic.Uint64
	_ [56]byte
}

// New starts a client on st: it reads the settings, positions a follower at
// the end of every changelog, and waits (up to ctx's deadline, or one Lease)
// until every follower has confirmed it is current. A client that could not
// confirm in time is still returned and fails closed until it can.
func New(ctx context.Context, st store.Store, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ownNow := cfg.Now != nil
	cfg.fill()
	if cfg.InstanceID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.InstanceID = "sdk-" + hex.EncodeToString(b[:])
	}
	if err := consent.ValidUserID(cfg.InstanceID); err != nil {
		return nil, fmt.Errorf("%w: InstanceID: %v", ErrInvalidConfig, err)
	}
	if _, ok := st.(store.Presence); cfg.WaitForAll && !ok {
		return nil, ErrNoPresence
	}
	n := st.Shards()
	c := &Client{
		st: st, cfg: cfg, shards: n, id: cfg.InstanceID,
		cache:     newCache(cfg.CacheSize),
		ok:        make([]atomic.Bool, n+1),
		confirmed: make([]atomic.Int64, n+1),
		lost:      make([]atomic.Bool, n+1),
		resync:    make([]atomic.Bool, n+1),
		verifyq:   make(chan verifyCall, 64),
		applied:   make([]store.Position, n+1),
		wrote:     make([]store.Position, n+1),
		inflight:  map[string]*loadCall{},
		loadq:     make(chan *loadCall, 4*cfg.MissBatch*cfg.Loaders),
		expq:      make(chan Exposure, cfg.ExposureBuffer),

		announceNow: make(chan struct{}, 1),
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	c.nonce = binary.BigEndian.Uint64(nonce[:])
	c.ledger.init(cfg, ownNow)
	c.unverified = consent.Decision{Reason: consent.ReasonUnverified, PushBlock: consent.ReasonUnverified}
	c.unavail = consent.Decision{Reason: consent.ReasonUnavailable, PushBlock: consent.ReasonUnavailable}
	c.dataLoss = consent.Decision{Reason: consent.ReasonDataLoss, PushBlock: consent.ReasonDataLoss}

	// Positions first, then the settings: nothing written in between is
	// missed, because the followers start from these positions. With
	// audiences, the index's positions (after loading its checkpoint and
	// catching up) are where the followers start, so cache and index see
	// the same events.
	if cfg.Audiences {
		if err := c.openIndex(ctx); err != nil {
			return nil, err
		}
		copy(c.applied, c.idx.Load().Positions())
	} else {
		for i := 0; i <= n; i++ {
			p, err := st.Tail(ctx, c.logOf(i))
			if err != nil {
				return nil, err
			}
			c.applied[i] = p
		}
	}
	set, err := st.Settings(ctx)
	if err != nil {
		return nil, err
	}
	c.settings.Store(newSettingsView(set, 1))

	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.startFollowers()
	c.goRun(c.watchdog)
	c.goRun(c.verifier)
	for i := 0; i < cfg.Loaders; i++ {
		c.goRun(c.loader)
	}
	if _, ok := st.(store.Presence); ok {
		c.goRun(c.heartbeat)
	}
	if cfg.ExposureSink != nil {
		c.goRun(c.drainExposures)
	}
	if cfg.Ledger != nil {
		c.goRun(c.drainLedger)
		if !ownNow {
			c.goRun(c.runClock)
		}
	}
	if cfg.Audiences && cfg.CheckpointEvery > 0 {
		c.goRun(c.checkpointLoop)
	}

	wait := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, cfg.Lease)
		defer cancel()
	}
	_ = c.Ready(wait)
	return c, nil
}

func (c *Client) log() *slog.Logger { return c.cfg.Logger }

// logOf maps a log index (0..n) to the store's log number.
func (c *Client) logOf(i int) int {
	if i == c.shards {
		return store.SettingsLog
	}
	return i
}

func (c *Client) goRun(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// Ready waits until every follower has confirmed it is current, or ctx
// ends.
func (c *Client) Ready(ctx context.Context) error {
	for {
		if c.verified() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (c *Client) verified() bool {
	if c.closed.Load() {
		return false
	}
	for i := range c.ok {
		if !c.ok[i].Load() {
			return false
		}
	}
	return true
}

// InstanceID returns the name this client announces itself under.
func (c *Client) InstanceID() string { return c.id }

// Close stops the followers and background work and leaves the live
// instances. It does not close the store.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.cancel()
	c.wg.Wait()
	if p, ok := c.st.(store.Presence); ok {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.Leave(ctx, c.id)
		cancel()
	}
	return nil
}

// Settings returns the settings the client currently applies.
func (c *Client) Settings() consent.Settings { return c.settings.Load().set.Clone() }

// Decide returns the decision for one recommendation request: personalized
// or not, the typed reason, the tags a personalized ranker may use and the
// channels that may receive pushes, with its basis (Decision.Basis: the
// record and settings versions it was computed from, and an ID unique to
// this answer).
//
// On a cache hit it takes no lock, allocates nothing and does no I/O. On a
// miss it reads the user from the store (batched with concurrent misses).
// The returned Decision is always safe to act on: when the client cannot be
// sure of the user's consent it is non-personalized and refuses pushes, with
// consent.ReasonUnverified (a follower's lease expired) or
// consent.ReasonUnavailable (the store could not be read) as the reason.
// The error is non-nil only for an invalid user ID, a closed client or an
// ended ctx; the Decision is then the zero (fail-closed) one or the
// unavailable one. Its slices are shared and must not be modified.
func (c *Client) Decide(ctx context.Context, userID string) (d consent.Decision, err error) {
	// The answer is copied once, straight into the result: a Decision is
	// large enough that copies through temporaries show on the hot path.
	v, fc, seq, err := c.view(ctx, userID)
	switch {
	case v != nil:
		v.fill(&d)
	case fc != nil:
		d = *fc
	}
	d.ID = c.idOf(seq)
	return d, err
}

// Answer sequence numbers (view's seq): the source in the top 7 bits (a
// hit stripe 0..63, or seqOther for the other answers), that source's
// count in the low 57 bits. Zero means no answer was given.
const (
	seqOther  = 64
	seqBits   = 57
	seqCounts = 1<<seqBits - 1
)

// idOf makes the DecisionID of the answer numbered seq: the client's nonce,
// then seq; the zero ID for seq 0. It allocates nothing.
func (c *Client) idOf(seq uint64) consent.DecisionID {
	var id consent.DecisionID
	if seq != 0 {
		binary.BigEndian.PutUint64(id[:8], c.nonce)
		binary.BigEndian.PutUint64(id[8:], seq)
	}
	return id
}

// otherSeq numbers an answer that is not a cache hit.
func (c *Client) otherSeq() uint64 { return seqOther<<seqBits | c.answers.Add(1)&seqCounts }

// view returns the user's current view, or, when there is none to trust,
// the fail-closed decision to give instead (shared: never modify it; nil
// with an error other than an ended ctx); and the sequence number of this
// answer (see idOf; zero with an error other than an ended ctx).
func (c *Client) view(ctx context.Context, userID string) (*view, *consent.Decision, uint64, error) {
	if c.closed.Load() {
		return nil, nil, 0, ErrClosed
	}
	h := xxhash.Sum64String(userID)
	shard := int(h % uint64(c.shards))
	if !c.ok[shard].Load() || !c.ok[c.shards].Load() {
		if c.lost[shard].Load() || c.lost[c.shards].Load() {
			return nil, &c.dataLoss, c.otherSeq(), nil
		}
		return nil, &c.unverified, c.otherSeq(), nil
	}
	sv := c.settings.Load()
	if sv.set.Suspended {
		return nil, &sv.suspended, c.otherSeq(), nil
	}
	if v := c.cache.lookup(h, userID); v != nil && !v.loading {
		stripe := (h >> 8) & 63
		seq := stripe<<seqBits | c.hits[stripe].n.Add(1)&seqCounts
		if v.gen != uint32(sv.gen) {
			v = c.refresh(v, sv)
		}
		return v, nil, seq, nil
	}
	if err := consent.ValidUserID(userID); err != nil {
		return nil, nil, 0, err
	}
	c.misses.Add(1)
	v, err := c.load(ctx, h, userID)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &c.unavail, c.otherSeq(), ctx.Err()
		}
		if errors.Is(err, ErrClosed) {
			return nil, &c.unavail, 0, err
		}
		if errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrDataLoss) {
			return nil, &c.dataLoss, c.otherSeq(), nil
		}
		return nil, &c.unavail, c.otherSeq(), nil
	}
	return v, nil, c.otherSeq(), nil
}

// refresh recomputes a view's decision under newer settings (no I/O).
func (c *Client) refresh(v *view, sv *settingsView) *view {
	nv := c.makeView(v.hash, v.record(&c.cache.in), v.pos(), sv)
	if in := c.cache.install(nv, true); in != nil && in.version > nv.version {
		return in
	}
	return nv
}

// makeView builds the view of rec under sv, written at pos (empty when
// unknown), for this client's cache (see newView).
func (c *Client) makeView(h uint64, rec consent.Record, pos store.Position, sv *settingsView) *view {
	return newView(&c.cache.in, h, rec, pos, sv)
}

// CanPush answers whether a push on channel may be sent to the user now, and
// why. A push targeted by tags or other personal characteristics is refused
// while personalization is off; a refused channel, the kill switch, an
// erased user and any doubt (unverified, unavailable) refuse every push. The
// error follows Decide's rules.
//
// DecidePush gives the same answer with its basis.
func (c *Client) CanPush(ctx context.Context, userID, channel string, targeted bool) (bool, consent.Reason, error) {
	v, fc, _, err := c.view(ctx, userID)
	switch {
	case v != nil:
		d := v.decision()
		ok, why := d.CanPush(channel, targeted)
		return ok, why, nil
	case fc != nil:
		return false, fc.Reason, err
	}
	return false, consent.ReasonUnknown, err
}

// PushDecision is DecidePush's answer: whether a push on Channel may be
// sent to the user now, why, and its basis (the record and settings
// versions it was computed from, and an ID unique to this answer).
type PushDecision struct {
	// Allowed says the push may be sent.
	Allowed bool
	// Reason is consent.ReasonAllowed when Allowed, otherwise why not.
	Reason consent.Reason
	// Channel and Targeted are the push asked about.
	Channel  string
	Targeted bool
	consent.Basis
}

// DecidePush answers CanPush's question (same rules, same errors) with the
// answer's basis. On a cache hit it takes no lock, allocates nothing and
// does no I/O.
func (c *Client) DecidePush(ctx context.Context, userID, channel string, targeted bool) (p PushDecision, err error) {
	v, fc, seq, err := c.view(ctx, userID)
	p.Channel, p.Targeted, p.ID = channel, targeted, c.idOf(seq)
	switch {
	case v != nil:
		d := v.decision()
		p.Allowed, p.Reason = d.CanPush(channel, targeted)
		p.RecordVersion, p.SettingsVersion = d.RecordVersion, d.SettingsVersion
	case fc != nil:
		p.Reason = fc.Reason // fail closed: no push
		p.RecordVersion, p.SettingsVersion = fc.RecordVersion, fc.SettingsVersion
	}
	return p, err
}

// ShouldAsk reports whether the app may ask the user for consent kind k
// now (consent.ShouldAsk on the cached state): not while it is in force and
// not inside the re-ask cooldown after a refusal (Art. 22). When the client
// cannot be sure of the user's state it says no.
func (c *Client) ShouldAsk(ctx context.Context, userID string, k consent.Kind) (bool, error) {
	v, _, _, err := c.view(ctx, userID)
	if v == nil {
		return false, err
	}
	sv := c.settings.Load()
	return consent.ShouldAsk(v.state(&c.cache.in), k, &sv.set, c.cfg.Now()), nil
}

// Apply records a change through the store and makes it visible to this
// client at once (read-your-writes). With Config.WaitForAll it returns only
// after every live instance applied it, or ErrNotPropagated (the change
// itself is recorded) after Config.PropagationTimeout.
func (c *Client) Apply(ctx context.Context, ch consent.Change) (store.Applied, error) {
	if c.closed.Load() {
		return store.Applied{}, ErrClosed
	}
	a, err := c.st.Apply(ctx, ch)
	if err != nil && !errors.Is(err, store.ErrNotReplicated) {
		var dl *store.DataLossError
		if errors.As(err, &dl) {
			c.markLost(dl.Logs, err)
		}
		return a, err
	}
	// The change stands (on the primary at least): read-your-writes.
	c.posMu.Lock()
	if a.Pos.Compare(c.wrote[a.Shard]) > 0 {
		c.wrote[a.Shard] = a.Pos
	}
	c.posMu.Unlock()
	c.installTruth(ctx, a.Record, a.Pos)
	if err != nil || !c.cfg.WaitForAll || a.Receipt == nil {
		return a, err
	}
	if a.Pos == "" {
		// A write made once whose reply was lost and resent, its entry no
		// longer among the log's last: recorded, where unknown.
		return a, fmt.Errorf("%w: the change is recorded but its changelog position is unknown", ErrNotPropagated)
	}
	return a, c.WaitApplied(ctx, a.Shard, a.Pos)
}

// installRecord caches rec (if newer than what is cached). rec comes from
// the store as it is now or was recently (a changelog event, a write's
// result); a cached view of the same version from another history (another
// receipt chain head) shows the store went back in time: the shard is
// resynced and rec, which is the truth now, replaces the view.
//
// pos is where rec was written in its changelog (empty when unknown). A
// cached view written earlier in the log with a higher version than rec
// shows the same: the log was rewound and written again.
func (c *Client) installRecord(rec consent.Record, pos store.Position, onlyIfPresent bool) *view {
	h := xxhash.Sum64String(rec.UserID)
	if rec.State.Erased {
		// A tombstone: no combination of the user's tags stays shared.
		c.cache.in.forgetLists()
	}
	v := c.makeView(h, rec, pos, c.settings.Load())
	in := c.cache.install(v, onlyIfPresent)
	if in == nil || in == v || in.loading {
		return in
	}
	shard := int(h % uint64(c.shards))
	switch {
	case in.version == rec.Version && in.lastHash() != rec.LastHash:
		c.regress(shard, "a record came back at a version already seen with another history")
		in = c.cache.install(v, onlyIfPresent)
	case in.version > rec.Version && pos != "" && in.pos() != "" && pos.Compare(in.pos()) > 0:
		c.regress(shard, "a later changelog entry carries a lower version than one applied")
		in = c.cache.install(v, onlyIfPresent)
	case in.version > rec.Version && in.pos() == "" && pos != "":
		// The cached view was read, not followed: a newer read, or one from
		// a history since lost. The verifier tells which.
		c.verifyLater(rec.UserID, in.version)
	}
	return in
}

// forgetUser drops userID's cached view (or the placeholder of a read in
// flight, whose result then answers its caller but is not cached) after a
// Shredded changelog entry of version: the user was erased after that
// change, so any view of a version before the erasure holds personal data
// that is gone, and a shredded entry carries nothing to replace it with.
// The next answer for the user reads the store (fail closed: nothing stale
// is served). Only a cached tombstone at that version or later is kept: it
// is the erasure itself (this client's own write, or a read after it).
func (c *Client) forgetUser(userID string, version uint64) {
	if userID == "" {
		return
	}
	h := xxhash.Sum64String(userID)
	c.cache.dropUser(h, userID, func(v *view) bool {
		return !v.loading && v.erased && v.version >= version
	})
	c.cache.in.forgetLists()
}

// installTruth caches rec, the result of this client's own write. A cached
// view with a higher version may be legitimate (another writer's change
// applied meanwhile) or a sign that the store lost changes; the user is
// re-read at once to tell, so the write is never hidden behind a view from
// a lost history.
func (c *Client) installTruth(ctx context.Context, rec consent.Record, pos store.Position) {
	in := c.installRecord(rec, pos, false)
	if in != nil && !in.loading && in.version > rec.Version {
		c.verify(ctx, rec.UserID, in.version)
	}
}

// WaitApplied waits until every live instance (store.Presence) has applied
// log (a shard, or store.SettingsLog) up to pos, or returns an error
// wrapping ErrNotPropagated after Config.PropagationTimeout or when ctx
// ends. The change at pos stands either way. A store without Presence
// returns ErrNoPresence. The server uses it to acknowledge restrictive
// changes only once every instance honours them.
func (c *Client) WaitApplied(ctx context.Context, log int, pos store.Position) error {
	p, ok := c.st.(store.Presence)
	if !ok {
		return ErrNoPresence
	}
	shard := log
	deadline := time.Now().Add(c.cfg.PropagationTimeout)
	sleep := 100 * time.Microsecond
	for {
		ins, err := p.Instances(ctx)
		if err == nil {
			behind := 0
			for _, in := range ins {
				if in.AppliedIn(shard).Compare(pos) < 0 {
					behind++
				}
			}
			if behind == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: %d of %d instances behind %s after %v", ErrNotPropagated, behind, len(ins), pos, c.cfg.PropagationTimeout)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%w: %v", ErrNotPropagated, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotPropagated, ctx.Err())
		case <-time.After(sleep):
		}
		sleep = min(2*sleep, 2*time.Millisecond)
	}
}

// SetSettings saves new settings through the store (see
// store.Store.SetSettings) and applies them to this client at once; other
// instances follow through the settings changelog.
func (c *Client) SetSettings(ctx context.Context, set consent.Settings, actor consent.Actor, surface consent.Surface) (consent.Settings, consent.Receipt, error) {
	if c.closed.Load() {
		return consent.Settings{}, consent.Receipt{}, ErrClosed
	}
	saved, rc, err := c.st.SetSettings(ctx, set, actor, surface)
	if err != nil && !errors.Is(err, store.ErrNotReplicated) {
		return saved, rc, err
	}
	c.installSettings(saved) // it stands, on the primary at least
	return saved, rc, err
}

// installSettings publishes set if it is newer than what the client has.
func (c *Client) installSettings(set consent.Settings) {
	for {
		cur := c.settings.Load()
		if set.Version <= cur.set.Version {
			return
		}
		if c.settings.CompareAndSwap(cur, newSettingsView(set, cur.gen+1)) {
			return
		}
	}
}
