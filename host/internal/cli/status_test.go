package cli

import (
	"testing"
	"time"
)

func TestRoundDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{1234567 * time.Nanosecond, "1ms"},
		{999 * time.Millisecond, "999ms"},
		{5648 * time.Millisecond, "5.6s"},
		{59940 * time.Millisecond, "59.9s"},
		{90400 * time.Millisecond, "1m30s"},
		{3*time.Hour + 1500*time.Millisecond, "3h0m2s"},
	} {
		if got := roundDuration(tc.in); got != tc.want {
			t.Errorf("roundDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
