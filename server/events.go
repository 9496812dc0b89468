package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// MaxEventsPerPost bounds one POST /v1/events.
const MaxEventsPerPost = 10_000

// EventBytes is the size one event of POST /v1/events may take on
// average for a full batch (MaxEventsPerPost events) to fit the default
// body limit of the route, DefaultMaxEventsBody. A typical event (user,
// item, time, mode, a decision_id, a few metrics) takes 200-400 bytes.
const EventBytes = 1024

// DecisionSkew is how much earlier than the decision its decision_id names
// an outcome event's time may be: the app's clock and the server's differ a
// little, but an item shown well before the decision was given was not
// shown under it (422).
const DecisionSkew = time.Minute

// EventsRequest is POST /v1/events: a batch of outcome events for audits.
// An event may carry the decision_id of the decision it was served under
// (GET /v1/users/{id}/decision): see postEvents.
type EventsRequest struct {
	Events []json.RawMessage `json:"events"`
}

// EventsResponse says how many events were recorded, and how many of them
// had their mode backed by a verified decision ID (decided, not only
// declared by the app).
type EventsResponse struct {
	Accepted int `json:"accepted"`
	Decided  int `json:"decided"`
	// Contradicted counts the events that declared mode personalized
	// under a decision ID whose decision was not: they are recorded as
	// declared, and the ledger marks them for the enforcement audit
	// (violation mode_contradicts_decision).
	Contradicted int `json:"contradicted"`
	// Pushes is how many of the accepted events were pushes (recorded in
	// the ledger); LedgerDropped how many ledger entries of this batch were
	// dropped because the ledger's queue was full (counted in
	// recguard_ledger_dropped_total and in the store).
	Pushes        int `json:"pushes"`
	LedgerDropped int `json:"ledger_dropped"`
}

// postEvents records outcome events in the store's outcome log, for
// Art. 46 audits. Every event is checked as an events file line would be,
// and more strictly (checkOutcome); one bad event rejects the whole batch
// and nothing is recorded.
//
// An event may carry a decision_id (a signed consent.SignedDecision). It
// must verify under this deployment's key for the event's user, else the
// batch is refused (400): a forged, altered or malformed ID, or one issued
// for another user. A valid one makes the event's mode decided: when the
// event declares none it is the decision's, and a declared mode must not
// contradict it (422), nor may the event be older than the decision (by
// more than DecisionSkew) or name a push answer's ID. The decision_id
// itself is not stored (the outcome log holds audit events, which have no
// such field).
func (s *Server) postEvents(c *gin.Context) {
	ol, ok := s.st.(store.OutcomeLog)
	if !ok {
		failCode(c, http.StatusNotImplemented, codeUnavailable, "", "the store keeps no outcome events")
		return
	}
	var req EventsRequest
	if body, ok := s.readBodyLimit(c, "application/json", s.cfg.MaxEventsBody); !ok || !decodeBody(c, body, &req) {
		return
	}
	if len(req.Events) == 0 || len(req.Events) > MaxEventsPerPost {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "send 1 to %d events, got %d", MaxEventsPerPost, len(req.Events))
		return
	}
	lines := make([][]byte, 0, len(req.Events))
	decs := make([]*decidedEvent, 0, len(req.Events)) // nil: no decision_id
	var evTags [][]tags.Tag                           // the tags each outcome event reports (nil: none)
	var pushes []checkedPush
	var pos []int // pos[j] is the batch position of outcome event j
	var all bytes.Buffer
	for i, raw := range req.Events {
		kind, ok := eventKind(c, i, raw)
		if !ok {
			return
		}
		if kind == "push" {
			p, ok := s.checkPush(c, i, raw)
			if !ok {
				return
			}
			pushes = append(pushes, p)
			continue
		}
		lines, decs, pos = append(lines, nil), append(decs, nil), append(pos, i)
		j := len(lines) - 1
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			failCode(c, http.StatusBadRequest, codeMalformed, "events", "events[%d] is not JSON: %v", i, err)
			return
		}
		lines[j] = b.Bytes()
		// A decision_id written with escapes is not found here; the reader
		// below then refuses it as an unknown field.
		if bytes.Contains(lines[j], []byte(`"decision_id"`)) {
			var ok bool
			if lines[j], decs[j], ok = s.takeDecisionID(c, i, lines[j]); !ok {
				return
			}
		}
		evTags = append(evTags, nil)
		if bytes.Contains(lines[j], []byte(`"tags"`)) {
			var ok bool
			if lines[j], evTags[j], ok = takeTags(c, i, lines[j]); !ok {
				return
			}
		}
		all.Write(lines[j])
		all.WriteByte('\n')
	}
	// The same reader as an events file: event i is line i+1.
	src := audit.ReadJSONL(&all, "events")
	users := make([]string, 0, len(lines))
	evs := make([]audit.Event, 0, len(lines))
	for {
		ev, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *audit.LineError
		if errors.As(err, &le) {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "events[%d]: %s", pos[le.Line-1], le.Reason)
			return
		}
		if err != nil {
			fail(c, err)
			return
		}
		if reason := checkOutcome(ev); reason != "" {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "events[%d]: %s", pos[len(users)], reason)
			return
		}
		if i := len(users); i < len(decs) && decs[i] != nil {
			if reason := checkDecided(ev, decs[i]); reason != "" {
				failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "events[%d]: %s", pos[i], reason)
				return
			}
			if ev.Mode == audit.ModePersonalized && !decs[i].d.Personalized {
				decs[i].contradicted = true
			}
		}
		users = append(users, ev.UserID)
		evs = append(evs, ev)
	}
	decided, contradicted := 0, 0
	for _, d := range decs {
		switch {
		case d != nil && d.contradicted:
			contradicted++
		case d != nil:
			decided++
		}
	}
	if len(users) != len(lines) {
		fail(c, fmt.Errorf("server: %d events decoded from %d", len(users), len(lines)))
		return
	}
	if len(pushes) > 0 && !s.ledger {
		failCode(c, http.StatusNotImplemented, codeUnavailable, "", "the server keeps no ledger of pushes")
		return
	}
	if len(lines) > 0 {
		if err := ol.AppendOutcomes(c.Request.Context(), users, lines); err != nil {
			fail(c, err)
			return
		}
	}
	// The ledger: each outcome event is an exposure (sampled), each push
	// a push, queued without waiting.
	dropped := 0
	if s.ledger {
		for i, ev := range evs {
			x := sdk.Exposed{UserID: ev.UserID, At: ev.Time, Personalized: ev.Mode == audit.ModePersonalized, Items: 1, Surface: "http"}
			if d := decs[i]; d != nil {
				x.Decided, x.Reason, x.Personalized = true, d.d.Reason, d.d.Personalized && ev.Mode != audit.ModeNonPersonalized
				x.Basis = consent.Basis{RecordVersion: d.d.RecordVersion, SettingsVersion: d.d.SettingsVersion, ID: d.d.ID}
				if d.contradicted {
					// Recorded as declared, as evidence: the enforcement
					// audit lists it.
					x.Decided, x.Contradicted = false, true
				}
			}
			x.Tags = evTags[i]
			if errors.Is(s.client.RecordExposure(x), sdk.ErrLedgerFull) {
				dropped++
			}
		}
		for _, p := range pushes {
			if errors.Is(s.client.RecordPushDecided(p.push, p.decision, "http"), sdk.ErrLedgerFull) {
				dropped++
			}
		}
	}
	for _, p := range pushes {
		if p.decision != nil {
			decided++
		}
	}
	s.m.events.WithLabelValues("decided").Add(float64(decided))
	s.m.events.WithLabelValues("declared").Add(float64(len(lines) + len(pushes) - decided - contradicted))
	s.m.events.WithLabelValues("contradicted").Add(float64(contradicted))
	c.JSON(http.StatusAccepted, EventsResponse{Accepted: len(lines) + len(pushes), Decided: decided, Contradicted: contradicted, Pushes: len(pushes), LedgerDropped: dropped})
}

// eventKind returns an event's kind: "push", or "" for an outcome event
// (no kind member). Any other kind is answered 400.
func eventKind(c *gin.Context, i int, raw json.RawMessage) (string, bool) {
	if !bytes.Contains(raw, []byte(`"kind"`)) {
		return "", true
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		failCode(c, http.StatusBadRequest, codeMalformed, "events", "events[%d] is not a JSON object", i)
		return "", false
	}
	k, ok := m["kind"]
	if !ok {
		return "", true
	}
	var kind string
	if err := json.Unmarshal(k, &kind); err != nil || kind != "push" {
		failCode(c, http.StatusBadRequest, codeMalformed, fmt.Sprintf("events.%d.kind", i), "events[%d]: kind must be \"push\" (an outcome event has no kind)", i)
		return "", false
	}
	return kind, true
}

// PushEvent is an event of kind "push" in POST /v1/events: a push the app
// sent, for the ledger.
type PushEvent struct {
	Kind string `json:"kind"`
	// User, Time, Channel and Targeted are required; Channel must be one
	// the settings configure.
	User     *string    `json:"user"`
	Time     *time.Time `json:"time"`
	Channel  *string    `json:"channel"`
	Targeted *bool      `json:"targeted"`
	// Campaign is optional: A-Za-z0-9_.:@+=-, at most 128 bytes.
	Campaign string `json:"campaign,omitempty"`
	// DecisionID is the can-push answer's signed ID, optional; it must
	// verify for the user and name a push on the same channel.
	DecisionID *string `json:"decision_id,omitempty"`
	// Tags are the tags a targeted push was chosen by, optional (at most
	// store.MaxLedgerTags): the enforcement audit checks them against the
	// user's deletions and sensitive consents.
	Tags []string `json:"tags,omitempty"`
}

// checkedPush is a push event that passed checkPush.
type checkedPush struct {
	push     sdk.Push
	decision *consent.SignedDecision
}

// checkPush checks push event i strictly: no unknown member, every required
// member, a valid user, a configured channel, a campaign of label syntax,
// a decision_id that verifies for the user and names a can-push answer for
// the same channel, given no later than the push (within DecisionSkew).
// Anything wrong is answered 400 naming the member (events.<i>.<member>),
// and the batch records nothing.
func (s *Server) checkPush(c *gin.Context, i int, raw json.RawMessage) (checkedPush, bool) {
	bad := func(member, format string, args ...any) (checkedPush, bool) {
		field := fmt.Sprintf("events.%d", i)
		if member != "" {
			field += "." + member
		}
		failCode(c, http.StatusBadRequest, codeMalformed, field, "events[%d] (push): "+format, append([]any{i}, args...)...)
		return checkedPush{}, false
	}
	var pe PushEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pe); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return bad(ute.Field, "%s must be %s", ute.Field, ute.Type)
		}
		return bad("", "%v", err)
	}
	switch {
	case pe.User == nil:
		return bad("user", "user is required")
	case pe.Time == nil:
		return bad("time", "time is required")
	case pe.Channel == nil:
		return bad("channel", "channel is required")
	case pe.Targeted == nil:
		return bad("targeted", "targeted is required (true when the push was chosen from the user's tags)")
	}
	if err := consent.ValidUserID(*pe.User); err != nil {
		return bad("user", "%v", err)
	}
	if y := pe.Time.UTC().Year(); y < 1970 || y > 9999 {
		return bad("time", "year %d out of range", y)
	}
	set := s.client.Settings()
	if !set.HasChannel(*pe.Channel) {
		return bad("channel", "channel %q is not configured", clipStr(*pe.Channel))
	}
	if pe.Campaign != "" {
		if err := store.ValidLabel("campaign", pe.Campaign); err != nil {
			return bad("campaign", "campaign %q: want 1 to 128 bytes of A-Za-z0-9_.:@+=-", clipStr(pe.Campaign))
		}
	}
	ts, reason := parseTags(pe.Tags)
	if reason != "" {
		return bad("tags", "%s", reason)
	}
	out := checkedPush{push: sdk.Push{UserID: *pe.User, Channel: *pe.Channel, Targeted: *pe.Targeted, Campaign: pe.Campaign, At: *pe.Time, Tags: ts}}
	if pe.DecisionID != nil {
		sd, err := consent.VerifyDecisionID(s.decKey, *pe.User, *pe.DecisionID)
		if err != nil {
			detail := err.Error()
			var fe *consent.FieldError
			if errors.As(err, &fe) {
				detail = fe.Detail
			}
			return bad("decision_id", "decision_id: %s", detail)
		}
		switch {
		case sd.Kind != consent.DecisionPush:
			return bad("decision_id", "decision_id names a %s answer; a push takes the decision_id of GET /v1/users/{id}/can-push", sd.Kind)
		case sd.Channel != *pe.Channel:
			return bad("decision_id", "decision_id answers a push on %q, not on %q", sd.Channel, *pe.Channel)
		case pe.Time.Before(sd.At.Add(-DecisionSkew)):
			return bad("time", "time %s is before its decision was given (%s)", pe.Time.UTC().Format(time.RFC3339Nano), sd.At.Format(time.RFC3339Nano))
		}
		out.decision = &sd
	}
	return out, true
}

func clipStr(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// takeDecisionID verifies the decision_id of event i (line: compact JSON)
// for the event's user and returns the event without it, with the
// decision's mode when the event declares none, and what the ID says (nil
// when the event has no decision_id member after all: the text was inside
// a value). A malformed or forged ID is answered 400, an event without a
// user 422; it then returns false.
func (s *Server) takeDecisionID(c *gin.Context, i int, line []byte) ([]byte, *decidedEvent, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		failCode(c, http.StatusBadRequest, codeMalformed, "events", "events[%d] is not a JSON object", i)
		return nil, nil, false
	}
	raw, ok := m["decision_id"]
	if !ok {
		return line, nil, true
	}
	field := fmt.Sprintf("events.%d.decision_id", i)
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		failCode(c, http.StatusBadRequest, codeMalformed, field, "events[%d]: decision_id is not a string", i)
		return nil, nil, false
	}
	var user string
	if err := json.Unmarshal(m["user"], &user); err != nil || user == "" {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "events[%d]: an event with a decision_id needs its user", i)
		return nil, nil, false
	}
	sd, err := consent.VerifyDecisionID(s.decKey, user, id)
	if err != nil {
		detail := err.Error()
		var fe *consent.FieldError
		if errors.As(err, &fe) {
			detail = fe.Detail
		}
		failCode(c, http.StatusBadRequest, codeMalformed, field, "events[%d]: decision_id: %s", i, detail)
		return nil, nil, false
	}
	delete(m, "decision_id")
	if _, ok := m["mode"]; !ok {
		m["mode"] = json.RawMessage(`"` + sd.Mode() + `"`)
	}
	b, ok := reencode(c, i, m)
	return b, &decidedEvent{user: user, d: sd}, ok
}

// takeTags takes the tags member out of outcome event i (line: compact
// JSON): a list of at most store.MaxLedgerTags tags the recommendation was
// chosen by, for the ledger (the outcome log's events have no such
// member). A malformed one is answered 400 naming events.<i>.tags.
func takeTags(c *gin.Context, i int, line []byte) ([]byte, []tags.Tag, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		failCode(c, http.StatusBadRequest, codeMalformed, "events", "events[%d] is not a JSON object", i)
		return nil, nil, false
	}
	raw, ok := m["tags"]
	if !ok {
		return line, nil, true
	}
	field := fmt.Sprintf("events.%d.tags", i)
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		failCode(c, http.StatusBadRequest, codeMalformed, field, "events[%d]: tags must be a list of strings", i)
		return nil, nil, false
	}
	ts, reason := parseTags(list)
	if reason != "" {
		failCode(c, http.StatusBadRequest, codeMalformed, field, "events[%d]: %s", i, reason)
		return nil, nil, false
	}
	delete(m, "tags")
	b, ok := reencode(c, i, m)
	return b, ts, ok
}

// reencode writes event i (a member taken out) back as compact JSON, its
// text as sent; a failure is answered 500.
func reencode(c *gin.Context, i int, m map[string]json.RawMessage) ([]byte, bool) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep the event's text as sent
	if err := enc.Encode(m); err != nil {
		fail(c, fmt.Errorf("server: re-encoding events[%d]: %w", i, err))
		return nil, false
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), true
}

// parseTags checks an event's tags: at most store.MaxLedgerTags, each a
// valid tag. It returns why they are refused, or "".
func parseTags(list []string) ([]tags.Tag, string) {
	if len(list) == 0 {
		return nil, ""
	}
	if len(list) > store.MaxLedgerTags {
		return nil, fmt.Sprintf("%d tags: at most %d", len(list), store.MaxLedgerTags)
	}
	out := make([]tags.Tag, len(list))
	for i, t := range list {
		tg, err := tags.Parse(t)
		if err != nil {
			return nil, fmt.Sprintf("tags[%d]: %v", i, err)
		}
		out[i] = tg
	}
	return out, ""
}

// decidedEvent is what an event's verified decision_id says, and the user
// it was verified for.
type decidedEvent struct {
	user string
	d    consent.SignedDecision
	// contradicted: the event declares personalized, the decision was not.
	contradicted bool
}

// checkDecided checks an outcome event against the decision its verified
// decision_id names: a recommendation decision (not a push answer) for the
// same user, given no later than the event (within DecisionSkew), that
// allowed the event's mode (a non-personalized event is allowed under any
// decision). It returns why the event is refused, or "".
func checkDecided(ev audit.Event, de *decidedEvent) string {
	d := &de.d
	switch {
	case ev.UserID != de.user:
		return "decision_id was verified for another user than the event's"
	case d.Kind != consent.DecisionRecommend:
		return fmt.Sprintf("decision_id names a %s answer; an outcome event takes the decision_id of GET /v1/users/{id}/decision", d.Kind)
	case ev.Time.Before(d.At.Add(-DecisionSkew)):
		return fmt.Sprintf("time %s is before its decision was given (%s)", ev.Time.UTC().Format(time.RFC3339Nano), d.At.Format(time.RFC3339Nano))
	}
	return ""
}

// checkOutcome checks what an events file may get wrong but the store's
// outcome log must not hold: a user ID the store could not hold
// (consent.ValidUserID), and a negative (or non-finite) rank, price,
// discount or latency, which would skew every audit figure computed from
// them. It returns why the event is refused, or "".
func checkOutcome(ev audit.Event) string {
	if err := consent.ValidUserID(ev.UserID); err != nil {
		return "user: " + err.Error()
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"rank", ev.Rank}, {"price", ev.Price}, {"discount", ev.Discount}, {"latency_ms", ev.LatencyMS}} {
		switch {
		case f.v == nil:
		case math.IsNaN(*f.v) || math.IsInf(*f.v, 0):
			return f.name + " is not a finite number"
		case *f.v < 0:
			return fmt.Sprintf("%s %v is negative", f.name, *f.v)
		}
	}
	for k, v := range ev.Fields {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("field %q is not a finite number", k)
		}
	}
	return ""
}
