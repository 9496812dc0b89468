package audit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recguard/recguard/audit/stats"
	"github.com/recguard/recguard/internal/prefetch"
	"github.com/recguard/recguard/tags"
)

// Options tune Run.
type Options struct {
	// Strict stops at the first malformed line (Run returns its
	// *LineError) instead of skipping it.
	Strict bool
	// Progress, when set, is called with the number of events read so far
	// every 100,000 events, from the goroutine that called Run.
	Progress func(events int64)
	// Now gives the report's Generated time; nil means time.Now.
	Now func() time.Time
	// MaxPriceCells bounds the (item, time bucket) cells kept for the
	// same-item price comparison; 0 (or less) means 2,000,000. Once it is
	// reached no new cell is started: events with a price that would need
	// one are left out of the comparison and counted in a note.
	MaxPriceCells int
}

// Limits of Run.
const (
	// DefaultMaxPriceCells is Options.MaxPriceCells when zero.
	DefaultMaxPriceCells = 2_000_000
	// MaxProblems is the most LineProblems a Report lists.
	MaxProblems = 100
	// MaxDistinctValues is the most distinct values a distribution keeps
	// exactly (values are first rounded to 1e-6); past it the distribution
	// is rebinned to 3 significant digits, and stays so.
	MaxDistinctValues = 100_000
	// ProgressEvery is how often Options.Progress is called, in events.
	ProgressEvery = 100_000

	userBatch     = 1024    // distinct new users per UserFacts call
	pendingEvents = 1 << 16 // events held while waiting for a batch
	chunkSize     = 512     // events per hand-off from the reading goroutine
	memoMax       = 1 << 16 // cached atom sets -> groups
)

// Run audits the events of src under spec, with the users' facts from
// users (nil: no user has any fact), and returns the report.
//
// The spec is normalized and validated first (an invalid one fails with an
// error wrapping ErrInvalidSpec). Events are read once, in a pipeline:
// one goroutine reads and decodes them and numbers users (by two
// independent hashes of the ID; two IDs equal on both, a chance near 2^-96
// per pair, would be merged) and items, the calling one aggregates, and a
// third keeps what the strata and the price cells need of each aggregated
// event, in the same order (see startTail). ReadJSONL's lines are decoded
// on every core, and numbered in the order read (readpar.go): the report
// is the one a single decoding goroutine gives. Memory is O(users + items
// + groups x metrics x distinct values + price cells), plus, when
// comparing within strata, 28 bytes per event kept (and 4 per event and
// distribution for its percentile within its stratum).
// Malformed lines are counted, listed (the first
// MaxProblems) and skipped, unless opts.Strict. User facts are asked of
// users in batches of up to 1,024 distinct new users (their events wait,
// at most 65,536 of them) and kept per user; a user missing from the
// answer has no facts. When users is an ExcludingFacts (StoreFacts is),
// the events of the users it excludes (restricted processing, erased) are
// left out of everything and counted in Report.Excluded; so are the events
// StoreSource itself leaves out. A Source of this package must not be used
// after it is given to Run.
//
// For each event inside [From, To) (a zero bound is open), each group's
// segment is evaluated with an oracle that holds for the user's facts and
// for the event's attributes; an event can be in several groups. Per group
// Run counts distinct users and events and accumulates each metric: a rate
// is successes/n over the events that record the field (for discount and
// free fields: value > 0); a mean keeps a running mean and variance; a
// distribution keeps value counts (rounded to 1e-6; rebinned to 3
// significant digits past MaxDistinctValues distinct values, after which
// its quantiles and Mann-Whitney test are those of the rounded values).
// Non-finite values (from a Source of another package) are not recorded.
//
// Groups with fewer distinct users than MinGroupSize are suppressed: they
// show no figures and take no part in any comparison; a suppressed
// reference means no comparison at all. Each other group is compared with
// the reference on every metric both have data for (means: at least two
// observations each):
//
//   - rate and mean: at the user level (see cluster.go): each side's
//     ratio-of-sums rate or mean over its users, the difference with its
//     cluster-robust standard error (users in both groups add their
//     covariance), a t test with min(users) - 1 degrees of freedom
//     (cluster_robust_t, Statistic t), the ratio with a delta-method log
//     interval. One heavy user's many events count as one witness, so
//     users who differ among themselves do not make a null look
//     significant. When a side has fewer than two users with a value the
//     event-level test runs instead (and says so): for a rate Newcombe's
//     interval, the Katz ratio interval and Fisher's exact test when an
//     expected count is below 5 (Statistic the odds ratio), else the
//     two-proportion z test; for a mean Welch's interval and t test;
//   - distribution: Mann-Whitney U test over events (Statistic is its
//     normal approximation z); Difference is the Hodges-Lehmann shift with
//     its interval, Ratio that of the medians (NaN interval).
//
// Strata (stratify.go): unless Spec.Strata is ["none"], every rate, mean
// and distribution comparison above, and the parity check's, is then
// redone within strata (by default the item and the day) and the adjusted
// comparison decides: Mantel-Haenszel-pooled differences with
// user-clustered standard errors for rates and means, within-stratum
// percentiles for distributions; the comparison above is kept beside it as
// TestResult.Crude. Sides that share no stratum are not compared. The
// parity check's click rate is compared within the users seen in both
// modes.
//
// A group's MetricResult gives, for a rate, the rate with its Wilson
// interval; for a mean, the mean with its t interval; for a distribution,
// the median with the distribution-free order-statistic interval (normal
// approximation to the binomial ranks n/2 ± z sqrt(n)/2), and the
// quantiles asked. A group without data for a metric has no MetricResult
// for it. Intervals are at the confidence 1 - Alpha.
//
// Same item, same time: the events of some group with a price are put in
// cells (item, floor(time / PriceBucket)), each keeping every group's mean
// price; at most MaxPriceCells cells are started (see Options). For
// each group, the cells where both it and the reference have a price are
// its pairs: the shares where its mean was higher and lower (equal within
// 1e-9 relative counts as neither), the mean excess (group - reference)
// with a t interval over the pairs, the excess relative to the reference's
// mean price over the same pairs (MeanExcessPct, in percent) and the exact
// sign test. Parity compares the events of mode non_personalized with
// those of mode personalized, whatever their groups, on rank (mean,
// Welch; distribution, Mann-Whitney), discount rate, mean latency and click
// rate; it is suppressed, too, when either mode has fewer users than
// MinGroupSize.
//
// Benjamini-Hochberg runs over every p-value of the report (tests, prices
// and parity together); Q is the adjusted p-value and Significant is
// Q <= Alpha. Undefined tests (for example every value equal) have NaN P
// and Q and are not counted. Findings list every significant result in
// plain words (most significant first), then notes: suppressed groups,
// skipped lines, events left out, metrics without data.
//
// The event-level tests (when a side has fewer than two users) treat
// events as independent observations; every other test takes the user as
// its unit.
//
// Run ends early, with the error, when ctx ends, when users fails, when src
// returns an error other than a *LineError, and in Strict mode at the first
// *LineError.
func Run(ctx context.Context, spec Spec, src Source, users UserFacts, opts Options) (*Report, error) {
	spec.Groups = slices.Clone(spec.Groups)
	spec.Metrics = slices.Clone(spec.Metrics)
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	e, err := newEngine(ctx, spec, users, opts)
	if err != nil {
		return nil, err
	}
	if js, ok := src.(*jsonlSource); ok {
		js.dec.raw = true // see engine.prepare
	}
	e.startTail()
	defer e.stopTail()
	if err := e.read(src); err != nil {
		return nil, err
	}
	if err := e.flush(); err != nil {
		return nil, err
	}
	e.stopTail()
	if ss, ok := src.(*storeSource); ok {
		// Events the source left out were read, and excluded.
		n := ss.excludedEvents()
		e.events += n
		e.excluded += n
	}
	return e.report(), nil
}

// ---------------------------------------------------------------- engine

type groupAcc struct {
	events  int64
	metrics []metricAcc
}

// userState is what Run keeps per user.
type userState struct {
	atoms    uint64 // the user's facts as atom bits (the first 64 atoms)
	plain    uint64 // groups of the user's events without attributes
	seen     uint64 // groups the user was counted in
	missed   uint64 // groups some event of the user was not counted in
	ready    bool   // facts fetched
	pending  bool   // waiting for facts
	excluded bool   // left out of the audit (see ExcludingFacts)
	modes    uint8  // 1: personalized, 2: non_personalized events seen
}

// segNode is a segment compiled over atom numbers.
type segNode struct {
	op   tags.Op
	atom int
	x, y *segNode
}

func compileSegment(s *tags.Segment, idx map[string]int) *segNode {
	n := &segNode{op: s.Op}
	switch s.Op {
	case tags.OpAtom:
		k := s.Atom.String()
		i, ok := idx[k]
		if !ok {
			i = len(idx)
			idx[k] = i
		}
		n.atom = i
	case tags.OpNot:
		n.x = compileSegment(s.X, idx)
	case tags.OpAnd, tags.OpOr:
		n.x = compileSegment(s.X, idx)
		n.y = compileSegment(s.Y, idx)
	}
	return n
}

func (n *segNode) eval(b []uint64) bool {
	switch n.op {
	case tags.OpAll:
		return true
	case tags.OpAtom:
		return b[n.atom>>6]&(1<<(n.atom&63)) != 0
	case tags.OpNot:
		return !n.x.eval(b)
	case tags.OpAnd:
		return n.x.eval(b) && n.y.eval(b)
	case tags.OpOr:
		return n.x.eval(b) || n.y.eval(b)
	}
	return false
}

// A price cell is one item in one time bucket. Each item lists its cells
// by bucket (itemState); a cell's groups' prices sit in one block of the
// arena, in group order, so an event touches one block whatever its
// groups.
type cellInfo struct {
	mask   uint64 // groups present
	priced uint64 // groups with a positive price: userPrices' sides present
	off    int32  // block offset in the arena
	cap    int32  // block capacity (a power of two)
}

// itemState lists an item's cells, sorted by bucket. Events come roughly
// in time order, so most find their cell as the latest one used, or start a
// new one at the end; others search.
type itemState struct {
	lastB   int64 // bucket and cell used last (when buckets is not empty)
	lastC   int32
	buckets []int64
	cells   []int32
}

// cell returns the number of the item's cell for bucket b, starting it
// when new; false when the cell limit left the event out.
func (e *engine) cell(st *itemState, b int64) (int32, bool) {
	n := len(st.buckets)
	if n > 0 && st.lastB == b {
		return st.lastC, true
	}
	i := n
	if n > 0 && b <= st.buckets[n-1] {
		i, _ = slices.BinarySearch(st.buckets, b)
		if st.buckets[i] == b {
			st.lastB, st.lastC = b, st.cells[i]
			return st.lastC, true
		}
	}
	if int(e.nCells) >= e.maxCells {
		return 0, false
	}
	c := e.nCells
	e.nCells++
	if int(c/arenaPage) == len(e.cellInfos) {
		e.cellInfos = append(e.cellInfos, zeroed[cellInfo](arenaPage))
	}
	st.buckets = slices.Insert(st.buckets, i, b)
	st.cells = slices.Insert(st.cells, i, c)
	st.lastB, st.lastC = b, c
	return c, true
}

// priceAgg is one group's prices in one cell.
type priceAgg struct {
	sum float64
	n   uint32
}

// readerState is what the reading goroutine owns (see prepare), kept
// apart from the aggregating goroutine's fields.
//
// Users are numbered densely in order of appearance, found by two
// independent hashes of their ID (64 + 32 bits) in an open-addressing
// table: no string is compared or chased per event. Two different IDs
// agreeing on both hashes (a chance near 2^-96 per pair) would be merged.
// Items are numbered likewise, by ID.
type readerState struct {
	users        userTable
	seed1, seed2 maphash.Seed
	items        map[string]int32
	pf           prefetch.Batch // see numberUsers
}

type engine struct {
	ctx   context.Context
	spec  Spec
	opts  Options
	users UserFacts
	conf  float64
	ref   int

	segs    []*segNode
	atomIdx map[string]int
	words   int
	scratch []uint64
	memo    map[uint64]uint64

	metrics []metricDef
	groups  []groupAcc
	parity  [2]groupAcc // personalized, non_personalized
	seenM   []int64     // events with the metric's field, per metric

	ustate []userState // by user number (see readerState)
	// uprice holds each user's prices by cell (events counted in the
	// user's usual groups), upriceX those of events in other groups (see
	// prices.go).
	uprice  [][]userCellPrice
	upriceX []userPriceX
	// priceCmps and priceExcess keep each price comparison's user-level
	// test and pairs' summary, to redo its intervals at another level.
	priceCmps   map[string]stratCmp
	priceExcess map[string]stats.Summary
	// umet holds each user's sums per metric (user number x metric) of
	// the events counted in the user's usual groups; uextra those of
	// events whose attributes put them in other groups, by user<<6|group
	// (see cluster.go).
	umet   []ysum
	uextra map[uint64][]ysum
	// upar holds each user's sums of the parity metrics per mode (user x
	// mode x parity metric).
	upar  []ysum
	ubits []uint64 // all atom words per user, when there are over 64 atoms
	// plain is userState.plain by user, dense (usersPlain).
	plain     []uint64
	plainOnce sync.Once

	pendingIDs  []string
	pendingNums []int32
	pendingEvts []readItem

	strat *stratState // nil: the spec compares plain figures (see stratify.go)

	// The tail goroutine (startTail) and the batch being filled for it.
	tailCh, tailFree chan *tailBatch
	tailDone         chan struct{}
	tailCur          *tailBatch

	rd          *readerState // the reading goroutine's
	bucketSecs  float64
	bucketWhole int64 // bucket in whole seconds, or 0

	// Price cells.
	itemStates []itemState
	cells      map[uint64]int32 // cell key -> cell number
	cellInfos  [][]cellInfo     // by cell number, in order of creation, in pages of arenaPage
	nCells     int32
	arena      [][]priceAgg // pages of arenaPage entries
	arenaFill  int32        // next free offset in the last page
	freeBlocks [7][]int32   // free arena blocks by log2 capacity
	maxCells   int
	firstCap   int32 // capacity of a cell's first block
	leftOut    int64

	pf                                      prefetch.Batch // see listUserLines
	events, used, skipped, outside, noGroup int64
	excluded                                int64 // events of excluded users
	problems                                []LineProblem
}

func newEngine(ctx context.Context, spec Spec, users UserFacts, opts Options) (*engine, error) {
	e := &engine{
		ctx: ctx, spec: spec, opts: opts, users: users,
		conf:     1 - spec.Alpha,
		atomIdx:  map[string]int{},
		memo:     map[uint64]uint64{},
		rd:       &readerState{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), items: map[string]int32{}},
		maxCells: opts.MaxPriceCells,
	}
	if e.maxCells <= 0 {
		e.maxCells = DefaultMaxPriceCells
	}
	e.firstCap = 1
	for int(e.firstCap) < min(4, len(spec.Groups)) {
		e.firstCap *= 2
	}
	for i, g := range spec.Groups {
		seg, err := tags.ParseSegment(g.Segment)
		if err != nil { // Validate parsed it already
			return nil, &SpecError{Field: fmt.Sprintf("groups[%d].segment", i), Reason: err.Error(), Err: err}
		}
		e.segs = append(e.segs, compileSegment(seg, e.atomIdx))
		if g.Name == spec.Reference {
			e.ref = i
		}
	}
	e.words = max(1, (len(e.atomIdx)+63)/64)
	e.scratch = make([]uint64, e.words)
	for _, m := range spec.Metrics {
		e.metrics = append(e.metrics, metricDef{spec: m, field: fieldCode(m.Field)})
	}
	if spec.stratified() {
		e.strat = newStratState(&e.spec, e.metrics)
	}
	e.seenM = make([]int64, len(e.metrics))
	e.groups = make([]groupAcc, len(spec.Groups))
	for i := range e.groups {
		e.groups[i].metrics = make([]metricAcc, len(e.metrics))
	}
	for i := range e.parity {
		e.parity[i].metrics = make([]metricAcc, len(parityMetrics))
	}
	b := time.Duration(spec.PriceBucket)
	e.bucketSecs = b.Seconds()
	if b%time.Second == 0 {
		e.bucketWhole = int64(b / time.Second)
	}
	return e, nil
}

// parityMetrics are compared between the two modes.
var parityMetrics = []metricDef{
	{spec: MetricSpec{Name: "rank_mean", Kind: Mean, Field: FieldRank}, field: mfRank},
	{spec: MetricSpec{Name: "rank_distribution", Kind: Distribution, Field: FieldRank, Quantiles: []float64{0.5}}, field: mfRank},
	{spec: MetricSpec{Name: "discount_rate", Kind: Rate, Field: FieldDiscount}, field: mfDiscount},
	{spec: MetricSpec{Name: "latency_mean", Kind: Mean, Field: FieldLatency}, field: mfLatency},
	{spec: MetricSpec{Name: "click_rate", Kind: Rate, Field: FieldClicked}, field: mfClicked},
}

// chunk is a run of events handed from the reading goroutine.
type chunk struct {
	items []readItem
	ids   []byte    // the items' user IDs, back to back (readItem.idOff)
	final error     // io.EOF or a fatal error; nil: more to come
	lines *parLines // the lines, when decoded in parallel (readpar.go)
}

// readItem is one event with what the reading goroutine works out for it
// (prepare), so the aggregating goroutine does less. The event's numbers
// and yes/no fields are copied into num and flags (finite numbers only),
// and its pointer fields cleared.
type readItem struct {
	ev       Event
	num      [4]float64 // discount, price, rank, latency_ms (in mfDiscount order)
	flags    uint16
	err      *LineError
	inWindow bool
	user     int32  // user number
	h1, h2   uint64 // hashes of the user ID (userTable)
	idOff    int32  // the user ID is chunk.ids[idOff : idOff+idLen]
	idLen    int32
	attrBits uint64 // atoms the event's attributes hold (with at most 64 atoms)
	attrsHit bool   // some attribute is an atom of a segment
	item     int32  // item number; -1 without a usable price
	sitem    int32  // item number for the strata; -1 without an item
	bucket   int64  // time bucket of the price comparison
}

// Bits of readItem.flags: a number recorded (the order of num), a yes/no
// field recorded, and its value.
const (
	fDiscount uint16 = 1 << iota
	fPrice
	fRank
	fLatency
	fShown
	fShownTrue
	fClicked
	fClickedTrue
	fConverted
	fConvertedTrue
)

// boolValue returns the yes/no field with flag f as 1 or 0.
func (it *readItem) boolValue(f uint16) (float64, bool) {
	if it.flags&f == 0 {
		return 0, false
	}
	if it.flags&(f<<1) != 0 {
		return 1, true
	}
	return 0, true
}

// takeFields copies the event's numbers and yes/no fields into the item
// and clears the pointers.
func (it *readItem) takeFields() {
	ev := &it.ev
	for k, p := range [4]*float64{ev.Discount, ev.Price, ev.Rank, ev.LatencyMS} {
		if p != nil && !math.IsNaN(*p) && !math.IsInf(*p, 0) {
			it.num[k] = *p
			it.flags |= fDiscount << k
		}
	}
	for k, b := range [3]*bool{ev.Shown, ev.Clicked, ev.Converted} {
		if b != nil {
			it.flags |= fShown << (2 * k)
			if *b {
				it.flags |= fShownTrue << (2 * k)
			}
		}
	}
	ev.Discount, ev.Price, ev.Rank, ev.LatencyMS = nil, nil, nil, nil
	ev.Shown, ev.Clicked, ev.Converted = nil, nil, nil
}

// prepare works out an event's derived fields as it is read, and
// numberUsers the user numbers of a whole chunk: done together, the
// independent lookups of the user table overlap their cache misses. Both
// run in the reading goroutine: they read only what does not change while
// reading, and own e.rd.
//
// With a source of this package in raw mode, ev.UserID, ev.Item and the
// pointer fields point into the source's buffers, valid until its next
// call: prepare copies the numbers and yes/no fields into the item, the
// user ID into the chunk (numberUsers makes a string of it only for a
// user's first event, when it is needed to ask for the user's facts) and a
// new item's ID into the item table, and clears both, so no event outlives
// the buffer.
func (e *engine) prepare(c *chunk, it *readItem) {
	if item, ok := e.prepareLocal(c, it); ok {
		e.numberItem(it, item)
	}
}

// prepareLocal is the part of prepare that needs no state shared between
// events (it may run for many chunks at once: see readParallel). It
// returns the event's item ID when the item needs a number (numberItem),
// which the caller gives it in the order read.
func (e *engine) prepareLocal(c *chunk, it *readItem) (item string, number bool) {
	ev := &it.ev
	item, id := ev.Item, ev.UserID
	ev.Item, ev.UserID = "", ""
	it.takeFields()
	it.inWindow = e.inWindow(ev.Time)
	if !it.inWindow {
		return "", false
	}
	rd := e.rd
	it.h1, it.h2 = maphash.String(rd.seed1, id), maphash.String(rd.seed2, id)
	it.idOff, it.idLen = int32(len(c.ids)), int32(len(id))
	c.ids = append(c.ids, id...)
	for _, a := range ev.Attrs {
		if i, ok := e.atomIdx[a]; ok {
			it.attrsHit = true
			if i < 64 {
				it.attrBits |= 1 << i
			}
		}
	}
	it.item, it.sitem = -1, -1
	priced := it.flags&fPrice != 0
	if !priced && (e.strat == nil || !e.strat.item || item == "") {
		return "", false
	}
	if priced {
		it.bucket = e.bucket(ev.Time)
	}
	return item, true
}

// numberItem gives the event's item its number (items are numbered in the
// order first read).
func (e *engine) numberItem(it *readItem, item string) {
	rd := e.rd
	num, ok := rd.items[item]
	if !ok {
		num = int32(len(rd.items))
		rd.items[strings.Clone(item)] = num
	}
	if item != "" {
		it.sitem = num
	}
	if it.flags&fPrice != 0 {
		it.item = num
	}
}

func (e *engine) numberUsers(c *chunk) {
	// The table's slots are at random places: request each item's a few
	// items ahead (a slot taken by a growth of the table is only a wasted
	// request).
	pf, t := &e.rd.pf, &e.rd.users
	pf.Reset()
	mask := uint64(len(t.slots) - 1)
	for i := range c.items {
		if it := &c.items[i]; it.err == nil && it.inWindow && len(t.slots) > 0 {
			pf.Add(prefetch.Addr(&t.slots[it.h1&mask]))
		}
		pf.End()
	}
	for i := range c.items {
		pf.Ahead(i)
		it := &c.items[i]
		if it.err != nil || !it.inWindow {
			continue
		}
		var isNew bool
		it.user, isNew = e.rd.users.number(it.h1, uint32(it.h2))
		if isNew {
			it.ev.UserID = string(c.ids[it.idOff : it.idOff+it.idLen])
		}
	}
}

// read consumes src, reading in a goroutine of its own.
func (e *engine) read(src Source) error {
	out := make(chan *chunk, 16)
	free := make(chan *chunk, freeChunks)
	stop := make(chan struct{})
	done := make(chan struct{})
	if js, ok := src.(*jsonlSource); ok && parallelReading && runtime.GOMAXPROCS(0) >= minParallelDecode {
		e.parallelRead(js, out, free, stop, done)
	} else {
		go e.readOne(src, out, free, stop, done)
	}
	return e.aggregate(out, free, stop, done)
}

// readOne is the reading goroutine of a source read on one core: it reads,
// decodes and prepares the events and hands them, a chunk at a time, to
// the aggregating goroutine on out.
func (e *engine) readOne(src Source, out chan<- *chunk, free <-chan *chunk, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	defer close(out)
	for {
		var c *chunk
		select {
		case <-stop:
			return
		case c = <-free:
			c.items, c.ids = c.items[:0], c.ids[:0]
		default:
			c = &chunk{items: make([]readItem, 0, chunkSize)}
		}
		for len(c.items) < chunkSize {
			ev, err := src.Next()
			if err == nil {
				c.items = append(c.items, readItem{ev: ev})
				e.prepare(c, &c.items[len(c.items)-1])
				continue
			}
			var le *LineError
			if errors.As(err, &le) {
				c.items = append(c.items, readItem{err: le})
				continue
			}
			c.final = err
			break
		}
		e.numberUsers(c)
		select {
		case out <- c:
		case <-stop:
			return
		}
		if c.final != nil {
			return
		}
	}
}

// aggregate is the aggregating goroutine: it takes the chunks from out, in
// the order read, and adds their events.
func (e *engine) aggregate(out <-chan *chunk, free chan<- *chunk, stop chan struct{}, done <-chan struct{}) error {
	finish := func(err error) error {
		close(stop)
		if e.ctx.Err() == nil {
			// The reader ends at its next hand-off; do not leave it
			// running on src after Run returns (unless ctx ended, when a
			// blocked source may never return).
			for range out {
			}
			<-done
		}
		return err
	}
	for {
		var c *chunk
		var ok bool
		select {
		case c, ok = <-out:
		case <-e.ctx.Done():
			return finish(e.ctx.Err())
		}
		if !ok {
			return finish(errors.New("audit: event reader stopped"))
		}
		e.listUserLines(c)
		for i := range c.items {
			e.pf.Ahead(i)
			it := &c.items[i]
			if it.err != nil {
				if e.opts.Strict {
					return finish(it.err)
				}
				e.skipped++
				if len(e.problems) < MaxProblems {
					e.problems = append(e.problems, it.err.Problem())
				}
				continue
			}
			if err := e.add(it); err != nil {
				return finish(err)
			}
			*it = readItem{}
		}
		if c.final != nil {
			if c.final != io.EOF {
				return finish(fmt.Errorf("audit: reading events: %w", c.final))
			}
			<-done
			return nil
		}
		select {
		case free <- c:
		default:
		}
		if err := e.ctx.Err(); err != nil {
			return finish(err)
		}
	}
}

// The tail: a third goroutine keeps the kept events of the strata and the
// price cells (stratKeep, addPrice) for the events the aggregating one has
// processed, in the order processed, so that both sides' state and
// results are as if one goroutine did all. The aggregating goroutine hands
// it a tailItem per processed event, in batches.

// tailItem is what the tail needs of one processed event.
type tailItem struct {
	num    [4]float64 // readItem.num
	key    stratKey   // the event's stratum (strat)
	bucket int64      // the price cell's time bucket
	mask   uint64     // the groups the event counted in
	plain  uint64     // the user's usual groups (userState.plain)
	user   int32
	item   int32 // the price's item, -1: no price to compare
	flags  uint16
	mode   uint8 // 0 personalized, 1 non-personalized
	xmask  bool  // mask is not the user's usual groups
	strat  bool  // keep the event for the strata
}

// tailBatch is a run of tailItems, with nf free-field values per item
// when stratifying with free-field metrics (stratFree).
type tailBatch struct {
	items []tailItem
	free  []float32
}

const tailBatchLen = 512

// startTail starts the tail goroutine.
func (e *engine) startTail() {
	e.tailCh = make(chan *tailBatch, 16)
	e.tailFree = make(chan *tailBatch, 24)
	e.tailDone = make(chan struct{})
	e.tailCur = &tailBatch{items: make([]tailItem, 0, tailBatchLen)}
	go func() {
		defer close(e.tailDone)
		nf := 0
		if e.strat != nil {
			nf = len(e.strat.free)
		}
		for b := range e.tailCh {
			for i := range b.items {
				ti := &b.items[i]
				if ti.strat {
					e.stratKeep(ti, b.free[i*nf:(i+1)*nf])
				}
				if ti.item >= 0 {
					e.addPrice(ti)
				}
			}
			select {
			case e.tailFree <- b:
			default:
			}
		}
	}()
}

// tailNext returns the tailItem of the event being processed, zeroed; the
// event's processing ends with tailEnd.
func (e *engine) tailNext() *tailItem {
	b := e.tailCur
	if n := len(b.items); n%tailAheadStep == 0 && n+tailAhead+tailAheadStep <= cap(b.items) {
		// The tail goroutine, on another core, last read this batch:
		// take its lines back a few items ahead of the writes.
		prefetch.ForWrite(b.items[n+tailAhead : n+tailAhead+tailAheadStep])
	}
	b.items = append(b.items, tailItem{})
	return &b.items[len(b.items)-1]
}

// tailNext requests the lines of the items tailAhead ahead,
// tailAheadStep items at a time.
const tailAhead, tailAheadStep = 16, 8

// tailEnd hands the batch to the tail when full.
func (e *engine) tailEnd() {
	if len(e.tailCur.items) < tailBatchLen {
		return
	}
	e.tailCh <- e.tailCur
	select {
	case b := <-e.tailFree:
		b.items, b.free = b.items[:0], b.free[:0]
		e.tailCur = b
	default:
		e.tailCur = &tailBatch{items: make([]tailItem, 0, tailBatchLen)}
	}
}

// stopTail hands the tail the last batch and waits for it to end; once
// stopped, it does nothing.
func (e *engine) stopTail() {
	if e.tailCh == nil {
		return
	}
	if len(e.tailCur.items) > 0 {
		e.tailCh <- e.tailCur
	}
	close(e.tailCh)
	<-e.tailDone
	e.tailCh, e.tailCur = nil, nil
}

func (e *engine) inWindow(t time.Time) bool {
	return (e.spec.From.IsZero() || !t.Before(e.spec.From)) && (e.spec.To.IsZero() || t.Before(e.spec.To))
}

// userNum returns the number of the user with ID id, numbering a new one
// (new reports that). It runs in the reading goroutine.
func (e *engine) userNum(id string) (n int32, new bool) {
	rd := e.rd
	return rd.users.number(maphash.String(rd.seed1, id), uint32(maphash.String(rd.seed2, id)))
}

// listUserLines lists the lines of a chunk's users' state, and of their
// sums per metric and per mode, that processing will touch (e.pf), so
// that processing item i can request them a few items ahead.
func (e *engine) listUserLines(c *chunk) {
	pf := &e.pf
	pf.Reset()
	np, nm := 2*len(parityMetrics), len(e.metrics)
	for i := range c.items {
		it := &c.items[i]
		if it.inWindow {
			u := int(it.user)
			if u < len(e.ustate) {
				pf.Add(prefetch.Addr(&e.ustate[u]))
			}
			// The user's sums, per mode and per metric.
			if (u+1)*np <= len(e.upar) {
				pf.Add(prefetch.Addr(&e.upar[u*np]))
				pf.Add(prefetch.Addr(&e.upar[(u+1)*np-1]))
			}
			if nm > 0 && (u+1)*nm <= len(e.umet) {
				pf.Add(prefetch.Addr(&e.umet[u*nm]))
				pf.Add(prefetch.Addr(&e.umet[(u+1)*nm-1]))
			}
		}
		pf.End()
	}
}

// userTable numbers users by their ID's hashes, with linear probing at a
// load of at most 1/2.
type userTable struct {
	slots []userSlot
	n     int
}

type userSlot struct {
	h1  uint64
	h2  uint32
	num uint32 // user number + 1; 0 marks an empty slot
}

func (t *userTable) number(h1 uint64, h2 uint32) (int32, bool) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := h1 & mask; ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.num == 0 {
			t.n++
			*sl = userSlot{h1: h1, h2: h2, num: uint32(t.n)}
			return int32(t.n - 1), true
		}
		if sl.h1 == h1 && sl.h2 == h2 {
			return int32(sl.num - 1), false
		}
	}
}

// lookup returns the number of the user with hashes h1 and h2, if
// numbered.
func (t *userTable) lookup(h1 uint64, h2 uint32) (int32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := h1 & mask; ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.num == 0 {
			return 0, false
		}
		if sl.h1 == h1 && sl.h2 == h2 {
			return int32(sl.num - 1), true
		}
	}
}

func (t *userTable) grow() {
	old := t.slots
	t.slots = zeroed[userSlot](max(1<<12, 2*len(old)))
	mask := uint64(len(t.slots) - 1)
	for _, sl := range old {
		if sl.num == 0 {
			continue
		}
		i := sl.h1 & mask
		for t.slots[i].num != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = sl
	}
}

func (e *engine) add(it *readItem) error {
	e.events++
	if e.opts.Progress != nil && e.events%ProgressEvery == 0 {
		e.opts.Progress(e.events)
	}
	if !it.inWindow {
		e.outside++
		return nil
	}
	ui := it.user
	for int(ui) >= len(e.ustate) {
		e.ustate = append(e.ustate, userState{})
	}
	u := &e.ustate[ui]
	if u.ready {
		if u.excluded {
			e.excluded++
			return nil
		}
		e.process(it, ui)
		return nil
	}
	if !u.pending {
		u.pending = true
		e.pendingIDs = append(e.pendingIDs, it.ev.UserID)
		e.pendingNums = append(e.pendingNums, ui)
	}
	e.pendingEvts = append(e.pendingEvts, *it)
	if len(e.pendingIDs) >= userBatch || len(e.pendingEvts) >= pendingEvents {
		return e.flush()
	}
	return nil
}

// flush fetches the facts of the pending users and processes their events.
func (e *engine) flush() error {
	if len(e.pendingIDs) == 0 {
		return nil
	}
	var facts map[string][]string
	var excluded map[string]bool
	if ef, ok := e.users.(ExcludingFacts); ok {
		f, ex, err := ef.FactsExcluding(e.ctx, e.pendingIDs)
		if err != nil {
			return fmt.Errorf("audit: user facts: %w", err)
		}
		facts = f
		if len(ex) > 0 {
			excluded = make(map[string]bool, len(ex))
			for _, id := range ex {
				excluded[id] = true
			}
		}
	} else if e.users != nil {
		var err error
		if facts, err = e.users.Facts(e.ctx, e.pendingIDs); err != nil {
			return fmt.Errorf("audit: user facts: %w", err)
		}
	}
	if e.words > 1 {
		need := len(e.ustate) * e.words
		if len(e.ubits) < need {
			e.ubits = append(e.ubits, make([]uint64, need-len(e.ubits))...)
		}
	}
	for k, id := range e.pendingIDs {
		ui := e.pendingNums[k]
		if excluded[id] {
			e.ustate[ui] = userState{ready: true, excluded: true}
			continue
		}
		b := e.scratch
		clear(b)
		for _, f := range facts[id] {
			if i, ok := e.atomIdx[f]; ok {
				b[i>>6] |= 1 << (i & 63)
			}
		}
		if e.words > 1 {
			copy(e.ubits[int(ui)*e.words:], b)
		}
		if e.strat != nil {
			e.strat.userFacts(ui, facts[id])
		}
		e.ustate[ui] = userState{ready: true, atoms: b[0], plain: e.groupsOf(b)}
	}
	for i := range e.pendingEvts {
		it := &e.pendingEvts[i]
		if e.ustate[it.user].excluded {
			e.excluded++
		} else {
			e.process(it, it.user)
		}
		*it = readItem{}
	}
	e.pendingIDs = e.pendingIDs[:0]
	e.pendingNums = e.pendingNums[:0]
	e.pendingEvts = e.pendingEvts[:0]
	return nil
}

// groupsOf returns the groups whose segments hold for the atom set b.
func (e *engine) groupsOf(b []uint64) uint64 {
	if e.words == 1 {
		if m, ok := e.memo[b[0]]; ok {
			return m
		}
	}
	var m uint64
	for g, s := range e.segs {
		if s.eval(b) {
			m |= 1 << g
		}
	}
	if e.words == 1 {
		if len(e.memo) >= memoMax {
			clear(e.memo)
		}
		e.memo[b[0]] = m
	}
	return m
}

func (e *engine) maskOf(it *readItem, ui int32) uint64 {
	u := &e.ustate[ui]
	if !it.attrsHit {
		return u.plain
	}
	b := e.scratch
	if e.words == 1 {
		if u.atoms|it.attrBits == u.atoms {
			return u.plain
		}
		b[0] = u.atoms | it.attrBits
		return e.groupsOf(b)
	}
	base := int(ui) * e.words
	copy(b, e.ubits[base:base+e.words])
	changed := false
	for _, a := range it.ev.Attrs {
		if i, ok := e.atomIdx[a]; ok {
			w, bit := i>>6, uint64(1)<<(i&63)
			if b[w]&bit == 0 {
				b[w] |= bit
				changed = true
			}
		}
	}
	if !changed {
		return u.plain
	}
	return e.groupsOf(b)
}

func (e *engine) process(it *readItem, ui int32) {
	ev := &it.ev
	u := &e.ustate[ui]
	mode := 0
	if ev.Mode == ModeNonPersonalized {
		mode = 1
	}
	u.modes |= 1 << mode
	pa := &e.parity[mode]
	pa.events++
	np := len(parityMetrics)
	base := (int(ui)*2 + mode) * np
	if len(e.upar) < base+np {
		e.upar = growSums(e.upar, max(base+np, len(e.ustate)*2*np))
	}
	for i := range parityMetrics {
		if v, ok := parityMetrics[i].value(it); ok {
			pa.metrics[i].add(parityMetrics[i].spec.Kind, v)
			e.upar[base+i].y += v
			e.upar[base+i].n++
		}
	}
	mask := e.maskOf(it, ui)
	ti := e.tailNext()
	ti.user, ti.mask, ti.mode, ti.flags, ti.num = ui, mask, uint8(mode), it.flags, it.num
	ti.xmask, ti.plain = mask != u.plain, u.plain
	ti.item, ti.bucket = -1, it.bucket
	if e.strat != nil {
		ti.strat = true
		ti.key = e.stratKeyOf(it, ui)
		e.stratFree(it)
	}
	u.missed |= ^mask
	if mask == 0 {
		e.noGroup++
		e.tailEnd()
		return
	}
	e.used++
	u.seen |= mask
	var vals [MaxMetrics]float64
	var have [MaxMetrics]bool
	for i := range e.metrics {
		vals[i], have[i] = e.metrics[i].value(it)
		if have[i] {
			e.seenM[i]++
		}
	}
	for m := mask; m != 0; m &= m - 1 {
		g := &e.groups[bits.TrailingZeros64(m)]
		g.events++
		for i := range e.metrics {
			if have[i] {
				g.metrics[i].add(e.metrics[i].spec.Kind, vals[i])
			}
		}
	}
	e.userSums(ui, mask, u.plain, &vals, &have)
	if it.flags&fPrice != 0 {
		ti.item = it.item
	}
	e.tailEnd()
}

func (e *engine) bucket(t time.Time) int64 {
	if e.bucketWhole > 0 {
		s := t.Unix()
		q := s / e.bucketWhole
		if s%e.bucketWhole < 0 {
			q--
		}
		return q
	}
	return int64(math.Floor((float64(t.Unix()) + float64(t.Nanosecond())/1e9) / e.bucketSecs))
}

// addPrice counts the price of a processed event (ti.item is not -1) in
// its cell. It runs in the tail goroutine.
func (e *engine) addPrice(ti *tailItem) {
	for int(ti.item) >= len(e.itemStates) {
		e.itemStates = append(e.itemStates, itemState{})
	}
	c, ok := e.cell(&e.itemStates[ti.item], ti.bucket)
	if !ok {
		e.leftOut++
		return
	}
	ci := e.cellInfo(c)
	p := ti.num[mfPrice-mfDiscount]
	mask := ti.mask
	e.userPrice(ti.user, mask, ti.xmask, c, p)
	if p > 0 { // userPrice's observation: a price with a logarithm
		ci.priced |= mask
	}
	for m := mask; m != 0; m &= m - 1 {
		bit := m & -m
		if ci.mask&bit == 0 {
			e.insertGroup(ci, bit)
		}
		a := &e.block(ci.off, ci.cap)[bits.OnesCount64(ci.mask&(bit-1))]
		a.sum += p
		a.n++
	}
}

func (e *engine) cellInfo(c int32) *cellInfo {
	return &e.cellInfos[c/arenaPage][c%arenaPage]
}

// insertGroup makes room for group bit in the cell's block, in group order.
func (e *engine) insertGroup(ci *cellInfo, bit uint64) {
	cnt := int32(bits.OnesCount64(ci.mask))
	if cnt == ci.cap {
		// Start at room for up to 4 groups: most cells gather several.
		ncap := max(e.firstCap, 2*ci.cap)
		off := e.allocBlock(ncap)
		if ci.cap > 0 {
			copy(e.block(off, ncap), e.block(ci.off, cnt))
			e.freeBlock(ci.off, ci.cap)
		}
		ci.off, ci.cap = off, ncap
	}
	pos := int32(bits.OnesCount64(ci.mask & (bit - 1)))
	blk := e.block(ci.off, cnt+1)
	copy(blk[pos+1:], blk[pos:cnt])
	blk[pos] = priceAgg{}
	ci.mask |= bit
}

func (e *engine) allocBlock(n int32) int32 {
	c := bits.TrailingZeros32(uint32(n))
	if fl := e.freeBlocks[c]; len(fl) > 0 {
		off := fl[len(fl)-1]
		e.freeBlocks[c] = fl[:len(fl)-1]
		return off
	}
	if int(e.arenaFill%arenaPage)+int(n) > arenaPage {
		e.arenaFill = (e.arenaFill/arenaPage + 1) * arenaPage // never straddle
	}
	for int(e.arenaFill/arenaPage) >= len(e.arena) {
		e.arena = append(e.arena, zeroed[priceAgg](arenaPage))
	}
	off := e.arenaFill
	e.arenaFill += n
	return off
}

// arenaPage is the size of an arena page, in entries; blocks (at most
// MaxGroups entries) never straddle pages.
const arenaPage = 1 << 16

// block returns the arena entries [off, off+n).
func (e *engine) block(off, n int32) []priceAgg {
	i := off & (arenaPage - 1)
	return e.arena[off/arenaPage][i : i+n : i+n]
}

func (e *engine) freeBlock(off, n int32) {
	c := bits.TrailingZeros32(uint32(n))
	e.freeBlocks[c] = append(e.freeBlocks[c], off)
}
