package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// ExportSchema names the schema of GET /v1/users/{id}/export documents.
const ExportSchema = "https://recguard.dev/schemas/export/v1"

// userID returns the validated user ID from the path, or answers 422.
func userID(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if err := consent.ValidUserID(id); err != nil {
		fail(c, err)
		return "", false
	}
	return id, true
}

// DecisionResponse is GET /v1/users/{id}/decision.
type DecisionResponse struct {
	UserID string `json:"user_id"`
	consent.Decision
}

func (s *Server) getDecision(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	d, err := s.client.Decide(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	s.m.decisions.WithLabelValues(d.Reason.String()).Inc()
	c.JSON(http.StatusOK, DecisionResponse{UserID: id, Decision: nonNil(d)})
}

// nonNil makes the decision's lists [] rather than null in JSON.
func nonNil(d consent.Decision) consent.Decision {
	if d.Tags == nil {
		d.Tags = []tags.Tag{}
	}
	if d.Channels == nil {
		d.Channels = []string{}
	}
	if d.Refused == nil {
		d.Refused = []string{}
	}
	return d
}

// CanPushResponse is GET /v1/users/{id}/can-push.
type CanPushResponse struct {
	UserID   string         `json:"user_id"`
	Channel  string         `json:"channel"`
	Targeted bool           `json:"targeted"`
	Allowed  bool           `json:"allowed"`
	Reason   consent.Reason `json:"reason"`
}

func (s *Server) getCanPush(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	ch := c.Query("channel")
	if err := consent.ValidChannelName(ch); err != nil {
		fail(c, err)
		return
	}
	targeted, ok := boolQuery(c, "targeted", false)
	if !ok {
		return
	}
	allowed, why, err := s.client.CanPush(c.Request.Context(), id, ch, targeted)
	if err != nil {
		fail(c, err)
		return
	}
	s.m.decisions.WithLabelValues(why.String()).Inc()
	c.JSON(http.StatusOK, CanPushResponse{UserID: id, Channel: ch, Targeted: targeted, Allowed: allowed, Reason: why})
}

// ConsentResponse is the consent state of a user, and for a change the
// receipt it left (null when the change altered nothing).
type ConsentResponse struct {
	UserID  string           `json:"user_id"`
	Version uint64           `json:"version"`
	State   consent.State    `json:"state"`
	Receipt *consent.Receipt `json:"receipt,omitempty"`
}

func (s *Server) getConsent(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "access")
	rec, err := s.st.Get(c.Request.Context(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ConsentResponse{UserID: id, Version: rec.Version, State: rec.State})
}

// apply makes the change through the client and answers with the state.
func (s *Server) apply(c *gin.Context, ch consent.Change, status int) {
	ch.Reason = "api key " + keyOf(c).ID
	a, err := s.client.Apply(c.Request.Context(), ch)
	if err != nil && !errors.Is(err, sdk.ErrNotPropagated) {
		fail(c, err)
		return
	}
	if err != nil {
		status = http.StatusAccepted
	}
	c.JSON(status, ConsentResponse{UserID: ch.UserID, Version: a.Record.Version, State: a.Record.State, Receipt: a.Receipt})
}

type personalizationBody struct {
	Enabled *bool  `json:"enabled"`
	Surface string `json:"surface"`
}

func surfaceOr(s string) consent.Surface {
	if s == "" {
		return consent.SurfaceAPI
	}
	return consent.Surface(s)
}

func (s *Server) putPersonalization(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "consent") // refined below; logged even when the body is rejected
	var b personalizationBody
	if !s.decode(c, &b) {
		return
	}
	if b.Enabled == nil {
		failCode(c, 422, codeInvalid, "enabled", "enabled (true or false) is required")
		return
	}
	setKind(c, map[bool]string{true: "consent", false: "opt_out"}[*b.Enabled])
	ch := consent.SetPersonalization(id, *b.Enabled).By(consent.ActorUser, surfaceOr(b.Surface))
	s.apply(c, ch, http.StatusOK)
}

type channelBody struct {
	Refused *bool  `json:"refused"`
	Surface string `json:"surface"`
}

func (s *Server) putChannel(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "consent")
	var b channelBody
	if !s.decode(c, &b) {
		return
	}
	if b.Refused == nil {
		failCode(c, 422, codeInvalid, "refused", "refused (true or false) is required")
		return
	}
	setKind(c, map[bool]string{true: "refuse_push", false: "consent"}[*b.Refused])
	ch := consent.AllowChannel(id, c.Param("channel"))
	if *b.Refused {
		ch = consent.RefuseChannel(id, c.Param("channel"))
	}
	s.apply(c, ch.By(consent.ActorUser, surfaceOr(b.Surface)), http.StatusOK)
}

type sensitiveBody struct {
	Granted    *bool  `json:"granted"`
	Purpose    string `json:"purpose"`
	ByGuardian bool   `json:"by_guardian"`
	Surface    string `json:"surface"`
}

func (s *Server) putSensitive(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "consent")
	var b sensitiveBody
	if !s.decode(c, &b) {
		return
	}
	if b.Granted == nil {
		failCode(c, 422, codeInvalid, "granted", "granted (true or false) is required")
		return
	}
	cat := tags.Category(c.Param("category"))
	ch := consent.WithdrawSensitive(id, cat)
	setKind(c, "withdraw")
	if *b.Granted {
		ch = consent.GrantSensitive(id, cat, b.Purpose)
		setKind(c, "consent")
	}
	actor := consent.ActorUser
	if b.ByGuardian {
		actor = consent.ActorGuardian
	}
	s.apply(c, ch.By(actor, surfaceOr(b.Surface)), http.StatusOK)
}

// TagView is one tag in GET /v1/users/{id}/tags.
type TagView struct {
	Tag    tags.Tag    `json:"tag"`
	Source tags.Source `json:"source"`
	At     time.Time   `json:"at"`
	Usable bool        `json:"usable"`
}

// TagsResponse is GET /v1/users/{id}/tags.
type TagsResponse struct {
	UserID     string             `json:"user_id"`
	Tags       []TagView          `json:"tags"`
	Suppressed []tags.Suppression `json:"suppressed"`
}

func (s *Server) getTags(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "access")
	p, err := s.client.Profile(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	out := TagsResponse{UserID: id, Tags: []TagView{}, Suppressed: p.Suppressed}
	if out.Suppressed == nil {
		out.Suppressed = []tags.Suppression{}
	}
	for _, t := range p.Tags {
		out.Tags = append(out.Tags, TagView{Tag: t.Tag, Source: t.Source, At: t.At, Usable: t.Usable})
	}
	c.JSON(http.StatusOK, out)
}

type tagBody struct {
	Tag     string `json:"tag"`
	Source  string `json:"source"`
	Surface string `json:"surface"`
}

func (s *Server) postTag(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "correct") // an inferred tag is not a rights request: cleared below
	var b tagBody
	if !s.decode(c, &b) {
		return
	}
	t, err := tags.Parse(b.Tag)
	if err != nil {
		fail(c, &consent.FieldError{Field: "tag", Detail: err.Error(), Err: tags.ErrInvalidTag})
		return
	}
	var ch consent.Change
	switch tags.Source(b.Source) {
	case tags.Declared, "":
		setKind(c, "correct")
		ch = consent.DeclareTag(id, t).By(consent.ActorUser, surfaceOr(b.Surface))
	case tags.Inferred:
		setKind(c, "")
		ch = consent.InferTag(id, t)
		if b.Surface != "" {
			ch.Surface = consent.Surface(b.Surface)
		}
	default:
		failCode(c, 422, codeInvalid, "source", "source must be declared or inferred, got %q", b.Source)
		return
	}
	s.apply(c, ch, http.StatusCreated)
}

func (s *Server) deleteTag(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "delete")
	t, err := tags.Parse(c.Param("tag"))
	if err != nil {
		fail(c, &consent.FieldError{Field: "tag", Detail: err.Error(), Err: tags.ErrInvalidTag})
		return
	}
	s.apply(c, consent.DeleteTag(id, t).By(consent.ActorUser, consent.SurfaceAPI), http.StatusOK)
}

// ReceiptsResponse is GET /v1/users/{id}/receipts.
type ReceiptsResponse struct {
	UserID   string            `json:"user_id"`
	Receipts []consent.Receipt `json:"receipts"`
	// ChainValid says whether the receipts verify as a hash chain.
	ChainValid bool `json:"chain_valid"`
}

func (s *Server) getReceipts(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "access")
	rcs, err := s.st.Receipts(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	if rcs == nil {
		rcs = []consent.Receipt{}
	}
	c.JSON(http.StatusOK, ReceiptsResponse{UserID: id, Receipts: rcs, ChainValid: consent.VerifyChain(rcs) == nil})
}

// ExportResponse is the portable export of everything held about a user.
type ExportResponse struct {
	Schema     string    `json:"$schema"`
	ExportedAt time.Time `json:"exported_at"`
	store.Export
}

func (s *Server) getExport(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "portability")
	ex, err := store.ExportUser(c.Request.Context(), s.st, id)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="recguard-export-`+id+`.json"`)
	c.JSON(http.StatusOK, ExportResponse{Schema: ExportSchema, ExportedAt: s.cfg.Now().UTC(), Export: ex})
}

func (s *Server) deleteUser(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "erase")
	s.apply(c, consent.Erase(id).By(consent.ActorUser, consent.SurfaceAPI), http.StatusOK)
}

// setKind names the rights request a route handles, for the Art. 44 log.
func setKind(c *gin.Context, kind string) { c.Set(ctxRights, kind) }

const ctxRights = "recguard.rights"

// rightsLog records every rights request once it is answered: its kind,
// when it came and was answered, and the outcome. Requests that are not
// rights requests (decisions, can-push, pipeline tags) set no kind.
func (s *Server) rightsLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		received := s.cfg.Now()
		c.Next()
		v, ok := c.Get(ctxRights)
		if !ok || v == "" || s.rights == nil {
			return
		}
		status := c.Writer.Status()
		outcome := "fulfilled"
		switch {
		case status >= 500:
			outcome = "failed"
		case status >= 400:
			outcome = "rejected"
		}
		r := store.RightsRequest{Kind: v.(string), Received: received.UTC(), Handled: s.cfg.Now().UTC(), Outcome: outcome, Status: status}
		if err := s.rights.LogRightsRequest(c.Request.Context(), r); err != nil {
			c.Error(err)
			s.m.rightsLogErrors.Inc()
		}
	}
}

// boolQuery reads an optional true/false query parameter (def when absent);
// a bad value answers 422 and returns ok false.
func boolQuery(c *gin.Context, name string, def bool) (v, ok bool) {
	t := c.Query(name)
	if t == "" {
		return def, true
	}
	b, err := strconv.ParseBool(t)
	if err != nil {
		failCode(c, 422, codeInvalid, name, "%s must be true or false, got %q", name, t)
		return false, false
	}
	return b, true
}
