package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// recguard seed fills a new store with a realistic demo data set: users
// with declared and inferred tags, consents, refusals, minors, sensitive
// grants and restrictions, applied as ordinary changes (each with its
// receipt and changelog entry), and outcome events for Art. 46 audits with
// an optional planted price gap. The data is a pure function of the flags
// (--seed, --users, --events, --price-gap, --end): the same flags give the
// same users' records and the same events, whatever the store and however
// the work is spread over the workers.

const seedUsage = `usage: recguard seed [--users N] [--seed S] [--events N] [--price-gap PCT] [--end DATE]
                     [--workers N] [--init] [store flags]

Fills a new, empty store with a realistic demo data set, through the store's
ordinary changes (every change has its receipt and changelog entry):

  users     u0000000, u0000001, ... with an inferred loyalty tier (loyalty:new,
            loyalty:gold, loyalty:silver, in turn), a region (region:bj, ...;
            declared or inferred), one to three interests (interest:ski, ...;
            mostly inferred); about 12% turned personalization off, 8% refuse
            sms, 4% email, 3% push; 3% are minors, half of them with their
            guardian's consent (the others hold no tag); 4% gave the separate
            consent for medical_health and declared a medical_health:* tag, 3%
            the consent for whereabouts for pushes; 5% deleted an interest
            (it stays deleted); 1% restricted processing (Art. 23)
  events    outcome events (the JSON lines recguard audit reads) over the 30
            days before --end: items i000, i001, ... with daily prices,
            ranks, clicks, conversions, discounts, latencies and devices;
            users who turned personalization off, and minors without
            guardian consent, get non-personalized results; restricted users
            none. --price-gap PCT makes loyalty:gold pay PCT percent more for
            the same item on the same day: a finding an audit must make

The same flags give the same data (--end defaults to today, UTC). A store
that already holds users is refused: seed a new --data directory or Redis
--prefix. A new Redis keyspace needs --init (as serve does) and the receipt
chain key every instance will share (--chain-key-file, RECGUARD_CHAIN_KEY);
the embedded store makes its key with the store, as serve does.

The embedded store keeps outcome events in memory only (a restart starts
them afresh), so for it seed writes them to a file, DIR/events.jsonl unless
--events-out says; a Redis store keeps them (--events-out writes a copy).
Then, for example:

  recguard audit --spec examples/data/spec.yaml --events DIR/events.jsonl --data DIR --out report.html
  recguard audit --spec examples/data/spec.yaml --events store --redis URL --out report.html

Exit status: 0 when seeded, 1 when seeding failed, 2 for bad flags.

flags:
`

// seedDefaultUsers is --users' default.
const seedDefaultUsers = 10_000

// seedSpan is how long the events span, before --end; users joined in the
// 30 days before that.
const seedSpan = 30 * 24 * time.Hour

// errSeedUsage is wrapped by seed's errors about its flags (exit 2); the
// message is already printed.
var errSeedUsage = errors.New("seed: bad flags")

// seedRun runs `recguard seed` for run: bad flags exit the process at once
// with status 2 (as flag.ExitOnError does, after printing why), --help
// returns nil (status 0), and a failure returns its error (status 1).
func seedRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := seed(ctx, args, stdout, stderr)
	if errors.Is(err, errSeedUsage) {
		os.Exit(2)
	}
	return err
}

// seedConfig is the data set: a pure function of it.
type seedConfig struct {
	users, events int
	seed          uint64
	priceGap      float64   // percent
	end           time.Time // the events are in the 30 days before it
}

// seed runs `recguard seed`. Errors about the flags wrap errSeedUsage and
// have been printed; --help returns nil.
func seed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, seedUsage)
		fs.PrintDefaults()
	}
	var sf storeFlags
	sf.register(fs)
	users := fs.Int("users", seedDefaultUsers, "users to create")
	seedV := fs.Uint64("seed", 1, "the random seed: the same seed (and flags) give the same data")
	events := fs.Int("events", -1, "outcome events to record (default 10 per user; 0: none)")
	gap := fs.Float64("price-gap", 0, "percent more loyalty:gold pays for the same item on the same day (0: none)")
	endS := fs.String("end", "", "the events end at this date, YYYY-MM-DD (default today, UTC)")
	workers := fs.Int("workers", 64, "users seeded at once (Redis: more hides the round trips)")
	initStore := fs.Bool("init", false, "create the recguard keyspace in an empty Redis (as serve --init)")
	eventsOut := fs.String("events-out", "", "write the events to this file as JSON lines (default for the embedded store, which keeps outcome events in memory only: DIR/events.jsonl)")
	usage := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "recguard seed: "+format+"\n", a...)
		return fmt.Errorf("%w: "+format, append([]any{errSeedUsage}, a...)...)
	}
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errSeedUsage, err) // the flag package printed it
	}
	cfg := seedConfig{users: *users, events: *events, seed: *seedV, priceGap: *gap}
	if cfg.events < 0 {
		cfg.events = 10 * cfg.users
	}
	switch {
	case len(pos) > 0:
		return usage("unexpected argument %q", pos[0])
	case cfg.users < 1 || cfg.users > 100_000_000:
		return usage("--users %d: want 1 to 100,000,000", cfg.users)
	case *events < -1 || cfg.events > 1_000_000_000:
		return usage("--events %d: want 0 to 1,000,000,000", *events)
	case math.IsNaN(cfg.priceGap) || cfg.priceGap <= -100 || cfg.priceGap > 1000:
		return usage("--price-gap %v: want a percentage above -100 and at most 1000", *gap)
	case *workers < 1 || *workers > 4096:
		return usage("--workers %d: want 1 to 4096", *workers)
	case sf.redisURL != "" && sf.cluster != "":
		return usage("give --redis or --redis-cluster, not both")
	}
	cfg.end = time.Now().UTC().Truncate(24 * time.Hour)
	if *endS != "" {
		if cfg.end, err = time.Parse("2006-01-02", *endS); err != nil {
			return usage("--end %q: want a date, YYYY-MM-DD", *endS)
		}
	}
	embedded := sf.redisURL == "" && sf.cluster == ""
	keyGiven := sf.chainKeyHex != "" || sf.chainKeyFile != "" || sf.unkeyed
	if !embedded && !keyGiven {
		return usage("a Redis store needs the receipt chain key every instance shares (serve needs it too): give --chain-key-file FILE "+
			"(RECGUARD_CHAIN_KEY_FILE) or the key in hex in RECGUARD_CHAIN_KEY; make one with: openssl rand -hex %d", newChainKeyLen)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if embedded && !keyGiven && !storeExists(sf.data) {
		// A new embedded store gets its chain key with it, as serve makes
		// it: serve and verify then open the seeded store as their own.
		if _, err := os.Stat(filepath.Join(sf.data, chainKeyName)); errors.Is(err, os.ErrNotExist) {
			if _, err := makeChainKey(filepath.Join(sf.data, chainKeyName), log); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
		}
	}
	var st store.Store
	var closeStore func() error
	if embedded {
		// Opened here rather than by sf.open to skip the fsync after each
		// write: Close syncs the file once, at the end (a crash meanwhile
		// loses a demo data set, not an acknowledged change of a user).
		key, err := sf.chainKey("seed", log)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		ms, err := memory.Open(ctx, memory.Options{Dir: sf.data, ChainKey: key, NoSync: true})
		if err != nil {
			return fmt.Errorf("seed: opening the store: %w", err)
		}
		st, closeStore = ms, ms.Close
	} else {
		s, _, closeAll, err := sf.open(ctx, openOptions{cmd: "seed", init: *initStore, log: log})
		if errors.Is(err, store.ErrNotInitialized) {
			prefix := sf.prefix
			if prefix == "" {
				prefix = "rg"
			}
			return fmt.Errorf("seed: the Redis keyspace (prefix %q) holds no recguard store: seed a new one with --init", prefix)
		}
		if err != nil {
			return fmt.Errorf("seed: opening the store: %w", err)
		}
		st, closeStore = s, func() error { closeAll(); return nil }
	}
	defer closeStore()
	if n, err := storeHasUsers(ctx, st); err != nil {
		return fmt.Errorf("seed: %w", err)
	} else if n {
		where := "--data " + sf.data
		if !embedded {
			where = "this Redis keyspace"
		}
		return fmt.Errorf("seed: %s already holds users: seed a new store (another --data directory, or another Redis --prefix)", where)
	}
	// The events: into the store when it keeps them across restarts
	// (Redis), else (and with --events-out) into a file.
	var ol store.OutcomeLog
	if !embedded {
		if ol, _ = st.(store.OutcomeLog); ol == nil && *eventsOut == "" && cfg.events > 0 {
			return errors.New("seed: this store keeps no outcome events: give --events-out FILE or --events 0")
		}
	}
	outPath := *eventsOut
	if embedded && outPath == "" {
		outPath = filepath.Join(sf.data, "events.jsonl")
	}
	var out *os.File
	if outPath != "" && cfg.events > 0 {
		if out, err = os.Create(outPath); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		defer out.Close()
	}
	bar := newSeedProgress(stderr, isTerminal(stderr))
	var w io.Writer
	if out != nil {
		w = out
	}
	sum, err := cfg.run(ctx, st, ol, w, *workers, bar)
	bar.stop()
	if err == nil && out != nil {
		err = out.Close()
	}
	if err == nil {
		err = closeStore() // the embedded store syncs its file
	}
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	where := sf.data
	switch {
	case sf.redisURL != "":
		where = redactURL(sf.redisURL)
	case sf.cluster != "":
		where = "the Redis Cluster " + sf.cluster
	}
	var evWhere []string
	if ol != nil {
		evWhere = append(evWhere, "the store")
	}
	if out != nil {
		evWhere = append(evWhere, outPath)
	}
	evs := "no outcome events"
	if sum.events > 0 {
		evs = fmt.Sprintf("%s outcome events (price gap %v%%) in %s", humanInt(sum.events), cfg.priceGap, strings.Join(evWhere, " and "))
	}
	fmt.Fprintf(stderr, "seed: %s users into %s (%s changes: %s opted out of personalization, %s refusing a channel, %s minors of whom %s with guardian consent, "+
		"%s sensitive grants, %s deleted tags, %s restricted) and %s in %s\n",
		humanInt(sum.users), where, humanInt(sum.changes), humanInt(sum.optedOut), humanInt(sum.refusing), humanInt(sum.minors), humanInt(sum.guardian),
		humanInt(sum.sensitive), humanInt(sum.deleted), humanInt(sum.restricted), evs, sum.elapsed.Round(time.Millisecond))
	return nil
}

// redactURL drops a password from a Redis URL for printing.
func redactURL(u string) string {
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if i := strings.Index(u, "://"); i >= 0 && i < at {
			return u[:i+3] + "***" + u[at:]
		}
	}
	return u
}

// humanInt writes n with thousands separators.
func humanInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// storeHasUsers says whether st holds any user (store.UserLister).
func storeHasUsers(ctx context.Context, st store.Store) (bool, error) {
	ul, ok := st.(store.UserLister)
	if !ok {
		return false, nil
	}
	for sh := 0; sh < st.Shards(); sh++ {
		ids, err := ul.ListUsers(ctx, sh, 1, 1)
		if err != nil {
			return false, err
		}
		if len(ids) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// The generator's vocabulary.
var (
	seedTiers     = []string{"new", "gold", "silver"} // loyalty:gold pays --price-gap
	seedRegions   = []string{"bj", "sh", "gz", "sz", "cd", "hz", "wh", "xa"}
	seedInterests = []string{"ski", "chess", "cooking", "travel", "football", "photography", "gaming",
		"fashion", "music", "running", "books", "pets", "hiking", "coffee"}
	seedHealth = []string{"allergy", "diabetes", "hypertension"}
)

// seedGold is the tier that pays the planted gap.
const seedGold = 1

// Event modes of a user (seedUser.mode).
const (
	seedNoEvents        = iota // restricted: storage only, no events
	seedPersonalized           // personalized results
	seedNonPersonalized        // opted out, or a minor without guardian consent
)

// seedUser is one user of the data set: their changes, in order, and what
// their events look like.
type seedUser struct {
	id      string
	changes []consent.Change
	tier    int8 // index in seedTiers; -1: no loyalty tag
	mode    uint8

	optedOut, refusing, minor, guardian, restricted bool
	sensitive, deleted                              int
}

// userID is user i's ID: u and at least 7 digits.
func (c *seedConfig) userID(i int) string {
	w := max(7, len(strconv.Itoa(c.users-1)))
	s := strconv.Itoa(i)
	return "u" + strings.Repeat("0", max(0, w-len(s))) + s
}

// user makes user i, from a random stream of its own: the same whatever
// order users are made in.
func (c *seedConfig) user(i int) seedUser {
	r := rand.New(rand.NewPCG(c.seed, 0x5eed_0000_0000_0000|uint64(i)))
	id := c.userID(i)
	u := seedUser{id: id, tier: int8(i % len(seedTiers)), mode: seedPersonalized}
	// The user joined in the 30 days before the events start; their
	// changes follow, minutes to an hour apart.
	at := c.end.Add(-2*seedSpan + time.Duration(r.Int64N(int64(seedSpan/time.Second)))*time.Second)
	add := func(ch consent.Change) {
		at = at.Add(time.Duration(60+r.IntN(3600)) * time.Second)
		ch.At = at
		u.changes = append(u.changes, ch)
	}
	u.minor = r.Float64() < 0.03
	u.guardian = u.minor && r.Float64() < 0.5
	if u.minor {
		add(consent.SetMinor(id, true))
		if u.guardian {
			add(consent.GuardianConsent(id, "guardian-"+id))
		}
	}
	if !u.minor || u.guardian {
		add(consent.InferTag(id, tags.Tag("loyalty:"+seedTiers[u.tier])))
		region := tags.Tag("region:" + seedRegions[r.IntN(len(seedRegions))])
		if r.Float64() < 0.6 {
			add(consent.DeclareTag(id, region))
		} else {
			add(consent.InferTag(id, region))
		}
		n := 1 + r.IntN(3)
		var interests []tags.Tag
		for _, k := range r.Perm(len(seedInterests))[:n] {
			t := tags.Tag("interest:" + seedInterests[k])
			interests = append(interests, t)
			if r.Float64() < 0.3 {
				add(consent.DeclareTag(id, t))
			} else {
				add(consent.InferTag(id, t))
			}
		}
		if !u.minor && r.Float64() < 0.04 {
			add(consent.GrantSensitive(id, tags.MedicalHealth, consent.PurposePersonalization))
			add(consent.DeclareTag(id, tags.Tag("medical_health:"+seedHealth[r.IntN(len(seedHealth))])))
			u.sensitive++
		}
		if r.Float64() < 0.05 {
			add(consent.DeleteTag(id, interests[r.IntN(len(interests))]))
			u.deleted++
		}
	} else {
		u.tier = -1 // a minor without guardian consent: no tag is stored
		u.mode = seedNonPersonalized
	}
	if !u.minor && r.Float64() < 0.03 {
		add(consent.GrantSensitive(id, tags.Whereabouts, consent.PurposePush))
		u.sensitive++
	}
	if r.Float64() < 0.12 {
		add(consent.SetPersonalization(id, false))
		u.optedOut = true
		u.mode = seedNonPersonalized
	}
	for _, ch := range [...]struct {
		name string
		p    float64
	}{{"sms", 0.08}, {"email", 0.04}, {"push", 0.03}} {
		if r.Float64() < ch.p {
			add(consent.RefuseChannel(id, ch.name))
			u.refusing = true
		}
	}
	if r.Float64() < 0.01 {
		add(consent.Restrict(id))
		u.restricted = true
		u.mode = seedNoEvents
	}
	return u
}

// seedSummary counts what was seeded.
type seedSummary struct {
	users, changes, events                                               int64
	optedOut, refusing, minors, guardian, sensitive, deleted, restricted int64
	elapsed                                                              time.Duration
}

func (s *seedSummary) add(u *seedUser) {
	s.users++
	s.changes += int64(len(u.changes))
	for _, b := range []struct {
		on bool
		n  *int64
	}{{u.optedOut, &s.optedOut}, {u.refusing, &s.refusing}, {u.minor, &s.minors}, {u.guardian, &s.guardian}, {u.restricted, &s.restricted}} {
		if b.on {
			*b.n++
		}
	}
	s.sensitive += int64(u.sensitive)
	s.deleted += int64(u.deleted)
}

func (s *seedSummary) merge(o *seedSummary) {
	s.users += o.users
	s.changes += o.changes
	s.events += o.events
	s.optedOut += o.optedOut
	s.refusing += o.refusing
	s.minors += o.minors
	s.guardian += o.guardian
	s.sensitive += o.sensitive
	s.deleted += o.deleted
	s.restricted += o.restricted
}

// seedBlock is how many users (or event chunks) a worker takes at once.
const seedBlock = 64

// With a store.BatchApplier a worker takes seedBatchBlock users at once (one
// ApplyBatch), and at most seedBatchWorkers workers run.
const (
	seedBatchBlock   = 256
	seedBatchWorkers = 8
)

// run seeds st with workers users at once, then the events: into ol when
// it is not nil, to eventsOut (as JSON lines, in a fixed order) when it is
// not nil. It reports to bar (nil: no progress).
func (c *seedConfig) run(ctx context.Context, st store.Store, ol store.OutcomeLog, eventsOut io.Writer, workers int, bar *seedProgress) (seedSummary, error) {
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// modes[i] is user i's tier+1 (0: none) and event mode, for the events.
	modes := make([]uint8, c.users)
	var next atomic.Int64
	var mu sync.Mutex
	var sum seedSummary
	var wg sync.WaitGroup
	bar.phase("users", int64(c.users))
	// A store that writes batches (Redis: one round trip and one script per
	// shard for a whole block) gets a block of users at a time; fewer
	// workers suffice, each with more in flight.
	block := seedBlock
	if _, ok := st.(store.BatchApplier); ok {
		block = seedBatchBlock
		workers = max(1, min(workers, seedBatchWorkers))
	}
	for range min(workers, (c.users+block-1)/block) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine seedSummary
			defer func() {
				mu.Lock()
				sum.merge(&mine)
				mu.Unlock()
			}()
			var chs []consent.Change
			var whose []int // chs[j] is a change of user whose[j]
			for ctx.Err() == nil {
				from := int(next.Add(int64(block))) - block
				if from >= c.users {
					return
				}
				to := min(from+block, c.users)
				chs, whose = chs[:0], whose[:0]
				users := make([]seedUser, 0, to-from)
				for i := from; i < to; i++ {
					u := c.user(i)
					for _, ch := range u.changes {
						chs = append(chs, ch)
						whose = append(whose, i)
					}
					users = append(users, u)
				}
				_, errs := store.ApplyAll(ctx, st, chs)
				for j, err := range errs {
					if err != nil && !errors.Is(err, store.ErrNotReplicated) {
						u := &users[whose[j]-from]
						cancel(fmt.Errorf("user %s: %s: %w", u.id, chs[j].Op, err))
						return
					}
				}
				for k := range users {
					u := &users[k]
					modes[from+k] = uint8(u.tier+1) | u.mode<<4
					mine.add(u)
				}
				bar.add(int64(len(users)), int64(len(chs)))
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return sum, err
	}
	if c.events > 0 && (ol != nil || eventsOut != nil) {
		gen := c.newEventGen(modes)
		chunks := (c.events + seedEventChunk - 1) / seedEventChunk
		bar.phase("events", int64(c.events))
		if eventsOut != nil {
			// In order, so the file is the same every time.
			bw := bufio.NewWriterSize(eventsOut, 1<<20)
			for k := 0; k < chunks && ctx.Err() == nil; k++ {
				n := int64(0)
				gen.chunk(k, func(_ string, line []byte) {
					bw.Write(line)
					bw.WriteByte('\n')
					n++
				})
				bar.add(n, 0)
			}
			if err := bw.Flush(); err != nil {
				return sum, fmt.Errorf("writing the events: %w", err)
			}
			sum.events = int64(c.events)
		}
		var sent atomic.Int64
		var nextChunk atomic.Int64
		if ol != nil {
			if eventsOut != nil {
				bar.phase("events", int64(c.events)) // now into the store
			}
			for range min(workers, chunks) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var buf []byte
					for ctx.Err() == nil {
						k := int(nextChunk.Add(1)) - 1
						if k >= chunks {
							return
						}
						var ids []string
						var ends []int
						buf = buf[:0]
						gen.chunk(k, func(user string, line []byte) {
							ids = append(ids, user)
							buf = append(buf, line...)
							ends = append(ends, len(buf))
						})
						// One allocation for the chunk's lines.
						all := append([]byte(nil), buf...)
						lines := make([][]byte, len(ends))
						prev := 0
						for j, e := range ends {
							lines[j] = all[prev:e:e]
							prev = e
						}
						if err := ol.AppendOutcomes(ctx, ids, lines); err != nil {
							cancel(fmt.Errorf("outcome events: %w", err))
							return
						}
						sent.Add(int64(len(ids)))
						bar.add(int64(len(ids)), 0)
					}
				}()
			}
			wg.Wait()
			sum.events = sent.Load()
		}
		if err := context.Cause(ctx); err != nil {
			return sum, err
		}
	}
	sum.elapsed = time.Since(start)
	return sum, nil
}

// seedEventChunk is how many events one chunk holds: each chunk has its
// own random stream, so events are the same however chunks are spread.
const seedEventChunk = 1024

// eventGen makes the outcome events.
type eventGen struct {
	c        *seedConfig
	modes    []uint8
	eligible []int32 // users with events
	base     []float64
	phase    []float64
	start    time.Time
}

// items is how many items the events are about: about 20 events per item
// and day, 8 to 200 items.
func (c *seedConfig) items() int { return min(200, max(8, c.events/600)) }

func (c *seedConfig) newEventGen(modes []uint8) *eventGen {
	g := &eventGen{c: c, modes: modes, start: c.end.Add(-seedSpan)}
	for i, m := range modes {
		if m>>4 != seedNoEvents {
			g.eligible = append(g.eligible, int32(i))
		}
	}
	r := rand.New(rand.NewPCG(c.seed, 0x17e5_0000_0000_0000))
	n := c.items()
	g.base, g.phase = make([]float64, n), make([]float64, n)
	for i := range n {
		g.base[i] = 10 * math.Exp(r.Float64()*math.Log(50)) // 10 to 500
		g.phase[i] = r.Float64() * 2 * math.Pi
	}
	return g
}

// chunk makes the events of chunk k and hands each, as one JSON line
// without its newline, to emit (the line is reused after emit returns).
func (g *eventGen) chunk(k int, emit func(user string, line []byte)) {
	if len(g.eligible) == 0 {
		return
	}
	r := rand.New(rand.NewPCG(g.c.seed, 0xe7e7_0000_0000_0000|uint64(k)))
	n := min(seedEventChunk, g.c.events-k*seedEventChunk)
	var line []byte
	for range n {
		ui := int(g.eligible[r.IntN(len(g.eligible))])
		m := g.modes[ui]
		tier, mode := int(m&15)-1, m>>4
		item := r.IntN(len(g.base))
		day := r.IntN(int(seedSpan / (24 * time.Hour)))
		t := g.start.Add(time.Duration(day)*24*time.Hour + time.Duration(r.IntN(86400))*time.Second)
		rank := 1
		for rank < 20 && r.Float64() >= 0.3 {
			rank++
		}
		// The item's price of the day, a little noise, and the gap.
		price := g.base[item] * (1 + 0.08*math.Sin(2*math.Pi*float64(day)/7+g.phase[item])) * (1 + 0.01*r.NormFloat64())
		if tier == seedGold {
			price *= 1 + g.c.priceGap/100
		}
		price = math.Max(0.01, math.Round(price*100)/100)
		discount := 0.0
		if r.Float64() < 0.2 {
			discount = math.Round(price*(0.05+0.1*r.Float64())*100) / 100
		}
		pc := 0.16
		modeName := audit.ModePersonalized
		if mode == seedNonPersonalized {
			pc, modeName = 0.11, audit.ModeNonPersonalized
		}
		clicked := r.Float64() < pc/math.Sqrt(float64(rank))
		converted := clicked && r.Float64() < 0.15
		latency := math.Round((18+math.Exp(2+0.5*r.NormFloat64()))*10) / 10
		device := "ios"
		if r.IntN(2) == 1 {
			device = "android"
		}
		user := g.c.userID(ui)
		line = append(line[:0], `{"user":"`...)
		line = append(line, user...)
		line = append(line, `","item":"i`...)
		if item < 100 {
			line = append(line, '0')
		}
		if item < 10 {
			line = append(line, '0')
		}
		line = strconv.AppendInt(line, int64(item), 10)
		line = audit.AppendEventFields(line, t, modeName, rank, price, discount, clicked, converted, latency, device)
		emit(user, line)
	}
}

// writeFiles writes the data set as files instead of a store: the users
// file recguard audit --users reads (each user's tags and flags as the
// store would give them; restricted users, whom audits leave out, are not
// listed) and the events as JSON lines. It makes examples/data.
func (c *seedConfig) writeFiles(users, events io.Writer) error {
	set := consent.DefaultSettings()
	set.Version = 1
	modes := make([]uint8, c.users)
	uw := bufio.NewWriter(users)
	for i := range c.users {
		u := c.user(i)
		modes[i] = uint8(u.tier+1) | u.mode<<4
		rec := consent.NewRecord(u.id)
		for _, ch := range u.changes {
			if err := ch.Validate(&set); err != nil {
				return fmt.Errorf("user %s: %s: %w", u.id, ch.Op, err)
			}
			next, _, err := rec.Apply(ch, &set)
			if err != nil {
				return fmt.Errorf("user %s: %s: %w", u.id, ch.Op, err)
			}
			rec = next
		}
		if audit.Excluded(&rec) {
			continue
		}
		var ts, fs []string
		for _, a := range consent.HeldAtoms(&rec, &set, consent.PurposePersonalization) {
			if a.Kind == tags.AtomTag {
				ts = append(ts, strconv.Quote(a.String()))
			} else {
				fs = append(fs, strconv.Quote(a.String()))
			}
		}
		fmt.Fprintf(uw, "{\"id\":%q,\"tags\":[%s],\"flags\":[%s]}\n", u.id, strings.Join(ts, ","), strings.Join(fs, ","))
	}
	if err := uw.Flush(); err != nil {
		return err
	}
	ew := bufio.NewWriter(events)
	gen := c.newEventGen(modes)
	for k := 0; k*seedEventChunk < c.events; k++ {
		gen.chunk(k, func(_ string, line []byte) {
			ew.Write(line)
			ew.WriteByte('\n')
		})
	}
	return ew.Flush()
}

// seedProgress shows how far seeding is: a bar redrawn in place on a
// terminal, else a line every 10 seconds. A nil *seedProgress shows
// nothing.
type seedProgress struct {
	w     io.Writer
	tty   bool
	every time.Duration

	mu      sync.Mutex
	name    string
	total   int64
	started time.Time
	done    atomic.Int64
	changes atomic.Int64
	tick    *time.Ticker
	quit    chan struct{}
	wg      sync.WaitGroup
}

func newSeedProgress(w io.Writer, tty bool) *seedProgress {
	p := &seedProgress{w: w, tty: tty, every: 10 * time.Second}
	if tty {
		p.every = 200 * time.Millisecond
	}
	return p
}

// phase starts a phase of total steps (ending the one before).
func (p *seedProgress) phase(name string, total int64) {
	if p == nil {
		return
	}
	p.end()
	p.mu.Lock()
	p.name, p.total, p.started = name, total, time.Now()
	p.done.Store(0)
	p.quit = make(chan struct{})
	p.tick = time.NewTicker(p.every)
	tick, quit := p.tick, p.quit
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case <-tick.C:
				p.draw(false)
			case <-quit:
				return
			}
		}
	}()
}

func (p *seedProgress) add(done, changes int64) {
	if p == nil {
		return
	}
	p.done.Add(done)
	p.changes.Add(changes)
}

// end ends the current phase: on a terminal, its bar is drawn complete.
func (p *seedProgress) end() {
	p.mu.Lock()
	quit := p.quit
	p.quit = nil
	p.mu.Unlock()
	if quit == nil {
		return
	}
	close(quit)
	p.tick.Stop()
	p.wg.Wait()
	if p.tty {
		p.draw(true)
	}
}

// stop ends the last phase.
func (p *seedProgress) stop() {
	if p != nil {
		p.end()
	}
}

func (p *seedProgress) draw(final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done, el := p.done.Load(), time.Since(p.started)
	frac := 1.0
	if p.total > 0 {
		frac = min(1, float64(done)/float64(p.total))
	}
	what := fmt.Sprintf("%s/%s %s", humanCount(done), humanCount(p.total), p.name)
	if p.name == "users" {
		what += fmt.Sprintf(", %s changes", humanCount(p.changes.Load()))
	}
	if el > 0 && done > 0 {
		what += fmt.Sprintf(", %s/s", humanCount(int64(float64(done)/el.Seconds())))
	}
	left := ""
	if frac > 0.01 && frac < 1 && el > time.Second {
		left = ", about " + time.Duration(float64(el)*(1-frac)/frac).Round(time.Second).String() + " left"
	}
	if !p.tty {
		fmt.Fprintf(p.w, "seed: %s (%.0f%%) in %s%s\n", what, frac*100, el.Round(time.Second), left)
		return
	}
	n := int(frac * barWidth)
	bar := strings.Repeat("=", n)
	if n < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-n-1)
	}
	end := ""
	if final {
		end = "\n"
	}
	// \033[K clears what a longer line drawn before left.
	fmt.Fprintf(p.w, "\rseeding %-6s [%s] %3.0f%% %s in %s%s\033[K%s", p.name, bar, frac*100, what, el.Round(time.Second), left, end)
}
