package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runIn runs the recguard binary in dir with env (KEY=VALUE) and args, and
// returns its output and exit status.
func runIn(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, recguardBinary(t), args...)
	cmd.Env = childEnv(env)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("recguard %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// emptyDir fails the test when dir holds anything (a data directory made
// by a command that stores nothing).
func emptyDir(t *testing.T, dir, after string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("recguard %s left %s in its working directory", after, e.Name())
	}
}

// TestHelpExitsZero: --help, -h and help print the usage and exit 0, for
// recguard and every command, and create nothing.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	recguardBinary(t)
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"help", "serve"}, {"help", "keys"}, {"help", "verify"}, {"help", "audit", "enforcement"},
		{"serve", "--help"}, {"serve", "-h"}, {"serve", "help"},
		{"keys", "--help"}, {"keys", "-h"}, {"keys", "help"},
		{"keys", "create", "--help"}, {"keys", "create", "-h"}, {"keys", "list", "--help"}, {"keys", "list", "help"},
		{"keys", "revoke", "--help"}, {"keys", "revoke", "-h"},
		{"audit", "--help"}, {"audit", "-h"}, {"audit", "help"},
		{"audit", "enforcement", "--help"}, {"audit", "enforcement", "-h"},
		{"verify", "--help"}, {"verify", "-h"},
		{"seed", "--help"},
		// Help wins over the other flags, even bad ones after it.
		{"serve", "--addr", "127.0.0.1:0", "--help"}, {"keys", "create", "--role", "bogus", "--help"},
	} {
		dir := t.TempDir()
		out, errOut, code := runIn(t, dir, nil, args...)
		name := strings.Join(args, " ")
		if code != 0 {
			t.Errorf("recguard %s: exit %d, want 0\nstderr:\n%s", name, code, errOut)
		}
		if !strings.Contains(out+errOut, "usage") {
			t.Errorf("recguard %s printed no usage:\n%s%s", name, out, errOut)
		}
		emptyDir(t, dir, name)
	}
}

// TestUsageErrorsExitTwo: an unknown command or flag, a bad flag value, a
// missing or stray argument exit 2, and create nothing.
func TestUsageErrorsExitTwo(t *testing.T) {
	t.Parallel()
	recguardBinary(t)
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{nil, nil, "no command"},
		{[]string{"frobnicate"}, nil, "unknown command"},
		{[]string{"keys"}, nil, "want create, list or revoke"},
		{[]string{"keys", "frobnicate"}, nil, "unknown subcommand"},
		{[]string{"keys", "create"}, nil, "--role"},
		{[]string{"keys", "create", "--role", "bogus"}, nil, "--role \"bogus\""},
		{[]string{"keys", "create", "--bogus"}, nil, "not defined"},
		{[]string{"keys", "list", "stray"}, nil, "unexpected argument"},
		{[]string{"keys", "revoke"}, nil, "give the key ID"},
		{[]string{"keys", "list", "--server", "ftp://x"}, nil, "--server"},
		{[]string{"keys", "list", "--server", "http://127.0.0.1:1"}, nil, "admin key"},
		{[]string{"keys", "list", "--server", "http://127.0.0.1:1", "--admin-key", "k", "--data", "d"}, nil, "not both"},
		{[]string{"keys", "list", "--admin-key", "k"}, nil, "goes with --server"},
		{[]string{"serve", "--bogus"}, nil, "not defined"},
		{[]string{"serve", "stray"}, nil, "unexpected argument"},
		{[]string{"serve", "--log-format", "xml"}, nil, "--log-format"},
		{[]string{"serve", "--rate-limit", "0"}, nil, "--rate-limit"},
		{[]string{"serve"}, []string{"RECGUARD_MAX_BODY=-1"}, "--max-body"},
		{[]string{"serve"}, []string{"RECGUARD_WRITE_TIMEOUT=1s"}, "--write-timeout"},
		{[]string{"serve"}, []string{"RECGUARD_IDLE_TIMEOUT=soon"}, "RECGUARD_IDLE_TIMEOUT"},
		{[]string{"audit"}, nil, "--spec and --events are required"},
		{[]string{"audit", "--bogus"}, nil, "not defined"},
		{[]string{"version", "extra"}, nil, "unexpected argument"},
	} {
		dir := t.TempDir()
		_, errOut, code := runIn(t, dir, tc.env, tc.args...)
		name := strings.Join(tc.args, " ")
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("recguard %s (%v): exit %d, want 2 saying %q\nstderr:\n%s", name, tc.env, code, tc.want, errOut)
		}
		emptyDir(t, dir, name)
	}
}

// TestNoStoreNoDataDir: commands that only read a store do not make one:
// keys list and keys revoke on no store say so and exit 1, and leave no
// ./recguard-data behind; --data DIR neither.
func TestNoStoreNoDataDir(t *testing.T) {
	t.Parallel()
	recguardBinary(t)
	spec := filepath.Join(t.TempDir(), "spec.yaml")
	events := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(spec, []byte(auditTestSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(events, []byte(`{"user":"u1","item":"i","time":"2026-01-02T03:04:05Z","mode":"personalized"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"keys", "list"}, {"keys", "revoke", "000000000000"}, {"keys", "list", "--data", "elsewhere"},
		{"audit", "--spec", spec, "--events", events}, {"audit", "--spec", spec, "--events", "store"},
		{"verify"}, {"audit", "enforcement"},
	} {
		dir := t.TempDir()
		_, errOut, code := runIn(t, dir, nil, args...)
		name := strings.Join(args, " ")
		if code == 0 || !strings.Contains(errOut, "no store") {
			t.Errorf("recguard %s on no store: exit %d, want non-zero saying no store\nstderr:\n%s", name, code, errOut)
		}
		emptyDir(t, dir, name)
	}
	// keys create stores a key: it makes the store.
	dir := t.TempDir()
	if _, errOut, code := runIn(t, dir, nil, "keys", "create", "--role", "app"); code != 0 {
		t.Fatalf("keys create: exit %d\n%s", code, errOut)
	}
	if !storeExists(filepath.Join(dir, "recguard-data")) {
		t.Error("keys create made no store in ./recguard-data")
	}
	if out, errOut, code := runIn(t, dir, nil, "keys", "list"); code != 0 || !strings.Contains(out, "\tapp\t") {
		t.Errorf("keys list after keys create: exit %d\n%s%s", code, out, errOut)
	}
}

// TestHelpListsEnv: every flag a command's --help lists is followed by its
// environment variable, and the variables set the flags.
func TestHelpListsEnv(t *testing.T) {
	t.Parallel()
	recguardBinary(t)
	// A flag's own line: two spaces, one or two dashes, the name and at
	// most the kind of value (flag.PrintDefaults and printFlags alike).
	flagLine := regexp.MustCompile(`^  --?([a-z][a-z0-9-]*)( [a-zA-Z]+)?$`)
	all := map[string]bool{}
	for _, args := range [][]string{{"serve"}, {"keys", "create"}, {"keys", "list"}, {"keys", "revoke"}, {"audit"}, {"verify"}, {"audit", "enforcement"}, {"seed"}} {
		out, errOut, code := runIn(t, t.TempDir(), nil, append(args, "--help")...)
		if code != 0 {
			t.Fatalf("%v --help: exit %d", args, code)
		}
		lines := strings.Split(out+errOut, "\n")
		n := 0
		for i, l := range lines {
			m := flagLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			n++
			name := m[1]
			all[name] = true
			want := envName(name)
			found := false
			for _, next := range lines[i+1:] {
				if flagLine.MatchString(next) {
					break
				}
				found = found || strings.Contains(next, "environment: "+want)
			}
			if !found {
				t.Errorf("recguard %s --help: --%s without its line \"environment: %s\"", strings.Join(args, " "), name, want)
			}
		}
		if n < 5 {
			t.Errorf("recguard %s --help: %d flags found:\n%s%s", strings.Join(args, " "), n, out, errOut)
		}
	}
	for _, f := range []string{"addr", "data", "redis", "redis-cluster", "redis-password", "redis-tls", "redis-tls-ca", "log-format",
		"rate-limit", "rate-burst", "max-body", "max-events-body", "read-timeout", "write-timeout", "idle-timeout", "store-timeout",
		"shutdown-timeout", "server", "admin-key"} {
		if !all[f] {
			t.Errorf("no command lists --%s", f)
		}
	}
}

// TestVersion: recguard version and --version print the module version
// and exit 0; the revision and its time are shown when the build recorded
// them.
func TestVersion(t *testing.T) {
	t.Parallel()
	recguardBinary(t)
	for _, arg := range []string{"version", "--version"} {
		out, errOut, code := runIn(t, t.TempDir(), nil, arg)
		if code != 0 || !strings.HasPrefix(out, "recguard ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("recguard %s: exit %d, %q %q", arg, code, out, errOut)
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "github.com/recguard/recguard", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "8c95fbe0123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := formatVersion(bi), "recguard v1.2.3 (revision 8c95fbe0123 2026-12-01T10:00:00Z modified) go1.99"; got != want {
		t.Errorf("formatVersion: %q, want %q", got, want)
	}
	bi = &debug.BuildInfo{GoVersion: "go1.99"}
	if got, want := formatVersion(bi), "recguard (devel) go1.99"; got != want {
		t.Errorf("formatVersion: %q, want %q", got, want)
	}
}

// portFree reports whether addr can be listened on again.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// TestServeSignals: serve stops on SIGINT (Ctrl-C, which go run passes on)
// and on SIGTERM: exit 0 within a few seconds, the port free, the
// embedded store unlocked.
func TestServeSignals(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		data := filepath.Join(t.TempDir(), "data")
		p := startServe(t, "--addr", "127.0.0.1:0", "--data", data)
		p.waitReady()
		p.signal(sig)
		p.waitExit(5 * time.Second)
		if !portFree(p.addr) {
			t.Errorf("after %v the port %s is still held", sig, p.addr)
		}
		// The lock is released: keys work on the directory.
		if _, errOut, code := runIn(t, t.TempDir(), nil, "keys", "list", "--data", data); code != 0 {
			t.Errorf("keys list after %v: exit %d\n%s", sig, code, errOut)
		}
	}
}

// TestServeStopsWithGoRun: under go run (the binary in a go-build
// directory, its parent named go), killing the parent stops serve
// gracefully instead of leaving it running with the port and the lock.
func TestServeStopsWithGoRun(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("PR_SET_PDEATHSIG is Linux's")
	}
	bin := recguardBinary(t)
	dir := t.TempDir()
	exeDir := filepath.Join(dir, "go-build123", "b001", "exe")
	if err := os.MkdirAll(exeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(exeDir, "recguard")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in for the go tool: a process named go that runs the
	// binary and waits for it.
	goTool := filepath.Join(dir, "go")
	if err := os.WriteFile(goTool, []byte("#!/bin/sh\n\"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	cmd := exec.Command(goTool, exe, "serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--shutdown-timeout", "3s")
	cmd.Env, cmd.Dir = childEnv(nil), dir
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = time.Second // serve, if it outlives its parent, holds the pipes
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	parentDone := make(chan struct{})
	go func() { cmd.Wait(); close(parentDone) }()
	t.Cleanup(func() { cmd.Process.Kill() })
	// serve is the parent's child: killed at the end if it outlives it.
	t.Cleanup(func() {
		for _, pid := range childrenOf(cmd.Process.Pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	re := regexp.MustCompile(`(?m)^listening on (\S+)$`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve under a parent named go did not listen:\n%s", errOut.String())
		}
	}
	if !strings.Contains(errOut.String(), "under go run") {
		t.Errorf("serve did not see it runs under go run:\n%s", errOut.String())
	}
	serves := childrenOf(cmd.Process.Pid)
	if len(serves) != 1 {
		t.Fatalf("the parent has children %v, want one serve", serves)
	}
	t.Cleanup(func() { syscall.Kill(serves[0], syscall.SIGKILL) })
	if err := cmd.Process.Kill(); err != nil { // the go tool dies, not serve
		t.Fatal(err)
	}
	<-parentDone
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for !portFree(addr) {
		if time.Now().After(deadline) {
			t.Fatalf("serve still holds %s 10 s after its go parent was killed\n%s", addr, errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, err := c.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("serve still answers after its go parent was killed")
	}
	if !strings.Contains(errOut.String(), "shutting down") {
		t.Errorf("serve did not shut down gracefully:\n%s", errOut.String())
	}
}

// childrenOf lists the processes whose parent is pid (from /proc).
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
