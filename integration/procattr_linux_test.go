//go:build linux

package integration

import "syscall"

// childProcAttr makes the kernel SIGKILL a child when the test binary dies
// (a panic or a -timeout), so no server outlives its test.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
