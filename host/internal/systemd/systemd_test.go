package systemd

import (
	"slices"
	"testing"
)

func TestEnv(t *testing.T) {
	in := []string{"PATH=/bin", "LISTEN_PID=9", "LISTEN_FDS=1", "LISTEN_FDNAMES=echo", "NOTIFY_SOCKET=/run/n",
		"WATCHDOG_USEC=1000", "WATCHDOG_PID=9", "LISTEN_FDS_X=kept", "HOME=/root"}
	want := []string{"PATH=/bin", "LISTEN_FDS_X=kept", "HOME=/root"}
	if got := Env(in); !slices.Equal(got, want) {
		t.Fatalf("Env = %q, want %q", got, want)
	}
}

func TestSocketsWithoutSystemd(t *testing.T) {
	t.Setenv("LISTEN_PID", "1") // another process's sockets
	t.Setenv("LISTEN_FDS", "1")
	got, err := Sockets()
	if err != nil || len(got) != 0 {
		t.Fatalf("Sockets() = %v, %v; want none", got, err)
	}
}
