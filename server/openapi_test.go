package server_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// TestOpenAPIDocument validates the embedded document as OpenAPI 3.1 and
// checks that it describes exactly the server's routes, each with the
// error statuses its middleware and handler can answer.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc, _ := spec(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableMultiError(), openapi3.EnableExamplesValidation(),
		openapi3.EnableSchemaPatternValidation()); err != nil {
		t.Fatalf("validate: %v", err)
	}

	e := newEnv(t)
	r := e.do(call{method: "GET", path: "/openapi.json"})
	want(t, r, 200)
	if !bytes.Equal(r.Body, server.OpenAPI()) {
		t.Error("GET /openapi.json is not server.OpenAPI()")
	}

	// Every gin route is in the document and every operation is a gin route.
	engine, ok := e.srv.Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("Handler is a %T, not a *gin.Engine", e.srv.Handler())
	}
	type op struct{ method, path string }
	var routes, ops []op
	for _, ri := range engine.Routes() {
		var segs []string
		for _, s := range strings.Split(ri.Path, "/") {
			if strings.HasPrefix(s, ":") {
				s = "{" + s[1:] + "}"
			}
			segs = append(segs, s)
		}
		routes = append(routes, op{ri.Method, strings.Join(segs, "/")})
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, op{method, path})
		}
	}
	less := func(a, b op) int { return strings.Compare(a.path+" "+a.method, b.path+" "+b.method) }
	slices.SortFunc(routes, less)
	slices.SortFunc(ops, less)
	if !slices.Equal(routes, ops) {
		t.Errorf("routes and operations differ:\nroutes     %v\noperations %v", routes, ops)
	}
	if len(ops) != 39 {
		t.Errorf("%d operations, want 39", len(ops))
	}

	// The statuses each operation can answer.
	for _, o := range ops {
		item := doc.Paths.Value(o.path)
		operation := item.GetOperation(o.method)
		name := o.method + " " + o.path
		has := func(codes ...string) {
			for _, c := range codes {
				if operation.Responses.Value(c) == nil {
					t.Errorf("%s: no %s response", name, c)
				}
			}
		}
		has("500")
		secured := operation.Security == nil || len(*operation.Security) > 0
		if strings.HasPrefix(o.path, "/v1/") != secured {
			t.Errorf("%s: secured=%v", name, secured)
		}
		if secured {
			has("401", "403", "429", "503")
		}
		if operation.RequestBody != nil {
			has("400", "413", "415", "422")
		}
		if strings.HasPrefix(o.path, "/v1/users/") {
			has("422")
		}
		if len(operation.Parameters) > 0 && strings.HasPrefix(o.path, "/v1/") {
			has("422")
		}
		for code, ref := range operation.Responses.Map() {
			if ref.Value == nil || len(ref.Value.Content) == 0 {
				t.Errorf("%s %s: no content", name, code)
				continue
			}
			if code >= "400" && o.path != "/metrics" {
				if ref.Value.Content.Get("application/problem+json") == nil || len(ref.Value.Content) != 1 {
					t.Errorf("%s %s: not application/problem+json only", name, code)
				}
			}
		}
	}

	// Enums follow the code.
	enum := func(schema string) []string {
		t.Helper()
		s := doc.Components.Schemas[schema]
		if s == nil || s.Value == nil {
			t.Fatalf("no schema %s", schema)
		}
		var out []string
		for _, v := range s.Value.Enum {
			out = append(out, v.(string))
		}
		sort.Strings(out)
		return out
	}
	var reasons []string
	for i := 0; ; i++ {
		n := consent.Reason(i).String()
		if strings.HasPrefix(n, "reason(") {
			break
		}
		reasons = append(reasons, n)
	}
	sort.Strings(reasons)
	if got := enum("Reason"); !slices.Equal(got, reasons) {
		t.Errorf("Reason enum %v, want %v", got, reasons)
	}
	if got := enum("Role"); !slices.Equal(got, []string{"admin", "app", "auditor"}) {
		t.Errorf("Role enum %v", got)
	}
	for _, r := range enum("Role") {
		if !server.Role(r).Valid() {
			t.Errorf("role %q is not valid", r)
		}
	}
	var cats []string
	for _, c := range tags.Categories() {
		cats = append(cats, string(c))
	}
	sort.Strings(cats)
	if got := enum("Category"); !slices.Equal(got, cats) {
		t.Errorf("Category enum %v, want %v", got, cats)
	}
	var opNames []string
	for _, o := range append(consent.Ops(), consent.OpSetSettings) {
		opNames = append(opNames, string(o))
	}
	sort.Strings(opNames)
	if got := enum("Op"); !slices.Equal(got, opNames) {
		t.Errorf("Op enum %v, want %v", got, opNames)
	}
	var findingKinds []string
	for _, k := range store.FindingKinds() {
		findingKinds = append(findingKinds, string(k))
	}
	sort.Strings(findingKinds)
	if got := enum("FindingKind"); !slices.Equal(got, findingKinds) {
		t.Errorf("FindingKind enum %v, want %v", got, findingKinds)
	}

	// The syntax schemas agree with the validators of the model.
	agree := func(schema string, valid func(string) error, samples ...string) {
		t.Helper()
		s := doc.Components.Schemas[schema].Value
		for _, x := range samples {
			docOK := s.VisitJSON(x, openapi3.EnableJSONSchema2020()) == nil
			codeOK := valid(x) == nil
			if docOK != codeOK {
				t.Errorf("%s %q: document says valid=%v, code says valid=%v", schema, x, docOK, codeOK)
			}
		}
	}
	agree("UserID", consent.ValidUserID, "u1", "a.b+c=d@e_f-G9", "", "a b", "a/b", "é", "{x}",
		".", "..", "...", ".a", "a..", strings.Repeat("a", 128), strings.Repeat("a", 129))
	agree("ChannelName", consent.ValidChannelName, "sms", "in_app", "push2", "", "SMS", "1sms", "s-ms",
		strings.Repeat("a", 32), strings.Repeat("a", 33))
	tagSamples := []string{"interest:ski", "a:b", "a_1:x.y-z", "interest", ":ski", "interest:", "Interest:ski", "interest:Ski",
		"a:b:c", "consent:x", "refused:sms", "sensitive:religion", "consents:x", "1a:b", "_a:b",
		" interest:ski", "interest:ski\t", "interest : ski", "Interest :\tSKI", "inter est:ski", "interest:s ki", "\ninterest:ski",
		"CONSENT:x", " Refused : sms", "SensiTive:religion", "Consents:x", " :ski", "interest: ",
		strings.Repeat("a", 32) + ":x", strings.Repeat("a", 33) + ":x", "a:" + strings.Repeat("x", 64), "a:" + strings.Repeat("x", 65),
		" " + strings.Repeat("A", 32) + " : " + strings.Repeat("X", 64) + " "}
	// A Tag (as answered) is canonical; a TagInput (as sent) is whatever
	// tags.Parse accepts.
	agree("Tag", func(s string) error {
		t, err := tags.Parse(s)
		if err == nil && string(t) != s {
			return errors.New("not canonical")
		}
		return err
	}, tagSamples...)
	agree("TagInput", func(s string) error { _, err := tags.Parse(s); return err }, tagSamples...)
	agree("Category", func(s string) error { _, err := tags.ParseCategory(s); return err },
		"religion", "whereabouts", "astrology", "")

	// The roles the document names per operation are the ones the server admits.
	for _, o := range ops {
		operation := doc.Paths.Value(o.path).GetOperation(o.method)
		roles, _ := operation.Extensions["x-roles"].([]any)
		var want []any
		switch {
		case strings.HasPrefix(o.path, "/v1/users/"), o.path == "/v1/events":
			want = []any{"app"}
		case strings.HasPrefix(o.path, "/v1/admin/"):
			want = []any{"admin"}
		case strings.HasPrefix(o.path, "/v1/audits"), strings.HasPrefix(o.path, "/v1/audit/"):
			want = []any{"auditor"}
		}
		if !slices.Equal(roles, want) {
			t.Errorf("%s %s: x-roles %v, want %v", o.method, o.path, roles, want)
		}
	}
}
