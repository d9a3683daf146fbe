//go:build !linux

package cachetest

import "syscall"

// procAttr has nothing to add outside Linux, which alone can tie a child's
// life to its parent's; the tests' cleanups stop the servers.
func procAttr() *syscall.SysProcAttr { return nil }
