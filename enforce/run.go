package enforce

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Defaults of Options.
const (
	// DefaultAllowance is the propagation allowance for a user's change:
	// the SDK's default lease (sdk.Config.Lease). An instance that has not
	// seen a change within its lease fails closed, so no decision made
	// later than this after the change can be stale; the measured
	// propagation is far shorter (docs/results.md: p99 under 20 ms).
	DefaultAllowance = 2 * time.Second
	// DefaultSettingsAllowance is the allowance for a settings change (the
	// suspension, a policy version): the SDK's default settings lease.
	DefaultSettingsAllowance = 30 * time.Second
	// DefaultMaxViolations is how many violations a report lists by
	// default; the totals count them all.
	DefaultMaxViolations = 100_000
	// MaxAllowance bounds both allowances.
	MaxAllowance = 24 * time.Hour
)

// ErrInvalidOptions is wrapped by the errors about Options.
var ErrInvalidOptions = errors.New("enforce: invalid options")

// Options choose what an enforcement audit reads and how it judges.
type Options struct {
	// From and To bound the entries audited by their time: From <= At <
	// To; a zero bound is open.
	From, To time.Time
	// Allowance is how long after a user's change an entry that breaks
	// it is still put down to propagation (not a violation); zero means
	// DefaultAllowance, a negative value none.
	Allowance time.Duration
	// SettingsAllowance is the same for settings changes; zero means
	// DefaultSettingsAllowance, a negative value none.
	SettingsAllowance time.Duration
	// MaxViolations bounds the violations listed (the oldest are kept);
	// zero means DefaultMaxViolations.
	MaxViolations int
	// Workers is how many users are replayed at once (each a store read
	// of the user's receipts); zero means 4 per CPU.
	Workers int
	// Now stamps the report; nil means time.Now.
	Now func() time.Time
}

func (o *Options) fill() error {
	if !o.From.IsZero() && !o.To.IsZero() && !o.From.Before(o.To) {
		return fmt.Errorf("%w: to is not after from", ErrInvalidOptions)
	}
	switch {
	case o.Allowance == 0:
		o.Allowance = DefaultAllowance
	case o.Allowance < 0:
		o.Allowance = 0
	case o.Allowance > MaxAllowance:
		return fmt.Errorf("%w: allowance %v: at most %v", ErrInvalidOptions, o.Allowance, MaxAllowance)
	}
	switch {
	case o.SettingsAllowance == 0:
		o.SettingsAllowance = DefaultSettingsAllowance
	case o.SettingsAllowance < 0:
		o.SettingsAllowance = 0
	case o.SettingsAllowance > MaxAllowance:
		return fmt.Errorf("%w: settings allowance %v: at most %v", ErrInvalidOptions, o.SettingsAllowance, MaxAllowance)
	}
	if o.MaxViolations <= 0 {
		o.MaxViolations = DefaultMaxViolations
	}
	if o.Workers <= 0 {
		o.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// scanSlack is how much earlier than From the ledger is scanned: the scan
// selects by the time the store received an entry, which is after the
// entry's own time except for a clock running ahead.
const scanSlack = time.Hour

// entry is one exposure or push kept for the replay.
type entry struct {
	at, logged int64
	user       int32
	kind       store.LedgerKind
	decided    bool
	targeted   bool
	contra     bool
	reason     consent.Reason
	mode       string
	rv, sv     uint64
	id         consent.DecisionID
	channel    string
	campaign   string
	surface    string
	tags       []tags.Tag
}

// chunked holds the entries in chunks of a fixed size, so that keeping
// ten million of them never copies them to grow one slice.
type chunked struct {
	chunks [][]entry
	n      int
}

const chunkBits = 16

func (c *chunked) add(e entry) {
	if c.n>>chunkBits == len(c.chunks) {
		c.chunks = append(c.chunks, make([]entry, 0, 1<<chunkBits))
	}
	last := &c.chunks[len(c.chunks)-1]
	*last = append(*last, e)
	c.n++
}

func (c *chunked) at(i int) *entry { return &c.chunks[i>>chunkBits][i&(1<<chunkBits-1)] }

// Run audits the ledger of st (which must be a store.Ledger and list its
// users' receipts) against the receipts: every exposure and push in the
// window is checked against the user's consent, and the settings, as they
// stood at the entry's time. Options out of range are an error wrapping
// ErrInvalidOptions; ctx ends the run early with its error.
func Run(ctx context.Context, st store.Store, opts Options) (*Report, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	lg, ok := st.(store.Ledger)
	if !ok {
		return nil, fmt.Errorf("%w: the store keeps no ledger", errors.ErrUnsupported)
	}
	rep := &Report{
		Generated: opts.Now().UTC(), From: opts.From.UTC(), To: opts.To.UTC(),
		Allowance: opts.Allowance.String(), SettingsAllowance: opts.SettingsAllowance.String(),
		Drops:           map[string]uint64{},
		Totals:          Totals{ByKind: map[Kind]int64{}, ByDay: []DayTotal{}, BySurface: map[string]map[Kind]int64{}},
		WithinAllowance: Allowed{ByKind: map[Kind]int64{}},
		Violations:      []Violation{}, ProvisionsBy: []ProvisionTotal{}, Notes: []string{},
	}
	cur, err := st.Settings(ctx)
	if err != nil {
		return nil, err
	}
	srs, err := st.SettingsReceipts(ctx)
	if err != nil {
		return nil, err
	}
	sh := buildSettings(cur, srs)

	// Read the window's entries; users are numbered as first seen.
	var (
		entries chunked
		names   []string
		userIdx = map[string]int32{}
		intern  = map[string]string{}
		provs   = map[[2]string]*ProvisionTotal{}
	)
	in := func(s string) string {
		if s == "" {
			return ""
		}
		if v, ok := intern[s]; ok {
			return v
		}
		if len(intern) < 1<<16 {
			intern[s] = s
		}
		return s
	}
	var scanFrom, scanTo time.Time
	if !opts.From.IsZero() {
		scanFrom = opts.From.Add(-scanSlack)
	}
	from, to := opts.From.UnixNano(), opts.To.UnixNano()
	n := 0
	err = lg.ScanLedger(ctx, scanFrom, scanTo, func(e store.LedgerEntry) error {
		if n++; n%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		at := e.At.UnixNano()
		if !opts.From.IsZero() && at < from || !opts.To.IsZero() && at >= to {
			return nil
		}
		rep.Entries++
		switch e.Kind {
		case store.LedgerProvision:
			rep.Provisions++
			k := [2]string{e.Recipient, e.Purpose}
			p := provs[k]
			if p == nil {
				p = &ProvisionTotal{Recipient: e.Recipient, Purpose: e.Purpose, First: e.At.UTC(), Last: e.At.UTC()}
				provs[k] = p
			}
			p.Exports++
			p.Users += int64(e.Count)
			if e.At.Before(p.First) {
				p.First = e.At.UTC()
			}
			if e.At.After(p.Last) {
				p.Last = e.At.UTC()
			}
			return nil
		case store.LedgerExposure:
			rep.Exposures++
			if e.Decided {
				rep.Coverage.ExposuresDecided++
			}
		case store.LedgerPush:
			rep.Pushes++
			if e.Decided {
				rep.Coverage.PushesDecided++
			}
		default:
			return nil
		}
		if e.UserID == "" {
			rep.Unattributed++
			return nil
		}
		u, ok := userIdx[e.UserID]
		if !ok {
			u = int32(len(names))
			userIdx[e.UserID] = u
			names = append(names, e.UserID)
		}
		entries.add(entry{
			at: at, logged: e.Logged.UnixNano(), user: u, kind: e.Kind, decided: e.Decided, targeted: e.Targeted,
			contra: e.Contradicted, reason: e.Reason, mode: in(e.Mode), rv: e.RecordVersion, sv: e.SettingsVersion,
			id: e.DecisionID, channel: in(e.Channel), campaign: in(e.Campaign), surface: in(e.Surface), tags: e.Tags,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	userIdx, intern = nil, nil
	rep.Users = int64(len(names))
	if rep.Exposures > 0 {
		rep.Coverage.ExposureShare = float64(rep.Coverage.ExposuresDecided) / float64(rep.Exposures)
	}
	if rep.Pushes > 0 {
		rep.Coverage.PushShare = float64(rep.Coverage.PushesDecided) / float64(rep.Pushes)
	}

	// Order the entries by user (counting sort: each user's entries stay
	// in the ledger's order).
	start := make([]int32, len(names)+1)
	for i := range entries.n {
		start[entries.at(i).user+1]++
	}
	for u := 1; u <= len(names); u++ {
		start[u] += start[u-1]
	}
	order := make([]int32, entries.n)
	fill := append([]int32(nil), start[:len(names)]...)
	for i := range entries.n {
		u := entries.at(i).user
		order[fill[u]] = int32(i)
		fill[u]++
	}
	fill = nil

	// Replay the users, in chunks, on the workers.
	const chunk = 256
	var (
		next     int64
		mu       sync.Mutex
		results  []*checker
		firstErr error
		wg       sync.WaitGroup
	)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := min(opts.Workers, max(1, (len(names)+chunk-1)/chunk))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newChecker(sh, &opts)
			defer func() {
				mu.Lock()
				results = append(results, c)
				mu.Unlock()
			}()
			for {
				mu.Lock()
				lo := next
				next += chunk
				stop := firstErr != nil
				mu.Unlock()
				if stop || lo >= int64(len(names)) {
					return
				}
				hi := min(lo+chunk, int64(len(names)))
				for u := lo; u < hi; u++ {
					if err := wctx.Err(); err != nil {
						return
					}
					rs, err := st.Receipts(wctx, names[u])
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						cancel()
						return
					}
					c.receipts += int64(len(rs))
					h := buildUser(rs)
					for _, i := range order[start[u]:start[u+1]] {
						c.check(entries.at(int(i)), names[u], h)
					}
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Merge.
	var all []Violation
	days := map[string]*DayTotal{}
	for _, c := range results {
		rep.Receipts += c.receipts
		all = append(all, c.violations...)
		for k, v := range c.within {
			rep.WithinAllowance.ByKind[k] += v
			rep.WithinAllowance.All += v
		}
		rep.WithinAllowance.MaxLagMS = max(rep.WithinAllowance.MaxLagMS, c.maxLag)
	}
	for i := range all {
		v := &all[i]
		rep.Totals.All++
		rep.Totals.ByKind[v.Kind]++
		day := v.At.UTC().Format(time.DateOnly)
		d := days[day]
		if d == nil {
			d = &DayTotal{Day: day, ByKind: map[Kind]int64{}}
			days[day] = d
		}
		d.All++
		d.ByKind[v.Kind]++
		s := v.Surface
		if s == "" {
			s = "unknown"
		}
		if rep.Totals.BySurface[s] == nil {
			rep.Totals.BySurface[s] = map[Kind]int64{}
		}
		rep.Totals.BySurface[s][v.Kind]++
	}
	for _, d := range days {
		rep.Totals.ByDay = append(rep.Totals.ByDay, *d)
	}
	sort.Slice(rep.Totals.ByDay, func(i, j int) bool { return rep.Totals.ByDay[i].Day < rep.Totals.ByDay[j].Day })
	sort.Slice(all, func(i, j int) bool {
		a, b := &all[i], &all[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.User != b.User {
			return a.User < b.User
		}
		return a.Kind < b.Kind
	})
	if len(all) > opts.MaxViolations {
		rep.ViolationsOmitted = int64(len(all) - opts.MaxViolations)
		all = all[:opts.MaxViolations]
	}
	if all != nil {
		rep.Violations = all
	}
	for _, p := range provs {
		rep.ProvisionsBy = append(rep.ProvisionsBy, *p)
	}
	sort.Slice(rep.ProvisionsBy, func(i, j int) bool {
		a, b := rep.ProvisionsBy[i], rep.ProvisionsBy[j]
		if a.Recipient != b.Recipient {
			return a.Recipient < b.Recipient
		}
		return a.Purpose < b.Purpose
	})
	if drops, err := lg.LedgerDrops(ctx); err == nil {
		for k, v := range drops {
			rep.Drops[k.String()] = v
		}
	} else {
		return nil, err
	}
	rep.Notes = notes(rep)
	return rep, nil
}

// notes says what the reader must know.
func notes(rep *Report) []string {
	out := []string{
		fmt.Sprintf("An entry within %s of a user's change (%s of a settings change) that breaks it is put down to propagation and counted in within_allowance, not listed.", rep.Allowance, rep.SettingsAllowance),
		"A tag's sensitive category is judged under today's taxonomy.",
	}
	var dropped uint64
	for _, v := range rep.Drops {
		dropped += v
	}
	if dropped > 0 {
		out = append(out, fmt.Sprintf("%d entries never reached the ledger (a full queue or an unreachable store): the ledger is incomplete by that many.", dropped))
	}
	if rep.Unattributed > 0 {
		out = append(out, fmt.Sprintf("%d exposures and pushes name no user (erased since, or erased when recorded) and were not checked.", rep.Unattributed))
	}
	if rep.ViolationsOmitted > 0 {
		out = append(out, fmt.Sprintf("%d violations are counted in the totals but not listed.", rep.ViolationsOmitted))
	}
	return out
}
