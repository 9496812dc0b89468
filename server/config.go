package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
)

// Config configures a Server. Zero fields mean their documented defaults;
// DefaultConfig spells them out, and Validate checks a configuration.
type Config struct {
	// Client answers decisions and audiences and applies changes. Required;
	// make it with Audiences on for the audience route.
	Client *sdk.Client
	// Store is the system of record the client runs on. Required; it must
	// keep API keys (store.KeyStore).
	Store store.Store
	// ChainKey is the receipt chain key the store seals with (the same
	// deployment secret): chain_valid on GET /v1/users/{id}/receipts and
	// the auditor's verification (GET /v1/audit/users/{id}/receipts) check
	// receipt chains under it, against the record's head. Empty means
	// unkeyed chains.
	ChainKey []byte
	// DecisionSecret is the deployment secret decision IDs are signed
	// under: every decision and can-push answer carries a decision_id,
	// HMAC-SHA256 under consent.DecisionKey(DecisionSecret), which
	// POST /v1/events verifies (see consent.SignedDecision). Give every
	// instance of a deployment the same secret, so that an ID issued by
	// one verifies on the others. Empty means the ChainKey (the key is
	// derived from it, domain separated, so decision IDs and receipts never
	// share a key); with no ChainKey either, a random secret made by New:
	// IDs then verify only on the process that issued them, until it
	// stops. At least consent.MinChainKeyLen bytes when given.
	DecisionSecret []byte
	// ExcessiveCopies is how many copy requests (exports and receipt
	// lists) a user may make in CopyWindow (30 days) before further ones
	// are flagged as clearly excessive (Art. 25): still served, with
	// HeaderExcessiveRequests in the answer and counted in
	// recguard_copy_requests_excessive_total. Counted across instances when
	// the store is a RequestCounter, else per instance. Zero means 10;
	// negative turns the count off.
	ExcessiveCopies int
	// MaxBody bounds request bodies, except POST /v1/events' (MaxEventsBody).
	// Zero means 1 MiB.
	MaxBody int64
	// MaxEventsBody bounds the body of POST /v1/events, which carries up
	// to MaxEventsPerPost events. Zero means DefaultMaxEventsBody
	// (MaxEventsPerPost x EventBytes: a full batch of events of 1 KiB on
	// average fits).
	MaxEventsBody int64
	// RateLimit is the requests per second allowed per key (token bucket,
	// burst RateBurst). Zero means 200; negative means no limit.
	RateLimit float64
	// RateBurst is the bucket size. Zero means 2 x RateLimit.
	RateBurst int
	// KeyCacheTTL is how long a verified key is trusted before it is read
	// again (so a revoked key stops working within it). Zero means 5 s.
	KeyCacheTTL time.Duration
	// ReadTimeout and WriteTimeout bound a request's reading and the
	// writing of its answer (HTTPServer). Zero means 10 s and 90 s (an
	// audit may run for up to 60 s before it answers). WriteTimeout must be
	// at least twice StoreTimeout.
	ReadTimeout, WriteTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its next
	// request (HTTPServer). Zero means 2 minutes.
	IdleTimeout time.Duration
	// Registry receives the server's Prometheus metrics. Nil means a new
	// registry, served at /metrics.
	Registry *prometheus.Registry
	// Now is the clock of the key cache (KeyCacheTTL, KeyGrace), of the
	// rate limiters (RateLimit, AuthFailRate), of the rights log, of
	// exports, and of the reason should-ask gives for a "no" (whether a
	// re-ask cooldown still runs: the client's sdk.Config.Now decides the
	// answer itself, so give both the same clock). Nil means time.Now.
	Now func() time.Time

	// DecisionBudget bounds GET /v1/users/{id}/decision and /can-push from
	// the key check to the answer, and every key read and the store check
	// of /readyz. When the store is slow or gone, decisions answer within
	// it, fail closed (personalized=false, allowed=false, reason
	// unavailable or unverified) and with status 200, never a long wait or
	// a 503. Zero means 250 ms.
	DecisionBudget time.Duration
	// KeyGrace is how long a key the store last confirmed keeps working
	// while the store cannot be read (its read fails with
	// store.ErrUnavailable or store.ErrDataLoss, or does not answer within
	// DecisionBudget), so apps keep getting fail-closed decisions. A
	// revoked key still stops within KeyCacheTTL whenever the store
	// answers; during an outage, a revocation the server could not read
	// takes effect when the store is back, or at the latest KeyGrace after
	// the key was last confirmed. Keys not confirmed within KeyGrace are
	// refused with 503 during an outage. Zero means 10 minutes; negative
	// means no grace.
	KeyGrace time.Duration
	// WaitForAll acknowledges restrictive changes (personalization off, a
	// channel refused, sensitive consent withdrawn, a tag deleted, erasure,
	// the suspension switched on) only after every live instance applied
	// them (sdk.Client.WaitApplied, bounded by the client's
	// PropagationTimeout): when one does not confirm in time the answer is
	// 202 with a not-propagated problem, and the change stands. Other
	// changes are acknowledged once recorded. The store must track
	// instances (store.Presence). recguard serve turns it on by default.
	WaitForAll bool
	// AuthFailRate is the rate of failed authentications (no key, a
	// malformed, unknown, revoked or wrong key, or a key that could not be
	// checked) allowed per client address, per second (token bucket,
	// burst AuthFailBurst). Over it, requests from that address that
	// cannot be authenticated from keys already verified are answered 429
	// before any store read. Zero means 1; negative means no limit.
	AuthFailRate float64
	// AuthFailBurst is the bucket size of AuthFailRate. Zero means 30.
	AuthFailBurst int
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For / X-Real-IP headers name the client address for
	// AuthFailRate. Nil means none: the client address is the peer's.
	TrustedProxies []string
	// Logger receives what answers never show (the errors behind 5xx and
	// 202 answers, each with its request ID, at most about 10 lines a
	// second with a count of those suppressed), the admin actions (settings
	// changes and suspensions: the key, the route, the outcome), and with
	// LogRequests every request. Nil means slog.Default().
	Logger *slog.Logger
	// LogRequests logs every request at level Info once it is answered:
	// method, route template (never the raw path, which holds user IDs),
	// status, duration, request ID and the key ID (never a secret).
	LogRequests bool
	// StoreTimeout bounds the store work of one request on every route
	// that reads or writes the store, other than the decision routes (which
	// have DecisionBudget) and the audits (which have their own, longer
	// bound): from the key check on, the request's reads, its change, and
	// its Art. 44 rights-log entry. When it runs out the answer is 503
	// unavailable with a fixed detail (a change may or may not have been
	// recorded: read it back). Under WaitForAll, the wait for every live
	// instance after a restrictive change gets a window of its own of the
	// same length (bounded further by the client's PropagationTimeout), so
	// such a change answers within twice StoreTimeout. Zero means 2 s; it
	// must not be under DecisionBudget.
	StoreTimeout time.Duration
	// AuditMinGroupSize is the privacy floor of POST /v1/audits: a spec
	// whose min_group_size is under it runs with it instead, and the report
	// says so (min_group_size_asked and a note; see
	// audit.ApplyMinGroupSizeFloor). Zero means 50
	// (audit.DefaultMinGroupSizeFloor); it may be set higher, or lower down
	// to 10 (audit.LowestMinGroupSizeFloor): Validate refuses anything
	// under 10.
	AuditMinGroupSize int
}

// ErrInvalidConfig reports a Config that does not validate; the error is a
// *ConfigError.
var ErrInvalidConfig = errors.New("server: invalid config")

// ConfigError says which Config field is invalid and why. It wraps
// ErrInvalidConfig.
type ConfigError struct {
	Field  string // the Config field, e.g. "StoreTimeout"
	Value  any    // its value (never a secret: ChainKey and DecisionSecret are never reported)
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("server: invalid config: %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("server: invalid config: %s %v: %s", e.Field, e.Value, e.Reason)
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// DefaultConfig returns the configuration with every default filled in
// (Client and Store, which have none, are nil; Registry is nil: New makes
// one).
func DefaultConfig() Config {
	var c Config
	c.fill()
	return c
}

// Defaults of Config's fields.
const (
	DefaultMaxBody = 1 << 20
	// DefaultMaxEventsBody is MaxEventsBody's default: a batch of
	// MaxEventsPerPost events of EventBytes each (10,240,000 bytes).
	DefaultMaxEventsBody  = MaxEventsPerPost * EventBytes
	DefaultRateLimit      = 200
	DefaultKeyCacheTTL    = 5 * time.Second
	DefaultReadTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 90 * time.Second
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultDecisionBudget = 250 * time.Millisecond
	DefaultKeyGrace       = 10 * time.Minute
	DefaultAuthFailRate   = 1
	DefaultAuthFailBurst  = 30
	DefaultStoreTimeout   = 2 * time.Second
	// DefaultExcessiveCopies is ExcessiveCopies' default: more than 10
	// copies in 30 days is clearly more than a user needs.
	DefaultExcessiveCopies = 10
)

// fill applies the defaults to zero fields.
func (c *Config) fill() {
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxEventsBody == 0 {
		c.MaxEventsBody = DefaultMaxEventsBody
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst == 0 {
		c.RateBurst = int(2 * max(c.RateLimit, 1))
	}
	if c.KeyCacheTTL == 0 {
		c.KeyCacheTTL = DefaultKeyCacheTTL
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DecisionBudget == 0 {
		c.DecisionBudget = DefaultDecisionBudget
	}
	if c.KeyGrace == 0 {
		c.KeyGrace = DefaultKeyGrace
	}
	if c.AuthFailRate == 0 {
		c.AuthFailRate = DefaultAuthFailRate
	}
	if c.AuthFailBurst == 0 {
		c.AuthFailBurst = DefaultAuthFailBurst
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.ExcessiveCopies == 0 {
		c.ExcessiveCopies = DefaultExcessiveCopies
	}
	if c.AuditMinGroupSize == 0 {
		c.AuditMinGroupSize = audit.DefaultMinGroupSizeFloor
	}
}

// Validate checks the configuration's values (after the defaults are
// applied; Client and Store are New's business). The error is a
// *ConfigError wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	c.fill()
	bad := func(field string, v any, format string, args ...any) error {
		return &ConfigError{Field: field, Value: v, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case c.MaxBody < 0:
		return bad("MaxBody", c.MaxBody, "negative")
	case c.MaxEventsBody < 0:
		return bad("MaxEventsBody", c.MaxEventsBody, "negative")
	case c.RateBurst < 0:
		return bad("RateBurst", c.RateBurst, "negative")
	case c.RateLimit > 0 && c.RateBurst < 1:
		return bad("RateBurst", c.RateBurst, "must be at least 1 with a rate limit")
	case c.KeyCacheTTL < 0:
		return bad("KeyCacheTTL", c.KeyCacheTTL, "negative")
	case c.ReadTimeout < 0:
		return bad("ReadTimeout", c.ReadTimeout, "negative")
	case c.IdleTimeout < 0:
		return bad("IdleTimeout", c.IdleTimeout, "negative")
	case c.DecisionBudget < 0:
		return bad("DecisionBudget", c.DecisionBudget, "negative")
	case c.StoreTimeout < 0:
		return bad("StoreTimeout", c.StoreTimeout, "negative")
	case c.StoreTimeout < c.DecisionBudget:
		return bad("StoreTimeout", c.StoreTimeout, "under DecisionBudget %v: the key check of a store route alone may take DecisionBudget", c.DecisionBudget)
	case c.WriteTimeout < 2*c.StoreTimeout:
		return bad("WriteTimeout", c.WriteTimeout, "under twice StoreTimeout (%v): a restrictive change under WaitForAll may take that long, and its answer would be cut", 2*c.StoreTimeout)
	case c.AuthFailBurst < 0:
		return bad("AuthFailBurst", c.AuthFailBurst, "negative")
	case c.AuthFailRate > 0 && c.AuthFailBurst < 1:
		return bad("AuthFailBurst", c.AuthFailBurst, "must be at least 1 with a failed-authentication limit")
	case len(c.DecisionSecret) > 0 && len(c.DecisionSecret) < consent.MinChainKeyLen:
		return bad("DecisionSecret", nil, "%d bytes; a decision secret needs at least %d", len(c.DecisionSecret), consent.MinChainKeyLen)
	case c.AuditMinGroupSize < audit.LowestMinGroupSizeFloor:
		return bad("AuditMinGroupSize", c.AuditMinGroupSize, "under %d: audit reports would show groups small enough to single out people", audit.LowestMinGroupSizeFloor)
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err != nil {
			return bad("TrustedProxies", p, "not an IP address or CIDR")
		}
	}
	return nil
}
