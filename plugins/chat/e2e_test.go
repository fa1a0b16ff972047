package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// TestTutorialClientThroughHost runs the tutorial's own chat client, in
// Python, against the real host serving the chat plugin.
func TestTutorialClientThroughHost(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"chat"}})
	out, stderr, code := e2e.Tutorial(t, "chat_client.py", []byte("hello\n你好，服务器\n\n"), e2e.HostPort(h.Addr("chat"))...)
	// print() adds a newline to the line the server sent.
	if want := "guest1: hello\n\nguest1: 你好，服务器\n\n"; code != 0 || out != want {
		t.Fatalf("chat_client.py: exit %d, stdout %q, want %q; stderr %q", code, out, want, stderr)
	}
	h.Stop(15 * time.Second)
}

// TestRoomThroughHost: a few clients through the host, the plugin's own
// client among them, and the drain notice when the host stops.
func TestRoomThroughHost(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"chat"}, Args: []string{"--set", "chat.room=e2e"}})
	addr := h.Addr("chat")
	const n = 5
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		conns[i], readers[i] = c, bufio.NewReader(c)
		fmt.Fprintf(c, "/nick c%d\n", i)
		readUntil(t, readers[i], "*** welcome to e2e, c"+fmt.Sprint(i))
	}
	out, stderr, code := e2e.RunBinary(t, "sockplay-chat", []byte("hi from the client\n"), "connect", addr, "--nick", "tool")
	if code != 0 || !strings.Contains(out, "tool: hi from the client") {
		t.Fatalf("sockplay-chat connect: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	for i := range conns {
		fmt.Fprintf(conns[i], "m%d\n", i)
	}
	for _, r := range readers {
		want := map[string]bool{"tool: hi from the client": true}
		for j := range conns {
			want[fmt.Sprintf("c%d: m%d", j, j)] = true
		}
		for len(want) > 0 {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("still waiting for %v: %v", want, err)
			}
			delete(want, strings.TrimSuffix(l, "\n"))
		}
	}
	h.Stop(15 * time.Second)
	for _, r := range readers {
		readUntil(t, r, "*** the server is shutting down")
	}
}

// readUntil reads lines until one contains want; the connection's deadline
// bounds it.
func readUntil(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	for {
		l, err := r.ReadString('\n')
		if strings.Contains(l, want) {
			return
		}
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
	}
}
