package redistest

import "syscall"

// procAttr makes a started redis-server die with the test process, even
// when the test binary is killed before its cleanups run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
