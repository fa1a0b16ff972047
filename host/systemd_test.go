package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// notifySocket is a NOTIFY_SOCKET the test reads: every sd_notify message
// the host sends arrives on states.
func notifySocket(t *testing.T) (path string, states <-chan string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd-") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path = filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			for _, line := range strings.Split(strings.TrimSpace(string(b[:n])), "\n") {
				select {
				case ch <- line:
				default: // a watchdog that outruns the test drops beats
				}
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return path, ch
}

// waitState waits up to 30 s for state on states.
func waitState(t *testing.T, states <-chan string, state string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-states:
			if s == state {
				return
			}
		case <-deadline:
			t.Fatalf("no %s on NOTIFY_SOCKET after 30 s", state)
		}
	}
}

// listeningInodes returns the socket inodes of the TCP sockets in LISTEN
// state, by local port.
func listeningInodes(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			_, portHex, _ := strings.Cut(fs[1], ":")
			port, _ := strconv.ParseInt(portHex, 16, 32)
			out["socket:["+fs[9]+"]"] = int(port)
		}
	}
	return out
}

// listenersOf returns the ports of the listening TCP sockets process pid
// holds.
func listenersOf(t *testing.T, pid int) []int {
	t.Helper()
	inodes := listeningInodes(t)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for _, e := range ents {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		if port, ok := inodes[target]; ok {
			ports = append(ports, port)
		}
	}
	return ports
}

func TestSocketActivation(t *testing.T) {
	sa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatalf("systemd-socket-activate is not installed (scripts/setup.sh installs Debian's systemd): %v", err)
	}
	bin := e2e.Bin(t)
	dir := e2e.PluginDir(t, "whoami", "echo") // echo has no socket: it is not served
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	notify, states := notifySocket(t)

	// systemd-socket-activate binds addr, waits for the first client, then
	// execs sockplay with LISTEN_FDS=1, LISTEN_PID and LISTEN_FDNAMES=whoami,
	// passing on only PATH, HOME, USER, TERM and the -E variables.
	cmd := exec.Command(sa, "--listen="+addr, "--fdname=whoami",
		"-E", "NOTIFY_SOCKET="+notify, "-E", "WATCHDOG_USEC=300000",
		filepath.Join(bin, "sockplay"), "serve", "--plugin-dir", dir, "--admin", "off",
		"--status-file", filepath.Join(t.TempDir(), "status.json"))
	var stdout, stderr e2e.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})

	// The first client starts the host, and is served on the socket it was
	// given: connect until systemd-socket-activate listens.
	var c net.Conn
	deadline := time.Now().Add(30 * time.Second)
	for c == nil {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: time.Second}
		if c, err = d.Dial("tcp", addr); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("nothing listens on %s after 30 s: %v\n%s", addr, err, stderr.String())
			}
			c = nil
			time.Sleep(10 * time.Millisecond)
		}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("the first client got no answer: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if f := strings.Fields(line); len(f) != 3 || f[0] != c.LocalAddr().String() || f[1] != addr || f[2] != "clean" {
		t.Fatalf("whoami said %q; want %s %s clean (no LISTEN_, NOTIFY_ or WATCHDOG_ variable in the plugin)", line, c.LocalAddr(), addr)
	}
	waitState(t, states, "READY=1")
	waitState(t, states, "WATCHDOG=1")

	out := stdout.String()
	if !strings.Contains(out, "whoami ") || !strings.Contains(out, "tcp "+addr) || strings.Contains(out, "echo ") {
		t.Fatalf("sockplay's start-up lines:\n%s\nwant whoami on %s and no echo", out, addr)
	}
	// The host binds nothing itself: the one listening socket it holds is
	// the one it was given.
	if got := listenersOf(t, cmd.Process.Pid); len(got) != 1 || got[0] != port {
		t.Fatalf("the host holds listening sockets on ports %v; want only %d, the one passed", got, port)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitState(t, states, "STOPPING=1")
	select {
	case <-exited:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit %d after SIGTERM:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM:\n%s", stderr.String())
	}
}
