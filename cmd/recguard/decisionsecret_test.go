package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
)

// TestServeDecisionIDs runs the real binary: decision IDs are signed under
// the key derived from the chain key by default, under a secret of their
// own with --decision-secret-file (here through its variable,
// RECGUARD_DECISION_SECRET_FILE), and POST /v1/events accepts the IDs the
// running server issued and refuses the others. A secret file others can
// read is refused at start.
func TestServeDecisionIDs(t *testing.T) {
	recguardBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	sf := []string{"--data", data}
	app, _ := createKey(t, "app", sf...) // makes the store and its chain key
	chainKey, err := os.ReadFile(filepath.Join(data, "chain.key"))
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "decision.secret")
	secret := []byte("this deployment's decision secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	serveArgs := append([]string{"--addr", "127.0.0.1:0"}, sf...)

	type decision struct {
		Reason        string    `json:"reason"`
		RecordVersion uint64    `json:"record_version"`
		DecisionID    string    `json:"decision_id"`
		DecidedAt     time.Time `json:"decided_at"`
	}
	event := func(id string) map[string]any {
		return map[string]any{"events": []map[string]any{{"user": "lena", "item": "a1", "time": time.Now().UTC(), "decision_id": id}}}
	}

	// Its own secret.
	p := startServeEnv(t, []string{"RECGUARD_DECISION_SECRET_FILE=" + secretFile}, serveArgs...)
	p.waitReady()
	if !hasLine(p.stderr.String(), "decision_ids_signed_by", "decision secret file") || strings.Contains(p.stderr.String(), string(secret)) {
		t.Errorf("start logged:\n%s", p.stderr.String())
	}
	c := newClient(t, p.base)
	c.expect("PUT", "/v1/users/lena/consent/personalization", app, map[string]any{"enabled": false}, http.StatusOK, nil)
	var d decision
	c.expect("GET", "/v1/users/lena/decision", app, nil, http.StatusOK, &d)
	sd, err := consent.VerifyDecisionID(consent.DecisionKey(secret), "lena", d.DecisionID)
	if err != nil || d.RecordVersion != 1 || sd.RecordVersion != 1 || sd.Reason != consent.ReasonOptedOut || !sd.At.Equal(d.DecidedAt) {
		t.Fatalf("decision %+v; its ID says %+v (%v)", d, sd, err)
	}
	if _, err := consent.VerifyDecisionID(consent.DecisionKey(chainKey), "lena", d.DecisionID); err == nil {
		t.Fatal("an ID signed under the decision secret verifies under the chain key's")
	}
	var got struct{ Accepted, Decided int }
	c.expect("POST", "/v1/events", app, event(d.DecisionID), http.StatusAccepted, &got)
	if got.Accepted != 1 || got.Decided != 1 {
		t.Fatalf("events answer %+v, want 1 accepted and decided", got)
	}
	old := d.DecisionID
	p.stop()

	// The default: the key derived from the chain key. The ID signed under
	// the other secret no longer verifies.
	p = startServe(t, serveArgs...)
	p.waitReady()
	if !hasLine(p.stderr.String(), "decision_ids_signed_by", "chain key") {
		t.Errorf("start logged:\n%s", p.stderr.String())
	}
	c = newClient(t, p.base)
	c.expect("GET", "/v1/users/lena/decision", app, nil, http.StatusOK, &d)
	if _, err := consent.VerifyDecisionID(consent.DecisionKey(chainKey), "lena", d.DecisionID); err != nil {
		t.Fatalf("the default decision ID does not verify under the chain key's derived key: %v", err)
	}
	c.expect("POST", "/v1/events", app, event(d.DecisionID), http.StatusAccepted, nil)
	if pr := problemOf(t, "an ID of the other secret", c.expect("POST", "/v1/events", app, event(old), http.StatusBadRequest, nil)); !strings.HasSuffix(pr.Type, "/malformed-request") || !strings.Contains(pr.Detail, "decision_id") {
		t.Errorf("problem %+v, want malformed-request about the decision_id", pr)
	}
	p.stop()

	// A secret file others can read, or a short one: serve refuses to start.
	if err := os.Chmod(secretFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runCLI(t, append([]string{"serve", "--decision-secret-file", secretFile}, serveArgs...)...); err == nil ||
		!strings.Contains(errOut, "decision secret file") || !strings.Contains(errOut, "chmod 600") || strings.Contains(errOut, string(secret)) {
		t.Fatalf("serve with a world-readable decision secret: %v\n%s", err, errOut)
	}
	short := filepath.Join(dir, "short.secret")
	if err := os.WriteFile(short, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runCLI(t, append([]string{"serve", "--decision-secret-file", short}, serveArgs...)...); err == nil || !strings.Contains(errOut, "at least 16") {
		t.Fatalf("serve with a 5-byte decision secret: %v\n%s", err, errOut)
	}
}
