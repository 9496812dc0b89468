package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// MaxEventsPerPost bounds one POST /v1/events.
const MaxEventsPerPost = 10_000

// EventsRequest is POST /v1/events: a batch of outcome events for audits.
type EventsRequest struct {
	Events []json.RawMessage `json:"events"`
}

// EventsResponse says how many events were recorded.
type EventsResponse struct {
	Accepted int `json:"accepted"`
}

// postEvents records outcome events in the store's outcome log, for
// Art. 46 audits. Every event is checked as an events file line would be,
// and more strictly (checkOutcome); one bad event rejects the whole batch
// and nothing is recorded.
func (s *Server) postEvents(c *gin.Context) {
	ol, ok := s.st.(store.OutcomeLog)
	if !ok {
		failCode(c, http.StatusNotImplemented, codeUnavailable, "", "the store keeps no outcome events")
		return
	}
	var req EventsRequest
	if !s.decode(c, &req) {
		return
	}
	if len(req.Events) == 0 || len(req.Events) > MaxEventsPerPost {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "send 1 to %d events, got %d", MaxEventsPerPost, len(req.Events))
		return
	}
	lines := make([][]byte, len(req.Events))
	var all bytes.Buffer
	for i, raw := range req.Events {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			failCode(c, http.StatusBadRequest, codeMalformed, "events", "events[%d] is not JSON: %v", i, err)
			return
		}
		lines[i] = b.Bytes()
		all.Write(lines[i])
		all.WriteByte('\n')
	}
	// The same reader as an events file: event i is line i+1.
	src := audit.ReadJSONL(&all, "events")
	users := make([]string, 0, len(lines))
	for {
		ev, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *audit.LineError
		if errors.As(err, &le) {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "events[%d]: %s", le.Line-1, le.Reason)
			return
		}
		if err != nil {
			fail(c, err)
			return
		}
		if reason := checkOutcome(ev); reason != "" {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "events", "events[%d]: %s", len(users), reason)
			return
		}
		users = append(users, ev.UserID)
	}
	if len(users) != len(lines) {
		fail(c, fmt.Errorf("server: %d events decoded from %d", len(users), len(lines)))
		return
	}
	if err := ol.AppendOutcomes(c.Request.Context(), users, lines); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, EventsResponse{Accepted: len(lines)})
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
