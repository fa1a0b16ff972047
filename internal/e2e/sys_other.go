//go:build !unix

package e2e

import (
	"os"
	"syscall"
)

// The host runs on Unix only; these let the tests that use package e2e
// compile (go vet) on other systems.

func killPid(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func signalable(pid int) bool {
	_, err := os.FindProcess(pid)
	return err == nil
}

func ownGroup() *syscall.SysProcAttr { return nil }
