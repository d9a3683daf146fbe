package cachetest

import "syscall"

// procAttr makes the kernel kill a server when the test process dies, so
// that a test binary killed before its cleanups (a timeout, a signal)
// leaves no redis-server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
