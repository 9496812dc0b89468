package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/enforce"
)

// The enforcement audit (issue 14): POST /v1/audits/enforcement replays
// the receipts against the ledger (enforce.Run) and answers 201 with the
// report and its ID; GET /v1/audits/enforcement/{id} answers a kept report
// again as JSON, CSV or self-contained HTML (format query parameter, else
// the Accept header), like POST /v1/audits and GET /v1/audits/{id}. For
// auditor keys. One runs at a time per server, bounded by auditTimeout; a
// ledger too large for that is audited with `recguard audit enforcement`.

// EnforcementRequest chooses an enforcement audit; every member is
// optional.
type EnforcementRequest struct {
	// From and To bound the entries audited by their time (From <= at <
	// To).
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// Allowance and SettingsAllowance are Go durations ("2s"), at most
	// 24h; "0s" allows none. Defaults: enforce.DefaultAllowance and
	// enforce.DefaultSettingsAllowance.
	Allowance         *string `json:"allowance,omitempty"`
	SettingsAllowance *string `json:"settings_allowance,omitempty"`
	// MaxViolations bounds the violations listed (1 to 100,000; default
	// 10,000); the totals count them all.
	MaxViolations *int `json:"max_violations,omitempty"`
}

// EnforcementResponse is the answer of POST /v1/audits/enforcement.
type EnforcementResponse struct {
	ID     string          `json:"id"`
	Report *enforce.Report `json:"report"`
}

// Bounds of an enforcement request.
const (
	defaultEnforcementViolations = 10_000
	maxEnforcementViolations     = 100_000
	enforcementsKept             = 8
)

// enforcements serves the enforcement audit routes.
type enforcements struct {
	s    *Server
	busy chan struct{}
	mu   sync.Mutex
	kept map[string]*enforce.Report
	ids  []string // oldest first
}

func (s *Server) enforcementRoutes(v1 *gin.RouterGroup) {
	en := &enforcements{s: s, busy: make(chan struct{}, 1), kept: map[string]*enforce.Report{}}
	v1.POST("/audits/enforcement", s.authenticate(RoleAuditor), en.post)
	v1.GET("/audits/enforcement/:id", s.authenticate(RoleAuditor), en.get)
}

func (en *enforcements) post(c *gin.Context) {
	var req EnforcementRequest
	if c.Request.ContentLength != 0 {
		if !en.s.decode(c, &req) {
			return
		}
	}
	opts := enforce.Options{MaxViolations: defaultEnforcementViolations, Now: en.s.cfg.Now}
	if req.From != nil {
		opts.From = *req.From
	}
	if req.To != nil {
		opts.To = *req.To
	}
	if !opts.From.IsZero() && !opts.To.IsZero() && !opts.From.Before(opts.To) {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "to", "to is not after from")
		return
	}
	for _, p := range []struct {
		name string
		v    *string
		dst  *time.Duration
	}{{"allowance", req.Allowance, &opts.Allowance}, {"settings_allowance", req.SettingsAllowance, &opts.SettingsAllowance}} {
		if p.v == nil {
			continue
		}
		d, err := time.ParseDuration(*p.v)
		if err != nil || d < 0 || d > enforce.MaxAllowance {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, p.name, "%s %q: want a duration from 0s to 24h", p.name, clipID(*p.v))
			return
		}
		*p.dst = d
		if d == 0 {
			*p.dst = -1 // none
		}
	}
	if req.MaxViolations != nil {
		if n := *req.MaxViolations; n < 1 || n > maxEnforcementViolations {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "max_violations", "max_violations %d: want 1 to %d", n, maxEnforcementViolations)
			return
		}
		opts.MaxViolations = *req.MaxViolations
	}
	select {
	case en.busy <- struct{}{}:
		defer func() { <-en.busy }()
	default:
		c.Header("Retry-After", strconv.Itoa(int(auditTimeout/time.Second)))
		failCode(c, http.StatusServiceUnavailable, codeUnavailable, "", "another enforcement audit is running on this server: retry when it ends")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), auditTimeout)
	defer cancel()
	opts.Workers = 8
	rep, err := enforce.Run(ctx, en.s.st, opts)
	switch {
	case err == nil:
	case errors.Is(err, enforce.ErrInvalidOptions):
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "", "%s", err.Error())
		return
	case errors.Is(err, errors.ErrUnsupported):
		failCode(c, http.StatusNotImplemented, codeUnavailable, "", "this server's store keeps no ledger")
		return
	case errors.Is(err, context.DeadlineExceeded) && c.Request.Context().Err() == nil:
		failCode(c, http.StatusServiceUnavailable, codeUnavailable, "",
			"the enforcement audit did not finish within %s: narrow from and to, or run recguard audit enforcement", auditTimeout)
		return
	default:
		fail(c, err)
		return
	}
	en.s.cfg.Logger.Info("enforcement audit", "key_id", keyIDOf(c), "request_id", requestIDOf(c),
		"entries", rep.Entries, "users", rep.Users, "violations", rep.Totals.All)
	id, err := newAuditID()
	if err != nil {
		fail(c, err)
		return
	}
	body, err := json.Marshal(EnforcementResponse{ID: id, Report: rep})
	if err != nil {
		fail(c, fmt.Errorf("encoding the enforcement report: %w", err))
		return
	}
	en.put(id, rep)
	c.Header("Location", "/v1/audits/enforcement/"+id)
	c.Data(http.StatusCreated, "application/json; charset=utf-8", body)
}

func (en *enforcements) put(id string, rep *enforce.Report) {
	en.mu.Lock()
	defer en.mu.Unlock()
	en.kept[id] = rep
	en.ids = append(en.ids, id)
	for len(en.ids) > enforcementsKept {
		delete(en.kept, en.ids[0])
		en.ids = en.ids[1:]
	}
}

func (en *enforcements) get(c *gin.Context) {
	id := c.Param("id")
	en.mu.Lock()
	rep, ok := en.kept[id]
	en.mu.Unlock()
	if !ok {
		failCode(c, http.StatusNotFound, codeNotFound, "",
			"no enforcement audit %q (the server keeps the last %d, in memory)", clipID(id), enforcementsKept)
		return
	}
	serveReport(c, rep, "enforcement-"+id)
}
