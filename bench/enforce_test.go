package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/enforce"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// Enforcement audit benchmark (issue 14): 1,000,000 users with 2 to 4
// receipts each (opt-outs and opt-ins, channel refusals and allowances,
// tag deletions, restrictions; 3 million receipts) and a suspension of the
// service for an hour (two settings receipts), and 10,000,000 ledger
// entries (10 per user: exposures, pushes, with tags) over 30 days in the
// embedded store (no data directory). The ledger is written in ten rounds
// over all the users, so each user's entries are spread over the whole
// ledger as in a real one. Every entry is compliant but one in a thousand,
// a personalized exposure more than the allowance after its user opted
// out (about 10,000 violations, each checked to be found).
//
// Group enforce_10M: "enforce" is enforce.Run over the store with the
// default options; the baseline "read_only" is the raw limit of reading
// the same data and doing nothing else: ScanLedger over every entry and
// Receipts for every user (on 4 goroutines per CPU, as Run's workers).
// Both report entries/s, the heap in use before the run (the store's
// data) and its peak during the run (runtime.MemStats.HeapInuse sampled
// every 50 ms), and cpu_s. The data is built once, outside the timers.
//
//	GOMEMLIMIT=18GiB go test -run='^$' -bench=Enforce10M -benchtime=1x -timeout=60m ./bench
//
// With -short the benchmark runs on a twentieth of the data (a smoke
// test); RECGUARD_ENFORCE_USERS=n runs it on n users (10 n entries).
const (
	enfRounds = 10 // entries per user
	enfSpan   = 30 * 24 * time.Hour
	enfPlant  = 1000 // one entry in enfPlant is a planted violation
)

var (
	enfUsers   = 1_000_000
	enfEntries = enfRounds * enfUsers
)

var (
	enfBase     = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	enfSuspend  = enfBase.Add(15*24*time.Hour + 12*time.Hour)
	enfResume   = enfSuspend.Add(time.Hour)
	enfChannels = []string{"email", "in_app", "push", "sms"}
	enfTags     = []tags.Tag{"interest:sports", "interest:music", "interest:travel", "interest:food", "genre:jazz", "genre:rock", "brand:acme", "brand:globex"}
	// enfTagSets are the entries' tag slices, shared (one per tag).
	enfTagSets = func() [][]tags.Tag {
		out := make([][]tags.Tag, len(enfTags))
		for i := range enfTags {
			out[i] = enfTags[i : i+1 : i+1]
		}
		return out
	}()
)

// The changes of the synthetic users.
const (
	enfOptOut uint8 = iota + 1
	enfOptIn
	enfRefuse
	enfAllow
	enfDelete
	enfRestrict
	enfUnrestrict
)

type enfChange struct {
	at  int64 // Unix ns, whole milliseconds
	op  uint8
	arg uint8
}

// enfUser is one user's changes, oldest first.
type enfUser struct {
	n  uint8
	cs [4]enfChange
}

// enfRand is a small deterministic generator (splitmix64).
type enfRand uint64

func (r *enfRand) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *enfRand) intn(n int) int { return int(r.next() % uint64(n)) }

// enfState is what the rules read of a user at a time.
type enfState struct {
	off, restricted bool
	refused         uint8 // bit per channel
	deleted         uint8 // bit per tag
	offAt           int64 // when the current "off" began
}

func (u *enfUser) state(t int64) enfState {
	var s enfState
	for _, c := range u.cs[:u.n] {
		if c.at > t {
			break
		}
		s.apply(c)
	}
	return s
}

func (s *enfState) apply(c enfChange) {
	switch c.op {
	case enfOptOut:
		s.off, s.offAt = true, c.at
	case enfOptIn:
		s.off = false
	case enfRefuse:
		s.refused |= 1 << c.arg
	case enfAllow:
		s.refused &^= 1 << c.arg
	case enfDelete:
		s.deleted |= 1 << c.arg
	case enfRestrict:
		s.restricted = true
	case enfUnrestrict:
		s.restricted = false
	}
}

func enfUserID(i int) string { return fmt.Sprintf("e%07d", i) }

// enfPlan makes user i's changes.
func enfPlan(i int) enfUser {
	r := enfRand(uint64(i)*0x2545f4914f6cdd1d + 1)
	var u enfUser
	u.n = uint8(2 + r.intn(3))
	ts := make([]int64, u.n)
	for k := range ts {
		ts[k] = enfBase.Add(time.Duration(r.intn(int(enfSpan/time.Millisecond))) * time.Millisecond).UnixNano()
	}
	for a := 1; a < len(ts); a++ { // insertion sort; distinct times
		for b := a; b > 0 && ts[b] < ts[b-1]; b-- {
			ts[b], ts[b-1] = ts[b-1], ts[b]
		}
	}
	var s enfState
	for k := 0; k < int(u.n); k++ {
		c := enfChange{at: ts[k]}
		if k > 0 && c.at <= u.cs[k-1].at {
			c.at = u.cs[k-1].at + int64(time.Millisecond)
		}
		switch x := r.intn(100); {
		case x < 35:
			c.op = enfOptOut
			if s.off {
				c.op = enfOptIn
			}
		case x < 70:
			c.arg = uint8(r.intn(len(enfChannels)))
			c.op = enfRefuse
			if s.refused&(1<<c.arg) != 0 {
				c.op = enfAllow
			}
		case x < 90:
			c.arg = uint8(r.intn(len(enfTags)))
			c.op = enfDelete
			if s.deleted&(1<<c.arg) != 0 {
				c.op = enfOptOut
				if s.off {
					c.op = enfOptIn
				}
			}
		default:
			c.op = enfRestrict
			if s.restricted {
				c.op = enfUnrestrict
			}
		}
		s.apply(c)
		u.cs[k] = c
	}
	return u
}

func (c enfChange) change(user string) consent.Change {
	var ch consent.Change
	switch c.op {
	case enfOptOut:
		ch = consent.SetPersonalization(user, false)
	case enfOptIn:
		ch = consent.SetPersonalization(user, true)
	case enfRefuse:
		ch = consent.RefuseChannel(user, enfChannels[c.arg])
	case enfAllow:
		ch = consent.AllowChannel(user, enfChannels[c.arg])
	case enfDelete:
		ch = consent.DeleteTag(user, enfTags[c.arg])
	case enfRestrict:
		ch = consent.Restrict(user)
	case enfUnrestrict:
		ch = consent.Unrestrict(user)
	}
	ch.At = time.Unix(0, c.at).UTC()
	return ch
}

// enfEntry makes user i's entry of round: compliant, or (one in enfPlant,
// when the user is opted out long enough) a personalized exposure after
// the opt-out, which it reports.
func enfEntry(i, round int, u *enfUser, user string) (store.LedgerEntry, bool) {
	r := enfRand(uint64(i)*0x9e3779b97f4a7c15 + uint64(round)*0x632be59bd9b4e019 + 7)
	at := enfBase.Add(time.Duration(round)*enfSpan/enfRounds + time.Duration(r.intn(int(enfSpan/enfRounds/time.Millisecond)))*time.Millisecond)
	t := at.UnixNano()
	s := u.state(t)
	suspended := !at.Before(enfSuspend) && at.Before(enfResume)
	e := store.LedgerEntry{Kind: store.LedgerExposure, UserID: user, At: at, Surface: "sdk", Items: 10,
		Mode: store.ModeNonPersonalized, Reason: consent.ReasonOptedOut, RecordVersion: uint64(u.n), SettingsVersion: 1}
	tag := func() []tags.Tag {
		k := r.intn(len(enfTags))
		if s.deleted&(1<<k) != 0 {
			return nil
		}
		return enfTagSets[k]
	}
	if r.intn(enfPlant) == 0 && s.off && !s.restricted && !suspended && t-s.offAt > int64(enforce.DefaultAllowance) {
		e.Mode, e.Reason = store.ModePersonalized, consent.ReasonPersonalized
		return e, true
	}
	if suspended {
		return e, false
	}
	if r.intn(10) < 4 && !s.restricted {
		c := r.intn(len(enfChannels))
		if s.refused&(1<<c) == 0 {
			e.Kind, e.Channel, e.Items, e.Mode, e.Reason = store.LedgerPush, enfChannels[c], 0, store.ModeAllowed, consent.ReasonAllowed
			e.Decided = true
			if !s.off && r.intn(2) == 0 {
				e.Targeted, e.Tags = true, tag()
			}
			return e, false
		}
	}
	if !s.off && !s.restricted {
		e.Mode, e.Reason, e.Decided, e.Tags = store.ModePersonalized, consent.ReasonPersonalized, true, tag()
	}
	return e, false
}

// buildEnforceData fills a new embedded store; it returns the store and
// the number of violations planted.
func buildEnforceData(b *testing.B) (*memory.Store, []string, int64) {
	b.Helper()
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(enfBase.UnixNano())
	// The changelog is kept short: the audit does not read it.
	st, err := memory.Open(ctx, memory.Options{Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }, ChangelogMaxLen: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	start := time.Now()
	// The suspension (no user change depends on the settings).
	for _, at := range []time.Time{enfSuspend, enfResume} {
		clock.Store(at.UnixNano())
		set, err := st.Settings(ctx)
		if err != nil {
			b.Fatal(err)
		}
		set.Suspended = at.Equal(enfSuspend)
		if _, _, err := st.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
			b.Fatal(err)
		}
	}
	users := make([]enfUser, enfUsers)
	ids := make([]string, enfUsers)
	var receipts atomic.Int64
	workers := 2 * runtime.GOMAXPROCS(0)
	if err := fanOut(workers, enfUsers, func(i int) error {
		users[i], ids[i] = enfPlan(i), enfUserID(i)
		for _, c := range users[i].cs[:users[i].n] {
			a, err := st.Apply(ctx, c.change(ids[i]))
			if err != nil {
				return err
			}
			if a.Receipt == nil {
				return fmt.Errorf("user %d: change %+v is a no-op", i, c)
			}
		}
		receipts.Add(int64(users[i].n))
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("applied %d receipts of %d users in %.1fs", receipts.Load(), enfUsers, time.Since(start).Seconds())

	start = time.Now()
	const batch = 5000
	perRound := (enfUsers + batch - 1) / batch
	var planted atomic.Int64
	if err := fanOut(workers, enfRounds*perRound, func(k int) error {
		round, lo := k/perRound, (k%perRound)*batch
		hi := min(lo+batch, enfUsers)
		es := make([]store.LedgerEntry, 0, hi-lo)
		n := int64(0)
		for i := lo; i < hi; i++ {
			e, bad := enfEntry(i, round, &users[i], ids[i])
			es = append(es, e)
			if bad {
				n++
			}
		}
		planted.Add(n)
		return st.AppendLedger(ctx, es)
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("appended %d ledger entries (%d planted violations) in %.1fs", enfEntries, planted.Load(), time.Since(start).Seconds())
	// A first scan, untimed: the runs compared below both find the
	// memory a scan needs already mapped.
	n := 0
	if err := st.ScanLedger(ctx, time.Time{}, time.Time{}, func(store.LedgerEntry) error { n++; return nil }); err != nil || n != enfEntries {
		b.Fatalf("scanned %d entries: %v", n, err)
	}
	b.Logf("heap in use after the build: %.0f MiB", heapInUseMiB())
	return st, ids, planted.Load()
}

// heapSampler samples HeapInuse every 50 ms until stopped.
type heapSampler struct {
	mu   sync.Mutex
	peak uint64
	stop chan struct{}
	done chan struct{}
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	h.sample()
	go func() {
		defer close(h.done)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tk.C:
				h.sample()
			}
		}
	}()
	return h
}

func (h *heapSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.mu.Lock()
	h.peak = max(h.peak, ms.HeapInuse)
	h.mu.Unlock()
}

func (h *heapSampler) end() float64 {
	h.sample()
	close(h.stop)
	<-h.done
	return float64(h.peak) / (1 << 20)
}

func heapInUseMiB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}

func BenchmarkEnforce10M(b *testing.B) {
	if n, err := strconv.Atoi(os.Getenv("RECGUARD_ENFORCE_USERS")); err == nil && n > 0 {
		enfUsers, enfEntries = n, enfRounds*n
	} else if testing.Short() {
		enfUsers, enfEntries = 50_000, enfRounds*50_000
	}
	defer func() { enfUsers, enfEntries = 1_000_000, enfRounds*1_000_000 }()
	st, ids, planted := buildEnforceData(b)
	ctx := context.Background()

	b.Run("read_only", func(b *testing.B) {
		measure(b, "enforce_10M", "read_only", true)
		base := heapInUseMiB()
		hs := sampleHeap()
		cpu0 := cpuTime()
		for b.Loop() {
			var n, rs atomic.Int64
			err := st.ScanLedger(ctx, time.Time{}, time.Time{}, func(store.LedgerEntry) error {
				n.Add(1)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := fanOut(4*runtime.GOMAXPROCS(0), len(ids), func(i int) error {
				r, err := st.Receipts(ctx, ids[i])
				rs.Add(int64(len(r)))
				return err
			}); err != nil {
				b.Fatal(err)
			}
			if n.Load() != int64(enfEntries) || rs.Load() < 2*int64(enfUsers) {
				b.Fatalf("read %d entries, %d receipts", n.Load(), rs.Load())
			}
		}
		b.ReportMetric(float64(enfEntries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		b.ReportMetric(hs.end(), "peak_heap_MiB")
		b.ReportMetric(base, "base_heap_MiB")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu_s")
	})

	b.Run("enforce", func(b *testing.B) {
		measure(b, "enforce_10M", "enforce", false)
		base := heapInUseMiB()
		hs := sampleHeap()
		cpu0 := cpuTime()
		var rep *enforce.Report
		for b.Loop() {
			var err error
			rep, err = enforce.Run(ctx, st, enforce.Options{})
			if err != nil {
				b.Fatal(err)
			}
		}
		peak := hs.end()
		if rep.Entries != int64(enfEntries) || rep.Users != int64(enfUsers) || rep.Receipts < 2*int64(enfUsers) || rep.Unattributed != 0 {
			b.Fatalf("report: %d entries, %d users, %d receipts, %d unattributed", rep.Entries, rep.Users, rep.Receipts, rep.Unattributed)
		}
		if rep.Totals.All != planted || rep.Totals.ByKind[enforce.PersonalizedAfterOptOut] != planted {
			b.Fatalf("found %d violations %v; %d planted", rep.Totals.All, rep.Totals.ByKind, planted)
		}
		b.ReportMetric(float64(enfEntries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		b.ReportMetric(peak, "peak_heap_MiB")
		b.ReportMetric(base, "base_heap_MiB")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu_s")
		b.ReportMetric(float64(rep.Totals.All), "violations")
	})
}
