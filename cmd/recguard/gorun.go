package main

import (
	"os"
	"path/filepath"
	"strings"
)

// Under `go run`, the go tool starts the built binary as its child and
// waits for it. Ctrl-C in a terminal reaches both (the terminal signals
// the whole foreground process group): the go tool ignores it and serve
// shuts down gracefully. But a signal sent to the go tool alone (kill PID,
// a supervisor stopping "go run") kills only the go tool: serve would
// keep running as an orphan, holding the port and the embedded store's
// lock. So serve, when it finds itself under go run, asks the kernel to
// send it SIGTERM when its parent dies (Linux: PR_SET_PDEATHSIG; see
// gorun_linux.go), which shuts it down gracefully. A binary built with go
// build or go install is never affected: daemons are supervised by other
// means, and a shell that exits must not stop a server started with
// nohup.

// underGoRun reports whether this process looks like a binary that `go
// run` built and started: its executable lives in the go tool's build
// directories (GOCACHE or GOTMPDIR, under a go-build directory) and its
// parent process is named go (parentName).
func underGoRun(parentName func() string) bool {
	exe, err := os.Executable()
	if err != nil {
		return false
	}
	if !strings.Contains(filepath.ToSlash(exe), "/go-build") {
		return false
	}
	return parentName() == "go"
}
