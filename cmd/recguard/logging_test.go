package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/store"
)

// TestRedisLogger: go-redis's lines reach slog at Warn, at most the burst
// at once; past it they are counted, and the next line once the rate
// allows says how many were suppressed.
func TestRedisLogger(t *testing.T) {
	var buf bytes.Buffer
	l := newRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := 0; i < 1000; i++ {
		l.Printf(context.Background(), "redis: %s: dial tcp 10.0.0.%d:6379: connection refused", "pool", i%250)
	}
	now = now.Add(time.Second / redisLogRate)
	var nilCtx context.Context // go-redis may pass none
	l.Printf(nilCtx, "redis: once more")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != redisLogBurst+1 {
		t.Fatalf("%d lines for 1001 go-redis lines, want %d", len(lines), redisLogBurst+1)
	}
	var first, last map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if first["level"] != "WARN" || first["msg"] != "go-redis" || !strings.Contains(first["text"].(string), "connection refused") {
		t.Errorf("first line %v", first)
	}
	if last["text"] != "redis: once more" || last["suppressed_before"] != float64(1000-redisLogBurst) {
		t.Errorf("last line %v, want %d suppressed before it", last, 1000-redisLogBurst)
	}
}

// TestNewLogger: text and JSON, and nothing else.
func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	for format, want := range map[string]string{"json": `"msg":"hello"`, "text": "msg=hello", "": "msg=hello", "JSON": `"msg":"hello"`} {
		buf.Reset()
		l, err := newLogger(format, &buf)
		if err != nil {
			t.Fatalf("%q: %v", format, err)
		}
		l.Info("hello")
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%q: %q", format, buf.String())
		}
	}
	if _, err := newLogger("xml", &buf); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("xml: %v", err)
	}
}

// TestLogAdmin: a CLI admin action's line names the action, the key, the
// outcome and who ran it.
func TestLogAdmin(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	logAdmin(l, "key create", "0123456789ab", nil, "role", "app")
	logAdmin(l, "key create", "0123456789ac", store.ErrNotReplicated)
	logAdmin(l, "key revoke", "0123456789ad", errors.New("boom"))
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != 3 || got[0]["outcome"] != "applied" || got[0]["level"] != "INFO" || got[0]["role"] != "app" || got[0]["actor"] != "cli" ||
		got[0]["os_user"] == "" || got[1]["outcome"] != "recorded, not confirmed" || got[2]["outcome"] != "failed" || got[2]["err"] != "boom" ||
		got[2]["action"] != "key revoke" || got[2]["key_id"] != "0123456789ad" {
		t.Errorf("lines %v", got)
	}
}
