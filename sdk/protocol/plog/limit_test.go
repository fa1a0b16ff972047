package plog_test

import (
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

func TestLimiter(t *testing.T) {
	var l plog.Limiter
	t0 := time.Unix(1000, 0)
	type step struct {
		at             time.Duration
		ok             bool
		wantSuppressed int
	}
	for i, s := range []step{
		{0, true, 0},
		{10 * time.Millisecond, false, 0},
		{500 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 3},
		{1500 * time.Millisecond, false, 0},
		{10 * time.Second, true, 1},
		{11 * time.Second, true, 0},
	} {
		ok, n := l.Allow(t0.Add(s.at))
		if ok != s.ok || n != s.wantSuppressed {
			t.Errorf("step %d at %s: Allow = %v, %d; want %v, %d", i, s.at, ok, n, s.ok, s.wantSuppressed)
		}
	}
}
