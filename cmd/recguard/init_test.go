package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/internal/redistest"
)

// TestServeInit: serve never initialises a Redis keyspace on its own. On an
// empty keyspace it refuses (exit status not 0) with a message naming
// --init, and keys commands refuse too (they never initialise); with
// --init (or RECGUARD_INIT=true) it creates the keyspace and serves;
// restarted, it needs no --init; and once the keyspace lost its data it
// refuses again rather than re-create it. Flags can come from the
// environment, and the command line wins over it.
func TestServeInit(t *testing.T) {
	rsrv := redistest.StartServer(t)
	recguardBinary(t)
	redisURL := "redis://" + rsrv.Addr + "/0"
	sf := []string{"--redis", redisURL, "--prefix", "inittest", "--chain-key", testChainKeyHex}

	refused := func(what string, env []string, args ...string) string {
		t.Helper()
		out, errOut, err := runCLIEnv(t, env, args...)
		if err == nil {
			t.Fatalf("%s: recguard %s succeeded on an empty keyspace; stdout:\n%s\nstderr:\n%s", what, strings.Join(args, " "), out, errOut)
		}
		if strings.Contains(out, "admin key") || strings.Contains(out, "listening on") {
			t.Errorf("%s: started anyway: %s", what, out)
		}
		return errOut
	}
	serveArgs := append([]string{"serve", "--addr", "127.0.0.1:0"}, sf...)
	// No chain key: a Redis store needs the one every instance shares.
	msg := refused("serve without a chain key", nil, "serve", "--addr", "127.0.0.1:0", "--init", "--redis", redisURL, "--prefix", "inittest")
	if !strings.Contains(msg, "--chain-key-file") || !strings.Contains(msg, "RECGUARD_CHAIN_KEY") {
		t.Errorf("serve on Redis without a chain key says %q; want it to name --chain-key-file and RECGUARD_CHAIN_KEY", msg)
	}
	msg = refused("serve without --init", nil, serveArgs...)
	if !strings.Contains(msg, "--init") || !strings.Contains(msg, "restore") {
		t.Errorf("serve on an empty keyspace says %q; want it to name --init and restoring", msg)
	}
	msg = refused("keys create", nil, append([]string{"keys", "create", "--role", "app"}, sf...)...)
	if !strings.Contains(msg, "serve --init") {
		t.Errorf("keys create on an empty keyspace says %q; want it to name serve --init", msg)
	}
	refused("keys list", nil, append([]string{"keys", "list"}, sf...)...)
	// Neither left a keyspace behind.
	refused("serve after the refusals", nil, serveArgs...)
	if n, err := rsrv.Client(nil).DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Errorf("the refused commands left %d keys in Redis (%v)", n, err)
	}
	// A bad value in the environment is named.
	msg = refused("bad env", []string{"RECGUARD_DECISION_BUDGET=soon"}, append(serveArgs, "--init")...)
	if !strings.Contains(msg, "RECGUARD_DECISION_BUDGET") {
		t.Errorf("a bad RECGUARD_DECISION_BUDGET: %q", msg)
	}

	// --init from the environment, the store flags too.
	env := []string{"RECGUARD_INIT=true", "RECGUARD_REDIS=" + redisURL, "RECGUARD_PREFIX=inittest", "RECGUARD_ADDR=127.0.0.1:0",
		"RECGUARD_DECISION_BUDGET=300ms", "RECGUARD_WAIT_FOR_ALL=true", "RECGUARD_CHAIN_KEY=" + testChainKeyHex}
	p := startServeEnv(t, env)
	if _, _, ok := p.adminKey(); !ok {
		t.Fatalf("serve with RECGUARD_INIT=true printed no admin key:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
	}
	p.waitReady()
	if !strings.Contains(p.stderr.String(), "decision_budget=300ms") {
		t.Errorf("RECGUARD_DECISION_BUDGET not applied; stderr:\n%s", p.stderr.String())
	}
	app, _ := createKey(t, "app", sf...)
	c := newClient(t, p.base)
	var cs consentJSON
	c.expect("PUT", "/v1/users/alice/consent/personalization", app, map[string]any{"enabled": false}, http.StatusOK, &cs)
	p.stop()

	// Restart without --init: the keyspace is there. The flag wins over
	// the environment: RECGUARD_PREFIX names an empty keyspace, which
	// would be refused; --prefix names ours.
	p = startServeEnv(t, []string{"RECGUARD_PREFIX=empty"}, serveArgs[1:]...)
	p.waitReady()
	c = newClient(t, p.base)
	var d decisionJSON
	c.expect("GET", "/v1/users/alice/decision", app, nil, http.StatusOK, &d)
	if d.Reason != "personalization_off" {
		t.Fatalf("alice after restart: %+v", d)
	}
	p.stop()

	// The keyspace loses its data (as a Redis restarted without
	// persistence would): serve refuses instead of starting afresh.
	if err := rsrv.Client(nil).FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	msg = refused("serve after the data was lost", nil, serveArgs...)
	if !strings.Contains(msg, "--init") {
		t.Errorf("serve after data loss says %q", msg)
	}
	if _, _, err := runCLI(t, append([]string{"keys", "list"}, sf...)...); err == nil {
		t.Errorf("keys list after data loss succeeded")
	}
}

// TestApplyEnv: every flag can come from RECGUARD_<NAME>; the command line
// wins; empty variables are unset; bad values name the variable.
func TestApplyEnv(t *testing.T) {
	mk := func() (*flag.FlagSet, *string, *bool, *time.Duration, *int) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return fs, fs.String("redis-password", "", ""), fs.Bool("wait-for-all", true, ""),
			fs.Duration("decision-budget", time.Second, ""), fs.Int("durability-replicas", 0, "")
	}
	env := map[string]string{
		"RECGUARD_REDIS_PASSWORD":      "from-env",
		"RECGUARD_WAIT_FOR_ALL":        "false",
		"RECGUARD_DECISION_BUDGET":     "",
		"RECGUARD_DURABILITY_REPLICAS": "2",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	fs, pw, wait, budget, reps := mk()
	if _, err := parseInterspersed(fs, []string{"--durability-replicas", "1"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs, lookup); err != nil {
		t.Fatal(err)
	}
	if *pw != "from-env" || *wait || *budget != time.Second || *reps != 1 {
		t.Errorf("password %q wait %v budget %v replicas %d", *pw, *wait, *budget, *reps)
	}
	env["RECGUARD_DURABILITY_REPLICAS"] = "two"
	fs, _, _, _, _ = mk()
	if err := applyEnv(fs, lookup); err == nil || !strings.Contains(err.Error(), "RECGUARD_DURABILITY_REPLICAS") {
		t.Errorf("bad value: %v", err)
	}
	if got := envName("redis-dial-timeout"); got != "RECGUARD_REDIS_DIAL_TIMEOUT" {
		t.Errorf("envName: %s", got)
	}
}

// TestServeStoreFlags: the store options reach store/redis. An evicting
// Redis is refused with a message naming --allow-evicting, and served with
// it; --durability-replicas on a Redis without replicas makes every change
// a 202 not-replicated (recorded on the primary, not confirmed).
func TestServeStoreFlags(t *testing.T) {
	rsrv := redistest.StartServer(t, "--maxmemory", "1gb", "--maxmemory-policy", "allkeys-lru")
	recguardBinary(t)
	sf := []string{"--redis", "redis://" + rsrv.Addr + "/0", "--addr", "127.0.0.1:0", "--init", "--chain-key", testChainKeyHex}
	_, errOut, err := runCLI(t, append([]string{"serve"}, sf...)...)
	if err == nil || !strings.Contains(errOut, "--allow-evicting") {
		t.Fatalf("serve on an evicting Redis: %v, stderr %q; want a refusal naming --allow-evicting", err, errOut)
	}
	p := startServeEnv(t, []string{"RECGUARD_ALLOW_EVICTING=1"},
		append(sf, "--durability-replicas", "1", "--durability-timeout", "50ms", "--redis-timeout", "2s")...)
	_, admin, ok := p.adminKey()
	if !ok {
		t.Fatalf("no admin key:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
	}
	p.waitReady()
	c := newClient(t, p.base)
	r := c.do("PUT", "/v1/admin/suspension", admin, map[string]any{"suspended": false})
	if r.status != http.StatusAccepted {
		t.Fatalf("a change without the replicas asked for: %d %s, want 202", r.status, r.body)
	}
	if pr := problemOf(t, "not replicated", r); !strings.HasSuffix(pr.Type, "/not-replicated") || strings.Contains(string(r.body), rsrv.Addr) {
		t.Errorf("problem %+v: %s", pr, r.body)
	}
	p.stop()
}
