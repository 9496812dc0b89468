package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
)

type metrics struct {
	// series caches the request counter and latency histogram of each
	// (route, method, status), so a request does not hash its labels
	// (requestSeries).
	mu              sync.RWMutex
	series          map[seriesKey]*requestSeries
	byReason        map[consent.Reason]prometheus.Counter // the decisions counter of each reason
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	decisions       *prometheus.CounterVec
	rightsLogErrors prometheus.Counter
	authLimited     prometheus.Counter
	keyGrace        prometheus.Counter
	notPropagated   prometheus.Counter
	shouldAsk       *prometheus.CounterVec
	excessive       *prometheus.CounterVec
	events          *prometheus.CounterVec
	provisionErrors prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, client *sdk.Client) (*metrics, error) {
	m := &metrics{
		series: map[seriesKey]*requestSeries{}, byReason: map[consent.Reason]prometheus.Counter{},
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recguard_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recguard_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"route"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recguard_decisions_total", Help: "Decisions and push answers served over HTTP, by reason.",
		}, []string{"reason"}),
		rightsLogErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recguard_rights_log_errors_total", Help: "Rights requests that could not be logged for the Art. 44 report.",
		}),
		authLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recguard_auth_fail_limited_total", Help: "Requests refused (429) because their client address was over its rate of failed authentications.",
		}),
		keyGrace: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recguard_auth_key_grace_total", Help: "Requests let in on a key last confirmed before the store became unavailable (KeyGrace).",
		}),
		notPropagated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recguard_changes_not_confirmed_total", Help: "Changes answered 202: recorded, but not confirmed by every live instance or by the required replicas.",
		}),
		shouldAsk: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recguard_should_ask_total",
			Help: "should-ask answers by kind class (personalization, guardian, channel, sensitive) and answer (may_ask, in_force, cooldown, suspended, unverified).",
		}, []string{"kind_class", "answer"}),
		excessive: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recguard_copy_requests_excessive_total",
			Help: "Copy requests (kind portability: exports; access: receipt lists) served although the user made more than the threshold in 30 days (Art. 25: clearly excessive).",
		}, []string{"kind"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recguard_events_total",
			Help: "Outcome events recorded through POST /v1/events, by how their mode is known: decided (a verified decision_id) or declared (the app's word).",
		}, []string{"mode_source"}),
		provisionErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recguard_provision_record_errors_total",
			Help: "Audience pages not handed out because their provision record (Art. 12) could not be written.",
		}),
	}
	stat := func(name, help string, f func(sdk.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(client.Stats()) })
	}
	for _, c := range []prometheus.Collector{
		m.requests, m.latency, m.decisions, m.rightsLogErrors, m.authLimited, m.keyGrace, m.notPropagated, m.shouldAsk, m.excessive, m.events, m.provisionErrors,
		stat("recguard_cache_users", "Users in the SDK cache.", func(s sdk.Stats) float64 { return float64(s.CacheSize) }),
		stat("recguard_cache_hit_ratio", "SDK cache hits / lookups.", func(s sdk.Stats) float64 { return s.HitRate() }),
		stat("recguard_cache_evictions", "Users evicted from the SDK cache.", func(s sdk.Stats) float64 { return float64(s.Evictions) }),
		stat("recguard_follower_lag_seconds", "Age of the oldest changelog follower confirmation.", func(s sdk.Stats) float64 { return s.Lag.Seconds() }),
		stat("recguard_followers_unverified", "Changelog followers not confirmed within the lease.", func(s sdk.Stats) float64 { return float64(s.UnverifiedLogs) }),
		stat("recguard_propagation_p99_seconds", "p99 time from a change to this instance applying it.", func(s sdk.Stats) float64 { return s.PropagationP99.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "recguard_ledger_written_total", Help: "Ledger entries (exposures, pushes, provisions) written to the store."},
			func() float64 { return float64(client.Stats().LedgerSent) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "recguard_ledger_sampled_out_total", Help: "Exposures left out of the ledger by the sampling rate (--ledger-sampling)."},
			func() float64 { return float64(client.Stats().LedgerSampledOut) }),
		stat("recguard_ledger_queued", "Ledger entries waiting to be written.", func(s sdk.Stats) float64 { return float64(s.LedgerQueued) }),
		ledgerDrops{client},
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// seriesKey names the series of one kind of request. The set is bounded:
// routes are the server's templates (or "unmatched"), methods a fixed set
// (methodLabel), statuses the few the handlers answer.
type seriesKey struct {
	route, method string
	status        int
}

// requestSeries are the series a request of one seriesKey counts in.
type requestSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func (m *metrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		k := seriesKey{route: route, method: methodLabel(c.Request.Method), status: c.Writer.Status()}
		m.mu.RLock()
		rs := m.series[k]
		m.mu.RUnlock()
		if rs == nil {
			rs = m.newSeries(k)
		}
		rs.requests.Inc()
		rs.latency.Observe(time.Since(start).Seconds())
	}
}

// newSeries returns the series of k, making them first.
func (m *metrics) newSeries(k seriesKey) *requestSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.series[k]
	if rs == nil {
		rs = &requestSeries{
			requests: m.requests.WithLabelValues(k.route, k.method, strconv.Itoa(k.status)),
			latency:  m.latency.WithLabelValues(k.route),
		}
		m.series[k] = rs
	}
	return rs
}

// decision counts one decision or push answer with reason r.
func (m *metrics) decision(r consent.Reason) {
	m.mu.RLock()
	ctr := m.byReason[r]
	m.mu.RUnlock()
	if ctr == nil {
		m.mu.Lock()
		if ctr = m.byReason[r]; ctr == nil {
			ctr = m.decisions.WithLabelValues(r.String())
			m.byReason[r] = ctr
		}
		m.mu.Unlock()
	}
	ctr.Inc()
}

// methodLabel maps a request method to one of a fixed set, so a client
// sending made-up methods cannot create new metric series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// ledgerDrops exports the ledger's drops by kind.
type ledgerDrops struct{ client *sdk.Client }

var ledgerDropsDesc = prometheus.NewDesc("recguard_ledger_dropped_total",
	"Ledger entries that never reached the store, by kind (exposure, push, provision): a full queue or a failed write. The counts are also kept in the store for the enforcement audit.",
	[]string{"kind"}, nil)

func (d ledgerDrops) Describe(ch chan<- *prometheus.Desc) { ch <- ledgerDropsDesc }

func (d ledgerDrops) Collect(ch chan<- prometheus.Metric) {
	s := d.client.Stats()
	for _, k := range []store.LedgerKind{store.LedgerExposure, store.LedgerPush, store.LedgerProvision} {
		ch <- prometheus.MustNewConstMetric(ledgerDropsDesc, prometheus.CounterValue, float64(s.LedgerDropped[k]), k.String())
	}
}

func (s *Server) metricsHandler() gin.HandlerFunc {
	h := promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{})
	return func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) }
}
