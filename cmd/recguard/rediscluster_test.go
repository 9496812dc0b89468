package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// freePortRange returns a base port such that base..base+n-1 and their
// cluster bus ports (+10000) were free a moment ago. Both stay below
// 32768, where Linux's ephemeral ports begin: the other tests' servers
// (listen on :0) and every client connection take theirs there.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		base := 10000 + rand.IntN(11000)
		ok := true
		for i := 0; i < n && ok; i++ {
			ok = portFree(fmt.Sprintf("127.0.0.1:%d", base+i)) && portFree(fmt.Sprintf("127.0.0.1:%d", base+i+10000))
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free range of ports")
	return 0
}

// TestRedisClusterScript runs scripts/redis-cluster.sh as docs/operations.md
// says (with a password), starts recguard serve --init on the
// --redis-cluster flag it prints, makes a key through the server and asks
// a decision, then stops both: every port is free again.
func TestRedisClusterScript(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"redis-server", "redis-cli", "bash"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "scripts", "redis-cluster.sh")
	var base int
	var env []string
	var tmp string
	sh := func(arg string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", script, arg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	start := time.Now()
	var out string
	for try := 1; ; try++ {
		// A port found free can be taken before redis-server binds it
		// (other packages' tests run alongside): the script then stops
		// what it started and says so; try other ports.
		base, tmp = freePortRange(t, 6), t.TempDir()
		env = append(os.Environ(), fmt.Sprintf("REDIS_CLUSTER_PORT=%d", base), "TMPDIR="+tmp, "REDIS_CLUSTER_PASSWORD=cluster-test-pw")
		out, err = sh("start")
		if err == nil {
			break
		}
		if try == 3 || !strings.Contains(out, "does not answer") && !strings.Contains(out, "did not start") && !strings.Contains(out, "already answers") {
			t.Fatalf("redis-cluster.sh start (try %d): %v\n%s", try, err, out)
		}
		t.Logf("redis-cluster.sh start on ports %d..%d (try %d): %s", base, base+5, try, out)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			sh("stop")
		}
	})
	m := regexp.MustCompile(`(?m)^--redis-cluster (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("start printed no --redis-cluster flag:\n%s", out)
	}
	addrs := strings.Split(m[1], ",")
	if len(addrs) != 6 || addrs[0] != fmt.Sprintf("127.0.0.1:%d", base) {
		t.Fatalf("--redis-cluster %s: want 6 loopback nodes from port %d", m[1], base)
	}
	if st, err := sh("status"); err != nil || !strings.Contains(st, "cluster_state:ok") || !strings.Contains(st, "cluster_size:3") {
		t.Fatalf("status: %v\n%s", err, st)
	}
	if _, err := sh("start"); err == nil {
		t.Error("a second start on the same ports succeeded")
	}

	// recguard on it, the password from the environment.
	p := startServeEnv(t, []string{"RECGUARD_REDIS_PASSWORD=cluster-test-pw", "RECGUARD_CHAIN_KEY=" + testChainKeyHex},
		"--addr", "127.0.0.1:0", "--redis-cluster", m[1], "--prefix", "rgtest", "--init")
	_, admin, ok := p.adminKey()
	if !ok {
		t.Fatalf("no admin key:\n%s", p.stdout.String())
	}
	p.waitReady()
	appOut, errOut, code := runIn(t, t.TempDir(), []string{"RECGUARD_SERVER=" + p.base, "RECGUARD_ADMIN_KEY=" + admin}, "keys", "create", "--role", "app")
	if code != 0 {
		t.Fatalf("keys create --server: exit %d\n%s", code, errOut)
	}
	var d decisionJSON
	newClient(t, p.base).expect("GET", "/v1/users/alice/decision", strings.TrimSpace(appOut), nil, http.StatusOK, &d)
	if !d.Personalized {
		t.Errorf("decision on the cluster: %+v", d)
	}
	p.stop()

	if out, err := sh("stop"); err != nil {
		t.Fatalf("redis-cluster.sh stop: %v\n%s", err, out)
	}
	stopped = true
	for _, a := range addrs {
		if !portFree(a) {
			t.Errorf("%s still held after stop", a)
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("stop left %d entries in TMPDIR", len(ents))
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the script's round trip took %v, want under 30 s", d)
	}
}
