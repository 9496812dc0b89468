package server

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// adminSurface names the key in the receipt of an admin action.
func adminSurface(c *gin.Context) consent.Surface { return consent.Surface("key_" + keyOf(c).ID) }

// answerSettings answers a settings change. Switching the suspension on
// is restrictive: under WaitForAll it is acknowledged (200) only once
// every live instance applied the settings log up to its tail read right
// after the write (conservative: it includes the change); otherwise, and
// when the store did not confirm the write on its replicas, 202.
func (s *Server) answerSettings(c *gin.Context, saved consent.Settings, rc consent.Receipt, err error) {
	if saved.Version > 0 {
		adminDetail(c, "settings_version", saved.Version, "suspended", saved.Suspended, "receipt", rc.ID, "diff", rc.Diff)
	}
	if err == nil && s.cfg.WaitForAll && saved.Suspended {
		ctx, cancel := s.waitCtx(c)
		defer cancel()
		var pos store.Position
		if pos, err = s.st.Tail(ctx, store.SettingsLog); err != nil {
			err = fmt.Errorf("%w: reading the settings log tail: %w", sdk.ErrNotPropagated, err)
		} else {
			err = s.client.WaitApplied(ctx, store.SettingsLog, pos)
		}
	}
	switch {
	case err == nil:
		c.JSON(http.StatusOK, settingsAnswer{Settings: fullSettings(saved), Receipt: rc})
	case unconfirmed(err):
		var body *settingsAnswer
		if saved.Version > 0 {
			body = &settingsAnswer{Settings: fullSettings(saved), Receipt: rc}
		}
		s.pending(c, err, pendingSettings{settingsAnswer: body})
	default:
		fail(c, err)
	}
}

// SettingsResponse is the answer to a settings change: the saved settings
// (written with every member, see GET /v1/admin/settings) and the change's
// receipt, whose Diff lists every difference.
type SettingsResponse struct {
	Settings consent.Settings `json:"settings"`
	Receipt  consent.Receipt  `json:"receipt"`
}

// settingsAnswer is SettingsResponse as the server writes it.
type settingsAnswer struct {
	Settings fullSettings    `json:"settings"`
	Receipt  consent.Receipt `json:"receipt"`
}

type suspensionBody struct {
	Suspended *bool  `json:"suspended"`
	Reason    string `json:"reason"`
}

// putSuspension turns the Art. 51 kill switch on or off.
func (s *Server) putSuspension(c *gin.Context) {
	var b suspensionBody
	if !s.decode(c, &b) {
		return
	}
	if b.Suspended == nil {
		failCode(c, 422, codeInvalid, "suspended", "suspended (true or false) is required")
		return
	}
	if *b.Suspended && b.Reason == "" {
		failCode(c, 422, codeInvalid, "reason", "a suspension needs a reason (the order it follows)")
		return
	}
	for attempt := 0; ; attempt++ {
		set, err := s.st.Settings(c.Request.Context())
		if err != nil {
			fail(c, err)
			return
		}
		set.Suspended, set.SuspendReason = *b.Suspended, b.Reason
		saved, rc, err := s.client.SetSettings(c.Request.Context(), set, consent.ActorAdmin, adminSurface(c))
		if err != nil && attempt < 3 && statusIs(err, http.StatusConflict) {
			continue // someone else saved settings meanwhile: re-read
		}
		s.answerSettings(c, saved, rc, err)
		return
	}
}

func statusIs(err error, status int) bool { st, _ := statusOf(err); return st == status }

// AudienceResponse is GET /v1/admin/audience: the count and one page.
type AudienceResponse struct {
	Segment  string   `json:"segment"`
	Channel  string   `json:"channel"`
	Targeted bool     `json:"targeted"`
	Count    uint64   `json:"count"`
	Users    []string `json:"users"`
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next,omitempty"`
}

func (s *Server) getAudience(c *gin.Context) {
	seg := c.Query("segment")
	ch := c.Query("channel")
	if seg == "" {
		failCode(c, 422, codeInvalid, "segment", "segment is required (e.g. interest:ski & !refused:sms)")
		return
	}
	if err := consent.ValidChannelName(ch); err != nil {
		fail(c, err)
		return
	}
	targeted, ok := boolQuery(c, "targeted", true)
	if !ok {
		return
	}
	limit := 100
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 || n > 10000 {
			failCode(c, 422, codeInvalid, "limit", "limit must be 0..10000, got %q", l)
			return
		}
		limit = n
	}
	var cursor uint32
	if cur := c.Query("cursor"); cur != "" {
		n, err := strconv.ParseUint(cur, 10, 32)
		if err != nil {
			failCode(c, 422, codeInvalid, "cursor", "cursor %q is not one this API gave out", cur)
			return
		}
		cursor = uint32(n)
	}
	recipient, purpose := c.Query("recipient"), c.Query("purpose")
	if recipient == "" {
		recipient = "key_" + keyOf(c).ID
	}
	if purpose == "" {
		purpose = "push"
	}
	if err := store.ValidLabel("recipient", recipient); err != nil {
		fail(c, err)
		return
	}
	if err := store.ValidLabel("purpose", purpose); err != nil {
		fail(c, err)
		return
	}
	a, err := s.client.Audience(c.Request.Context(), seg, ch, targeted)
	if err != nil {
		fail(c, err)
		return
	}
	out := AudienceResponse{Segment: seg, Channel: ch, Targeted: targeted, Count: a.Count(), Users: []string{}}
	if p, err := tags.ParseSegment(seg); err == nil {
		out.Segment = p.String()
	}
	if limit > 0 {
		ids, next := a.Page(cursor, limit)
		if len(ids) > 0 && s.ledger {
			// Art. 12: user IDs handed out are a provision, recorded
			// before they go (none go when it cannot be recorded).
			err := s.client.RecordProvision(c.Request.Context(), sdk.Provision{Recipient: recipient, Purpose: purpose,
				Segment: out.Segment, Channel: ch, Targeted: targeted, Count: len(ids)})
			if err != nil {
				s.m.provisionErrors.Inc()
				fail(c, err)
				return
			}
		}
		out.Users = append(out.Users, ids...)
		if next != 0 {
			out.Next = strconv.FormatUint(uint64(next), 10)
		}
	}
	c.JSON(http.StatusOK, out)
}

// RightsReport is the Art. 44 yearly report of rights requests handled.
type RightsReport struct {
	Year  int               `json:"year"`
	Total int               `json:"total"`
	Kinds []RightsKindStats `json:"kinds"`
}

// RightsKindStats are the figures for one kind of request.
type RightsKindStats struct {
	Kind      string  `json:"kind"`
	Requests  int     `json:"requests"`
	Fulfilled int     `json:"fulfilled"`
	Rejected  int     `json:"rejected"`
	Failed    int     `json:"failed"`
	MedianMS  float64 `json:"median_ms"`
	P95MS     float64 `json:"p95_ms"`
}

// getRightsReport answers the Art. 44 report of a year's rights requests
// as JSON, CSV or a self-contained HTML page (rightshtml.go): the format
// query parameter (json, csv or html), else the Accept header, else JSON.
// The HTML page is in English or Simplified Chinese (lang en or zh-CN);
// an unknown lang is 422 (field lang) whatever the format.
func (s *Server) getRightsReport(c *gin.Context) {
	if s.rights == nil {
		failCode(c, http.StatusNotImplemented, codeUnavailable, "", "the store keeps no rights log")
		return
	}
	year, err := strconv.Atoi(c.Query("year"))
	if err != nil || year < 2000 || year > 9999 {
		failCode(c, 422, codeInvalid, "year", "year must be a four-digit year, got %q", c.Query("year"))
		return
	}
	lang, ok := reportLang(c)
	if !ok {
		return
	}
	format := c.Query("format")
	switch format {
	case "json", "csv", "html":
	default: // absent, or one the report does not know: the Accept header
		switch c.NegotiateFormat("application/json", "text/csv", "text/html") {
		case "text/csv":
			format = "csv"
		case "text/html":
			format = "html"
		default:
			format = "json"
		}
	}
	from := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
	rs, err := s.rights.RightsRequests(c.Request.Context(), from, from.AddDate(1, 0, 0))
	if err != nil {
		fail(c, err)
		return
	}
	byKind := map[string]*RightsKindStats{}
	durs := map[string][]float64{}
	for _, r := range rs {
		k := byKind[r.Kind]
		if k == nil {
			k = &RightsKindStats{Kind: r.Kind}
			byKind[r.Kind] = k
		}
		k.Requests++
		switch r.Outcome {
		case "fulfilled":
			k.Fulfilled++
		case "rejected":
			k.Rejected++
		default:
			k.Failed++
		}
		durs[r.Kind] = append(durs[r.Kind], float64(r.Handled.Sub(r.Received))/float64(time.Millisecond))
	}
	rep := RightsReport{Year: year, Total: len(rs), Kinds: []RightsKindStats{}}
	for kind, k := range byKind {
		d := durs[kind]
		sort.Float64s(d)
		k.MedianMS, k.P95MS = quantile(d, 0.5), quantile(d, 0.95)
		rep.Kinds = append(rep.Kinds, *k)
	}
	sort.Slice(rep.Kinds, func(i, j int) bool { return rep.Kinds[i].Kind < rep.Kinds[j].Kind })
	c.Header("Vary", "Accept")
	switch format {
	case "html":
		var buf bytes.Buffer
		if err := writeRightsHTML(&buf, rep, lang, s.cfg.Now()); err != nil {
			fail(c, fmt.Errorf("rendering the rights report as HTML: %w", err))
			return
		}
		c.Header("Content-Security-Policy", reportCSP)
		c.Header("X-Content-Type-Options", "nosniff")
		c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
		return
	case "csv":
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Write([]string{"year", "kind", "requests", "fulfilled", "rejected", "failed", "median_ms", "p95_ms"})
		for _, k := range rep.Kinds {
			w.Write([]string{strconv.Itoa(year), k.Kind, strconv.Itoa(k.Requests), strconv.Itoa(k.Fulfilled),
				strconv.Itoa(k.Rejected), strconv.Itoa(k.Failed), fmt.Sprintf("%.3f", k.MedianMS), fmt.Sprintf("%.3f", k.P95MS)})
		}
		w.Flush()
		c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="rights-%d.csv"`, year))
		c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
		return
	}
	c.JSON(http.StatusOK, rep)
}

// quantile is the nearest-rank quantile of sorted values (0 for none).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
