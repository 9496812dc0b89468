package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store/memory"
)

// TestServeKill SIGKILLs an embedded-store `recguard serve` while clients
// turn users' personalization off and on over HTTP and ask for decisions,
// restarts it on the same data directory, and checks that every
// acknowledged (200) change is in the store with its receipt, and that no
// decision said personalized after an acknowledged opt-out.
func TestServeKill(t *testing.T) {
	m := currentMode()
	m.parallel(t)
	bin := recguardBinary(t)
	tab := &table{head: []string{"seed", "killed at", "down for", "restart to first answer", "acked (opt-outs)", "lost", "personalized after opt-out"}}
	trials(t, m, 1, 5, func(t *testing.T, seed int64) {
		r := rand.New(rand.NewPCG(uint64(seed), 4))
		dir := filepath.Join(t.TempDir(), "data")
		const clients = 6 // 4 writers, 2 readers: one app key each (each key has its own rate limit)
		var keys []string
		for i := 0; i < clients; i++ {
			keys = append(keys, createAppKey(t, bin, dir))
		}
		users := makeUsers("s", 48)
		warm := jitter(r, 700*time.Millisecond, 1500*time.Millisecond)
		down := jitter(r, 0, 300*time.Millisecond)
		if m.long {
			down = jitter(r, 0, 2*time.Second)
		}
		args := []string{"--data", dir, "--addr", "127.0.0.1:0", "--lease", m.lease.String()}
		p := startServe(t, bin, args...)
		var base atomic.Value
		base.Store(p.base)
		t.Logf("SIGKILL at +%v, down for %v", warm, down)

		hw := startHTTPWorkload(&base, users, keys, seed)
		time.Sleep(warm)
		killAt := time.Now()
		p.kill()
		sleepUntil(killAt.Add(down))
		restartAt := time.Now()
		p2 := startServe(t, bin, args...)
		base.Store(p2.base)
		firstAnswer := waitAnswer(t, p2.base, keys[len(keys)-1], users[0])
		time.Sleep(time.Second)
		h := hw.halt()
		p2.stop()

		// The truth: the data directory itself.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := memory.Open(ctx, memory.Options{Dir: dir})
		if err != nil {
			t.Fatalf("opening the data directory after the trial: %v", err)
		}
		defer st.Close()
		truth := readTruth(t, st, users)
		vs, ls := reportHistory(t, h, truth, true)
		acked, ackedOff := h.Acked()
		t.Logf("%d ops (%d acknowledged, %d opt-outs), %d answers; restart to first answer %v; errors: %s",
			len(h.Ops), acked, ackedOff, len(h.Answers), firstAnswer.Sub(restartAt), errSummary(h))
		if acked == 0 {
			t.Errorf("no change was acknowledged: the trial proved nothing")
		}
		tab.add(fmt.Sprint(seed), "+"+ms(warm), ms(down), ms(firstAnswer.Sub(restartAt)), fmt.Sprintf("%d (%d)", acked, ackedOff), fmt.Sprint(LostOps(ls)), fmt.Sprint(len(vs)))
	})
	t.Log(tab)
}

// httpWorkload is writers and readers talking to `recguard serve`.
type httpWorkload struct {
	stop chan struct{}
	wg   sync.WaitGroup
	recs []*recorder
}

// startHTTPWorkload runs len(keys)-2 writers (each owning users, toggling
// them with PUT .../consent/personalization) and 2 readers (GET
// .../decision), each with its own key, against the server at base.
func startHTTPWorkload(base *atomic.Value, users, keys []string, seed int64) *httpWorkload {
	w := &httpWorkload{stop: make(chan struct{})}
	writers := len(keys) - 2
	for i, key := range keys {
		rec := &recorder{}
		w.recs = append(w.recs, rec)
		r := rand.New(rand.NewPCG(uint64(seed), uint64(3000+i)))
		hc := &http.Client{Timeout: 3 * time.Second}
		w.wg.Add(1)
		if i < writers {
			var own []string
			for k, u := range users {
				if k%writers == i {
					own = append(own, u)
				}
			}
			go func() {
				defer w.wg.Done()
				w.write(hc, base, key, own, r, rec)
			}()
		} else {
			go func() {
				defer w.wg.Done()
				w.read(hc, base, key, users, r, rec)
			}()
		}
	}
	return w
}

func (w *httpWorkload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// pause keeps each client under its key's rate limit (200/s).
func (w *httpWorkload) pause(r *rand.Rand) {
	select {
	case <-w.stop:
	case <-time.After(6*time.Millisecond + time.Duration(r.Int64N(int64(4*time.Millisecond)))):
	}
}

func (w *httpWorkload) write(hc *http.Client, base *atomic.Value, key string, own []string, r *rand.Rand, rec *recorder) {
	lastOff := map[string]bool{}
	for !w.stopped() {
		u := own[r.IntN(len(own))]
		off := !lastOff[u]
		lastOff[u] = off
		body, _ := json.Marshal(map[string]any{"enabled": !off, "surface": "app_settings"})
		o := Op{Inst: "serve", User: u, Off: off, Invoke: time.Now()}
		var resp struct {
			Version uint64 `json:"version"`
			Receipt *struct {
				Hash string `json:"hash"`
			} `json:"receipt"`
		}
		status, err := call(hc, "PUT", base.Load().(string)+"/v1/users/"+u+"/consent/personalization", key, body, &resp)
		o.Complete = time.Now()
		switch {
		case err != nil:
			o.Err = err.Error()
		case status != http.StatusOK:
			o.Err = fmt.Sprintf("HTTP %d", status)
		default:
			o.Acked, o.Version = true, resp.Version
			if resp.Receipt != nil {
				o.Hash = resp.Receipt.Hash
			}
		}
		rec.ops = append(rec.ops, o)
		w.pause(r)
	}
}

func (w *httpWorkload) read(hc *http.Client, base *atomic.Value, key string, users []string, r *rand.Rand, rec *recorder) {
	for !w.stopped() {
		u := users[r.IntN(len(users))]
		a := Answer{Inst: "serve", User: u, Start: time.Now()}
		var d struct {
			Personalized bool           `json:"personalized"`
			Reason       consent.Reason `json:"reason"`
		}
		status, err := call(hc, "GET", base.Load().(string)+"/v1/users/"+u+"/decision", key, nil, &d)
		a.End = time.Now()
		if err == nil && status == http.StatusOK {
			a.Personalized, a.Reason = d.Personalized, d.Reason
			rec.answers = append(rec.answers, a)
		}
		w.pause(r)
	}
}

func (w *httpWorkload) halt() *History {
	close(w.stop)
	w.wg.Wait()
	return merge(w.recs)
}

// call does one request with the key and decodes a JSON answer into out
// (when the status is 200).
func call(hc *http.Client, method, url, key string, body []byte, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

// waitAnswer polls the decision route until it answers 200 with a verified
// decision (at most 20 s) and returns when it did.
func waitAnswer(t *testing.T, base, key, user string) time.Time {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var d struct {
			Reason consent.Reason `json:"reason"`
		}
		status, err := call(hc, "GET", base+"/v1/users/"+user+"/decision", key, nil, &d)
		if err == nil && status == http.StatusOK {
			a := Answer{Reason: d.Reason}
			if !a.failClosed() {
				return time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verified decision from the restarted server within 20 s: status %d, err %v, reason %v", status, err, d.Reason)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// createAppKey runs `recguard keys create --role app --data dir` (the
// server must not be running) and returns the key.
func createAppKey(t *testing.T, bin, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "keys", "create", "--role", "app", "--data", dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("recguard keys create: %v\n%s", err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// serveProc is a running `recguard serve`.
type serveProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error
	base   string
}

// startServe starts `recguard serve args...` and waits (at most 30 s) for
// its "listening on" line. It is killed at the end of the test if still
// running.
func startServe(t *testing.T, bin string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = procAttr()
	p.cmd.Dir = t.TempDir()
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			p.base = "http://" + m[1]
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("recguard serve exited before listening: %v\nstdout:\n%s\nstderr:\n%s", p.err, p.stdout.String(), p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("recguard serve printed no \"listening on\" line in 30 s\nstdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
		}
	}
}

// kill SIGKILLs the process if it still runs and waits for it.
func (p *serveProc) kill() {
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

// stop sends SIGTERM and waits (at most 30 s) for a clean exit.
func (p *serveProc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("recguard serve did not exit within 30 s of SIGINT\nstderr:\n%s", p.stderr.String())
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		p.t.Fatalf("recguard serve: %v", p.err)
	}
	if p.err != nil {
		p.t.Errorf("recguard serve exited with %v after SIGINT\nstderr:\n%s", p.err, p.stderr.String())
	}
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

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// recguardBinary builds ./cmd/recguard once per test run (with -race when
// the tests have it) and returns its path.
func recguardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "recguard-chaos-")
		if err != nil {
			buildErr = err
			return
		}
		cleanupBuild = func() { os.RemoveAll(dir) }
		binPath = filepath.Join(dir, "recguard")
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/recguard")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if p, err := exec.LookPath("go"); err == nil {
			gobin = p
		}
		cmd := exec.CommandContext(ctx, gobin, args...)
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

// moduleRoot walks up from the working directory to the one with go.mod.
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
