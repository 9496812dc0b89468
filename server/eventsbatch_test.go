package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/server"
)

// fullBatch is MaxEventsPerPost realistic outcome events, each padded with
// an attribute to about size bytes of JSON.
func fullBatch(t *testing.T, size int) ([]map[string]any, int) {
	t.Helper()
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	evs := make([]map[string]any, server.MaxEventsPerPost)
	total := len(`{"events":[]}`)
	for i := range evs {
		ev := map[string]any{"user": fmt.Sprintf("user-%06d", i%2500), "item": fmt.Sprintf("sku-%05d", i%700),
			"time": at.Add(time.Duration(i) * time.Second).Format(time.RFC3339), "mode": "personalized",
			"rank": i % 20, "price": 19.99 + float64(i%50), "shown": true, "clicked": i%7 == 0, "converted": i%31 == 0,
			"latency_ms": 12.5, "attrs": []string{"device:ios"}}
		b, _ := json.Marshal(ev)
		for j := 0; len(b) < size; j++ {
			attr := fmt.Sprintf("p%d:", j)
			attr += strings.Repeat("x", min(60, max(1, size-len(b)-len(attr)-3)))
			ev["attrs"] = append(ev["attrs"].([]string), attr)
			b, _ = json.Marshal(ev)
		}
		total += len(b) + 1
		evs[i] = ev
	}
	return evs, total
}

// postRaw posts body to /v1/events with the app key, without validating
// 10,000 events against openapi.json one by one (TestEvents does that for
// smaller batches).
func postRaw(t *testing.T, e *env, body any) result {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", e.ts.URL+"/v1/events", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.app())
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: rb}
}

// TestEventsFullBatch: the documented maximum batch, 10,000 events, fits
// the events route's body limit with realistic events (about 200 bytes
// each, and up to EventBytes on average), though the whole body is far
// over MaxBody, which still bounds every other route; a batch over
// MaxEventsBody is 413 and records nothing.
func TestEventsFullBatch(t *testing.T) {
	t.Parallel()
	if server.DefaultMaxEventsBody < server.MaxEventsPerPost*server.EventBytes {
		t.Fatalf("DefaultMaxEventsBody %d cannot hold %d events of %d bytes", server.DefaultMaxEventsBody, server.MaxEventsPerPost, server.EventBytes)
	}
	// A generous store timeout: recording 10,000 events takes about a
	// second, several under -race.
	e := newEnv(t, func(c *envConfig) { c.srv.StoreTimeout = 30 * time.Second })
	read := func() int {
		n := 0
		if err := e.mem.ReadOutcomes(context.Background(), func([]byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, size := range []int{200, server.EventBytes - 16} {
		evs, total := fullBatch(t, size)
		if total <= server.DefaultMaxBody {
			t.Fatalf("a batch of %d bytes does not test the limit", total)
		}
		before := read()
		r := postRaw(t, e, map[string]any{"events": evs})
		want(t, r, 202)
		var got struct{ Accepted int }
		if err := json.Unmarshal(r.Body, &got); err != nil || got.Accepted != server.MaxEventsPerPost {
			t.Fatalf("%d events of ~%d bytes (%d bytes): %s", len(evs), size, total, r.Body)
		}
		if n := read() - before; n != server.MaxEventsPerPost {
			t.Fatalf("%d events recorded, want %d", n, server.MaxEventsPerPost)
		}
	}
	// Other routes keep MaxBody.
	big := `{"enabled":false,"surface":"` + strings.Repeat("a", server.DefaultMaxBody) + `"}`
	e.rejected(call{method: "PUT", path: "/v1/users/u1/consent/personalization", key: e.app(), body: big, req: violates}, 413, "body-too-large", "u1")

	// Over the events limit: 413, nothing recorded.
	small := newEnv(t, func(c *envConfig) { c.srv.MaxEventsBody = 1 << 20 })
	evs, _ := fullBatch(t, 200)
	wantProblem(t, postRaw(t, small, map[string]any{"events": evs}), 413, "body-too-large")
	n := 0
	if err := small.mem.ReadOutcomes(context.Background(), func([]byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("after a 413, %d events recorded (%v)", n, err)
	}
}
