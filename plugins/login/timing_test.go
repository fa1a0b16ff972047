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
// is measured.
//
// On a quiet machine 40 pairs settle it in a few seconds. On a loaded one
// (go test ./... runs packages side by side on 2 cores) each check's time
// swings by a factor of several, so the test measures more, in batches of 20
// pairs, up to 200 pairs or 45 s, and passes as soon as the medians over all
// the pairs so far are within 10%. A real difference does not shrink with
// more samples; noise does.
func TestTimingUnknownUser(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse")
	in, _ := start(t, map[string]string{
		"accounts":      path,
		"addr-failures": "1000000",
		"user-failures": "1000000",
		"base-delay":    "0s",
		"max-delay":     "0s",
	})
	const (
		batch    = 20
		maxPairs = 200
		budget   = 45 * time.Second
	)
	c := dialFrom(t, in.Addr, "", budget+30*time.Second)
	begin := time.Now()
	var unknown, wrong []time.Duration
	var diff float64
	for len(unknown) < maxPairs {
		for i := 0; i < batch; i++ {
			// ABBA order, so that a drift in the machine's speed weighs
			// on both kinds alike.
			order := []bool{true, false}
			if (len(unknown)+i)%2 == 1 {
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
		if len(unknown) < 2*batch {
			continue
		}
		mu, mw := median(unknown), median(wrong)
		diff = float64(mu-mw) / float64(min(mu, mw))
		t.Logf("%d pairs: median unknown user %s, known user wrong password %s, difference %+.1f%%",
			len(unknown), mu.Round(10*time.Microsecond), mw.Round(10*time.Microsecond), 100*diff)
		if diff > -0.10 && diff < 0.10 {
			return
		}
		if time.Since(begin) > budget {
			break
		}
	}
	t.Errorf("medians differ by %.1f%% after %d pairs, want under 10%%", 100*diff, len(unknown))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
