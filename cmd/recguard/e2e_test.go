package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recguard/recguard/internal/redistest"
)

// TestServeRedis runs the real binary on a private Redis: the first-start
// admin key, keys made and revoked with the CLI, the user-rights routes, the
// kill switch, auth, and a graceful shutdown that finishes a request in
// flight, then a restart on the same Redis.
func TestServeRedis(t *testing.T) {
	rsrv := redistest.StartServer(t) // skips when redis-server is missing
	recguardBinary(t)
	redisURL := "redis://" + rsrv.Addr + "/0"
	sf := []string{"--redis", redisURL, "--chain-key", testChainKeyHex}

	// A new Redis keyspace is created explicitly: --init.
	p := startServe(t, append([]string{"--addr", "127.0.0.1:0", "--init"}, sf...)...)
	adminID, admin, ok := p.adminKey()
	if !ok {
		t.Fatalf("first start printed no admin key; stdout:\n%s", p.stdout.String())
	}
	if !strings.HasPrefix(admin, "rg_"+adminID+"_") {
		t.Fatalf("admin key %q does not carry its ID %q", admin, adminID)
	}
	p.waitReady()
	c := newClient(t, p.base)

	// keys create works while the server runs (Redis is shared).
	app, appID := createKey(t, "app", sf...)
	app2, _ := createKey(t, "app", sf...)

	t.Run("opt-out is immediate", func(t *testing.T) {
		c := newClient(t, p.base)
		var cs consentJSON
		c.expect("PUT", "/v1/users/alice/consent/personalization", app,
			map[string]any{"enabled": false, "surface": "app_settings"}, http.StatusOK, &cs)
		if !cs.State.PersonalizationOff || cs.Receipt == nil || cs.Receipt.Op != "set_personalization" {
			t.Fatalf("opt-out answer: %+v (receipt %+v)", cs, cs.Receipt)
		}
		// No sleep: the very next decision must honour it.
		var d decisionJSON
		c.expect("GET", "/v1/users/alice/decision", app, nil, http.StatusOK, &d)
		if d.Personalized || d.Reason != "personalization_off" || len(d.Tags) != 0 {
			t.Fatalf("decision after opt-out: %+v, want personalized=false reason=personalization_off", d)
		}
		var cp canPushJSON
		c.expect("GET", "/v1/users/alice/can-push?channel=push&targeted=true", app, nil, http.StatusOK, &cp)
		if cp.Allowed {
			t.Fatalf("targeted push after opt-out: %+v, want allowed=false", cp)
		}
		// An untargeted push needs no personalization.
		c.expect("GET", "/v1/users/alice/can-push?channel=push&targeted=false", app, nil, http.StatusOK, &cp)
		if !cp.Allowed || cp.Reason != "allowed" {
			t.Fatalf("untargeted push after opt-out: %+v, want allowed", cp)
		}
	})

	t.Run("deleted tag stays suppressed", func(t *testing.T) {
		c := newClient(t, p.base)
		c.expect("POST", "/v1/users/bob/tags", app, map[string]any{"tag": "interest:ski", "source": "declared"}, http.StatusCreated, nil)
		var d decisionJSON
		c.expect("GET", "/v1/users/bob/decision", app, nil, http.StatusOK, &d)
		if !d.Personalized || !contains(d.Tags, "interest:ski") {
			t.Fatalf("decision after declaring interest:ski: %+v", d)
		}
		c.expect("DELETE", "/v1/users/bob/tags/interest:ski", app, nil, http.StatusOK, nil)
		c.expect("GET", "/v1/users/bob/decision", app, nil, http.StatusOK, &d)
		if contains(d.Tags, "interest:ski") {
			t.Fatalf("decision after deleting interest:ski still has it: %+v", d)
		}
		r := c.do("POST", "/v1/users/bob/tags", app, map[string]any{"tag": "interest:ski", "source": "inferred"})
		if r.status != http.StatusConflict {
			t.Fatalf("re-inferring a deleted tag: status %d, want 409; body %s", r.status, r.body)
		}
		if pr := problemOf(t, "re-inferring a deleted tag", r); !strings.HasSuffix(pr.Type, "/tag-suppressed") {
			t.Fatalf("problem type %q, want one ending in tag-suppressed", pr.Type)
		}
	})

	t.Run("erasure: storage only", func(t *testing.T) {
		c := newClient(t, p.base).with(map[string]string{"X-Identity-Verification": "in_person"})
		c.expect("POST", "/v1/users/carol/tags", app, map[string]any{"tag": "interest:chess", "source": "declared"}, http.StatusCreated, nil)
		c.expect("PUT", "/v1/users/carol/consent/channels/sms", app, map[string]any{"refused": true}, http.StatusOK, nil)
		c.expect("PUT", "/v1/users/carol/consent/personalization", app, map[string]any{"enabled": false}, http.StatusOK, nil)
		// What the issue tried: a sensitive consent and tag, and an outcome
		// event, all gone from Redis after the erasure.
		c.expect("PUT", "/v1/users/carol/consent/sensitive/medical_health", app, map[string]any{"granted": true, "purpose": "personalization"}, http.StatusOK, nil)
		c.expect("POST", "/v1/users/carol/tags", app, map[string]any{"tag": "medical_health:diabetes", "source": "declared"}, http.StatusCreated, nil)
		c.expect("POST", "/v1/events", app, map[string]any{"events": []map[string]any{{"user": "carol", "item": "insulin-pen-kit",
			"time": time.Now().UTC(), "mode": "personalized", "price": 120}}}, http.StatusAccepted, nil)
		rcl := rsrv.Client(nil)
		keyspace := func() string {
			var b strings.Builder
			for _, k := range rcl.Keys(t.Context(), "*").Val() {
				switch rcl.Type(t.Context(), k).Val() {
				case "hash":
					fmt.Fprintln(&b, rcl.HGetAll(t.Context(), k).Val())
				case "list":
					fmt.Fprintln(&b, rcl.LRange(t.Context(), k, 0, -1).Val())
				case "stream":
					fmt.Fprintln(&b, rcl.XRange(t.Context(), k, "-", "+").Val())
				case "string":
					fmt.Fprintln(&b, rcl.Get(t.Context(), k).Val())
				case "zset":
					fmt.Fprintln(&b, rcl.ZRange(t.Context(), k, 0, -1).Val())
				}
			}
			return b.String()
		}
		if !strings.Contains(keyspace(), "diabetes") {
			t.Fatalf("setup: the sensitive tag is not in Redis before the erasure")
		}
		var er consentJSON
		c.expect("DELETE", "/v1/users/carol", app, nil, http.StatusOK, &er)
		if !er.State.Erased || er.Receipt == nil || er.Receipt.Op != "erase" {
			t.Fatalf("erase answer: %+v (receipt %+v)", er, er.Receipt)
		}
		ks := keyspace()
		for _, m := range []string{"diabetes", "interest:chess", "insulin-pen-kit"} {
			if strings.Contains(ks, m) {
				t.Errorf("after DELETE /v1/users/carol, Redis still holds %q in clear", m)
			}
		}

		var ex exportJSON
		r := c.expect("GET", "/v1/users/carol/export", app, nil, http.StatusOK, &ex)
		if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
			t.Errorf("export Content-Disposition %q, want an attachment", cd)
		}
		if ex.Schema == "" || ex.Record.UserID != "carol" {
			t.Errorf("export header: schema %q user %q", ex.Schema, ex.Record.UserID)
		}
		if n := len(ex.Record.Tags.Entries); n != 0 {
			t.Errorf("export after erasure has %d tags, want none: %s", n, r.body)
		}
		if !ex.Record.State.Erased || ex.Record.State.PersonalizationOff || len(ex.Record.State.RefusedChannels) != 0 {
			t.Errorf("export state after erasure: %+v, want only erased", ex.Record.State)
		}
		// The receipts are kept in storage only (Art. 24): the export and
		// the receipts route give the erasure certificate instead.
		if len(ex.Receipts) != 0 || ex.Erasure == nil || ex.Record.Version != 6 {
			t.Fatalf("export after erasure: %s", r.body)
		}
		var rc receiptsJSON
		c.expect("GET", "/v1/users/carol/receipts", app, nil, http.StatusOK, &rc)
		if !rc.ChainValid || len(rc.Receipts) != 0 || !rc.Erased || rc.Erasure == nil {
			t.Fatalf("receipts after erasure: %+v", rc)
		}
		// An auditor reads and verifies them, redacted, under the chain key.
		auditor, _ := createKey(t, "auditor", sf...)
		var ar auditReceiptsJSON
		c.expect("GET", "/v1/audit/users/carol/receipts", auditor, nil, http.StatusOK, &ar)
		if !ar.ChainValid || !ar.Erased || len(ar.Receipts) != 6 || ar.Receipts[5].Op != "erase" || ar.Receipts[5].Seq != 6 {
			t.Fatalf("the auditor's view: %+v", ar)
		}
		for _, rc := range ar.Receipts {
			if !rc.Redacted || rc.Subject != "" {
				t.Errorf("the auditor sees %+v", rc)
			}
		}

		var d decisionJSON
		c.expect("GET", "/v1/users/carol/decision", app, nil, http.StatusOK, &d)
		if d.Personalized || d.Reason != "erased" {
			t.Fatalf("decision after erasure: %+v", d)
		}
	})

	t.Run("suspension", func(t *testing.T) {
		c := newClient(t, p.base)
		c.expect("POST", "/v1/users/dave/tags", app, map[string]any{"tag": "interest:ski", "source": "declared"}, http.StatusCreated, nil)
		// The audience index follows the changelog: wait (bounded) until
		// it counts somebody, so that the 0 below means something.
		deadline := time.Now().Add(10 * time.Second)
		for {
			var a audienceJSON
			c.expect("GET", "/v1/admin/audience?segment=*&channel=push", admin, nil, http.StatusOK, &a)
			if a.Count > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("audience * on push still 0 after 10 s")
			}
			time.Sleep(50 * time.Millisecond)
		}

		c.expect("PUT", "/v1/admin/suspension", admin, map[string]any{"suspended": true, "reason": "order 17"}, http.StatusOK, nil)
		for _, u := range []string{"dave", "bob", "never-seen-user"} {
			var d decisionJSON
			c.expect("GET", "/v1/users/"+u+"/decision", app, nil, http.StatusOK, &d)
			if d.Personalized || d.Reason != "suspended" {
				t.Fatalf("decision for %s while suspended: %+v, want reason suspended", u, d)
			}
			var cp canPushJSON
			c.expect("GET", "/v1/users/"+u+"/can-push?channel=push", app, nil, http.StatusOK, &cp)
			if cp.Allowed || cp.Reason != "suspended" {
				t.Fatalf("can-push for %s while suspended: %+v", u, cp)
			}
		}
		var a audienceJSON
		c.expect("GET", "/v1/admin/audience?segment=*&channel=push", admin, nil, http.StatusOK, &a)
		if a.Count != 0 || len(a.Users) != 0 {
			t.Fatalf("audience while suspended: %+v, want nobody", a)
		}
		var set struct {
			Suspended     bool   `json:"suspended"`
			SuspendReason string `json:"suspend_reason"`
		}
		raw := c.expect("GET", "/v1/admin/settings", admin, nil, http.StatusOK, &set)
		if !strings.Contains(string(raw.body), "order 17") {
			t.Errorf("settings while suspended do not name the order: %s", raw.body)
		}

		c.expect("PUT", "/v1/admin/suspension", admin, map[string]any{"suspended": false}, http.StatusOK, nil)
		var d decisionJSON
		c.expect("GET", "/v1/users/dave/decision", app, nil, http.StatusOK, &d)
		if !d.Personalized || d.Reason != "personalized" {
			t.Fatalf("decision for dave after lifting the suspension: %+v", d)
		}
	})

	t.Run("auth", func(t *testing.T) {
		c := newClient(t, p.base)
		r := c.do("GET", "/v1/admin/settings", app, nil)
		if r.status != http.StatusForbidden {
			t.Fatalf("app key on an admin route: %d, want 403; %s", r.status, r.body)
		}
		if pr := problemOf(t, "app key on admin route", r); !strings.HasSuffix(pr.Type, "/forbidden") {
			t.Errorf("problem type %q", pr.Type)
		}
		r = c.do("GET", "/v1/users/alice/decision", "", nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("no key: %d, want 401; %s", r.status, r.body)
		}
		problemOf(t, "no key", r)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
		r = c.do("GET", "/v1/admin/settings", "", nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("no key on admin route: %d, want 401", r.status)
		}
		r = c.do("GET", "/v1/users/alice/decision", "rg_000000000000_nosuchsecret", nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("unknown key: %d, want 401", r.status)
		}
		r = c.do("GET", "/v1/users/alice/decision", admin[:len(admin)-1]+"x", nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("admin key with a wrong secret: %d, want 401", r.status)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		c := newClient(t, p.base)
		// Used now, so the server has the key cached as valid.
		c.expect("GET", "/v1/users/alice/decision", app, nil, http.StatusOK, nil)
		out := mustCLI(t, append([]string{"keys", "revoke", appID}, sf...)...)
		if !strings.Contains(out, "revoked "+appID) {
			t.Fatalf("keys revoke printed %q", out)
		}
		list := mustCLI(t, append([]string{"keys", "list"}, sf...)...)
		if !hasLine(list, appID, "revoked") || !hasLine(list, adminID, "active") {
			t.Fatalf("keys list after revoke:\n%s", list)
		}
		// The key cache trusts a key for 5 s: within 10 s it must be 401.
		start := time.Now()
		for {
			r := c.do("GET", "/v1/users/alice/decision", app, nil)
			if r.status == http.StatusUnauthorized {
				t.Logf("revoked key refused after %v", time.Since(start).Round(time.Millisecond))
				break
			}
			if r.status != http.StatusOK {
				t.Fatalf("revoked key (not yet expired from cache): %d; %s", r.status, r.body)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("revoked key still accepted after 10 s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Other keys keep working.
		c.expect("GET", "/v1/users/alice/decision", app2, nil, http.StatusOK, nil)
		c.expect("GET", "/v1/admin/settings", admin, nil, http.StatusOK, nil)
	})
	if t.Failed() {
		return
	}

	// Graceful shutdown with a request in flight: send the headers and half
	// the body, SIGTERM, wait until the listener is closed, send the rest:
	// the request must still be answered, and the process exit 0.
	body := `{"enabled": false, "surface": "app_settings"}`
	conn, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "PUT /v1/users/erin/consent/personalization HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		p.addr, app2, len(body), body[:10])
	time.Sleep(100 * time.Millisecond) // let the server start reading the request
	p.signal(syscall.SIGTERM)
	waitRefused(t, p.addr, 10*time.Second)
	if _, err := conn.Write([]byte(body[10:])); err != nil {
		t.Fatalf("finishing the in-flight request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request got no answer during shutdown: %v\nstderr:\n%s", err, p.stderr.String())
	}
	var cs consentJSON
	err = json.NewDecoder(resp.Body).Decode(&cs)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || !cs.State.PersonalizationOff {
		t.Fatalf("in-flight request during shutdown: %s, %+v, %v", resp.Status, cs, err)
	}
	p.waitExit(20 * time.Second)
	if !healthzDown(p.base) {
		t.Fatalf("/healthz still answers after the process exited")
	}
	if !strings.Contains(p.stderr.String(), "shutting down") {
		t.Errorf("no shutdown log line; stderr:\n%s", p.stderr.String())
	}

	// Restart on the same Redis (no --init needed: it holds a store): no
	// new admin key, the revoked key stays revoked, the change made in
	// flight is there.
	p2 := startServe(t, append([]string{"--addr", "127.0.0.1:0"}, sf...)...)
	if _, _, ok := p2.adminKey(); ok {
		t.Fatalf("restart on a Redis with keys printed a new admin key:\n%s", p2.stdout.String())
	}
	p2.waitReady()
	c = newClient(t, p2.base)
	if r := c.do("GET", "/v1/users/erin/decision", app, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked key after restart: %d, want 401", r.status)
	}
	var d decisionJSON
	c.expect("GET", "/v1/users/erin/decision", app2, nil, http.StatusOK, &d)
	if d.Reason != "personalization_off" {
		t.Fatalf("erin after restart: %+v, want the in-flight opt-out kept", d)
	}
	c.expect("GET", "/v1/users/alice/decision", app2, nil, http.StatusOK, &d)
	if d.Reason != "personalization_off" {
		t.Fatalf("alice after restart: %+v", d)
	}
	c.expect("GET", "/v1/admin/settings", admin, nil, http.StatusOK, nil)
	p2.stop()
}

// TestServeEmbedded runs the real binary on the embedded store: the admin
// key is printed on the first start only, and data survives restarts.
func TestServeEmbedded(t *testing.T) {
	recguardBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	sf := []string{"--data", data}
	serveArgs := append([]string{"--addr", "127.0.0.1:0"}, sf...)

	// First start: an admin key, and the receipt chain key made beside
	// the store (32 bytes, the owner's only), logged without its bytes.
	p := startServe(t, serveArgs...)
	adminID, admin, ok := p.adminKey()
	if !ok {
		t.Fatalf("first start printed no admin key; stdout:\n%s", p.stdout.String())
	}
	p.waitReady()
	keyFile := filepath.Join(data, "chain.key")
	chainKey, err := os.ReadFile(keyFile)
	if fi, serr := os.Stat(keyFile); err != nil || serr != nil || len(chainKey) != 32 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("chain key file: %d bytes, %v %v", len(chainKey), err, serr)
	}
	if logged := p.stderr.String(); !hasLine(logged, "made a new receipt chain key", keyFile) ||
		strings.Contains(logged, hex.EncodeToString(chainKey)) || strings.Contains(logged, string(chainKey)) {
		t.Errorf("first start logged:\n%s", logged)
	}
	c := newClient(t, p.base)
	c.expect("GET", "/v1/admin/settings", admin, nil, http.StatusOK, nil)

	// The directory is locked while the server runs: the CLI must refuse
	// rather than write behind the server's back.
	if out, errOut, err := runCLI(t, append([]string{"keys", "list"}, sf...)...); err == nil {
		t.Fatalf("keys list on a directory in use succeeded:\n%s%s", out, errOut)
	} else if !strings.Contains(errOut, "locked") {
		t.Errorf("keys list on a directory in use: %v, stderr %q (want it to say locked)", err, errOut)
	}
	p.stop()

	// Stopped: keys can be made.
	app, appID := createKey(t, "app", sf...)
	list := mustCLI(t, append([]string{"keys", "list"}, sf...)...)
	if !hasLine(list, adminID, "admin") || !hasLine(list, appID, "app") {
		t.Fatalf("keys list:\n%s", list)
	}

	// Second start: no admin key; the keys made before work; opt out.
	p = startServe(t, serveArgs...)
	if _, _, ok := p.adminKey(); ok {
		t.Fatalf("second start printed a new admin key:\n%s", p.stdout.String())
	}
	p.waitReady()
	c = newClient(t, p.base)
	c.expect("PUT", "/v1/users/alice/consent/personalization", app, map[string]any{"enabled": false, "surface": "app_settings"}, http.StatusOK, nil)
	c.expect("POST", "/v1/users/bob/tags", app, map[string]any{"tag": "interest:ski", "source": "declared"}, http.StatusCreated, nil)
	var d decisionJSON
	c.expect("GET", "/v1/users/alice/decision", app, nil, http.StatusOK, &d)
	if d.Reason != "personalization_off" {
		t.Fatalf("alice after opt-out: %+v", d)
	}
	p.stop()

	// Third start, logging requests as JSON: still no admin key, and the
	// opt-out is still there.
	p = startServe(t, append(serveArgs, "--log-requests", "--log-format", "json")...)
	if _, _, ok := p.adminKey(); ok {
		t.Fatalf("third start printed a new admin key:\n%s", p.stdout.String())
	}
	p.waitReady()
	c = newClient(t, p.base)
	c.expect("GET", "/v1/users/alice/decision", app, nil, http.StatusOK, &d)
	if d.Personalized || d.Reason != "personalization_off" {
		t.Fatalf("alice after restart: %+v, want the opt-out kept", d)
	}
	var cs consentJSON
	c.expect("GET", "/v1/users/alice/consent", app, nil, http.StatusOK, &cs)
	if !cs.State.PersonalizationOff || cs.Version != 1 {
		t.Fatalf("alice's consent after restart: %+v", cs)
	}
	var rc receiptsJSON
	c.expect("GET", "/v1/users/alice/receipts", app, nil, http.StatusOK, &rc)
	if !rc.ChainValid || len(rc.Receipts) != 1 || rc.Receipts[0].Op != "set_personalization" {
		t.Fatalf("alice's receipts after restart: %+v", rc)
	}
	c.expect("GET", "/v1/users/bob/decision", app, nil, http.StatusOK, &d)
	if !d.Personalized || !contains(d.Tags, "interest:ski") {
		t.Fatalf("bob after restart: %+v", d)
	}
	c.expect("GET", "/v1/admin/settings", admin, nil, http.StatusOK, nil)
	c.expect("PUT", "/v1/admin/suspension", admin, map[string]any{"suspended": false}, http.StatusOK, nil)
	p.stop()
	if again, err := os.ReadFile(keyFile); err != nil || !bytes.Equal(again, chainKey) {
		t.Errorf("the chain key file changed across restarts (%v)", err)
	}
	// Every request was logged as a JSON line with its route template
	// (never the raw path, which holds the user ID), and the admin action
	// with the admin key's ID; no secret is logged.
	logged := p.stderr.String()
	if !hasLine(logged, `"msg":"request"`, `"route":"/v1/users/:id/decision"`, `"status":200`, `"request_id":"`, `"key_id":"`+appID+`"`) ||
		!hasLine(logged, `"msg":"admin action"`, `"route":"/v1/admin/suspension"`, `"outcome":"applied"`, `"key_id":"`+adminID+`"`) {
		t.Errorf("serve --log-requests --log-format json logged:\n%s", logged)
	}
	for _, leak := range []string{"/v1/users/alice", "/v1/users/bob", strings.TrimPrefix(app, "rg_"+appID+"_"), strings.TrimPrefix(admin, "rg_"+adminID+"_")} {
		if strings.Contains(logged, leak) {
			t.Errorf("the log holds %q", leak)
		}
	}
	if !healthzDown(p.base) {
		t.Fatalf("/healthz still answers after the process exited")
	}

	// The key is the one the server checks chains under: started with
	// another key, the receipts sealed under the file's no longer verify.
	other := hex.EncodeToString(bytes.Repeat([]byte{7}, 32))
	p = startServeEnv(t, []string{"RECGUARD_CHAIN_KEY=" + other}, serveArgs...)
	p.waitReady()
	c = newClient(t, p.base)
	c.expect("GET", "/v1/users/alice/receipts", app, nil, http.StatusOK, &rc)
	if rc.ChainValid || len(rc.Receipts) != 1 {
		t.Errorf("receipts under another chain key: %+v", rc)
	}
	p.stop()
	if strings.Contains(p.stderr.String(), other) {
		t.Error("the chain key given in RECGUARD_CHAIN_KEY is in the log")
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// hasLine reports whether some line of out contains every one of words.
func hasLine(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// TestCLIArguments checks the binary's argument handling: flags after a
// positional argument are read (the usage puts store flags after the key
// ID), and a stray argument is refused instead of silently dropping the
// flags after it (which would serve the wrong store).
func TestCLIArguments(t *testing.T) {
	recguardBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	sf := []string{"--data", data}

	fails := func(want string, args ...string) {
		t.Helper()
		out, errOut, err := runCLI(t, args...)
		if err == nil {
			t.Errorf("recguard %s succeeded, want an error; stdout:\n%s", strings.Join(args, " "), out)
			return
		}
		if !strings.Contains(errOut, want) {
			t.Errorf("recguard %s: stderr %q, want it to say %q", strings.Join(args, " "), errOut, want)
		}
	}
	fails("unexpected argument", append([]string{"serve", "127.0.0.1:0"}, sf...)...)
	fails("no command")
	fails("unknown command", "frobnicate")
	fails("role", append([]string{"keys", "create", "--role", "root"}, sf...)...)
	fails("unexpected argument", append([]string{"keys", "list", "stray"}, sf...)...)
	fails("give the key ID", append([]string{"keys", "revoke"}, sf...)...)
	fails("no store at "+data, append([]string{"keys", "revoke", "000000000000"}, sf...)...) // and makes none
	fails("--store-timeout must be positive", append([]string{"serve", "--addr", "127.0.0.1:0", "--store-timeout", "0s"}, sf...)...)
	// The variable reaches the flag too.
	if _, errOut, err := runCLIEnv(t, []string{"RECGUARD_STORE_TIMEOUT=-1s"}, append([]string{"serve", "--addr", "127.0.0.1:0"}, sf...)...); err == nil ||
		!strings.Contains(errOut, "--store-timeout must be positive") {
		t.Errorf("RECGUARD_STORE_TIMEOUT=-1s: %v, stderr %q", err, errOut)
	}

	fails("--log-format", append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "xml"}, sf...)...)
	fails("--propagation-timeout must not exceed --store-timeout", append([]string{"serve", "--addr", "127.0.0.1:0", "--propagation-timeout", "3s"}, sf...)...)
	fails("--store-timeout: ", append([]string{"serve", "--addr", "127.0.0.1:0", "--store-timeout", "100ms", "--propagation-timeout", "100ms"}, sf...)...)
	fails("--trusted-proxies: ", append([]string{"serve", "--addr", "127.0.0.1:0", "--trusted-proxies", "proxy.example"}, sf...)...)

	// Key creation and revocation are logged (JSON here), without the secret.
	out, errOut, err := runCLI(t, append([]string{"keys", "create", "--role", "auditor", "--log-format", "json"}, sf...)...)
	key := strings.TrimSpace(out)
	id, _, _ := strings.Cut(strings.TrimPrefix(key, "rg_"), "_")
	if err != nil || !hasLine(errOut, `"msg":"admin action"`, `"action":"key create"`, `"key_id":"`+id+`"`, `"outcome":"applied"`, `"role":"auditor"`) ||
		strings.Contains(errOut, strings.TrimPrefix(key, "rg_"+id+"_")) {
		t.Fatalf("keys create --log-format json: %v\nstdout %q\nstderr:\n%s", err, out, errOut)
	}
	fails("not found", append([]string{"keys", "revoke", "000000000000"}, sf...)...)
	out, errOut, err = runCLI(t, append([]string{"keys", "revoke", id}, sf...)...)
	if err != nil || !strings.Contains(out, "revoked "+id) || !hasLine(errOut, "admin action", "action=\"key revoke\"", "key_id="+id, "outcome=applied") {
		t.Fatalf("keys revoke ID --data: %v\nstdout %q\nstderr:\n%s", err, out, errOut)
	}
	// Revoking twice is fine; flags first works too.
	mustCLI(t, "keys", "revoke", "--data", data, id)
	if list := mustCLI(t, append([]string{"keys", "list"}, sf...)...); !hasLine(list, id, "auditor", "revoked") {
		t.Fatalf("keys list:\n%s", list)
	}
	if out := mustCLI(t, "help"); !strings.Contains(out, "usage:") {
		t.Errorf("help: %q", out)
	}
}
