package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// ---- the OpenAPI document ----

var (
	specOnce   sync.Once
	specDoc    *openapi3.T
	specRouter routers.Router
	specErr    error
)

// spec loads, validates and routes server.OpenAPI() once per test binary.
func spec(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	specOnce.Do(func() {
		l := &openapi3.Loader{Context: context.Background()}
		specDoc, specErr = l.LoadFromData(server.OpenAPI())
		if specErr != nil {
			specErr = fmt.Errorf("load: %w", specErr)
			return
		}
		if specErr = specDoc.Validate(l.Context, openapi3.EnableMultiError()); specErr != nil {
			specErr = fmt.Errorf("validate: %w", specErr)
			return
		}
		specRouter, specErr = gorillamux.NewRouter(specDoc)
	})
	if specErr != nil {
		t.Fatalf("openapi.json: %v", specErr)
	}
	return specDoc, specRouter
}

// bearerAuth is the request validator's check of the bearer security
// scheme: that a key is sent at all (whether it is a good one is the
// server's business).
func bearerAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "bearer" {
		return fmt.Errorf("unexpected security scheme %q", in.SecuritySchemeName)
	}
	key, ok := strings.CutPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		return errors.New("no bearer key")
	}
	return nil
}

// ---- a server on a memory store ----

type envConfig struct {
	srv  server.Config
	sdk  sdk.Config
	wrap func(*memory.Store) store.Store // what the client and server run on; nil: the memory store
	// memNow is the memory store's clock (the time of changes and
	// receipts); nil: time.Now.
	memNow func() time.Time
	// noLedger runs the client without a ledger (serve always has one).
	noLedger bool
	// chainKey is the key the memory store seals receipts with, and the
	// server's Config.ChainKey unless srv sets one; nil: testChainKey.
	chainKey []byte
}

// testChainKey is the receipt chain key of the test stores.
var testChainKey = []byte("server tests' receipt chain key!")

type env struct {
	t      *testing.T
	ctx    context.Context
	mem    *memory.Store // the system of record, for snapshots
	st     store.Store   // what the server runs on
	client *sdk.Client
	srv    *server.Server
	ts     *httptest.Server
	keys   map[server.Role]string // role -> bearer key
	keyIDs map[server.Role]string
	last   result // the answer of the last rejected call
}

// newEnv starts a memory store in t.TempDir(), an SDK client with audiences
// on it, the server and an httptest server, and makes one key per role.
// Rate limiting (per key and of failed authentications per address) is off
// unless an option sets it.
func newEnv(t *testing.T, opts ...func(*envConfig)) *env {
	t.Helper()
	ctx := context.Background()
	cfg := envConfig{srv: server.Config{RateLimit: -1, AuthFailRate: -1, Logger: slog.New(slog.DiscardHandler)}, sdk: sdk.Config{Audiences: true}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.chainKey == nil {
		cfg.chainKey = testChainKey
	}
	if cfg.srv.ChainKey == nil {
		cfg.srv.ChainKey = cfg.chainKey
	}
	mem, err := memory.Open(ctx, memory.Options{Dir: t.TempDir(), NoSync: true, Now: cfg.memNow, ChainKey: cfg.chainKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	var st store.Store = mem
	if cfg.wrap != nil {
		st = cfg.wrap(mem)
	}
	if l, ok := st.(store.Ledger); ok && cfg.sdk.Ledger == nil && !cfg.noLedger {
		cfg.sdk.Ledger = l // as serve runs
	}
	client, err := sdk.New(ctx, st, cfg.sdk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.srv.Client, cfg.srv.Store = client, st
	srv, err := server.New(cfg.srv)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e := &env{t: t, ctx: ctx, mem: mem, st: st, client: client, srv: srv, ts: ts,
		keys: map[server.Role]string{}, keyIDs: map[server.Role]string{}}
	for _, r := range []server.Role{server.RoleApp, server.RoleAdmin, server.RoleAuditor} {
		key, k, err := server.NewKey(ctx, st.(store.KeyStore), r, "test "+string(r), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.keys[r], e.keyIDs[r] = key, k.ID
	}
	return e
}

func (e *env) app() string     { return e.keys[server.RoleApp] }
func (e *env) admin() string   { return e.keys[server.RoleAdmin] }
func (e *env) auditor() string { return e.keys[server.RoleAuditor] }

// ---- requests validated against the document ----

// conformance says whether a request is meant to conform to openapi.json.
type conformance int

const (
	conforms     conformance = iota // the request must validate
	violates                        // the request must fail validation (the doc describes the constraint)
	maybeViolate                    // not checked (the doc cannot tell, e.g. data after the JSON value)
)

// call is one request.
type call struct {
	method, path string
	key          string            // bearer key; empty sends no Authorization header
	body         any               // nil, string, []byte or a value sent as JSON
	ctype        string            // Content-Type; default application/json with a body; "-" sends none
	header       map[string]string // more headers
	req          conformance
	noRoute      bool // the path or method is not in the document (404, 405)
}

// result is one answer.
type result struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r result) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// do sends c. Before, it validates the request against openapi.json
// (failing the test unless that agrees with c.req); after, it validates
// the response (status, headers, content type, body) and fails the test on
// any mismatch: an undocumented status fails too.
func (e *env) do(c call) result {
	t := e.t
	t.Helper()
	var body []byte
	switch b := c.body.(type) {
	case nil:
	case string:
		body = []byte(b)
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	ctype := c.ctype
	if ctype == "" && c.body != nil {
		ctype = "application/json"
	}
	if ctype == "-" {
		ctype = ""
	}
	mk := func() *http.Request {
		var rd io.Reader
		if c.body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(e.ctx, c.method, e.ts.URL+c.path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		return req
	}
	what := c.method + " " + c.path

	doc, router := spec(t)
	vreq := mk()
	route, params, ferr := router.FindRoute(vreq)
	var in *openapi3filter.RequestValidationInput
	switch {
	case ferr != nil && !c.noRoute:
		t.Fatalf("%s: not in openapi.json: %v", what, ferr)
	case ferr == nil && c.noRoute:
		t.Fatalf("%s: meant to be outside openapi.json, but it routes to %s %s", what, route.Method, route.Path)
	case ferr == nil:
		in = &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: bearerAuth, MultiError: true}}
		verr := openapi3filter.ValidateRequest(e.ctx, in)
		switch {
		case c.req == conforms && verr != nil:
			t.Errorf("%s: the request does not conform to openapi.json: %v", what, verr)
		case c.req == violates && verr == nil:
			t.Errorf("%s: the request conforms to openapi.json, but the test means it not to (the doc misses a constraint)", what)
		}
	}

	resp, err := e.ts.Client().Do(mk())
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	r := result{Status: resp.StatusCode, Header: resp.Header, Body: rb}

	if in != nil {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.Status, Header: r.Header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
		out.SetBodyBytes(r.Body)
		if err := openapi3filter.ValidateResponse(e.ctx, out); err != nil {
			t.Errorf("%s -> %d: the response does not match openapi.json: %v\nbody: %s", what, r.Status, err, clip(r.Body))
		}
		if route.Path == "/v1/users/{id}/export" && r.Status == http.StatusOK {
			validateExport(t, r.Body)
		}
		return r
	}
	// Outside the documented operations: the answer must be the NotFound or
	// MethodNotAllowed response of the document's components.
	name := map[int]string{404: "NotFound", 405: "MethodNotAllowed"}[r.Status]
	if name == "" {
		t.Fatalf("%s: %d outside the documented routes: %s", what, r.Status, clip(r.Body))
	}
	validateComponentResponse(t, doc, name, r)
	return r
}

// ---- docs/export.schema.json ----

var (
	exportSchemaOnce sync.Once
	exportSchema     *jsonschema.Schema
	exportSchemaErr  error
	exportsValidated atomic.Int64
)

// validateExport validates an export (every 200 answer of GET
// /v1/users/{id}/export the tests see) against docs/export.schema.json,
// formats asserted.
func validateExport(t testing.TB, body []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	if err := exportSchemaErrOf(t, v); err != nil {
		t.Errorf("the export does not match docs/export.schema.json: %v\nbody: %s", err, clip(body))
	}
	exportsValidated.Add(1)
}

// exportSchemaErrOf validates a decoded document against
// docs/export.schema.json.
func exportSchemaErrOf(t testing.TB, doc any) error {
	t.Helper()
	exportSchemaOnce.Do(func() {
		f, err := os.Open("../docs/export.schema.json")
		if err != nil {
			exportSchemaErr = err
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			exportSchemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if exportSchemaErr = c.AddResource(server.ExportSchema, doc); exportSchemaErr != nil {
			return
		}
		exportSchema, exportSchemaErr = c.Compile(server.ExportSchema)
	})
	if exportSchemaErr != nil {
		t.Fatalf("docs/export.schema.json: %v", exportSchemaErr)
	}
	return exportSchema.Validate(doc)
}

// validateComponentResponse checks r against components/responses/name.
func validateComponentResponse(t testing.TB, doc *openapi3.T, name string, r result) {
	t.Helper()
	ref := doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		t.Fatalf("openapi.json has no components/responses/%s", name)
	}
	ct := r.Header.Get("Content-Type")
	mt := ref.Value.Content.Get(ct)
	if mt == nil || mt.Schema == nil {
		t.Fatalf("components/responses/%s: no schema for %q", name, ct)
	}
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("%s answer is not JSON: %v: %s", name, err, r.Body)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("the answer does not match components/responses/%s: %v\nbody: %s", name, err, r.Body)
	}
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// ---- answers ----

// decode decodes a JSON answer into a T.
func decode[T any](t testing.TB, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, clip(r.Body))
	}
	return v
}

// want checks the status of an answer that is not a problem.
func want(t testing.TB, r result, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, clip(r.Body))
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/problem+json" {
		t.Fatalf("a problem with status %d", status)
	}
}

// wantProblem checks a problem answer: status, media type and problem code.
func wantProblem(t testing.TB, r result, status int, code string) server.Problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d (%s): %s", r.Status, status, code, clip(r.Body))
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	p := decode[server.Problem](t, r)
	if p.Type != "https://recguard.dev/problems/"+code || p.Status != status || p.Title == "" {
		t.Errorf("problem %+v, want type .../%s and status %d", p, code, status)
	}
	return p
}

// ---- "a rejected request changes nothing" ----

// snapshot is what the store holds that a request could change.
type snapshot struct {
	Records          map[string]consent.Record
	Receipts         map[string][]consent.Receipt
	Tails            []store.Position // every shard log, then the settings log
	Settings         consent.Settings
	SettingsReceipts []consent.Receipt
	Keys             []store.APIKey
}

func (e *env) snapshot(users ...string) snapshot {
	e.t.Helper()
	s := snapshot{Records: map[string]consent.Record{}, Receipts: map[string][]consent.Receipt{}}
	for _, u := range users {
		rec, err := e.mem.Get(e.ctx, u)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			e.t.Fatal(err)
		}
		s.Records[u] = rec
		rcs, err := e.mem.Receipts(e.ctx, u)
		if err != nil {
			e.t.Fatal(err)
		}
		s.Receipts[u] = rcs
	}
	for log := 0; log < e.mem.Shards(); log++ {
		p, err := e.mem.Tail(e.ctx, log)
		if err != nil {
			e.t.Fatal(err)
		}
		s.Tails = append(s.Tails, p)
	}
	p, err := e.mem.Tail(e.ctx, store.SettingsLog)
	if err != nil {
		e.t.Fatal(err)
	}
	s.Tails = append(s.Tails, p)
	if s.Settings, err = e.mem.Settings(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if s.SettingsReceipts, err = e.mem.SettingsReceipts(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if s.Keys, err = e.mem.ListKeys(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// rejected sends c, expects the problem status/code, and checks that the
// records and receipts of users, every changelog tail, the settings and the
// keys are as they were.
func (e *env) rejected(c call, status int, code string, users ...string) server.Problem {
	e.t.Helper()
	before := e.snapshot(users...)
	r := e.do(c)
	e.last = r
	p := wantProblem(e.t, r, status, code)
	after := e.snapshot(users...)
	if !reflect.DeepEqual(before, after) {
		e.t.Errorf("%s %s was rejected (%d) but changed the store:\nbefore %+v\nafter  %+v", c.method, c.path, status, before, after)
	}
	return p
}

// ---- store wrappers ----

// flakyStore is a memory store whose changelog reads, Get, GetKey,
// Settings and Apply can be made to fail.
type flakyStore struct {
	*memory.Store
	logsDown    atomic.Bool
	getErr      atomic.Pointer[error]
	keyErr      atomic.Pointer[error]
	settingsErr atomic.Pointer[error]
	applyErr    atomic.Pointer[error] // returned after the change was applied (like store.ErrNotReplicated)
	keyReads    atomic.Int64          // GetKey calls
	gets        atomic.Int64          // Get calls
}

func (f *flakyStore) Settings(ctx context.Context) (consent.Settings, error) {
	if p := f.settingsErr.Load(); p != nil {
		return consent.Settings{}, *p
	}
	return f.Store.Settings(ctx)
}

func (f *flakyStore) Apply(ctx context.Context, ch consent.Change) (store.Applied, error) {
	a, err := f.Store.Apply(ctx, ch)
	if p := f.applyErr.Load(); p != nil && err == nil {
		return a, *p
	}
	return a, err
}

func (f *flakyStore) SetSettings(ctx context.Context, s consent.Settings, actor consent.Actor, surface consent.Surface) (consent.Settings, consent.Receipt, error) {
	saved, rc, err := f.Store.SetSettings(ctx, s, actor, surface)
	if p := f.applyErr.Load(); p != nil && err == nil {
		return saved, rc, *p
	}
	return saved, rc, err
}

func (f *flakyStore) ReadChangelog(ctx context.Context, log int, after store.Position, count int, block time.Duration) ([]store.Event, error) {
	if f.logsDown.Load() {
		return nil, fmt.Errorf("%w: test: changelog down", store.ErrUnavailable)
	}
	return f.Store.ReadChangelog(ctx, log, after, count, block)
}

func (f *flakyStore) ReadLogs(ctx context.Context, logs []int, after []store.Position, count int, block time.Duration) ([]store.Event, error) {
	if f.logsDown.Load() {
		return nil, fmt.Errorf("%w: test: changelog down", store.ErrUnavailable)
	}
	return f.Store.ReadLogs(ctx, logs, after, count, block)
}

func (f *flakyStore) Get(ctx context.Context, id string) (consent.Record, error) {
	f.gets.Add(1)
	if p := f.getErr.Load(); p != nil {
		return consent.NewRecord(id), *p
	}
	return f.Store.Get(ctx, id)
}

func (f *flakyStore) GetKey(ctx context.Context, id string) (store.APIKey, error) {
	f.keyReads.Add(1)
	if p := f.keyErr.Load(); p != nil {
		return store.APIKey{}, *p
	}
	return f.Store.GetKey(ctx, id)
}

// bareStore has the core Store and the KeyStore only: no rights log, no
// batch reads, no presence.
type bareStore struct {
	store.Store
	store.KeyStore
}
