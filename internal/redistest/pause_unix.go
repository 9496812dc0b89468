//go:build unix

package redistest

import "syscall"

// Pause stops the server process with SIGSTOP: connections stay open and
// nothing answers, as with a hung machine. Resume continues it; Stop kills
// it even while paused.
func (s *Server) Pause() {
	s.tb.Helper()
	if s.cmd == nil {
		s.tb.Fatalf("Pause: redis-server on %s is not running", s.Addr)
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.tb.Fatalf("SIGSTOP redis-server: %v", err)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	s.tb.Helper()
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.tb.Fatalf("SIGCONT redis-server: %v", err)
	}
}

// Pid returns the server's process ID, or 0 when it is not running.
func (s *Server) Pid() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
