package server_test

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
)

// storedKeys is the store's key list, for "bad input changes nothing".
func storedKeys(e *env) []store.APIKey {
	e.t.Helper()
	all, err := e.st.(store.KeyStore).ListKeys(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return all
}

// TestAdminKeys: an admin key makes a key over HTTP (shown once), the new
// key authenticates with its role, the list shows it without any secret or
// hash, and once revoked it is refused at once (401) by this instance.
func TestAdminKeys(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := newEnv(t, func(c *envConfig) { c.srv.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })

	r := e.do(call{method: "POST", path: "/v1/admin/keys", key: e.admin(), body: map[string]any{"role": "app", "name": "backend 1"}})
	want(t, r, 201)
	made := decode[server.KeyCreated](t, r)
	if made.Role != "app" || made.Name != "backend 1" || made.Revoked || !strings.HasPrefix(made.Key, "rg_"+made.ID+"_") || made.CreatedAt.IsZero() {
		t.Fatalf("created %+v", made)
	}
	secret := strings.TrimPrefix(made.Key, "rg_"+made.ID+"_")

	// The new key works as an app key, and only as one.
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: made.Key}), 200)
	wantProblem(t, e.do(call{method: "GET", path: "/v1/admin/settings", key: made.Key}), 403, "forbidden")

	// The list names it, never a secret or hash.
	r = e.do(call{method: "GET", path: "/v1/admin/keys", key: e.admin()})
	want(t, r, 200)
	list := decode[server.KeysResponse](t, r)
	if len(list.Keys) != 4 {
		t.Fatalf("%d keys listed, want 4 (3 of the env and the new one): %s", len(list.Keys), r.Body)
	}
	var found bool
	for _, k := range list.Keys {
		found = found || k.ID == made.ID && k.Role == "app" && k.Name == "backend 1" && !k.Revoked
	}
	if !found {
		t.Errorf("the new key is not listed: %s", r.Body)
	}
	hashes := map[string]bool{}
	for _, k := range storedKeys(e) {
		hashes[k.Hash] = true
	}
	for h := range hashes {
		if bytes.Contains(r.Body, []byte(h)) {
			t.Errorf("the list holds a key hash: %s", r.Body)
		}
	}
	if bytes.Contains(r.Body, []byte(secret)) || bytes.Contains(r.Body, []byte(`"key"`)) || bytes.Contains(r.Body, []byte(`"hash"`)) {
		t.Errorf("the list holds a secret: %s", r.Body)
	}

	// Revoked: refused at once, and listed as revoked.
	r = e.do(call{method: "DELETE", path: "/v1/admin/keys/" + made.ID, key: e.admin()})
	want(t, r, 200)
	if rk := decode[server.KeyInfo](t, r); !rk.Revoked || rk.RevokedAt == nil || rk.ID != made.ID {
		t.Errorf("revoked answer %s", r.Body)
	}
	wantProblem(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: made.Key}), 401, "unauthenticated")
	// Again: nothing changes, still 200.
	want(t, e.do(call{method: "DELETE", path: "/v1/admin/keys/" + made.ID, key: e.admin()}), 200)
	list = decode[server.KeysResponse](t, e.do(call{method: "GET", path: "/v1/admin/keys", key: e.admin()}))
	for _, k := range list.Keys {
		if k.ID == made.ID && (!k.Revoked || k.RevokedAt == nil) {
			t.Errorf("revoked key listed as %+v", k)
		}
	}

	// Logged as admin actions with the new key's ID, never its secret.
	if !strings.Contains(logs.String(), "new_key_id="+made.ID) || !strings.Contains(logs.String(), "revoked_key_id="+made.ID) {
		t.Errorf("admin actions not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the log holds the new key's secret")
	}
}

// TestAdminKeysBadInput: a bad role or name is 422 naming the field, an
// unknown or malformed ID 404 or 422, the last admin key is not revoked
// (409), and none of it changes the keys.
func TestAdminKeysBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := storedKeys(e)
	for _, tc := range []struct {
		body  any
		field string
		req   conformance
	}{
		{map[string]any{"role": "bogus"}, "role", violates},
		{map[string]any{"role": "root", "name": "x"}, "role", violates},
		{map[string]any{"role": ""}, "role", violates},
		{map[string]any{"name": "no role"}, "role", violates},
		{map[string]any{"role": "app", "name": strings.Repeat("n", server.MaxKeyNameLen+1)}, "name", violates},
		{map[string]any{"role": "app", "name": "bell\a"}, "name", maybeViolate},
	} {
		p := wantProblem(t, e.do(call{method: "POST", path: "/v1/admin/keys", key: e.admin(), body: tc.body, req: tc.req}), 422, "invalid-value")
		if p.Field != tc.field {
			t.Errorf("%v: field %q, want %q", tc.body, p.Field, tc.field)
		}
	}
	wantProblem(t, e.do(call{method: "POST", path: "/v1/admin/keys", key: e.admin(), body: `{"role":"app","role":"admin"}`, req: maybeViolate}), 400, "malformed-request")
	wantProblem(t, e.do(call{method: "POST", path: "/v1/admin/keys", key: e.admin(), body: `{"role":"app","secret":"x"}`, req: violates}), 400, "malformed-request")
	p := wantProblem(t, e.do(call{method: "DELETE", path: "/v1/admin/keys/not-an-id", key: e.admin()}), 422, "invalid-value")
	if p.Field != "id" {
		t.Errorf("malformed ID: field %q", p.Field)
	}
	wantProblem(t, e.do(call{method: "DELETE", path: "/v1/admin/keys/000000000000", key: e.admin()}), 404, "not-found")
	// The env's admin key is the only one: it is not revoked.
	wantProblem(t, e.do(call{method: "DELETE", path: "/v1/admin/keys/" + e.keyIDs[server.RoleAdmin], key: e.admin()}), 409, "conflict")
	// Other roles may not use the routes.
	for _, k := range []string{e.app(), e.auditor()} {
		wantProblem(t, e.do(call{method: "POST", path: "/v1/admin/keys", key: k, body: map[string]any{"role": "admin"}}), 403, "forbidden")
		wantProblem(t, e.do(call{method: "GET", path: "/v1/admin/keys", key: k}), 403, "forbidden")
		wantProblem(t, e.do(call{method: "DELETE", path: "/v1/admin/keys/" + e.keyIDs[server.RoleApp], key: k}), 403, "forbidden")
	}
	wantProblem(t, e.do(call{method: "POST", path: "/v1/admin/keys", body: map[string]any{"role": "admin"}, req: violates}), 401, "unauthenticated")
	if after := storedKeys(e); !reflect.DeepEqual(before, after) {
		t.Errorf("rejected requests changed the keys:\nbefore %+v\nafter  %+v", before, after)
	}

	// With a second admin key, the first may be revoked (here by itself).
	r := e.do(call{method: "POST", path: "/v1/admin/keys", key: e.admin(), body: map[string]any{"role": "admin", "name": "second"}})
	want(t, r, 201)
	second := decode[server.KeyCreated](t, r)
	want(t, e.do(call{method: "DELETE", path: "/v1/admin/keys/" + e.keyIDs[server.RoleAdmin], key: e.admin()}), 200)
	wantProblem(t, e.do(call{method: "GET", path: "/v1/admin/keys", key: e.admin()}), 401, "unauthenticated")
	want(t, e.do(call{method: "GET", path: "/v1/admin/keys", key: second.Key}), 200)
	wantProblem(t, e.do(call{method: "DELETE", path: "/v1/admin/keys/" + second.ID, key: second.Key}), 409, "conflict")
}
