package redistest

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// TestStartFailsFastOnATakenPort: a redis-server that cannot bind its
// port ends at once, and start says so at once instead of waiting out its
// 10 s for an answer (what made StartServer's retry on new ports slow).
func TestStartFailsFastOnATakenPort(t *testing.T) {
	RequireBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	s := &Server{tb: t, Dir: dir, Addr: "127.0.0.1:" + port,
		args: []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--daemonize", "no"}}
	start := time.Now()
	err = s.start()
	if err == nil {
		s.Stop()
		t.Fatal("a redis-server on a taken port started")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("start took %v to notice the server ended: %v", d, err)
	}
	if s.Running() {
		t.Fatal("a failed start left the server marked running")
	}
}

// TestClusterNodeGetsItsOwnBusPort: a cluster-enabled server's bus port
// is one StartServer chose (free), not the port + 10000.
func TestClusterNodeGetsItsOwnBusPort(t *testing.T) {
	s := StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	_, portStr, _ := net.SplitHostPort(s.Addr)
	port, _ := strconv.Atoi(portStr)
	bus := -1
	for i, a := range s.args {
		if a == "--cluster-port" && i+1 < len(s.args) {
			bus, _ = strconv.Atoi(s.args[i+1])
		}
	}
	if bus <= 0 || bus == port+10000 || bus > 65535 {
		t.Fatalf("cluster bus port %d for server port %d", bus, port)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(bus)), time.Second)
	if err != nil {
		t.Fatalf("the cluster bus does not listen on %d: %v", bus, err)
	}
	c.Close()
}
