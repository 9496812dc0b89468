package server

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/enforce"
	"github.com/recguard/recguard/store"
)

// Art. 46 audits: POST /v1/audits runs an audit over the events in the
// body and keeps its report; GET /v1/audits/{id} answers a kept report as
// JSON, CSV or HTML. Both are for auditor keys. A report holds aggregates
// only: group sizes and figures, never a user ID.
//
// Privacy floor: a spec whose min_group_size is under the server's floor
// (Config.AuditMinGroupSize, 50 unless configured, never under 10) runs
// with the floor instead, and the report says so (min_group_size_asked and
// a note); it is not refused, so one spec runs on servers with different
// floors.
//
// Malformed events are skipped and listed in the report, unless strict
// (422 at the first, field events). When more than 10% of the events are
// malformed (audit.DefaultMaxMalformed), or all of them, there is no
// report: 422 invalid-value naming how many and the first five (field
// events; no field when the events come from the store).

const (
	// auditTimeout bounds one audit run.
	auditTimeout = 60 * time.Second
	// auditsKept is how many reports the server keeps (the most recent).
	auditsKept = 100
)

// AuditRequest is the body of POST /v1/audits.
type AuditRequest struct {
	// Spec is the audit's spec (see audit.Spec), as JSON.
	Spec json.RawMessage `json:"spec"`
	// Events are the outcome events, each an audit.Event. Omitted (or
	// null), the audit reads the events kept in the server's store
	// (recorded by the SDK or posted to /v1/events).
	Events []json.RawMessage `json:"events"`
	// Users gives the users' tags and flags. Omitted (or null), the
	// server's store gives them.
	Users *[]AuditUser `json:"users,omitempty"`
	// Strict fails the audit on the first malformed event instead of
	// skipping it.
	Strict bool `json:"strict,omitempty"`
}

// AuditUser is one user's facts in an AuditRequest.
type AuditUser struct {
	ID    string   `json:"id"`
	Tags  []string `json:"tags,omitempty"`
	Flags []string `json:"flags,omitempty"`
}

// AuditResponse is the answer to POST /v1/audits.
type AuditResponse struct {
	ID     string        `json:"id"`
	Report *audit.Report `json:"report"`
}

// auditLRU keeps the most recent reports.
type auditLRU struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *auditEntry, most recent first
	byID  map[string]*list.Element
}

type auditEntry struct {
	id     string
	report *audit.Report
}

func newAuditLRU(max int) *auditLRU {
	return &auditLRU{max: max, order: list.New(), byID: map[string]*list.Element{}}
}

func (l *auditLRU) put(id string, r *audit.Report) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byID[id]; ok {
		e.Value.(*auditEntry).report = r
		l.order.MoveToFront(e)
		return
	}
	l.byID[id] = l.order.PushFront(&auditEntry{id: id, report: r})
	for l.order.Len() > l.max {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.byID, last.Value.(*auditEntry).id)
	}
}

func (l *auditLRU) get(id string) (*audit.Report, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byID[id]
	if !ok {
		return nil, false
	}
	l.order.MoveToFront(e)
	return e.Value.(*auditEntry).report, true
}

// audits serves the audit routes.
type audits struct {
	s    *Server
	kept *auditLRU
}

// auditRoutes registers POST /v1/audits and GET /v1/audits/{id} on g (a
// group already authenticated for auditors).
func (s *Server) auditRoutes(g *gin.RouterGroup) {
	a := &audits{s: s, kept: newAuditLRU(auditsKept)}
	g.POST("", a.post)
	g.GET("/:id", a.get)
}

func newAuditID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (a *audits) post(c *gin.Context) {
	var req AuditRequest
	if !a.s.decode(c, &req) {
		return
	}
	spec, err := audit.LoadSpec(req.Spec)
	if err != nil {
		failSpec(c, err)
		return
	}
	asked, raised := spec.ApplyMinGroupSizeFloor(a.s.cfg.AuditMinGroupSize)

	// The events go through the same reader as an events file, so they are
	// checked the same way; event i is line i+1.
	var lines bytes.Buffer
	for _, ev := range req.Events {
		if err := json.Compact(&lines, ev); err != nil {
			// Cannot happen: the decoder has checked it is JSON.
			failCode(c, http.StatusBadRequest, codeMalformed, "events", "an event is not valid JSON: %v", err)
			return
		}
		lines.WriteByte('\n')
	}
	evfp := audit.NewFingerprintReader(&lines, "events", "request")
	src := audit.Source(audit.ReadJSONL(evfp, "events"))
	if req.Events == nil {
		ol, ok := a.s.st.(store.OutcomeLog)
		if !ok {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "send events: this server's store keeps none")
			return
		}
		ctx, cancel := context.WithCancel(c.Request.Context())
		defer cancel()
		src = audit.StoreSource(ctx, ol)
	}

	var users audit.UserFacts
	var ufp *audit.FingerprintReader
	if req.Users != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, u := range *req.Users {
			if err := enc.Encode(u); err != nil {
				fail(c, err)
				return
			}
		}
		ufp = audit.NewFingerprintReader(&buf, "users", "request")
		f, probs, err := audit.UsersFile(ufp, "users")
		if err != nil {
			fail(c, err)
			return
		}
		if len(probs) > 0 {
			p := probs[0]
			more := ""
			if len(probs) > 1 {
				more = fmt.Sprintf(" (and %d more)", len(probs)-1)
			}
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "users",
				"users[%d]: %s%s", p.Line-1, p.Reason, more)
			return
		}
		users = f
	} else {
		users = audit.StoreFacts(a.s.st)
	}

	ctx, cancel := context.WithTimeout(c.Request.Context(), auditTimeout)
	defer cancel()
	rep, err := audit.Run(ctx, spec, src, users, audit.Options{Strict: req.Strict, Now: a.s.cfg.Now})
	if err != nil {
		var le *audit.LineError
		switch {
		case errors.Is(err, audit.ErrInvalidSpec):
			failSpec(c, err)
		case errors.As(err, &le):
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events",
				"events[%d]: %s", le.Line-1, le.Reason)
		case errors.Is(err, context.DeadlineExceeded) && c.Request.Context().Err() == nil:
			failCode(c, http.StatusServiceUnavailable, codeUnavailable, "",
				"the audit did not finish within %s: send fewer events or run recguard audit", auditTimeout)
		default:
			fail(c, err)
		}
		return
	}
	relabelProblems(rep)
	if err := rep.CheckMalformed(audit.DefaultMaxMalformed); err != nil {
		field := "events"
		if req.Events == nil {
			field = "" // the store's events: nothing in the request to fix
		}
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, field, "%s", malformedDetail(err))
		return
	}
	if raised {
		rep.NoteMinGroupSizeFloor(asked, spec.MinGroupSize)
	}
	// What was audited, and by whom: the fingerprints of the events and
	// users sent (their compact JSON lines), or the store's read.
	prov := &audit.Provenance{Version: audit.Version(), RunBy: "key " + keyIDOf(c), Inputs: []audit.Input{}}
	if req.Events != nil {
		prov.Inputs = append(prov.Inputs, evfp.Input())
	} else {
		prov.Inputs = append(prov.Inputs, audit.Input{Kind: "events", Name: "store",
			Detail: fmt.Sprintf("the store's outcome events, %d read, at %s", rep.Events, rep.Generated.Format(time.RFC3339))})
	}
	if ufp != nil {
		prov.Inputs = append(prov.Inputs, ufp.Input())
	} else {
		prov.Inputs = append(prov.Inputs, audit.Input{Kind: "users", Name: "store", Detail: "the users' consent facts in the store"})
	}
	rep.Provenance = prov

	id, err := newAuditID()
	if err != nil {
		fail(c, err)
		return
	}
	body, err := json.Marshal(AuditResponse{ID: id, Report: rep})
	if err != nil {
		fail(c, fmt.Errorf("encoding the report: %w", err))
		return
	}
	a.kept.put(id, rep)
	c.Header("Location", "/v1/audits/"+id)
	c.Data(http.StatusCreated, "application/json; charset=utf-8", body)
}

// failSpec answers an invalid spec (audit.ErrInvalidSpec, 422) naming the
// field at fault as "spec.<path>".
func failSpec(c *gin.Context, err error) {
	var se *audit.SpecError
	if !errors.As(err, &se) {
		fail(c, err)
		return
	}
	field := "spec"
	if se.Field != "" {
		field += "." + se.Field
	}
	status, code := statusOf(err)
	failCode(c, status, code, field, "%s", err.Error())
}

// malformedDetail says how many events were malformed and which were the
// first, by their index in the request (events[i]) or their line in the
// store's log.
func malformedDetail(err error) string {
	var me *audit.MalformedError
	if !errors.As(err, &me) {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString(me.Summary("event", "events"))
	b.WriteString(", so there is no report")
	for i, p := range me.First {
		if i == 0 {
			b.WriteString("; the first: ")
		} else {
			b.WriteString("; ")
		}
		if strings.HasPrefix(p.File, "events[") {
			b.WriteString(p.File + ": " + p.Reason)
		} else {
			b.WriteString((&audit.LineError{File: p.File, Line: p.Line, Reason: p.Reason}).Error())
		}
	}
	if more := me.Malformed - int64(len(me.First)); more > 0 && len(me.First) > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	return b.String()
}

// relabelProblems makes the malformed-line reports of inline events name
// "events[i]" rather than a line of a file nobody has.
func relabelProblems(r *audit.Report) {
	for i, p := range r.Problems {
		if p.File == "events" {
			r.Problems[i] = audit.LineProblem{File: fmt.Sprintf("events[%d]", p.Line-1), Line: p.Line, Reason: p.Reason}
		}
	}
}

func (a *audits) get(c *gin.Context) {
	id := c.Param("id")
	rep, ok := a.kept.get(id)
	if !ok {
		failCode(c, http.StatusNotFound, codeNotFound, "",
			"no audit %q (the server keeps the last %d audits, in memory)", clipID(id), auditsKept)
		return
	}
	serveReport(c, rep, "audit-"+id)
}

// report is a report the server renders in three formats, the HTML one
// in English or Simplified Chinese.
type report interface {
	WriteCSV(w io.Writer) error
	WriteHTML(w io.Writer) error
	// WriteHTMLLang is WriteHTML in lang, "en" or "zh-CN".
	WriteHTMLLang(w io.Writer, lang string) error
}

// serveReport answers rep as JSON, CSV or self-contained HTML: the format
// query parameter, else the Accept header, else JSON. A CSV is an
// attachment named name.csv. The HTML page is in the lang query
// parameter's language (en, the default, or zh-CN); lang is checked
// whatever the format (422, field lang, when unknown) and JSON and CSV
// ignore it. Both parameters are checked before anything is rendered.
func serveReport(c *gin.Context, rep report, name string) {
	format := strings.ToLower(c.Query("format"))
	switch format {
	case "":
		switch c.NegotiateFormat("application/json", "text/csv", "text/html") {
		case "text/csv":
			format = "csv"
		case "text/html":
			format = "html"
		default:
			format = "json"
		}
	case "json", "csv", "html":
	default:
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "format", "format %q: want json, csv or html", clipID(format))
		return
	}
	lang, ok := reportLang(c)
	if !ok {
		return
	}
	var buf bytes.Buffer
	var ctype string
	var err error
	switch format {
	case "json":
		ctype = "application/json; charset=utf-8"
		err = json.NewEncoder(&buf).Encode(rep)
	case "csv":
		ctype = "text/csv; charset=utf-8; header=present"
		err = rep.WriteCSV(&buf)
	case "html":
		ctype = "text/html; charset=utf-8"
		err = rep.WriteHTMLLang(&buf, lang)
	}
	if err != nil {
		if errors.Is(err, audit.ErrUnknownLang) || errors.Is(err, enforce.ErrUnknownLang) {
			// Not expected (reportLang knows the same languages), but if
			// the report knows fewer, the lang is what is at fault.
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "lang", "lang %q: this report is not available in it", lang)
			return
		}
		fail(c, fmt.Errorf("rendering the report as %s: %w", format, err))
		return
	}
	switch format {
	case "csv":
		c.Header("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	case "html":
		// The page is self-contained: nothing may load or run.
		c.Header("Content-Security-Policy", reportCSP)
	}
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Vary", "Accept")
	c.Data(http.StatusOK, ctype, buf.Bytes())
}

// clipID keeps an echoed path or query value short.
func clipID(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
