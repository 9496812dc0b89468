package sdk

import (
	"math"
	"sync"
	"time"
)

// Stats are the client's numbers, for metrics.
type Stats struct {
	// CacheSize is the number of users cached; CacheCapacity the most.
	CacheSize, CacheCapacity int
	// Hits and Misses count Decide/CanPush lookups; Evictions count users
	// pushed out of the cache to make room.
	Hits, Misses, Evictions uint64
	// Verified is true when every follower confirmed it is current within
	// the lease; UnverifiedLogs counts those that have not.
	Verified       bool
	UnverifiedLogs int
	// Lag is the age of the oldest follower confirmation.
	Lag time.Duration
	// Rebuilds counts cache drops after a changelog was trimmed past a
	// follower or found behind it (a regression).
	Rebuilds uint64
	// Regressions counts changelogs found behind what this client applied
	// (failover to a lagging replica, restore from an older snapshot) and
	// records read with a lower version than cached; each dropped the
	// shard's views and failed the shard closed until it re-read the truth.
	Regressions uint64
	// DataLoss is true while the store reports lost data (its identity
	// marker is gone or replaced) for DataLossLogs logs: answers for their
	// users fail closed with consent.ReasonDataLoss until an operator
	// restores the data (or accepts the loss and restarts the instance).
	DataLoss     bool
	DataLossLogs int
	// CorruptRecords counts reads that found a user's record missing or
	// undecodable (answered fail closed with consent.ReasonDataLoss).
	CorruptRecords uint64
	// ExposuresSent and ExposuresDropped count exposure events handed to
	// the sink and dropped (queue full or sink error).
	ExposuresSent, ExposuresDropped uint64
	// LedgerSent counts ledger entries written to the store; LedgerDropped
	// those that never reached it, by kind (index store.LedgerExposure,
	// store.LedgerPush, store.LedgerProvision; 0 unused): a full queue or
	// a failed write. LedgerSampledOut counts exposures left out by
	// Config.LedgerSampling; LedgerQueued the entries waiting now.
	LedgerSent       uint64
	LedgerDropped    [4]uint64
	LedgerSampledOut uint64
	LedgerQueued     int
	// Propagation is the observed time from a change (its receipt time)
	// to this client applying it from the changelog.
	PropagationSamples             uint64
	PropagationP50, PropagationP99 time.Duration
}

// HitRate is Hits / (Hits + Misses), or 0 before any lookup.
func (s Stats) HitRate() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// Stats returns the client's current numbers.
func (c *Client) Stats() Stats {
	s := Stats{
		CacheSize:        int(c.cache.size.Load()),
		CacheCapacity:    c.cache.capacity(),
		Misses:           c.misses.Load(),
		Evictions:        c.cache.evictions.Load(),
		Rebuilds:         c.rebuilds.Load(),
		Regressions:      c.regressed.Load(),
		CorruptRecords:   c.corrupt.Load(),
		ExposuresSent:    c.sent.Load(),
		ExposuresDropped: c.dropped.Load(),
	}
	for i := range c.hits {
		s.Hits += c.hits[i].n.Load()
	}
	s.LedgerSent, s.LedgerSampledOut, s.LedgerQueued = c.ledger.sent.Load(), c.ledger.sampled.Load(), c.ledger.queued()
	for i := range s.LedgerDropped {
		s.LedgerDropped[i] = c.ledger.dropped[i].Load()
	}
	s.Verified = !c.closed.Load()
	now := time.Now()
	for i := range c.lost {
		if c.lost[i].Load() {
			s.DataLoss = true
			s.DataLossLogs++
		}
	}
	for i := range c.ok {
		if !c.ok[i].Load() {
			s.Verified = false
			s.UnverifiedLogs++
		}
		if lag := now.Sub(time.Unix(0, c.confirmed[i].Load())); lag > s.Lag {
			s.Lag = lag
		}
	}
	s.PropagationSamples, s.PropagationP50, s.PropagationP99 = c.prop.summary()
	return s
}

// histogram counts durations in logarithmic buckets (8 per power of two,
// from 1 µs to about 1 hour), enough for percentiles within ~9%.
type histogram struct {
	mu      sync.Mutex
	n       uint64
	buckets [8 * 32]uint64
}

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	b := int(math.Log2(us) * 8)
	return min(b, len(histogram{}.buckets)-1)
}

func bucketValue(b int) time.Duration {
	return time.Duration(math.Exp2(float64(b)/8+1.0/16) * float64(time.Microsecond))
}

func (h *histogram) observe(d time.Duration) {
	b := bucketOf(d)
	h.mu.Lock()
	h.n++
	h.buckets[b]++
	h.mu.Unlock()
}

func (h *histogram) summary() (n uint64, p50, p99 time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n, h.quantile(0.50), h.quantile(0.99)
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for b, c := range h.buckets {
		seen += c
		if seen >= rank {
			return bucketValue(b)
		}
	}
	return bucketValue(len(h.buckets) - 1)
}
