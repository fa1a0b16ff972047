//go:build unix

package main

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

func TestTutorialClientThroughHost(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"udpecho"}})
	out, stderr, code := e2e.Tutorial(t, "udp_client.py", []byte("hi\n你好\nquit\n"), e2e.HostPort(h.Addr("udpecho"))...)
	if code != 0 || out != "hello hi\nhello 你好\n" {
		t.Fatalf("udp_client.py: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	h.Stop(15 * time.Second)
}

// kill -9 of the plugin while a client sends: the host keeps the socket,
// datagrams wait in its buffer, the restarted plugin answers them, and the
// host logs the crash.
func TestPluginKilledWhileClientSends(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"udpecho"}, Args: []string{"--set", "udpecho.prefix=", "--set", "udpecho.rate=1000/s"}})
	c, err := net.Dial("udp", h.Addr("udpecho"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const total = 200
	got := make(chan string, total)
	go func() {
		buf := make([]byte, 64)
		for range total {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
		close(got)
	}()

	pid := h.Plugins["udpecho"].Pid
	for i := range total {
		if i == 50 {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := fmt.Fprintf(c, "d%03d", i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	seen := map[string]bool{}
	for s := range got {
		seen[s] = true
	}
	var missing []string
	for i := range total {
		if k := fmt.Sprintf("d%03d", i); !seen[k] {
			missing = append(missing, k)
		}
	}
	t.Logf("answered %d of %d; missing %v", len(seen), total, missing)
	// One datagram may have been read by the plugin as it died.
	if len(missing) > 1 {
		t.Errorf("%d datagrams unanswered: %v", len(missing), missing)
	}
	for _, k := range missing {
		if k < "d045" || k > "d055" {
			t.Errorf("datagram %s, far from the kill, went unanswered", k)
		}
	}
	h.WaitLog("plugin process exited", 5*time.Second)
	h.WaitLog("signal: killed", 5*time.Second)
	h.WaitLog("plugin restarted", 5*time.Second)
	if pids := h.PluginPids("udpecho"); len(pids) != 1 || pids[0] == pid {
		t.Errorf("plugin pids after restart: %v (old %d)", pids, pid)
	}
	if !strings.Contains(h.Stderr(), "sockplay.udpecho") {
		t.Errorf("the crash is not logged under the plugin's name:\n%s", h.Stderr())
	}
	h.Stop(15 * time.Second)
}
