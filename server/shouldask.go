package server

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// The reasons of a should-ask answer.
const (
	// AskMayAsk: the app may ask now (ask true).
	AskMayAsk = "may_ask"
	// AskInForce: the consent is in force, or not needed (the guardian's
	// consent for an adult): nothing to ask.
	AskInForce = "in_force"
	// AskCooldown: the user said no (refused, withdrew or declined) less
	// than the settings' reask_cooldown ago; next_ask_at says until when.
	AskCooldown = "cooldown"
	// AskSuspended: the service is suspended (Art. 51): nothing is asked.
	AskSuspended = "suspended"
	// AskUnverified: this instance cannot be sure of the user's state now
	// (the store is unreachable or slow, or its changelog is not confirmed
	// current): it fails closed and does not ask.
	AskUnverified = "unverified"
)

// ShouldAskResponse is GET /v1/users/{id}/should-ask.
type ShouldAskResponse struct {
	UserID string       `json:"user_id"`
	Kind   consent.Kind `json:"kind"`
	Ask    bool         `json:"ask"`
	Reason string       `json:"reason"`
	// NextAskAt is when the cooldown ends (reason cooldown only).
	NextAskAt *time.Time `json:"next_ask_at,omitempty"`
}

// parseKind reads a consent kind and its class (the metric label): a
// channel must be configured, a category known.
func parseKind(q string, set *consent.Settings) (consent.Kind, string, bool) {
	switch {
	case q == string(consent.KindPersonalization):
		return consent.KindPersonalization, "personalization", true
	case q == string(consent.KindGuardian):
		return consent.KindGuardian, "guardian", true
	case strings.HasPrefix(q, "channel:"):
		ch := q[len("channel:"):]
		if consent.ValidChannelName(ch) != nil || !set.HasChannel(ch) {
			return "", "", false
		}
		return consent.ChannelKind(ch), "channel", true
	case strings.HasPrefix(q, "sensitive:"):
		cat := tags.Category(q[len("sensitive:"):])
		if !cat.Valid() {
			return "", "", false
		}
		return consent.SensitiveKind(cat), "sensitive", true
	}
	return "", "", false
}

// getShouldAsk answers whether the app may ask the user for a consent now
// (sdk.Client.ShouldAsk: not while it is in force, not within the re-ask
// cooldown after the user's last "no", Art. 22(5)), and why. When the
// answer is no, the reason comes from the user's record read from the
// store. Like the decision routes it answers within the decision budget
// and fails closed (ask false, unverified). Not a rights request. Every
// answer is logged (key ID, kind, answer; never the user ID) and counted.
func (s *Server) getShouldAsk(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	set := s.client.Settings()
	q := c.Query("kind")
	kind, class, ok := parseKind(q, &set)
	if !ok {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "kind",
			"kind must be personalization, guardian, channel:<a configured channel> or sensitive:<category>, got %q", q)
		return
	}
	ctx, cancel := s.budgetCtx(c)
	defer cancel()
	out := ShouldAskResponse{UserID: id, Kind: kind, Reason: AskUnverified}
	ask, err := s.client.ShouldAsk(ctx, id, kind)
	switch {
	case err != nil && !budgetSpent(ctx, err):
		fail(c, err)
		return
	case err != nil:
	case ask:
		out.Ask, out.Reason = true, AskMayAsk
	default:
		rec, err := s.st.Get(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			c.Error(err) // logged; the answer fails closed
			break
		}
		var next time.Time
		out.Reason, next = askReason(rec.State, kind, &set, s.cfg.Now())
		switch {
		case out.Reason == AskCooldown:
			out.NextAskAt = &next
		case out.Reason == AskMayAsk && set.Suspended:
			out.Reason = AskSuspended
		case out.Reason == AskMayAsk: // the client could not be sure
			out.Reason = AskUnverified
		}
	}
	s.m.shouldAsk.WithLabelValues(class, out.Reason).Inc()
	s.cfg.Logger.Info("should-ask", "key_id", keyIDOf(c), "kind", string(kind), "ask", out.Ask, "reason", out.Reason,
		"request_id", requestIDOf(c))
	c.JSON(http.StatusOK, out)
}

// askReason says why consent.ShouldAsk answers as it does for st: in force
// (or not needed), within the cooldown (and until when), or may ask.
func askReason(st consent.State, k consent.Kind, set *consent.Settings, now time.Time) (string, time.Time) {
	bare := st
	bare.Refusals = nil
	if !consent.ShouldAsk(bare, k, set, now) {
		return AskInForce, time.Time{}
	}
	if !consent.ShouldAsk(st, k, set, now) {
		at, _ := st.LastRefusal(k)
		return AskCooldown, at.Add(set.ReaskCooldown).UTC()
	}
	return AskMayAsk, time.Time{}
}
