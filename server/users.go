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

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// ExportSchema names the schema of GET /v1/users/{id}/export documents: the
// $id of docs/export.schema.json, and the $schema member of every export.
// Version 2 added the erasure certificate, the receipts' digest, salt and
// redacted members, the record's purge anchor and the restriction of
// processing.
const ExportSchema = "https://recguard.dev/schemas/export/v3"

// userID returns the validated user ID from the path, or answers 422.
func userID(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if err := consent.ValidUserID(id); err != nil {
		fail(c, err)
		return "", false
	}
	return id, true
}

// DecisionResponse is GET /v1/users/{id}/decision: the decision with its
// basis (record_version, settings_version, reason), when it was given and
// its signed decision ID (consent.SignedDecision).
type DecisionResponse struct {
	UserID string `json:"user_id"`
	consent.Decision
	// DecisionID is the signed ID of this answer; an outcome event posted
	// to /v1/events may carry it.
	DecisionID string `json:"decision_id"`
	// DecidedAt is when the answer was given (to the millisecond), as the
	// decision ID says.
	DecidedAt time.Time `json:"decided_at"`
}

// signDecision signs the answer sd for userID, at now (to the
// millisecond), and returns its ID and time.
func (s *Server) signDecision(userID string, sd consent.SignedDecision) (string, time.Time, error) {
	sd.At = s.cfg.Now().UTC().Truncate(time.Millisecond)
	id, err := sd.Sign(s.decKey, userID)
	return id, sd.At, err
}

func (s *Server) getDecision(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	ctx, cancel := s.budgetCtx(c)
	defer cancel()
	d, err := s.client.Decide(ctx, id)
	if err != nil && !budgetSpent(ctx, err) {
		fail(c, err)
		return
	}
	did, at, err := s.signDecision(id, consent.SignedDecision{Kind: consent.DecisionRecommend, Personalized: d.Personalized, Reason: d.Reason,
		RecordVersion: d.RecordVersion, SettingsVersion: d.SettingsVersion, ID: d.ID})
	if err != nil {
		fail(c, err)
		return
	}
	s.m.decision(d.Reason)
	writeDecision(c, &DecisionResponse{UserID: id, Decision: d, DecisionID: did, DecidedAt: at})
}

// jsonContentType is the Content-Type of JSON answers (gin's, shared as
// gin shares its own: header values are never modified in place).
var jsonContentType = []string{"application/json; charset=utf-8"}

// decisionBufs holds the buffers decision answers are encoded into.
var decisionBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeDecision answers 200 with r as JSON: the bytes encoding/json gives
// for r with its nil lists as [] (nonNil), written by appendDecision
// without reflection or allocation.
func writeDecision(c *gin.Context, r *DecisionResponse) {
	bp := decisionBufs.Get().(*[]byte)
	b, ok := appendDecision((*bp)[:0], r)
	if !ok { // a time encoding/json refuses too: let it answer as before
		decisionBufs.Put(bp)
		out := *r // a copy: r itself stays on the caller's stack
		out.Decision = nonNil(out.Decision)
		c.JSON(http.StatusOK, out)
		return
	}
	if h := c.Writer.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
	c.Status(http.StatusOK)
	_, err := c.Writer.Write(b)
	if cap(b) <= 64<<10 { // keep no giant buffer
		*bp = b
		decisionBufs.Put(bp)
	}
	if err != nil {
		_ = c.Error(err)
		c.Abort()
	}
}

// appendDecision appends r as encoding/json encodes it with its nil
// lists as [] (fields in DecisionResponse's order: the embedded Decision's
// and Basis's promoted; push_block omitted when zero). ok is false, and
// nothing is to be used, for a DecidedAt encoding/json cannot encode
// (a year outside 0-9999). A test checks it against encoding/json.
func appendDecision(b []byte, r *DecisionResponse) (_ []byte, ok bool) {
	if y := r.DecidedAt.Year(); y < 0 || y > 9999 {
		return b, false
	}
	d := &r.Decision
	b = append(b, `{"user_id":`...)
	b = appendJSONString(b, r.UserID)
	b = append(b, `,"personalized":`...)
	b = strconv.AppendBool(b, d.Personalized)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, d.Reason.String())
	b = append(b, `,"tags":[`...)
	for i, t := range d.Tags {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, string(t))
	}
	b = append(b, `],"channels":`...)
	b = appendJSONStrings(b, d.Channels)
	b = append(b, `,"refused_channels":`...)
	b = appendJSONStrings(b, d.Refused)
	if d.PushBlock != consent.ReasonUnknown {
		b = append(b, `,"push_block":`...)
		b = appendJSONString(b, d.PushBlock.String())
	}
	b = append(b, `,"record_version":`...)
	b = strconv.AppendUint(b, d.RecordVersion, 10)
	b = append(b, `,"settings_version":`...)
	b = strconv.AppendUint(b, d.SettingsVersion, 10)
	b = append(b, `,"decision_id":`...)
	b = appendJSONString(b, r.DecisionID)
	b = append(b, `,"decided_at":"`...)
	b = r.DecidedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b, true
}

// appendJSONStrings appends ss as a JSON array ([] when nil).
func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString appends s as encoding/json quotes it (HTML-safe). The
// strings of a decision are validated IDs, tags and names, printable ASCII
// that needs no escape; anything else is quoted by encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// budgetSpent reports whether err only says the decision budget (or the
// request) ended: the SDK then gives its fail-closed decision, which is
// the answer (200), not an error.
func budgetSpent(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled))
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

// CanPushResponse is GET /v1/users/{id}/can-push: the answer with its
// basis (record_version, settings_version, reason), when it was given and
// its signed decision ID (consent.SignedDecision).
type CanPushResponse struct {
	UserID          string         `json:"user_id"`
	Channel         string         `json:"channel"`
	Targeted        bool           `json:"targeted"`
	Allowed         bool           `json:"allowed"`
	Reason          consent.Reason `json:"reason"`
	RecordVersion   uint64         `json:"record_version"`
	SettingsVersion uint64         `json:"settings_version"`
	DecisionID      string         `json:"decision_id"`
	DecidedAt       time.Time      `json:"decided_at"`
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
	ctx, cancel := s.budgetCtx(c)
	defer cancel()
	p, err := s.client.DecidePush(ctx, id, ch, targeted)
	if err != nil && !budgetSpent(ctx, err) {
		fail(c, err)
		return
	}
	did, at, err := s.signDecision(id, consent.SignedDecision{Kind: consent.DecisionPush, Allowed: p.Allowed, Reason: p.Reason,
		Channel: ch, Targeted: targeted, RecordVersion: p.RecordVersion, SettingsVersion: p.SettingsVersion, ID: p.ID})
	if err != nil {
		fail(c, err)
		return
	}
	s.m.decision(p.Reason)
	c.JSON(http.StatusOK, CanPushResponse{UserID: id, Channel: ch, Targeted: targeted, Allowed: p.Allowed, Reason: p.Reason,
		RecordVersion: p.RecordVersion, SettingsVersion: p.SettingsVersion, DecisionID: did, DecidedAt: at})
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

// apply makes the change through the client and answers with the state:
// status once recorded (and, for a restrictive change under WaitForAll —
// consent.Change.Restrictive: an opt-out, a refusal, a withdrawal, a tag
// deletion, a restriction, an erasure; and a tag correction, see
// waitsForAll — applied by every live instance), 202 with a problem when
// it is recorded but not confirmed.
func (s *Server) apply(c *gin.Context, ch consent.Change, status int) {
	ch.Reason = "api key " + keyOf(c).ID
	a, err := s.client.Apply(c.Request.Context(), ch)
	if err == nil && s.cfg.WaitForAll && waitsForAll(ch) {
		ctx, cancel := s.waitCtx(c)
		err = s.waitApplied(ctx, ch.UserID, a)
		cancel()
	}
	var body *ConsentResponse
	if a.Record.Version > 0 || err == nil {
		body = &ConsentResponse{UserID: ch.UserID, Version: a.Record.Version, State: a.Record.State, Receipt: a.Receipt}
	}
	switch {
	case err == nil:
		c.JSON(status, body)
	case unconfirmed(err):
		s.pending(c, err, pendingConsent{ConsentResponse: body})
	default:
		fail(c, err)
	}
}

// waitApplied waits until every live instance applied a's change to the
// user, or returns an error wrapping sdk.ErrNotPropagated. A no-op change
// (the state was already so, perhaps from an earlier request answered
// 202) waits for everything in the user's log so far: conservative, and a
// retry of a 202 then says whether it propagated since.
func (s *Server) waitApplied(ctx context.Context, userID string, a store.Applied) error {
	log, pos := a.Shard, a.Pos
	if a.Receipt == nil || pos.IsZero() {
		log = store.ShardOf(userID, s.st.Shards())
		var err error
		if pos, err = s.st.Tail(ctx, log); err != nil {
			return fmt.Errorf("%w: reading the changelog tail: %w", sdk.ErrNotPropagated, err)
		}
		if pos.IsZero() {
			return nil
		}
	}
	return s.client.WaitApplied(ctx, log, pos)
}

// unconfirmed reports an error that leaves the change standing but not
// confirmed (202).
func unconfirmed(err error) bool {
	return errors.Is(err, sdk.ErrNotPropagated) || errors.Is(err, store.ErrNotReplicated)
}

// pendingConsent is the 202 answer to a user change: a problem whose
// extension members are the 200 answer (absent when the store did not
// return the record).
type pendingConsent struct {
	Problem
	*ConsentResponse
}

// pendingSettings is the 202 answer to a settings change.
type pendingSettings struct {
	Problem
	*settingsAnswer
}

// pending answers 202 for a change recorded but not confirmed: a
// problem+json (type not-propagated or not-replicated, a fixed detail) that
// also carries the answer the change would have had (v, with its Problem
// filled in here). The error is logged.
func (s *Server) pending(c *gin.Context, err error, v any) {
	code := codeNotPropagate
	if errors.Is(err, store.ErrNotReplicated) {
		code = codeNotReplicate
	}
	p := Problem{Type: problemTypeBase + code, Title: titles[code], Status: http.StatusAccepted, Detail: safeDetails[code]}
	switch b := v.(type) {
	case pendingConsent:
		b.Problem = p
		v = b
	case pendingSettings:
		b.Problem = p
		v = b
	default:
		v = p
	}
	s.m.notPropagated.Inc()
	c.Error(err) // logged, never shown
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(http.StatusAccepted, v)
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
	// LiftSuppression, with source declared, brings back a tag the user
	// deleted: the user's explicit re-declaration (consent.RedeclareTag),
	// recorded as such in the receipt. Without it a deleted tag stays
	// deleted whoever sends it (409 tag-suppressed).
	LiftSuppression bool `json:"lift_suppression"`
}

// postTag adds a tag. source is required: declared (the user's own
// declaration, an Art. 24 correction) or inferred (the platform's
// pipeline, not a rights request). Only a declaration with
// lift_suppression brings back a tag the user deleted.
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
	case tags.Declared:
		setKind(c, "correct")
		ch = consent.DeclareTag(id, t)
		if b.LiftSuppression {
			ch = consent.RedeclareTag(id, t)
		}
		ch = ch.By(consent.ActorUser, surfaceOr(b.Surface))
	case tags.Inferred:
		setKind(c, "")
		if b.LiftSuppression {
			failCode(c, 422, codeInvalid, "lift_suppression", "only the user's own declaration (source declared) can lift a deleted tag's suppression")
			return
		}
		ch = consent.InferTag(id, t)
		if b.Surface != "" {
			ch.Surface = consent.Surface(b.Surface)
		}
	case "":
		setKind(c, "")
		failCode(c, 422, codeInvalid, "source", "source is required: declared (the user's own declaration) or inferred (the platform's pipeline)")
		return
	default:
		setKind(c, "")
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
	UserID string `json:"user_id"`
	// Receipts are the user's receipts, oldest first, within the
	// retention. Receipts kept from before an erasure are not among them:
	// they are kept in storage only, for auditors (Art. 24).
	Receipts []consent.Receipt `json:"receipts"`
	// ChainValid says whether every receipt kept about the user (those
	// served and those kept in storage only) verifies as the record's hash
	// chain under the deployment's chain key (consent.VerifyChain against
	// the record's head).
	ChainValid bool `json:"chain_valid"`
	// Erased is true when the user's personal data was erased: no receipt
	// is served, and Erasure is the erasure certificate.
	Erased bool `json:"erased,omitempty"`
	// Erasure is the erasure certificate of an erased user; nil otherwise.
	Erasure *store.Erasure `json:"erasure,omitempty"`
	// Withheld is the number of receipts kept from before an erasure of a
	// user who came back since: stored only, not served.
	Withheld int `json:"withheld,omitempty"`
}

// userReceipts reads what the user routes need about a user's receipts:
// the record, every receipt kept, and the settings.
func (s *Server) userReceipts(ctx context.Context, id string) (consent.Record, []consent.Receipt, consent.Settings, error) {
	rec, err := s.st.Get(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return rec, nil, consent.Settings{}, err
	}
	rcs, err := s.st.Receipts(ctx, id)
	if err != nil {
		return rec, nil, consent.Settings{}, err
	}
	set, err := s.st.Settings(ctx)
	if err != nil {
		return rec, nil, consent.Settings{}, err
	}
	if rcs == nil {
		rcs = []consent.Receipt{}
	}
	return rec, rcs, set, nil
}

// verifyChain checks rcs, a user's receipts as the store keeps them,
// against the record's head under the chain key.
func (s *Server) verifyChain(rec consent.Record, rcs []consent.Receipt, set *consent.Settings) error {
	return consent.VerifyChain(rcs, consent.HeadOf(rec, set, s.cfg.Now()), s.cfg.ChainKey)
}

// served is what the user routes serve of a user's receipts: none for an
// erased user, and for a user who came back after an erasure none of those
// kept from before it (redacted: stored only, for auditors). It returns
// how many it withheld.
func served(rec consent.Record, rcs []consent.Receipt) ([]consent.Receipt, int) {
	if rec.State.Erased {
		return []consent.Receipt{}, 0
	}
	out := make([]consent.Receipt, 0, len(rcs))
	for _, rc := range rcs {
		if !rc.Redacted {
			out = append(out, rc)
		}
	}
	return out, len(rcs) - len(out)
}

func (s *Server) getReceipts(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "access")
	rec, rcs, set, err := s.userReceipts(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	out := ReceiptsResponse{UserID: id, ChainValid: s.verifyChain(rec, rcs, &set) == nil}
	out.Receipts, out.Withheld = served(rec, rcs)
	if rec.State.Erased {
		out.Erased, out.Erasure = true, store.Certify(rec, rcs, set.RetentionOrDefault())
	}
	s.countCopy(c, id, "access")
	c.JSON(http.StatusOK, out)
}

// ExportResponse is the portable export of everything held about a user:
// the document docs/export.schema.json describes (its $id is ExportSchema).
type ExportResponse struct {
	Schema     string    `json:"$schema"`
	ExportedAt time.Time `json:"exported_at"`
	store.Export
}

// getExport answers the user's copy of everything held (Art. 25). The
// request must say how the app verified the applicant's identity
// (X-Identity-Verification, 400 without). An erased user's export is the
// tombstone and the erasure certificate; a user who came back after an
// erasure exports without the receipts kept from before it.
func (s *Server) getExport(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "portability")
	if !identityVerified(c) {
		return
	}
	ex, err := store.ExportUser(c.Request.Context(), s.st, id)
	if err != nil {
		fail(c, err)
		return
	}
	ex.Receipts, _ = served(ex.Record, ex.Receipts)
	s.countCopy(c, id, "portability")
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
	if mc, ok := s.counter.(*memCounter); ok && c.Writer.Status() < 300 {
		mc.forget(id) // the count of the user's copy requests goes too
	}
}

// setKind names the rights request a route handles, for the Art. 44 log.
func setKind(c *gin.Context, kind string) { c.Set(ctxRights, kind) }

const ctxRights = "recguard.rights"

// rightsLog records every rights request once it is answered: its kind,
// when it came and was answered, and the outcome. Requests that are not
// rights requests (decisions, can-push, pipeline tags) set no kind. A
// request that says how the applicant's identity was verified (an
// export) is also logged with it.
func (s *Server) rightsLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		received := s.cfg.Now()
		c.Next()
		v, ok := c.Get(ctxRights)
		if !ok || v == "" {
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
		r := store.RightsRequest{Kind: v.(string), Received: received.UTC(), Handled: s.cfg.Now().UTC(), Outcome: outcome, Status: status,
			Verification: c.GetString(ctxVerified)}
		if s.rights == nil {
			return
		}
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
