//go:build !linux

package sdk

import (
	"errors"
	goruntime "runtime"
)

// startHandoff fails: the sockplay host, and so the descriptor handoff, runs
// on Linux only. Handlers, sdktest and the client commands work everywhere.
func startHandoff(*runtime) error {
	return errors.New("serving under the sockplay host needs Linux (this is " + goruntime.GOOS + "); sdktest and the client work here")
}
