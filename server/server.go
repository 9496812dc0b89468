package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/console"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
)

// Server is the HTTP API. Make it with New; serve Handler.
type Server struct {
	cfg      Config
	client   *sdk.Client
	st       store.Store
	keys     *keyCache
	rights   store.RightsLog      // nil when the store keeps none
	counter  store.RequestCounter // the store's, else this instance's own
	limit    *limiter
	authFail *addrLimiter
	m        *metrics
	log      *errLog
	engine   *gin.Engine
	// decKey signs and verifies decision IDs (consent.DecisionKey of
	// Config.DecisionSecret, else of the ChainKey, else of a random
	// per-process secret).
	decKey []byte
	// ledger says the client records the ledger (exposures, pushes,
	// provisions): sdk.Config.Ledger.
	ledger bool
}

// New builds the server and its routes. cfg's zero fields get their
// defaults (DefaultConfig); a configuration that does not validate is an
// error wrapping ErrInvalidConfig (a *ConfigError).
func New(cfg Config) (*Server, error) {
	if cfg.Client == nil {
		return nil, &ConfigError{Field: "Client", Reason: "required"}
	}
	if cfg.Store == nil {
		return nil, &ConfigError{Field: "Store", Reason: "required"}
	}
	ks, ok := cfg.Store.(store.KeyStore)
	if !ok {
		return nil, fmt.Errorf("server: the store keeps no API keys (store.KeyStore): %w", errors.ErrUnsupported)
	}
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if _, ok := cfg.Store.(store.Presence); cfg.WaitForAll && !ok {
		return nil, fmt.Errorf("server: WaitForAll needs a store that tracks live instances (store.Presence): %w", errors.ErrUnsupported)
	}
	s := &Server{
		cfg: cfg, client: cfg.Client, st: cfg.Store,
		keys:     newKeyCache(ks, cfg.KeyCacheTTL, max(cfg.KeyGrace, 0), cfg.DecisionBudget, cfg.Now),
		limit:    &limiter{rps: rate.Limit(cfg.RateLimit), burst: cfg.RateBurst, now: cfg.Now, m: map[string]*rate.Limiter{}},
		authFail: newAddrLimiter(cfg.AuthFailRate, cfg.AuthFailBurst, cfg.Now),
		log:      newErrLog(cfg.Logger),
	}
	s.decKey = decisionKey(cfg)
	s.ledger = cfg.Client.HasLedger()
	s.rights, _ = cfg.Store.(store.RightsLog)
	if rc, ok := cfg.Store.(store.RequestCounter); ok {
		s.counter = rc
	} else {
		s.counter = newMemCounter()
	}
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

// decisionKey is the key decision IDs are signed with under cfg (see
// Config.DecisionSecret).
func decisionKey(cfg Config) []byte {
	switch {
	case len(cfg.DecisionSecret) > 0:
		return consent.DecisionKey(cfg.DecisionSecret)
	case len(cfg.ChainKey) > 0:
		return consent.DecisionKey(cfg.ChainKey)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg.Logger.Warn("decision IDs are signed under a random per-process secret (no DecisionSecret, no ChainKey): " +
		"an ID verifies only on the process that issued it, until it stops")
	return consent.DecisionKey(secret)
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
		IdleTimeout:       s.cfg.IdleTimeout,
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
	mw := []gin.HandlerFunc{requestID(), s.m.middleware()}
	if s.cfg.LogRequests {
		mw = append(mw, s.logRequests())
	}
	mw = append(mw, s.log.middleware(), gin.CustomRecovery(func(c *gin.Context, v any) {
		c.Error(fmt.Errorf("panic: %v", v))
		failCode(c, http.StatusInternalServerError, codeInternal, "", "internal error")
	}))
	e.Use(mw...)
	e.NoRoute(console.NoRoute, func(c *gin.Context) { // the admin console at /console, public (its page holds no data)
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
	u.GET("/should-ask", s.getShouldAsk)
	u.PUT("/minor", s.putMinor)
	u.PUT("/consent/guardian", s.putGuardian)
	u.PUT("/restriction", s.putRestriction)
	u.POST("/tags/:tag/correct", s.postCorrection)
	app.POST("/events", s.postEvents)

	adm := v1.Group("/admin", s.storeBound(), s.adminLog(), s.authenticate(RoleAdmin))
	adm.GET("/settings", s.getSettings)
	adm.PUT("/settings", s.putSettings)
	adm.PATCH("/settings", s.patchSettings)
	adm.GET("/settings/history", s.getSettingsHistory)
	adm.PUT("/suspension", s.putSuspension)
	adm.GET("/audience", s.getAudience)
	adm.GET("/reports/rights", s.getRightsReport)
	s.keyRoutes(adm) // POST, GET /v1/admin/keys, DELETE /v1/admin/keys/{id} (keys.go)

	s.auditRoutes(v1.Group("/audits", s.authenticate(RoleAuditor)))
	s.enforcementRoutes(v1)
	v1.POST("/audits/verification", s.authenticate(RoleAuditor), s.postVerification())
	v1.GET("/audits/consent-timeline", s.authenticate(RoleAuditor), s.getConsentTimeline())
	aud := v1.Group("/audit", s.storeBound(), s.auditorLog(), s.authenticate(RoleAuditor))
	aud.GET("/users/:id/receipts", s.getAuditReceipts)
	return e, nil
}

// decode reads a JSON body into v: application/json only, at most MaxBody
// bytes, no object naming a member twice (anywhere in the body), no
// unknown fields, nothing after the value. It answers the problem itself
// and returns false on failure.
func (s *Server) decode(c *gin.Context, v any) bool {
	body, ok := s.readBody(c, "application/json")
	return ok && decodeBody(c, body, v)
}

// readBody reads a request body sent as media type mt (415 otherwise), at
// most MaxBody bytes (413), with no object naming a member twice anywhere
// (400). It answers the problem itself and returns false on failure.
func (s *Server) readBody(c *gin.Context, mt string) ([]byte, bool) {
	return s.readBodyLimit(c, mt, s.cfg.MaxBody)
}

// readBodyLimit is readBody with another size limit (POST /v1/events has
// MaxEventsBody).
func (s *Server) readBodyLimit(c *gin.Context, mt string, limit int64) ([]byte, bool) {
	got, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || got != mt {
		failCode(c, http.StatusUnsupportedMediaType, codeMediaType, "", "send Content-Type: %s", mt)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		failCode(c, http.StatusRequestEntityTooLarge, codeTooLarge, "", "body over %d bytes", limit)
		return nil, false
	}
	if err != nil {
		failCode(c, http.StatusBadRequest, codeMalformed, "", "reading the body: %v", err)
		return nil, false
	}
	// Duplicate keys first: encoding/json would silently keep the last.
	var dup *DuplicateKeyError
	if errors.As(checkDuplicateKeys(bytes.NewReader(body)), &dup) {
		failCode(c, http.StatusBadRequest, codeMalformed, dup.Field(), "body is not valid JSON for this route: %v", dup)
		return nil, false
	}
	return body, true
}

// decodeBody decodes body into v: no unknown fields, nothing after the
// value. It answers 400 itself (naming the field where it can) and
// returns false on failure.
func decodeBody(c *gin.Context, body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if err != nil {
		var ute *json.UnmarshalTypeError
		var fe *consent.FieldError
		field := ""
		switch {
		case errors.As(err, &fe): // a model's decoder names the field itself
			field = fe.Field
		case errors.As(err, &ute):
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
