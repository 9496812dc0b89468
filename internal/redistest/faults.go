package redistest

import "testing"

// StartAOFServer starts a server that fsyncs every write to its append-only
// file before answering (appendonly yes, appendfsync always): a SIGKILL
// (Stop) and a Start on the same directory lose nothing it acknowledged.
func StartAOFServer(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	return StartServer(tb, append([]string{"--appendonly", "yes", "--appendfsync", "always"}, extra...)...)
}
