package main

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestTimingUnknownUser measures the reply time of an unknown user and of a
// known user with a wrong password, interleaved on one connection, and wants
// their medians within 10%. Delays and limits are off so that only the check
// is measured. On a noisy machine one bad run is forgiven: the measure is
// taken again once.
func TestTimingUnknownUser(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse")
	in, _ := start(t, map[string]string{
		"accounts":      path,
		"addr-failures": "1000000",
		"user-failures": "1000000",
		"base-delay":    "0s",
		"max-delay":     "0s",
	})
	c := dialFrom(t, in.Addr, "", 60*time.Second)
	const pairs = 30
	var diff float64
	for try := 1; try <= 2; try++ {
		unknown, wrong := make([]time.Duration, 0, pairs), make([]time.Duration, 0, pairs)
		for i := 0; i < pairs; i++ {
			// ABBA order, so that a drift in the machine's speed weighs
			// on both kinds alike.
			order := []bool{true, false}
			if i%2 == 1 {
				order = []bool{false, true}
			}
			for _, isUnknown := range order {
				user := "alice"
				if isUnknown {
					user = "mallory"
				}
				start := time.Now()
				if r := mustLogin(t, c, user, fmt.Sprintf("wrong password %d", i)); r != "fail" {
					t.Fatalf("%s: %q", user, r)
				}
				if isUnknown {
					unknown = append(unknown, time.Since(start))
				} else {
					wrong = append(wrong, time.Since(start))
				}
			}
		}
		mu, mw := median(unknown), median(wrong)
		diff = float64(mu-mw) / float64(min(mu, mw))
		t.Logf("try %d, %d pairs: median unknown user %s, known user wrong password %s, difference %+.1f%%",
			try, pairs, mu.Round(10*time.Microsecond), mw.Round(10*time.Microsecond), 100*diff)
		if diff > -0.10 && diff < 0.10 {
			return
		}
	}
	t.Errorf("medians differ by %.1f%%, want under 10%%", 100*diff)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
