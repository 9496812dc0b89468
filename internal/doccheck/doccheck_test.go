package doccheck_test

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// citation is one `pkg.TestName[/sub]` in a document.
type citation struct {
	doc  string // file, relative to the repository root
	line int
	pkg  string // package directory, relative to the repository root
	name string // top-level function
	text string // as written
}

func (c citation) String() string { return fmt.Sprintf("%s:%d: `%s`", c.doc, c.line, c.text) }

var (
	// A citation: a package directory, a dot, a test function, an optional
	// subtest path: the whole of a backticked span.
	citeRE = regexp.MustCompile("^((?:[a-z][a-z0-9_]*/)*[a-z][a-z0-9_]*)\\.((?:Test|Example|Fuzz|Benchmark)[A-Za-z0-9_]*)(/.*)?$")
	spanRE = regexp.MustCompile("`[^`\n]+`")
	// A test-like name anywhere in a span.
	testNameRE = regexp.MustCompile(`\b(?:Test|Example|Fuzz|Benchmark)[A-Z_][A-Za-z0-9_]*`)
)

// parseCitations returns the citations in text and, for a strict document,
// the backticked spans that name a test without being a citation.
func parseCitations(doc, text string, strict bool) (cs []citation, bad []string) {
	for i, line := range strings.Split(text, "\n") {
		for _, span := range spanRE.FindAllString(line, -1) {
			inner := strings.Trim(span, "`")
			if m := citeRE.FindStringSubmatch(inner); m != nil {
				cs = append(cs, citation{doc: doc, line: i + 1, pkg: m[1], name: m[2], text: inner})
				continue
			}
			if strict && testNameRE.MatchString(inner) {
				bad = append(bad, fmt.Sprintf("%s:%d: %s names a test but is not a citation: write one `<package dir>.<TestName>` per pair of backticks", doc, i+1, span))
			}
		}
	}
	return cs, bad
}

// root is the repository root: two levels up from this package.
func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", r, err)
	}
	return r
}

// funcs returns the top-level functions (no receiver) declared in the
// _test.go files of dir, cached per directory.
type funcIndex struct {
	mu   sync.Mutex
	dirs map[string]map[string]bool
	errs map[string]error
}

func (fx *funcIndex) funcs(dir string) (map[string]bool, error) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	if fs, ok := fx.dirs[dir]; ok {
		return fs, fx.errs[dir]
	}
	fs := map[string]bool{}
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err == nil && len(files) == 0 {
		if _, serr := os.Stat(dir); serr != nil {
			err = fmt.Errorf("no package directory %s", dir)
		} else {
			err = fmt.Errorf("no _test.go files in %s", dir)
		}
	}
	fset := token.NewFileSet()
	for _, f := range files {
		af, perr := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if perr != nil {
			err = perr
			break
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				fs[fd.Name.Name] = true
			}
		}
	}
	fx.dirs[dir], fx.errs[dir] = fs, err
	return fs, err
}

// check reports every citation whose function does not exist.
func (fx *funcIndex) check(t *testing.T, repo string, cs []citation) {
	t.Helper()
	fx.checkInto(t, repo, cs)
}

// Every test the docs cite exists. docs/compliance.md and docs/mutation.md
// are strict (every backticked test name must be a citation with its
// package); the other docs are checked for the citations they make.
func TestDocsCiteExistingTests(t *testing.T) {
	repo := root(t)
	fx := &funcIndex{dirs: map[string]map[string]bool{}, errs: map[string]error{}}
	strict := map[string]bool{"docs/compliance.md": true, "docs/mutation.md": true}
	docs, _ := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	docs = append(docs, filepath.Join(repo, "README.md"), filepath.Join(repo, "CONTRIBUTING.md"))
	sort.Strings(docs)
	seen := map[string]int{}
	for _, p := range docs {
		rel, _ := filepath.Rel(repo, p)
		rel = filepath.ToSlash(rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cs, bad := parseCitations(rel, string(b), strict[rel])
		for _, m := range bad {
			t.Error(m)
		}
		fx.check(t, repo, cs)
		seen[rel] = len(cs)
	}
	if seen["docs/compliance.md"] == 0 {
		t.Error("docs/compliance.md cites no test")
	}
	t.Logf("citations checked: %v", seen)
}

// docs/compliance.md has a row for every article recguard enforces.
func TestComplianceCoversEveryArticle(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "docs", "compliance.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "| ") {
			continue
		}
		cells := strings.Split(l, "|")
		if len(cells) < 3 {
			continue
		}
		art := strings.TrimSpace(cells[1])
		if cs, _ := parseCitations("", l, false); len(cs) == 0 {
			continue // a header or a row without a test: not a proof
		}
		for _, a := range []string{"12", "22", "22(4)", "22(5)", "23", "24", "25", "42", "44", "46", "51"} {
			if containsArticle(art, a) {
				rows[a]++
			}
		}
	}
	for _, a := range []string{"12", "22", "22(4)", "22(5)", "23", "24", "25", "42", "44", "46", "51"} {
		if rows[a] == 0 {
			t.Errorf("docs/compliance.md: no row for Art. %s that cites a test", a)
		}
	}
}

// containsArticle reports whether an article cell ("22(4)", "23-25",
// "42, 51") covers article a.
func containsArticle(cell, a string) bool {
	for _, part := range strings.FieldsFunc(cell, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		part = strings.TrimPrefix(part, "Art.")
		if part == a {
			return true
		}
		if !strings.Contains(a, "(") {
			if base, _, ok := strings.Cut(part, "("); ok && base == a {
				return true
			}
		}
		if lo, hi, ok := strings.Cut(part, "-"); ok && len(lo) == 2 && len(hi) == 2 && len(a) == 2 && lo <= a && a <= hi {
			return true
		}
	}
	return false
}

// The tests named in mutants/mutants.txt's test: lines exist in their
// packages (a mutant "killed" by a renamed test would be killed by none).
func TestMutantListNamesExistingTests(t *testing.T) {
	repo := root(t)
	f, err := os.Open(filepath.Join(repo, "mutants", "mutants.txt"))
	if os.IsNotExist(err) {
		t.Skip("no mutants/mutants.txt")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fx := &funcIndex{dirs: map[string]map[string]bool{}, errs: map[string]error{}}
	name := regexp.MustCompile(`(?:Test|Example|Fuzz)[A-Za-z0-9_]+`)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n, inSnippet, cited := 0, false, 0
	for sc.Scan() {
		n++
		l := sc.Text()
		switch {
		case l == "--- original":
			inSnippet = true
		case l == "--- end":
			inSnippet = false
		case !inSnippet && strings.HasPrefix(l, "test:"):
			pkg, re, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "test:")), " ")
			pkg = strings.TrimPrefix(pkg, "./")
			var cs []citation
			for _, m := range name.FindAllString(re, -1) {
				cs = append(cs, citation{doc: "mutants/mutants.txt", line: n, pkg: pkg, name: m, text: pkg + "." + m})
			}
			if re == "" { // the whole package: it must have tests
				if _, err := fx.funcs(filepath.Join(repo, filepath.FromSlash(pkg))); err != nil {
					t.Errorf("mutants/mutants.txt:%d: %v", n, err)
				}
			}
			cited += len(cs)
			fx.check(t, repo, cs)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d test names in mutants/mutants.txt checked", cited)
}

// The checker itself: what it takes for a citation, what it refuses, and
// that a missing test is reported with its name.
func TestCitationFormat(t *testing.T) {
	doc := "| 42 | x | `sdk.Client.Apply` | `sdk.TestReadYourWrites`, `store/redis.TestConformance/Suppression`, `store/memory.ExampleX` |\n" +
		"bare: `TestFoo` and `sdk.Client` and `consent.Evaluate` and `go test -run TestBar ./x`\n"
	cs, bad := parseCitations("d.md", doc, true)
	var got []string
	for _, c := range cs {
		got = append(got, c.pkg+" "+c.name)
	}
	want := []string{"sdk TestReadYourWrites", "store/redis TestConformance", "store/memory ExampleX"}
	if strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("citations %q, want %q", got, want)
	}
	if len(bad) != 2 || !strings.Contains(bad[0], "`TestFoo`") || !strings.Contains(bad[1], "TestBar") {
		t.Errorf("bare names %q, want `TestFoo` and the one in the command", bad)
	}
	if _, bad := parseCitations("d.md", doc, false); len(bad) != 0 {
		t.Errorf("lenient doc: %q", bad)
	}

	// A missing test is an error naming it.
	repo := root(t)
	fx := &funcIndex{dirs: map[string]map[string]bool{}, errs: map[string]error{}}
	ft := &fakeT{}
	fx.checkInto(ft, repo, []citation{
		{doc: "d.md", line: 1, pkg: "internal/doccheck", name: "TestCitationFormat", text: "internal/doccheck.TestCitationFormat"},
		{doc: "d.md", line: 2, pkg: "internal/doccheck", name: "TestNoSuchTest", text: "internal/doccheck.TestNoSuchTest"},
		{doc: "d.md", line: 3, pkg: "no/such/dir", name: "TestX", text: "no/such/dir.TestX"},
	})
	if len(ft.errs) != 2 || !strings.Contains(ft.errs[0], "TestNoSuchTest") || !strings.Contains(ft.errs[1], "no/such/dir") {
		t.Errorf("errors %q, want one for TestNoSuchTest and one for no/such/dir", ft.errs)
	}
	if !containsArticle("23-25", "24") || !containsArticle("42, 51", "51") || !containsArticle("22(5)", "22") || containsArticle("22(4)", "22(5)") || containsArticle("12", "22") {
		t.Error("containsArticle")
	}
}

type fakeT struct{ errs []string }

func (f *fakeT) Errorf(format string, a ...any) { f.errs = append(f.errs, fmt.Sprintf(format, a...)) }

type errorfer interface{ Errorf(string, ...any) }

func (fx *funcIndex) checkInto(t errorfer, repo string, cs []citation) {
	for _, c := range cs {
		fs, err := fx.funcs(filepath.Join(repo, filepath.FromSlash(c.pkg)))
		switch {
		case err != nil:
			t.Errorf("%s: %v", c, err)
		case !fs[c.name]:
			t.Errorf("%s: no func %s in %s/*_test.go", c, c.name, c.pkg)
		}
	}
}
