package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
)

// Config configures a Server. Zero fields mean their documented defaults.
type Config struct {
	// Client answers decisions and audiences and applies changes. Required;
	// make it with Audiences on for the audience route.
	Client *sdk.Client
	// Store is the system of record the client runs on. Required; it must
	// keep API keys (store.KeyStore).
	Store store.Store
	// MaxBody bounds request bodies. Zero means 1 MiB.
	MaxBody int64
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
	// audit may run for up to 60 s before it answers).
	ReadTimeout, WriteTimeout time.Duration
	// Registry receives the server's Prometheus metrics. Nil means a new
	// registry, served at /metrics.
	Registry *prometheus.Registry
	// Now is the clock. Nil means time.Now.
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
	// Logger receives what answers never show: store errors behind 5xx
	// answers, failed propagation. Nil means slog.Default().
	Logger *slog.Logger
	// StoreTimeout bounds the store work of one request on every route
	// that reads or writes the store, other than the decision routes (which
	// have DecisionBudget) and the audits (which have their own, longer
	// bound): from the key check on, the request's reads, its change, and
	// its Art. 44 rights-log entry. When it runs out the answer is 503
	// unavailable with a fixed detail (a change may or may not have been
	// recorded: read it back). Under WaitForAll, the wait for every live
	// instance after a restrictive change gets a window of its own of the
	// same length (bounded further by the client's PropagationTimeout), so
	// such a change answers within twice StoreTimeout. Zero means 2 s.
	StoreTimeout time.Duration
}

// Server is the HTTP API. Make it with New; serve Handler.
type Server struct {
	cfg      Config
	client   *sdk.Client
	st       store.Store
	keys     *keyCache
	rights   store.RightsLog // nil when the store keeps none
	limit    *limiter
	authFail *addrLimiter
	m        *metrics
	log      *errLog
	engine   *gin.Engine
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Client == nil || cfg.Store == nil {
		return nil, errors.New("server: Config.Client and Config.Store are required")
	}
	ks, ok := cfg.Store.(store.KeyStore)
	if !ok {
		return nil, fmt.Errorf("server: the store keeps no API keys (store.KeyStore): %w", errors.ErrUnsupported)
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 200
	}
	if cfg.RateBurst == 0 {
		cfg.RateBurst = int(2 * max(cfg.RateLimit, 1))
	}
	if cfg.KeyCacheTTL == 0 {
		cfg.KeyCacheTTL = 5 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 90 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DecisionBudget == 0 {
		cfg.DecisionBudget = 250 * time.Millisecond
	}
	if cfg.DecisionBudget < 0 {
		return nil, fmt.Errorf("server: DecisionBudget %v < 0", cfg.DecisionBudget)
	}
	if cfg.KeyGrace == 0 {
		cfg.KeyGrace = 10 * time.Minute
	}
	if cfg.AuthFailRate == 0 {
		cfg.AuthFailRate = 1
	}
	if cfg.AuthFailBurst == 0 {
		cfg.AuthFailBurst = 30
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StoreTimeout == 0 {
		cfg.StoreTimeout = 2 * time.Second
	}
	if cfg.StoreTimeout < 0 {
		return nil, fmt.Errorf("server: StoreTimeout %v < 0", cfg.StoreTimeout)
	}
	if _, ok := cfg.Store.(store.Presence); cfg.WaitForAll && !ok {
		return nil, fmt.Errorf("server: WaitForAll needs a store that tracks live instances (store.Presence): %w", errors.ErrUnsupported)
	}
	s := &Server{
		cfg: cfg, client: cfg.Client, st: cfg.Store,
		keys:     newKeyCache(ks, cfg.KeyCacheTTL, max(cfg.KeyGrace, 0), cfg.DecisionBudget),
		limit:    &limiter{rps: rate.Limit(cfg.RateLimit), burst: cfg.RateBurst, m: map[string]*rate.Limiter{}},
		authFail: newAddrLimiter(cfg.AuthFailRate, cfg.AuthFailBurst),
		log:      newErrLog(cfg.Logger),
	}
	s.rights, _ = cfg.Store.(store.RightsLog)
	m, err := newMetrics(cfg.Registry, cfg.Client)
	if err != nil {
		return nil, err
	}
	s.m = m
	if s.engine, err = s.routes(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler returns the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// HTTPServer returns an http.Server for addr with the configured timeouts.
// Shut it down with its Shutdown method to finish in-flight requests.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.engine,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
	}
}

func (s *Server) routes() (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// The client address (for AuthFailRate) is the peer's unless a trusted
	// proxy forwards the request.
	if err := e.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("server: TrustedProxies: %w", err)
	}
	e.Use(s.m.middleware(), s.log.middleware(), gin.CustomRecovery(func(c *gin.Context, v any) {
		c.Error(fmt.Errorf("panic: %v", v))
		failCode(c, http.StatusInternalServerError, codeInternal, "", "internal error")
	}))
	e.NoRoute(func(c *gin.Context) {
		failCode(c, 404, codeNotFound, "", "no route %s %s", c.Request.Method, c.Request.URL.Path)
	})
	e.NoMethod(func(c *gin.Context) {
		failCode(c, 405, codeNotAllowed, "", "method %s not allowed on %s", c.Request.Method, c.Request.URL.Path)
	})

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metricsHandler())
	e.GET("/openapi.json", serveOpenAPI)

	v1 := e.Group("/v1")
	app := v1.Group("", s.storeBound(), s.authenticate(RoleApp))
	u := app.Group("/users/:id", s.rightsLog())
	u.GET("/decision", s.getDecision)
	u.GET("/consent", s.getConsent)
	u.PUT("/consent/personalization", s.putPersonalization)
	u.PUT("/consent/channels/:channel", s.putChannel)
	u.PUT("/consent/sensitive/:category", s.putSensitive)
	u.GET("/tags", s.getTags)
	u.POST("/tags", s.postTag)
	u.DELETE("/tags/:tag", s.deleteTag)
	u.GET("/receipts", s.getReceipts)
	u.GET("/export", s.getExport)
	u.DELETE("", s.deleteUser)
	u.GET("/can-push", s.getCanPush)
	app.POST("/events", s.postEvents)

	adm := v1.Group("/admin", s.storeBound(), s.authenticate(RoleAdmin))
	adm.GET("/settings", s.getSettings)
	adm.PUT("/settings", s.putSettings)
	adm.PUT("/suspension", s.putSuspension)
	adm.GET("/audience", s.getAudience)
	adm.GET("/reports/rights", s.getRightsReport)

	s.auditRoutes(v1.Group("/audits", s.authenticate(RoleAuditor)))
	return e, nil
}

// decode reads a JSON body into v: application/json only, at most MaxBody
// bytes, no object naming a member twice (anywhere in the body), no
// unknown fields, nothing after the value. It answers the problem itself
// and returns false on failure.
func (s *Server) decode(c *gin.Context, v any) bool {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/json" {
		failCode(c, http.StatusUnsupportedMediaType, codeMediaType, "", "send Content-Type: application/json")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		failCode(c, http.StatusRequestEntityTooLarge, codeTooLarge, "", "body over %d bytes", s.cfg.MaxBody)
		return false
	}
	if err != nil {
		failCode(c, http.StatusBadRequest, codeMalformed, "", "reading the body: %v", err)
		return false
	}
	// Duplicate keys first: encoding/json would silently keep the last.
	var dup *DuplicateKeyError
	if errors.As(checkDuplicateKeys(bytes.NewReader(body)), &dup) {
		failCode(c, http.StatusBadRequest, codeMalformed, dup.Field(), "body is not valid JSON for this route: %v", dup)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if err != nil {
		var ute *json.UnmarshalTypeError
		field := ""
		if errors.As(err, &ute) {
			field = jsonField(ute.Field)
		}
		failCode(c, http.StatusBadRequest, codeMalformed, field, "body is not valid JSON for this route: %v", err)
		return false
	}
	return true
}

// jsonField is the JSON path of a decoding error's field without the Go
// names of embedded structs that custom decoders add (a type written
// "settingsAlias" in the path of consent.Settings' fields): the API's JSON
// names are snake_case, so a segment in camelCase is a Go name.
func jsonField(path string) string {
	var out []string
	for _, seg := range strings.Split(path, ".") {
		if seg != "" && seg[0] >= 'a' && seg[0] <= 'z' && strings.ContainsAny(seg, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			continue
		}
		out = append(out, seg)
	}
	return strings.Join(out, ".")
}
