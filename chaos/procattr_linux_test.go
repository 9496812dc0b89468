package chaos_test

import "syscall"

// procAttr makes a started `recguard serve` die with the test process, even
// when the test binary is killed before its cleanups run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
