package serve

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A socket left by a killed host is taken over; one a live host serves is
// not; the socket is made 0600.
func TestListenControl(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // as a SIGKILL leaves it: the file, and nothing listening
	ln, err = listenControl(stale)
	if err != nil {
		t.Fatalf("a stale socket: %v", err)
	}
	if fi, err := os.Stat(stale); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v, %v", fi.Mode(), err)
	}
	if _, err := listenControl(stale); err == nil || !strings.Contains(err.Error(), "another host serves it") {
		t.Fatalf("a socket in use: %v", err)
	}
	ln.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the socket outlived its listener: %v", err)
	}
}

// RequestReload says why it cannot reach a host, in one line.
func TestRequestReloadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r StatusReport) string {
		b, _ := json.Marshal(r)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cases := []struct {
		path, want string
	}{
		{filepath.Join(dir, "none.json"), "no status at "},
		{write("stopped.json", StatusReport{HostPid: os.Getpid(), Stopped: true}), "says the host (pid "},
		{write("nocontrol.json", StatusReport{HostPid: os.Getpid()}), "has no control socket"},
		{write("dead.json", StatusReport{HostPid: os.Getpid(), Control: filepath.Join(dir, "nothing.sock")}), "control socket "},
	}
	for _, c := range cases {
		_, err := RequestReload(context.Background(), c.path, ReloadRequest{})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", filepath.Base(c.path), err, c.want)
		}
	}
}
