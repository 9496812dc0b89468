//go:build !linux

package main

import "log/slog"

// stopWithGoRun does nothing on this system: stop serve itself, not the go
// tool that runs it (see gorun.go).
func stopWithGoRun(*slog.Logger) {}
