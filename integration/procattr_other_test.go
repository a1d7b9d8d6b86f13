//go:build !linux

package integration

import "syscall"

// childProcAttr has no parent-death signal outside Linux; the harness'
// cleanups still stop every child it started.
func childProcAttr() *syscall.SysProcAttr { return nil }
