package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// startHAProxy runs Debian's haproxy in the foreground with a configuration
// in a temporary directory: one TCP frontend on 127.0.0.1 that forwards to
// backend from 127.0.0.2 with a PROXY v2 header (send-proxy-v2). It returns
// the frontend's address.
func startHAProxy(t *testing.T, backend string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/haproxy") // a PATH without sbin
	}
	if err != nil {
		t.Fatalf("haproxy is not installed (scripts/setup.sh installs Debian's haproxy): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "haproxy.cfg")
	text := fmt.Sprintf(`global
	maxconn 256
	pidfile %s
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend front
	bind %s
	default_backend plugin
backend plugin
	server whoami %s send-proxy-v2 source 127.0.0.2
`, filepath.Join(dir, "haproxy.pid"), front, backend)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", conf)
	var out e2e.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err == nil {
			c.Close()
			return front
		}
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen on %s after 20 s: %v\n%s", front, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// whoami reads the whoami plugin's first line on c: the remote address it
// saw. "" if the connection was closed first.
func whoami(t *testing.T, c net.Conn) string {
	t.Helper()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		t.Fatalf("whoami said %q", line)
	}
	return f[0]
}

func TestProxyProtocolThroughHAProxy(t *testing.T) {
	for _, handoff := range []string{"conn", "listener"} {
		t.Run(handoff, func(t *testing.T) {
			h := e2e.Start(t, e2e.Config{Enable: []string{"whoami"}, Args: []string{
				"--handoff", handoff, "--proxy-protocol", "whoami=127.0.0.2",
				"--allow", "whoami=127.0.0.0/8", "--deny", "whoami=127.0.0.6",
			}})
			h.WaitLog("enforced_by=plugin", 10*time.Second)
			addr := h.Addr("whoami")
			front := startHAProxy(t, addr)

			// Through HAProxy: the handler sees the client, not the proxy.
			c := dialFrom(t, "127.0.0.5", front)
			if got, want := whoami(t, c), c.LocalAddr().String(); got != want {
				t.Fatalf("through HAProxy the plugin saw %q, want the client %s", got, want)
			}
			// The rules apply to the client the header names.
			if got := whoami(t, dialFrom(t, "127.0.0.6", front)); got != "" {
				t.Fatalf("a denied client through HAProxy was served as %s", got)
			}
			waitLogMatch(t, h, `refused: peer=127\.0\.0\.6:\d+ reason=deny`)

			// A v1 header from the trusted address is read as well, and its
			// client outside --allow is refused.
			v1 := dialFrom(t, "127.0.0.2", addr)
			fmt.Fprintf(v1, "PROXY TCP4 192.0.2.9 127.0.0.1 4242 80\r\n")
			if got := whoami(t, v1); got != "" {
				t.Fatalf("a v1 header's client outside --allow was served as %s", got)
			}
			waitLogMatch(t, h, `refused: peer=192\.0\.2\.9:4242 reason=not-allowed`)
			v1ok := dialFrom(t, "127.0.0.2", addr)
			fmt.Fprintf(v1ok, "PROXY TCP4 127.0.0.9 127.0.0.1 4243 80\r\n")
			if got := whoami(t, v1ok); got != "127.0.0.9:4243" {
				t.Fatalf("a v1 header's client was served as %q", got)
			}

			// The trusted proxy's address without a header is refused.
			bare := dialFrom(t, "127.0.0.2", addr)
			fmt.Fprintf(bare, "hello\n")
			if got := whoami(t, bare); got != "" {
				t.Fatalf("a trusted peer without a header was served as %s", got)
			}
			waitLogMatch(t, h, `refused: error=".*" peer=127\.0\.0\.2:\d+ reason=proxy-header`)

			// A direct client is served as itself...
			d := dialFrom(t, "127.0.0.3", addr)
			if got, want := whoami(t, d), d.LocalAddr().String(); got != want {
				t.Fatalf("a direct client was served as %q, want %s", got, want)
			}
			// ...but one that sends a header it is not trusted for is cut off
			// at its first byte, before the handler reads any of it.
			spoof := dialFrom(t, "127.0.0.3", addr)
			r := bufio.NewReader(spoof)
			if _, err := r.ReadString('\n'); err != nil { // whoami speaks first
				t.Fatal(err)
			}
			fmt.Fprintf(spoof, "PROXY TCP4 127.0.0.7 127.0.0.1 1 2\r\nsecret\n")
			if rest, _ := io.ReadAll(r); len(rest) != 0 {
				t.Fatalf("an untrusted header was answered: %q", rest)
			}
			waitLogMatch(t, h, `refused: .*peer=127\.0\.0\.3:\d+ reason=proxy-header`)
		})
	}
}
