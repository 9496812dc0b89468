//go:build ignore

// mutate reads the curated mutant list (mutants/mutants.txt) and applies
// one mutant at a time to a copy of the repository. It is the helper of
// mutants/run.sh; run.sh builds it with `go build mutants/mutate.go`.
//
//	mutate check LIST DIR          every snippet matches exactly once under DIR
//	mutate ids LIST                the mutant IDs, one a line
//	mutate get LIST ID FIELD       a field: file, article, rule, equivalent, tests (one "pkg regexp" a line)
//	mutate apply LIST ID DIR       apply mutant ID to DIR/<file> in place
//	mutate union LIST [ID...]      per package, the alternation of the mutants' -run patterns ("pkg regexp" a line)
//
// The list format is described at the top of mutants/mutants.txt.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type test struct{ pkg, run string }

type mutant struct {
	id, article, file, rule, equivalent string
	tests                               []test
	orig, repl                          string
	line                                int
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	ms, err := parse(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch cmd := os.Args[1]; {
	case cmd == "ids" && len(os.Args) == 3:
		for _, m := range ms {
			fmt.Println(m.id)
		}
	case cmd == "check" && len(os.Args) == 4:
		bad := 0
		for _, m := range ms {
			if _, err := mutated(m, os.Args[3]); err != nil {
				fmt.Println(err)
				bad++
			}
		}
		if bad > 0 {
			fmt.Printf("%d of %d mutants no longer match the code: update mutants/mutants.txt\n", bad, len(ms))
			os.Exit(1)
		}
	case cmd == "get" && len(os.Args) == 5:
		m := find(ms, os.Args[3])
		switch os.Args[4] {
		case "file":
			fmt.Println(m.file)
		case "article":
			fmt.Println(m.article)
		case "rule":
			fmt.Println(m.rule)
		case "equivalent":
			fmt.Println(m.equivalent)
		case "tests":
			for _, t := range m.tests {
				fmt.Println(strings.TrimSpace(t.pkg + " " + t.run))
			}
		default:
			usage()
		}
	case cmd == "apply" && len(os.Args) == 5:
		m := find(ms, os.Args[3])
		out, err := mutated(m, os.Args[4])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if err := os.WriteFile(filepath.Join(os.Args[4], m.file), out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	case cmd == "union":
		runs := map[string][]string{}
		all := map[string]bool{}
		only := map[string]bool{}
		for _, id := range os.Args[3:] {
			only[find(ms, id).id] = true
		}
		for _, m := range ms {
			if len(only) > 0 && !only[m.id] {
				continue
			}
			for _, t := range m.tests {
				if t.run == "" {
					all[t.pkg] = true
				} else {
					runs[t.pkg] = append(runs[t.pkg], t.run)
				}
			}
		}
		var pkgs []string
		for p := range runs {
			pkgs = append(pkgs, p)
		}
		for p := range all {
			if runs[p] == nil {
				pkgs = append(pkgs, p)
			}
		}
		sort.Strings(pkgs)
		for _, p := range pkgs {
			if all[p] {
				fmt.Println(p)
				continue
			}
			seen := map[string]bool{}
			var alt []string
			for _, r := range runs[p] {
				if !seen[r] {
					seen[r] = true
					alt = append(alt, "(?:"+r+")")
				}
			}
			fmt.Println(p + " " + strings.Join(alt, "|"))
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mutate check LIST DIR | ids LIST | get LIST ID FIELD | apply LIST ID DIR | union LIST [ID...]")
	os.Exit(2)
}

func find(ms []mutant, id string) mutant {
	for _, m := range ms {
		if m.id == id {
			return m
		}
	}
	fmt.Fprintf(os.Stderr, "no mutant %q\n", id)
	os.Exit(2)
	return mutant{}
}

// mutated returns the mutated content of m's file under dir, or an error
// when the original snippet is not found exactly once.
func mutated(m mutant, dir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, m.file))
	if err != nil {
		return nil, fmt.Errorf("%s (mutants.txt:%d): %v", m.id, m.line, err)
	}
	s := string(b)
	switch n := strings.Count(s, m.orig); n {
	case 1:
		return []byte(strings.Replace(s, m.orig, m.repl, 1)), nil
	case 0:
		return nil, fmt.Errorf("%s (mutants.txt:%d): the original snippet is no longer in %s", m.id, m.line, m.file)
	default:
		return nil, fmt.Errorf("%s (mutants.txt:%d): the original snippet occurs %d times in %s; make it unique", m.id, m.line, n, m.file)
	}
}

// parse reads the list. A mutant starts with "=== <id>", has "key: value"
// lines (article, file, rule, test (repeatable), equivalent), then
// "--- original", the snippet's lines, "--- replacement", its lines, and
// "--- end". Lines starting with '#' outside snippets are comments.
func parse(path string) ([]mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mutant
	var cur *mutant
	var buf []string
	mode := "" // "", "head", "orig", "repl"
	ids := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	errf := func(format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
	}
	for sc.Scan() {
		n++
		l := sc.Text()
		switch mode {
		case "orig":
			if l == "--- replacement" {
				cur.orig, buf, mode = strings.Join(buf, "\n"), nil, "repl"
			} else {
				buf = append(buf, l)
			}
			continue
		case "repl":
			if l == "--- end" {
				cur.repl, buf, mode = strings.Join(buf, "\n"), nil, ""
				if cur.orig == "" || cur.orig == cur.repl {
					return nil, errf("%s: empty original, or replacement equal to it", cur.id)
				}
				if cur.file == "" || len(cur.tests) == 0 || cur.article == "" || cur.rule == "" {
					return nil, errf("%s: needs file, article, rule and at least one test", cur.id)
				}
				ms = append(ms, *cur)
				cur = nil
			} else {
				buf = append(buf, l)
			}
			continue
		}
		t := strings.TrimSpace(l)
		switch {
		case t == "" || strings.HasPrefix(t, "#"):
		case strings.HasPrefix(t, "=== "):
			if cur != nil {
				return nil, errf("%s: no snippet (--- original ... --- end)", cur.id)
			}
			id := strings.TrimSpace(t[4:])
			if id == "" || strings.ContainsAny(id, " \t") || ids[id] {
				return nil, errf("bad or duplicate id %q", id)
			}
			ids[id] = true
			cur, mode = &mutant{id: id, line: n}, "head"
		case cur == nil:
			return nil, errf("text outside a mutant: %q", t)
		case t == "--- original":
			mode, buf = "orig", nil
		default:
			k, v, ok := strings.Cut(t, ":")
			if !ok {
				return nil, errf("%s: want key: value, got %q", cur.id, t)
			}
			v = strings.TrimSpace(v)
			switch k {
			case "article":
				cur.article = v
			case "file":
				cur.file = v
			case "rule":
				cur.rule = v
			case "equivalent":
				cur.equivalent = v
			case "test":
				pkg, run, _ := strings.Cut(v, " ")
				if !strings.HasPrefix(pkg, "./") {
					return nil, errf("%s: test package %q must start with ./", cur.id, pkg)
				}
				cur.tests = append(cur.tests, test{pkg, strings.TrimSpace(run)})
			default:
				return nil, errf("%s: unknown key %q", cur.id, k)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil || mode != "" {
		return nil, errf("unfinished mutant at end of file")
	}
	return ms, nil
}
