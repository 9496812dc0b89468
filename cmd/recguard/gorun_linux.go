package main

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// stopWithGoRun makes serve receive SIGTERM when the go tool that runs it
// (go run) dies, so that killing go run stops serve gracefully instead of
// leaving it running (see gorun.go). It does nothing for a binary run any
// other way.
func stopWithGoRun(log *slog.Logger) {
	ppid := os.Getppid()
	if !underGoRun(func() string { return procComm(ppid) }) {
		return
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		log.Warn("under go run: could not ask to be stopped with the go tool; stop serve itself (its PID), not go run", "err", errno.Error())
		return
	}
	if os.Getppid() != ppid {
		// The go tool died before the request took effect.
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		return
	}
	log.Info("under go run: serve stops (gracefully) when the go tool does", "go_pid", ppid)
}

// procComm is the command name of process pid ("" when unknown).
func procComm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
