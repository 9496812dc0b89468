package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestKeysThroughServer: while serve runs on the embedded store (which it
// locks), keys create, list and revoke go through its admin routes with
// --server and the admin key (here from RECGUARD_SERVER and
// RECGUARD_ADMIN_KEY); opening the locked directory says to. serve takes
// its limits and log format from the environment.
func TestKeysThroughServer(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	p := startServeEnv(t, []string{"RECGUARD_MAX_BODY=4096", "RECGUARD_LOG_FORMAT=json", "RECGUARD_RATE_LIMIT=-1", "RECGUARD_IDLE_TIMEOUT=30s"},
		"--addr", "127.0.0.1:0", "--data", data, "--log-requests")
	_, admin, ok := p.adminKey()
	if !ok {
		t.Fatalf("no admin key printed:\n%s", p.stdout.String())
	}
	p.waitReady()
	c := newClient(t, p.base)

	// The directory is locked: the message points at --server.
	_, errOut, code := runIn(t, t.TempDir(), nil, "keys", "create", "--role", "app", "--data", data)
	if code != 1 || !strings.Contains(errOut, "locked") || !strings.Contains(errOut, "--server") {
		t.Fatalf("keys create on the locked store: exit %d, stderr %q: want it to say locked and --server", code, errOut)
	}

	env := []string{"RECGUARD_SERVER=" + p.base, "RECGUARD_ADMIN_KEY=" + admin}
	out, errOut, code := runIn(t, t.TempDir(), env, "keys", "create", "--role", "app", "--name", "backend")
	key := strings.TrimSpace(out)
	m := regexp.MustCompile(`^rg_([0-9a-f]{12})_([A-Za-z0-9_-]+)$`).FindStringSubmatch(key)
	if code != 0 || m == nil {
		t.Fatalf("keys create --server: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	id, secret := m[1], m[2]
	c.expect("GET", "/v1/users/alice/decision", key, nil, http.StatusOK, nil)

	out, errOut, code = runIn(t, t.TempDir(), env, "keys", "list")
	if code != 0 || !hasLine(out, id, "app", "active", "backend") || !hasLine(out, "admin", "first admin key") || strings.Contains(out, secret) {
		t.Fatalf("keys list --server: exit %d\n%s%s", code, out, errOut)
	}
	// Flags work as well as the variables.
	out, _, code = runIn(t, t.TempDir(), nil, "keys", "list", "--server", p.base, "--admin-key", admin)
	if code != 0 || !hasLine(out, id, "app") {
		t.Fatalf("keys list --server --admin-key: exit %d\n%s", code, out)
	}

	out, errOut, code = runIn(t, t.TempDir(), env, "keys", "revoke", id)
	if code != 0 || !strings.Contains(out, "revoked "+id) {
		t.Fatalf("keys revoke --server: exit %d\n%s%s", code, out, errOut)
	}
	c.expect("GET", "/v1/users/alice/decision", key, nil, http.StatusUnauthorized, nil)
	if out, _, _ := runIn(t, t.TempDir(), env, "keys", "list"); !hasLine(out, id, "revoked") {
		t.Errorf("keys list after revoke:\n%s", out)
	}

	// The server's refusals come back as errors: an unknown key, a wrong
	// admin key, a key of another role.
	if _, errOut, code := runIn(t, t.TempDir(), env, "keys", "revoke", "000000000000"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("revoke of an unknown key: exit %d, %q", code, errOut)
	}
	bad := []string{"RECGUARD_SERVER=" + p.base, "RECGUARD_ADMIN_KEY=rg_000000000000_nope"}
	if _, errOut, code := runIn(t, t.TempDir(), bad, "keys", "list"); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("keys list with a wrong admin key: exit %d, %q", code, errOut)
	}
	auditorOut, _, _ := runIn(t, t.TempDir(), env, "keys", "create", "--role", "auditor")
	asAuditor := []string{"RECGUARD_SERVER=" + p.base, "RECGUARD_ADMIN_KEY=" + strings.TrimSpace(auditorOut)}
	if _, errOut, code := runIn(t, t.TempDir(), asAuditor, "keys", "create", "--role", "admin"); code != 1 || !strings.Contains(errOut, "403") {
		t.Errorf("keys create with an auditor key: exit %d, %q", code, errOut)
	}

	// RECGUARD_MAX_BODY reached the server: a body over 4096 bytes is 413,
	// while a batch of events over it is not (their own limit).
	big := map[string]any{"enabled": false, "surface": strings.Repeat("a", 5000)}
	app, _, _ := runIn(t, t.TempDir(), env, "keys", "create", "--role", "app")
	app = strings.TrimSpace(app)
	c.expect("PUT", "/v1/users/bob/consent/personalization", app, big, http.StatusRequestEntityTooLarge, nil)
	var evs []map[string]any
	for i := 0; i < 100; i++ {
		evs = append(evs, map[string]any{"user": "bob", "item": "i", "time": "2026-01-02T03:04:05Z", "mode": "personalized"})
	}
	if b, _ := json.Marshal(map[string]any{"events": evs}); len(b) <= 4096 {
		t.Fatalf("the batch (%d bytes) does not test the limit", len(b))
	}
	c.expect("POST", "/v1/events", app, map[string]any{"events": evs}, http.StatusAccepted, nil)

	p.stop()
	// RECGUARD_LOG_FORMAT=json: the server logged the key actions as JSON
	// lines, never a secret.
	logged := p.stderr.String()
	if !hasLine(logged, `"msg":"admin action"`, `"route":"/v1/admin/keys"`, `"new_key_id":"`+id+`"`) ||
		!hasLine(logged, `"msg":"admin action"`, `"route":"/v1/admin/keys/:id"`, `"revoked_key_id":"`+id+`"`) {
		t.Errorf("serve did not log the key actions as JSON:\n%s", logged)
	}
	if strings.Contains(logged, secret) {
		t.Error("the server's log holds the new key's secret")
	}
	// Stopped: the store is the CLI's again.
	if out, errOut, code := runIn(t, t.TempDir(), nil, "keys", "list", "--data", data); code != 0 || !hasLine(out, id, "revoked") {
		t.Errorf("keys list --data after stop: exit %d\n%s%s", code, out, errOut)
	}
}
