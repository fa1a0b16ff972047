//go:build unix

package e2e

import "syscall"

func killPid(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

func signalable(pid int) bool { return syscall.Kill(pid, 0) == nil }

// ownGroup starts a command in a process group of its own.
func ownGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
