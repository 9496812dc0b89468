package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// versionLine is what recguard version prints: the module's version (a
// tag when built from a module version, else "(devel)"), the VCS revision
// and time the binary was built from when the build recorded them (go
// build and go install in a checkout do; go run does not), "modified"
// when the tree had uncommitted changes, and the Go version.
func versionLine() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "recguard (unknown version: no build information) " + runtime.Version()
	}
	return formatVersion(bi)
}

// formatVersion formats bi for versionLine.
func formatVersion(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	parts := []string{"recguard", v}
	if rev != "" {
		p := "revision " + rev
		if at != "" {
			p += " " + at
		}
		if modified {
			p += " modified"
		}
		parts = append(parts, "("+p+")")
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	return strings.Join(append(parts, goVersion), " ")
}
