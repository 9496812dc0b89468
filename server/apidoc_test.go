package server_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// docRoute matches a route written in docs/api.md as code: `GET /v1/...`
// (a query, an optional part in brackets or the end of the code span ends
// the path).
var docRoute = regexp.MustCompile("`(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^`?\\s\\[]*)")

// normRoute makes a route comparable: path parameters of any name are {}.
func normRoute(method, path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") || strings.HasPrefix(s, ":") {
			segs[i] = "{}"
		}
	}
	return method + " " + strings.Join(segs, "/")
}

// TestAPIDocMatchesOpenAPI checks docs/api.md against the OpenAPI
// document: every route its tables list (a row starting with `METHOD
// /path`) is an operation of /openapi.json, every route it names anywhere
// is one, and every operation is named in it.
func TestAPIDocMatchesOpenAPI(t *testing.T) {
	t.Parallel()
	doc, _ := spec(t)
	ops := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops[normRoute(method, path)] = true
		}
	}
	md, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	tabled := 0
	for i, line := range strings.Split(string(md), "\n") {
		for _, m := range docRoute.FindAllStringSubmatch(line, -1) {
			r := normRoute(m[1], strings.TrimSuffix(m[2], "/"))
			if strings.Contains(m[2], "...") {
				continue // a family of routes, e.g. /v1/users/{id}/...
			}
			named[r] = true
			if !ops[r] {
				t.Errorf("docs/api.md:%d names %s %s, which /openapi.json does not have", i+1, m[1], m[2])
			}
		}
		if strings.HasPrefix(line, "| `") && docRoute.MatchString(line[:min(len(line), 80)]) {
			tabled++
		}
	}
	var missing []string
	for op := range ops {
		if !named[op] {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	for _, op := range missing {
		t.Errorf("docs/api.md does not name the operation %s", op)
	}
	if tabled < 30 {
		t.Errorf("only %d route rows found in docs/api.md's tables: is the pattern still right?", tabled)
	}
}

// mdLink matches a Markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinksStayInRepo: the docs link only to files in this repository
// (that exist) or to web addresses, and a relative path they name as code
// (`../x`) is a file of the repository too.
func TestDocLinksStayInRepo(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, f := range []string{"README.md", "CHANGELOG.md", "CONTRIBUTING.md"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			files = append(files, filepath.Join(root, f))
		}
	}
	if len(files) < 5 {
		t.Fatalf("found %d docs", len(files))
	}
	outside := regexp.MustCompile("`(\\.\\./)+[^`]*`")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			abs := filepath.Clean(filepath.Join(filepath.Dir(f), target))
			if !strings.HasPrefix(abs, root+string(filepath.Separator)) {
				t.Errorf("%s links %s, outside the repository", rel, m[1])
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links %s, which does not exist", rel, m[1])
			}
		}
		// A path written as code that climbs out of the repository.
		for _, m := range outside.FindAllString(string(b), -1) {
			p := strings.Trim(m, "`")
			abs := filepath.Clean(filepath.Join(filepath.Dir(f), p))
			if !strings.HasPrefix(abs, root+string(filepath.Separator)) {
				t.Errorf("%s names %s, outside the repository", rel, m)
			} else if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s names %s, which is not in the repository", rel, m)
			}
		}
	}
}
