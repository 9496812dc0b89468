package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests build the real recguard binary once per test run and
// drive it as a user would: serve, keys create/revoke/list, HTTP, signals.

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// moduleRoot walks up from the working directory to the directory with go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// recguardBinary builds ./cmd/recguard (with -race when the tests have it)
// and returns its path.
func recguardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "recguard-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(buildDir, "recguard")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/recguard")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool(), args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer collects a process's output; safe to read while it writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testChainKeyHex is the receipt chain key the Redis tests give serve
// (a Redis store has no default key).
const testChainKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// proc is a running `recguard serve`.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error // set when done is closed
	base   string
	addr   string
}

// childEnv is the environment of the binary under test: this process's,
// without RECGUARD_ variables that would set its flags (a developer's shell
// must not change what the tests run), plus env.
func childEnv(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RECGUARD_") && !strings.HasPrefix(kv, "RECGUARD_REDIS_ADDRS=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, env...)
}

// startServe starts `recguard serve args...`, waits (at most 20 s) for its
// "listening on" line and returns it. The process is killed at the end of
// the test if it is still running.
func startServe(t *testing.T, args ...string) *proc {
	t.Helper()
	return startServeEnv(t, nil, args...)
}

// startServeEnv is startServe with more environment variables (KEY=VALUE).
func startServeEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	bin := recguardBinary(t)
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	p.cmd.Env = childEnv(env)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.Dir = t.TempDir() // a default ./recguard-data never lands in the source tree
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start recguard serve: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)

	re := regexp.MustCompile(`(?m)^listening on (\S+)$`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			p.addr = m[1]
			p.base = "http://" + m[1]
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("recguard serve %v exited before listening: %v\nstdout:\n%s\nstderr:\n%s", args, p.err, p.stdout.String(), p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("recguard serve %v printed no \"listening on\" line in 20 s\nstdout:\n%s\nstderr:\n%s", args, p.stdout.String(), p.stderr.String())
		}
	}
}

// kill stops the process at once if it still runs.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("recguard serve (pid %d) did not die after SIGKILL", p.cmd.Process.Pid)
	}
}

// adminKey returns the first-start admin key's ID and key from stdout, and
// whether one was printed.
func (p *proc) adminKey() (id, key string, ok bool) {
	m := regexp.MustCompile(`first start: admin key (\S+) \(shown once[^\n]*\n(\S+)\n`).FindStringSubmatch(p.stdout.String())
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits at most d for the process to exit and requires exit code 0.
func (p *proc) waitExit(d time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("recguard serve did not exit within %v\nstderr:\n%s", d, p.stderr.String())
	}
	if p.err != nil {
		p.t.Fatalf("recguard serve exited with %v, want exit code 0\nstdout:\n%s\nstderr:\n%s", p.err, p.stdout.String(), p.stderr.String())
	}
}

// stop sends SIGTERM and requires a clean exit within 20 s.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	p.waitExit(20 * time.Second)
}

// waitReady polls /readyz until it answers 200 (at most 20 s): the server's
// changelog followers are current, so decisions are not "unverified".
func (p *proc) waitReady() {
	p.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(p.base + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("recguard not ready within 20 s: %v\nstderr:\n%s", err, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runCLI runs the recguard binary with args (at most 30 s) and returns its
// stdout, stderr and error.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCLIEnv(t, nil, args...)
}

// runCLIEnv is runCLI with more environment variables (KEY=VALUE).
func runCLIEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, recguardBinary(t), args...)
	cmd.Env = childEnv(env)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Dir = t.TempDir() // a default ./recguard-data never lands in the source tree
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustCLI is runCLI that fails the test on an error.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("recguard %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// createKey runs `recguard keys create` and returns the key and its ID.
func createKey(t *testing.T, role string, storeFlags ...string) (key, id string) {
	t.Helper()
	out := mustCLI(t, append([]string{"keys", "create", "--role", role, "--name", "e2e " + role}, storeFlags...)...)
	key = strings.TrimSpace(out)
	m := regexp.MustCompile(`^rg_([0-9a-f]{12})_[A-Za-z0-9_-]+$`).FindStringSubmatch(key)
	if m == nil {
		t.Fatalf("keys create printed %q, want one key rg_<id>_<secret>", out)
	}
	return key, m[1]
}

// client talks to a running server.
type client struct {
	t      *testing.T
	base   string
	hc     *http.Client
	header map[string]string // sent with every request
}

// with returns a client that also sends the headers h.
func (c *client) with(h map[string]string) *client {
	cc := *c
	cc.header = h
	return &cc
}

func newClient(t *testing.T, base string) *client {
	return &client{t: t, base: base, hc: &http.Client{Timeout: 10 * time.Second}}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with an optional bearer key and JSON body.
func (c *client) do(method, path, key string, body any) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// expect sends a request, requires the status and decodes the body into out
// (when not nil).
func (c *client) expect(method, path, key string, body any, status int, out any) response {
	c.t.Helper()
	r := c.do(method, path, key, body)
	if r.status != status {
		c.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, r.body, err)
		}
	}
	return r
}

// problemOf requires an application/problem+json answer and decodes it.
func problemOf(t *testing.T, what string, r response) problemJSON {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("%s: Content-Type %q, want application/problem+json; body: %s", what, ct, r.body)
	}
	var p problemJSON
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("%s: decoding problem %s: %v", what, r.body, err)
	}
	if p.Status != r.status {
		t.Errorf("%s: problem status %d, HTTP status %d", what, p.Status, r.status)
	}
	return p
}

// The wire shapes the tests read (only the fields they check).

type problemJSON struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

type decisionJSON struct {
	UserID       string   `json:"user_id"`
	Personalized bool     `json:"personalized"`
	Reason       string   `json:"reason"`
	Tags         []string `json:"tags"`
	PushBlock    string   `json:"push_block"`
}

type canPushJSON struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
}

type stateJSON struct {
	PersonalizationOff bool     `json:"personalization_off"`
	RefusedChannels    []string `json:"refused_channels"`
	Erased             bool     `json:"erased"`
}

type receiptJSON struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Seq    uint64 `json:"seq"`
	Op     string `json:"op"`
	Hash   string `json:"hash"`
}

type consentJSON struct {
	UserID  string       `json:"user_id"`
	Version uint64       `json:"version"`
	State   stateJSON    `json:"state"`
	Receipt *receiptJSON `json:"receipt"`
}

type exportJSON struct {
	Schema string `json:"$schema"`
	Record struct {
		UserID  string    `json:"user_id"`
		Version uint64    `json:"version"`
		State   stateJSON `json:"state"`
		Tags    struct {
			Entries    []json.RawMessage `json:"entries"`
			Suppressed []json.RawMessage `json:"suppressed"`
		} `json:"tags"`
	} `json:"record"`
	Receipts []receiptJSON    `json:"receipts"`
	Erasure  *json.RawMessage `json:"erasure"`
}

type receiptsJSON struct {
	Receipts   []receiptJSON    `json:"receipts"`
	ChainValid bool             `json:"chain_valid"`
	Erased     bool             `json:"erased"`
	Erasure    *json.RawMessage `json:"erasure"`
}

// auditReceiptsJSON is GET /v1/audit/users/{id}/receipts.
type auditReceiptsJSON struct {
	Version     uint64 `json:"version"`
	Erased      bool   `json:"erased"`
	ChainValid  bool   `json:"chain_valid"`
	ChainReason string `json:"chain_reason"`
	Receipts    []struct {
		Op       string `json:"op"`
		Seq      uint64 `json:"seq"`
		Redacted bool   `json:"redacted"`
		Subject  string `json:"subject"`
	} `json:"receipts"`
}

type audienceJSON struct {
	Count uint64   `json:"count"`
	Users []string `json:"users"`
}

// healthzDown reports whether GET /healthz gets no answer at all.
func healthzDown(base string) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return true
	}
	resp.Body.Close()
	return false
}

// waitRefused waits (at most d) until nothing accepts connections on addr.
func waitRefused(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections after %v", addr, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
