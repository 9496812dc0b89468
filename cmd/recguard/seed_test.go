package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

var update = flag.Bool("update", false, "rewrite examples/data/users.jsonl and events.jsonl (TestExampleData)")

// runSeed calls seed in process.
func runSeed(t *testing.T, args ...string) (stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = seed(context.Background(), args, &o, &e)
	return e.String(), err
}

// seededRecords opens the embedded store in dir and returns every user's
// record, by ID.
func seededRecords(t *testing.T, dir string) map[string]consent.Record {
	t.Helper()
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return storeRecords(t, st)
}

func storeRecords(t *testing.T, st store.Store) map[string]consent.Record {
	t.Helper()
	ctx := context.Background()
	out := map[string]consent.Record{}
	for sh := 0; sh < st.Shards(); sh++ {
		ids, err := st.(store.UserLister).ListUsers(ctx, sh, 1, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			rec, err := st.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = rec
		}
	}
	return out
}

// consentOf is what a record says of the user, without what differs from
// store to store (the user's number, the chain's hashes).
func consentOf(t *testing.T, rec consent.Record) string {
	t.Helper()
	b, err := json.Marshal(struct {
		V uint64
		S consent.State
		T any
		U time.Time
	}{rec.Version, rec.State, rec.Tags, rec.UpdatedAt})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSeedRepeatable: the same flags give the same users' consent state
// and the same events in two stores; another seed gives other data. The
// data has every kind of user the help promises, and seeding a store that
// holds users is refused.
func TestSeedRepeatable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")}
	for i, d := range dirs {
		s := "7"
		if i == 2 {
			s = "8"
		}
		stderr, err := runSeed(t, "--data", d, "--users", "400", "--events", "2000", "--price-gap", "5", "--seed", s, "--end", "2025-04-01", "--workers", "8")
		if err != nil {
			t.Fatalf("seed %s: %v\n%s", d, err, stderr)
		}
		if !strings.Contains(stderr, "seed: 400 users into "+d) || !strings.Contains(stderr, "2,000 outcome events (price gap 5%) in "+filepath.Join(d, "events.jsonl")) {
			t.Errorf("summary: %s", stderr)
		}
	}
	a, b, c := seededRecords(t, dirs[0]), seededRecords(t, dirs[1]), seededRecords(t, dirs[2])
	if len(a) != 400 || len(b) != 400 || len(c) != 400 {
		t.Fatalf("users: %d, %d, %d; want 400 each", len(a), len(b), len(c))
	}
	differ := 0
	var optedOut, refused, minors, guardian, sensitive, restricted, suppressed, declared, inferred int
	for id, ra := range a {
		if consentOf(t, ra) != consentOf(t, b[id]) {
			t.Fatalf("user %s differs with the same seed:\n%s\n%s", id, consentOf(t, ra), consentOf(t, b[id]))
		}
		if consentOf(t, ra) != consentOf(t, c[id]) {
			differ++
		}
		st := ra.State
		for _, x := range []struct {
			on bool
			n  *int
		}{{st.PersonalizationOff, &optedOut}, {len(st.RefusedChannels) > 0, &refused}, {st.Minor, &minors},
			{st.Guardian != nil && st.Guardian.Granted, &guardian}, {len(st.Sensitive) > 0, &sensitive},
			{st.Restricted, &restricted}, {len(ra.Tags.Suppressed) > 0, &suppressed}} {
			if x.on {
				*x.n++
			}
		}
		for _, e := range ra.Tags.Entries {
			if e.Source == "declared" {
				declared++
			} else {
				inferred++
			}
		}
	}
	if differ < 330 {
		t.Errorf("another seed changed only %d of 400 users", differ)
	}
	for name, n := range map[string]int{"opted out": optedOut, "refusing": refused, "minors": minors, "with guardian consent": guardian,
		"with a sensitive grant": sensitive, "restricted": restricted, "with a deleted tag": suppressed, "declared tags": declared, "inferred tags": inferred} {
		if n == 0 {
			t.Errorf("no user %s", name)
		}
	}
	ea, _ := os.ReadFile(filepath.Join(dirs[0], "events.jsonl"))
	eb, _ := os.ReadFile(filepath.Join(dirs[1], "events.jsonl"))
	ec, _ := os.ReadFile(filepath.Join(dirs[2], "events.jsonl"))
	if len(ea) == 0 || !bytes.Equal(ea, eb) || bytes.Equal(ea, ec) {
		t.Errorf("events: %d bytes, same seed equal %t, other seed equal %t", len(ea), bytes.Equal(ea, eb), bytes.Equal(ea, ec))
	}
	if n := bytes.Count(ea, []byte("\n")); n != 2000 {
		t.Errorf("%d events; want 2000", n)
	}

	// The seeded store is a store like any other: verify finds its chains
	// whole under the key seed made with it.
	var o, e bytes.Buffer
	if code := verifyCmd(context.Background(), []string{"--data", dirs[0]}, &o, &e); code != 0 {
		t.Errorf("verify of a seeded store: status %d\n%s", code, e.String())
	}
	// A store that holds users is refused, and left as it was.
	stderr, err := runSeed(t, "--data", dirs[0], "--users", "10", "--events", "0")
	if err == nil || !strings.Contains(err.Error(), "already holds users") {
		t.Errorf("seeding a store with users: %v\n%s", err, stderr)
	}
	if got := seededRecords(t, dirs[0]); len(got) != 400 {
		t.Errorf("the refused seed changed the store: %d users", len(got))
	}
}

// TestSeedFlags: --help prints the usage and succeeds, bad flags fail
// with errSeedUsage (exit 2), and neither creates a data directory.
func TestSeedFlags(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	stderr, err := runSeed(t, "--help", "--data", dir)
	if err != nil || !strings.Contains(stderr, "usage: recguard seed") || !strings.Contains(stderr, "-price-gap") {
		t.Errorf("--help: %v\n%s", err, stderr)
	}
	for _, args := range [][]string{
		{"--users", "0"},
		{"--users", "many"},
		{"--events", "-2"},
		{"--price-gap", "-100"},
		{"--price-gap", "NaN"},
		{"--workers", "0"},
		{"--end", "yesterday"},
		{"--no-such-flag"},
		{"extra"},
		{"--redis", "redis://127.0.0.1:1/0"}, // no chain key
		{"--redis", "redis://127.0.0.1:1/0", "--redis-cluster", "127.0.0.1:1", "--unkeyed-chain"},
	} {
		stderr, err := runSeed(t, append(args, "--data", dir)...)
		if !errors.Is(err, errSeedUsage) || stderr == "" {
			t.Errorf("%v: %v (want a usage error, printed)\n%s", args, err, stderr)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--help or bad flags created %s: %v", dir, err)
	}
}

// TestSeedExitStatus: the binary exits 0 for --help, 2 for bad flags, 1
// when seeding fails.
func TestSeedExitStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	status := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	_, stderr, err := runCLI(t, "seed", "--help", "--data", dir)
	if status(err) != 0 || !strings.Contains(stderr, "usage: recguard seed") {
		t.Errorf("--help: %v\n%s", err, stderr)
	}
	_, stderr, err = runCLI(t, "seed", "--users", "0", "--data", dir)
	if status(err) != 2 || !strings.Contains(stderr, "--users 0") {
		t.Errorf("--users 0: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--help or bad flags created %s", dir)
	}
	// A Redis without a recguard keyspace and no --init.
	_, stderr, err = runCLI(t, "seed", "--redis", "redis://127.0.0.1:1/0", "--redis-dial-timeout", "50ms", "--unkeyed-chain", "--users", "1")
	if status(err) != 1 {
		t.Errorf("an unreachable Redis: %v\n%s", err, stderr)
	}
}

// auditorCommands returns the recguard commands of the README's auditor
// journey: the lines of its first ```sh block after "nothing to an HTML
// bias report" that run ./cmd/recguard, as arguments.
func auditorCommands(t *testing.T) [][]string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "nothing to an HTML bias report")
	if i < 0 {
		t.Fatal(`README.md: no "nothing to an HTML bias report"`)
	}
	j := strings.Index(s[i:], "```sh\n")
	if j < 0 {
		t.Fatal("README.md: no sh block after the auditor's journey")
	}
	block := s[i+j+len("```sh\n"):]
	block = block[:strings.Index(block, "```")]
	var cmds [][]string
	for _, line := range strings.Split(block, "\n") {
		if k := strings.Index(line, "#"); k >= 0 {
			line = line[:k]
		}
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "go" && f[1] == "run" && f[2] == "./cmd/recguard" {
			cmds = append(cmds, f[3:])
		}
	}
	return cmds
}

// TestReadmeAuditorJourney runs the README's auditor journey as written
// (in a temporary directory; under the race detector with fewer users):
// a seeded store with a 3% price gap, then an HTML report that finds it.
func TestReadmeAuditorJourney(t *testing.T) {
	t.Parallel()
	cmds := auditorCommands(t)
	if len(cmds) != 2 || cmds[0][0] != "seed" || cmds[1][0] != "audit" {
		t.Fatalf("the README's auditor journey should seed, then audit: %q", cmds)
	}
	work := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	for _, args := range cmds {
		args = slices.Clone(args)
		for i, a := range args {
			switch {
			case strings.HasPrefix(a, "./") || a == "report.html":
				args[i] = filepath.Join(work, a) // the newcomer's working directory
			case strings.HasPrefix(a, "examples/"):
				args[i] = filepath.Join(root, a) // the clone's files
			case raceEnabled && i > 0 && args[i-1] == "--users":
				args[i] = "1500"
			}
			if a == "--out" {
				out = args[i+1]
			}
		}
		stdout, stderr, err := runInProcess(t, args...)
		if err != nil {
			t.Fatalf("recguard %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
		}
	}
	if out == "" {
		t.Fatal("the audit writes no --out file")
	}
	out = filepath.Join(work, "report.html")
	html, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(html), []byte("<!DOCTYPE html>")) && !bytes.HasPrefix(bytes.TrimSpace(html), []byte("<!doctype html>")) {
		t.Errorf("report.html is not an HTML document: %.100s", html)
	}
	if !regexp.MustCompile(`gold paid [0-9.]+% more than new for the same item`).Match(html) {
		t.Errorf("the report does not find the planted gap (gold paid ...%% more than new for the same item)")
	}
}

// exampleData is the configuration of examples/data.
var exampleData = seedConfig{users: 240, events: 2400, seed: 1, priceGap: 5, end: time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)}

// TestExampleData: examples/data/users.jsonl and events.jsonl are what the
// seed generator makes of exampleData (go test ./cmd/recguard -run
// TestExampleData -update rewrites them); the users file gives each user
// the facts a seeded store gives; and the audit of examples/data with its
// spec writes an HTML report that finds gold's 5% price gap.
func TestExampleData(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "examples", "data")
	var users, events bytes.Buffer
	cfg := exampleData
	if err := cfg.writeFiles(&users, &events); err != nil {
		t.Fatal(err)
	}
	if *update {
		for name, b := range map[string][]byte{"users.jsonl": users.Bytes(), "events.jsonl": events.Bytes()} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range map[string][]byte{"users.jsonl": users.Bytes(), "events.jsonl": events.Bytes()} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("examples/data/%s is not what the generator makes: go test ./cmd/recguard -run TestExampleData -update", name)
		}
	}

	// The users file's facts are a seeded store's.
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := cfg.run(ctx, st, nil, nil, 4, nil); err != nil {
		t.Fatal(err)
	}
	fileFacts, probs, err := audit.UsersFile(bytes.NewReader(users.Bytes()), "users.jsonl")
	if err != nil || len(probs) > 0 {
		t.Fatalf("users file: %v %v", err, probs)
	}
	ids := make([]string, cfg.users)
	for i := range ids {
		ids[i] = cfg.userID(i)
	}
	fromFile, err := fileFacts.Facts(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	fromStore, err := audit.StoreFacts(st).Facts(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromStore) < cfg.users*9/10 {
		t.Errorf("only %d of %d users have facts", len(fromStore), cfg.users)
	}
	for _, id := range ids {
		a, b := slices.Sorted(slices.Values(fromFile[id])), slices.Sorted(slices.Values(fromStore[id]))
		if !slices.Equal(a, b) {
			t.Errorf("user %s: the file says %v, the store %v", id, a, b)
		}
	}

	// The audit of the files, as the README shows it.
	out := filepath.Join(t.TempDir(), "report.html")
	stdout, stderr, err := runAudit(t, "--spec", filepath.Join(dir, "spec.yaml"), "--events", filepath.Join(dir, "events.jsonl"),
		"--users", filepath.Join(dir, "users.jsonl"), "--format", "html", "--out", out)
	if err != nil {
		t.Fatalf("audit of examples/data: %v\n%s%s", err, stdout, stderr)
	}
	html, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`gold paid [0-9.]+% more than new for the same item`).Match(html) {
		t.Errorf("the report of examples/data does not find gold's price gap")
	}
	if regexp.MustCompile(`silver paid [0-9.]+% more than new`).Match(html) {
		t.Errorf("the report of examples/data finds a gap for silver, which has none")
	}
}

// TestSeedRedis: seed into a new Redis keyspace (with --init and a chain
// key) gives the users the embedded store gets from the same flags, and
// keeps the events in the store for audit --events store. Without --init
// an empty keyspace is refused.
func TestSeedRedis(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	url := "redis://" + redistest.Addrs()[0] + "/0"
	if len(redistest.Addrs()) > 1 {
		t.Skip("a single Redis only (the cluster flags are the store's own)")
	}
	t.Setenv("RECGUARD_CHAIN_KEY", hex.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	common := []string{"--users", "300", "--events", "2000", "--seed", "3", "--end", "2025-04-01"}
	stderr, err := runSeed(t, append([]string{"--redis", url, "--prefix", prefix}, common...)...)
	if err == nil || !strings.Contains(err.Error(), "--init") {
		t.Fatalf("an empty keyspace without --init: %v\n%s", err, stderr)
	}
	stderr, err = runSeed(t, append([]string{"--redis", url, "--prefix", prefix, "--init"}, common...)...)
	if err != nil {
		t.Fatalf("seed: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "2,000 outcome events (price gap 0%) in the store") {
		t.Errorf("summary: %s", stderr)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if stderr, err := runSeed(t, append([]string{"--data", dir}, common...)...); err != nil {
		t.Fatalf("seed: %v\n%s", err, stderr)
	}
	ctx := context.Background()
	st, err := rs.New(ctx, c, rs.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	inRedis, embedded := storeRecords(t, st), seededRecords(t, dir)
	if len(inRedis) != 300 {
		t.Fatalf("%d users in Redis; want 300", len(inRedis))
	}
	for id, r := range inRedis {
		if consentOf(t, r) != consentOf(t, embedded[id]) {
			t.Fatalf("user %s: Redis and the embedded store differ:\n%s\n%s", id, consentOf(t, r), consentOf(t, embedded[id]))
		}
	}
	var stored []byte
	if err := st.ReadOutcomes(ctx, func(ev []byte) error {
		stored = append(append(stored, ev...), '\n')
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sortLines := func(b []byte) []string {
		var out []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		slices.Sort(out)
		return out
	}
	if a, b := sortLines(stored), sortLines(file); !slices.Equal(a, b) {
		t.Errorf("the events in Redis (%d) are not the events of the embedded store's file (%d)", len(a), len(b))
	}
}

// TestSeedProgress: off a terminal, progress lines name the phase and
// the counts; on one, a bar is redrawn in place and ends with a newline.
func TestSeedProgress(t *testing.T) {
	t.Parallel()
	for _, tty := range []bool{false, true} {
		var buf syncBuffer
		p := newSeedProgress(&buf, tty)
		p.every = 5 * time.Millisecond
		p.phase("users", 200)
		p.add(100, 450)
		time.Sleep(50 * time.Millisecond)
		p.phase("events", 1000)
		p.add(1000, 0)
		p.stop()
		s := buf.String()
		switch {
		case !tty && (!strings.Contains(s, "seed: 100/200 users, 450 changes") || strings.Contains(s, "\r")):
			t.Errorf("progress lines: %q", s)
		case tty && (!strings.Contains(s, "\rseeding users  [") || !strings.Contains(s, "1000/1000 events") ||
			!strings.Contains(s, "] 100% ") || !strings.HasSuffix(s, "\n")):
			t.Errorf("progress bar: %q", s)
		}
	}
}
