package sdk_test

import (
	"testing"
	"time"
)

// timeout bounds every socket operation and every wait in these tests.
const timeout = 5 * time.Second

// waitFor polls cond every few milliseconds until it holds or timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: still waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv waits for a value from ch for at most timeout.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("after %s: still waiting for %s", timeout, what)
		panic("unreachable")
	}
}
