package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// parallelInput is a synthetic events file with, among its lines,
// malformed ones (bad JSON, a missing field, an unknown field, a yes/no
// field as a string), a line longer than MaxLineBytes, blank lines, CRLF
// endings and lines the fast decoder leaves to encoding/json (escapes):
// the odd lines spread over many chunks, at known line numbers.
func parallelInput(t *testing.T) (events []byte, facts UserFacts, spec Spec, odd map[int64]bool) {
	t.Helper()
	cfg := SynthConfig{Seed: 31, Users: 900, Events: 24000, Items: 40, Groups: 3, Span: 48 * time.Hour, PriceGap: 0.04, ClickGap: 0.03}
	var evb, ub bytes.Buffer
	if err := Synthesize(cfg, &evb, &ub); err != nil {
		t.Fatal(err)
	}
	uf, probs, err := UsersFile(&ub, "users")
	if err != nil || len(probs) > 0 {
		t.Fatalf("users: %v %+v", err, probs)
	}
	bad := []string{
		`not json`,
		`{"user":"u0000001","time":"2025-03-01T10:00:00Z","mode":"personalized"}`,
		`{"user":"u0000001","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","colour":"red"}`,
		`{"user":"u0000001","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":"true"}`,
		`{"user":"u0000001","item":"` + strings.Repeat("x", MaxLineBytes) + `","time":"2025-03-01T10:00:00Z","mode":"personalized"}`,
	}
	odd = map[int64]bool{}
	var out bytes.Buffer
	line := int64(0)
	for i, l := range strings.Split(strings.TrimSuffix(evb.String(), "\n"), "\n") {
		switch {
		case i%997 == 13:
			line++
			out.WriteString(bad[i%len(bad)] + "\n")
			odd[line] = true
		case i%1499 == 7:
			line++
			out.WriteString("  \t\n") // blank: skipped, but counted
		case i%211 == 5:
			// An escaped character: encoding/json decodes it.
			l = strings.Replace(l, `"mode"`, `"mod\u0065"`, 1)
		}
		line++
		if i%3 == 0 {
			out.WriteString(l + "\r\n")
		} else {
			out.WriteString(l + "\n")
		}
	}
	return out.Bytes(), uf, SynthSpec(cfg), odd
}

// runOn runs the audit with GOMAXPROCS set to procs (1: the reading on
// one goroutine; more: decoded in parallel, readpar.go) and returns the
// report as JSON.
func runOn(t *testing.T, procs int, src func() Source, facts UserFacts, spec Spec, opts Options) ([]byte, *Report, error) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	opts.Now = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	r, err := Run(context.Background(), spec, src(), facts, opts)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b, r, nil
}

// Decoding on several cores gives the report one core gives, byte for
// byte: the same events in the same order (user and item numbers, the
// sums' order), the same malformed lines with the same line numbers.
func TestParallelReadMatchesOneCore(t *testing.T) {
	data, facts, spec, odd := parallelInput(t)
	src := func() Source { return ReadJSONL(bytes.NewReader(data), "events.jsonl") }
	one, r1, err := runOn(t, 1, src, facts, spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, procs := range []int{2, 4} {
		many, rn, err := runOn(t, procs, src, facts, spec, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(one, many) {
			t.Errorf("GOMAXPROCS %d: the report differs from one core's (events %d/%d, skipped %d/%d)", procs, r1.Events, rn.Events, r1.Skipped, rn.Skipped)
		}
	}
	if int(r1.Skipped) != len(odd) || len(r1.Problems) != min(len(odd), MaxProblems) {
		t.Fatalf("skipped %d, problems %d, want %d", r1.Skipped, len(r1.Problems), len(odd))
	}
	prev := int64(0)
	for _, p := range r1.Problems {
		if !odd[p.Line] || p.Line <= prev {
			t.Fatalf("problem at line %d (after %d): not a malformed line, or out of order", p.Line, prev)
		}
		prev = p.Line
	}
	if r1.Events == 0 || len(r1.Tests) == 0 || len(r1.Prices) == 0 {
		t.Fatalf("report without events or comparisons: %d events", r1.Events)
	}
}

// failAfter reads data, then fails with err.
func failAfter(data []byte, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(data), errReader{err})
}

// A read error, a malformed line in strict mode and a cancelled context
// end a parallel read as they end a read on one core: the same error, and
// no goroutine left behind.
func TestParallelReadErrorsAndStops(t *testing.T) {
	data, facts, spec, odd := parallelInput(t)
	boom := errors.New("disk gone")
	cut := data[:len(data)*2/3]
	before := runtime.NumGoroutine()
	for _, procs := range []int{1, 2, 4} {
		_, _, err := runOn(t, procs, func() Source { return ReadJSONL(failAfter(cut, boom), "events.jsonl") }, facts, spec, Options{})
		if !errors.Is(err, boom) {
			t.Errorf("GOMAXPROCS %d: read error = %v, want %v", procs, err, boom)
		}
		first := int64(1 << 62)
		for l := range odd {
			first = min(first, l)
		}
		_, _, err = runOn(t, procs, func() Source { return ReadJSONL(bytes.NewReader(data), "events.jsonl") }, facts, spec, Options{Strict: true})
		var le *LineError
		if !errors.As(err, &le) || le.Line != first || le.File != "events.jsonl" {
			t.Errorf("GOMAXPROCS %d: strict = %v, want the first malformed line, %d", procs, err, first)
		}
		ctx, cancel := context.WithCancel(context.Background())
		slow := &slowReader{r: bytes.NewReader(data), after: len(data) / 3, cancel: cancel}
		func() {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			_, err = Run(ctx, spec, ReadJSONL(slow, "events.jsonl"), facts, Options{})
		}()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("GOMAXPROCS %d: cancelled = %v", procs, err)
		}
	}
	// Every goroutine of the reads has ended (a grace period for the
	// scheduler).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// slowReader cancels once after bytes have been read, then goes on
// reading.
type slowReader struct {
	r      io.Reader
	after  int
	read   int
	cancel func()
}

func (s *slowReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p[:min(len(p), 4096)])
	s.read += n
	if s.read >= s.after && s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	return n, err
}

// FuzzParallelRead: whatever the input, decoding on several cores and on
// one give the same report, or the same error (on a machine of one core
// both are the one-goroutine reader).
func FuzzParallelRead(f *testing.F) {
	ok := `{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","price":9.5,"clicked":1}`
	f.Add([]byte(ok + "\n" + ok + "\r\n\n" + `{"user":"u2","item":"i\u0031","time":"2025-03-01T11:00:00Z","mode":"non_personalized"}`))
	f.Add([]byte("not json\n" + ok + "\n{}\n" + ok))
	f.Add([]byte(strings.Repeat(ok+"\n", 300) + "[]\n" + strings.Repeat(ok+"\n", 300)))
	spec := Spec{Groups: []GroupSpec{{Name: "all", Segment: "*"}, {Name: "off", Segment: "!consent:personalization_off"}}, Reference: "all"}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Toggling GOMAXPROCS in a fuzzing worker makes each run take
		// seconds, so the one-goroutine reader is chosen with
		// parallelReading instead, on the same cores.
		run := func(parallel bool, strict bool) string {
			defer func(p bool) { parallelReading = p }(parallelReading)
			parallelReading = parallel
			r, err := Run(context.Background(), spec, ReadJSONL(bytes.NewReader(data), "f"), nil,
				Options{Strict: strict, Now: func() time.Time { return time.Unix(0, 0) }})
			if err != nil {
				return "error: " + err.Error()
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		for _, strict := range []bool{false, true} {
			if one, many := run(false, strict), run(true, strict); one != many {
				t.Fatalf("strict %v: one decoding goroutine and several differ:\n%s\n%s", strict, one, many)
			}
		}
	})
}

// genLines is a reader of n lines of size bytes each ("x"s), made as read.
type genLines struct {
	n, size, line, off int
}

func (g *genLines) Read(p []byte) (int, error) {
	k := 0
	for k < len(p) {
		if g.line == g.n {
			if k == 0 {
				return 0, io.EOF
			}
			break
		}
		if g.off == g.size {
			p[k] = '\n'
			k++
			g.line, g.off = g.line+1, 0
			continue
		}
		m := min(len(p)-k, g.size-g.off)
		for i := range m {
			p[k+i] = 'x'
		}
		k, g.off = k+m, g.off+m
	}
	return k, nil
}

// A chunk of the parallel reader holds at most chunkBytes plus one line,
// however long the lines (up to MaxLineBytes): the chunks in flight (at
// most maxChunks) bound the memory the reading takes. Every line is kept,
// with its number, and an over-long one as -1.
func TestParallelChunkBytesBounded(t *testing.T) {
	for _, size := range []int{100, 200 << 10, MaxLineBytes - 1, MaxLineBytes + 10} {
		lr := newLineReader(&genLines{n: 40, size: size})
		var p parLines
		lines := 0
		for {
			p.reset()
			err := p.fill(lr)
			if len(p.buf) > chunkBytes+MaxLineBytes || len(p.ends) > chunkSize {
				t.Fatalf("lines of %d bytes: a chunk of %d bytes, %d lines", size, len(p.buf), len(p.ends))
			}
			for i, end := range p.ends {
				lines++
				if p.lines[i] != int64(lines) {
					t.Fatalf("lines of %d bytes: line %d numbered %d", size, lines, p.lines[i])
				}
				if (end < 0) != (size > MaxLineBytes) {
					t.Fatalf("lines of %d bytes: end %d", size, end)
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if lines != 40 {
			t.Fatalf("lines of %d bytes: %d lines read, want 40", size, lines)
		}
	}
}
