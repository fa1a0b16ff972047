package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// TestFlowControlThroughHost is issue 19's case, through the real host: one
// client never reads, one sends 5,000 lines of 3 KiB back to back, two read
// as fast as they can. Each reader gets all 5,000 in order; the client that
// never reads is disconnected and the room told; the sender is slowed (the
// flood limit, and the room waiting for the stalled reader up to stall) but
// never refused or disconnected. First with the default flow control (the
// issue's figure: see the log), then with a short stall and no flood limit,
// set through the host.
func TestFlowControlThroughHost(t *testing.T) {
	def := DefaultConfig()
	// The one setting changed: the framing's pause rule (README.md,
	// "Framing"), which has nothing to do with flow control. With its
	// default of 20 ms, a test sender starved of CPU (stress-ng, -race) for
	// longer than that in the middle of a 3 KiB line has the line cut in
	// two, as the rule says.
	linewait := []string{"--set", "chat.linewait=5s"}
	tests := []struct {
		name  string
		args  []string
		rate  float64 // the flood limit the host was given; 0 for none
		burst int
	}{
		{name: "default flow control", args: linewait, rate: def.FloodRate, burst: def.FloodBurst},
		{name: "stall 2s, no flood limit", args: append([]string{"--set", "chat.stall=2s", "--set", "chat.floodrate=0"}, linewait...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flowThroughHost(t, tt.args, tt.rate, tt.burst)
		})
	}
}

func flowThroughHost(t *testing.T, args []string, rate float64, burst int) {
	const (
		n    = 5000
		size = 3 << 10 // bytes of text in each line
	)
	h := e2e.Start(t, e2e.Config{Enable: []string{"chat"}, Args: args})
	addr := h.Addr("chat")
	// A bound on the whole test, far above what it takes (see the log),
	// so that a broken room fails it instead of hanging.
	deadline := time.Now().Add(5 * time.Minute)
	dial := func(nick string) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(deadline)
		r := bufio.NewReaderSize(c, 64<<10)
		fmt.Fprintf(c, "/nick %s\n", nick)
		if nick != "x" {
			readUntil(t, r, "*** welcome to")
		}
		return c, r
	}
	_, ar := dial("a")
	_, br := dial("b")
	s, sr := dial("s")
	x, _ := dial("x") // never reads
	for _, r := range []*bufio.Reader{ar, br, sr} {
		readUntil(t, r, "is now known as x")
	}

	// read takes the n lines from s off r, in order, and the notices between
	// them; it checks at each line that the room has not let more through
	// than the flood limit allows (burst at once, then floodrate a second).
	type result struct {
		got     int
		notices []string
		goneAt  time.Duration // when x's disconnection was told, from the first send
		last    time.Duration // when the last line came
		err     error
	}
	var start time.Time
	started := make(chan struct{})
	read := func(r *bufio.Reader) <-chan result {
		out := make(chan result, 1)
		go func() {
			<-started
			var res result
			defer func() { out <- res }()
			for res.got < n {
				l, err := r.ReadString('\n')
				if err != nil {
					res.err = fmt.Errorf("after %d lines: %w", res.got, err)
					return
				}
				if strings.HasPrefix(l, "*** ") {
					res.notices = append(res.notices, strings.TrimSuffix(l, "\n"))
					res.goneAt = time.Since(start)
					continue
				}
				seq, ok := strings.CutPrefix(l, "s: m ")
				seq, _, _ = strings.Cut(seq, " ")
				if !ok || seq != strconv.Itoa(res.got) || len(l) != len("s: ")+size+1 {
					res.err = fmt.Errorf("line %d is %.60q (%d bytes)", res.got, l, len(l))
					return
				}
				res.got++
				res.last = time.Since(start)
				if allowed := float64(burst) + rate*res.last.Seconds() + 1; rate > 0 && float64(res.got) > allowed {
					res.err = fmt.Errorf("%d lines by %v: the flood limit allows %.0f", res.got, res.last, allowed)
					return
				}
			}
		}()
		return out
	}
	ra, rb, rs := read(ar), read(br), read(sr)

	// s sends back to back: each write blocks while the room is not
	// reading its socket.
	sent := make(chan error, 1)
	var sendTook time.Duration
	start = time.Now()
	close(started)
	go func() {
		w := bufio.NewWriterSize(s, 64<<10)
		for k := range n {
			text := fmt.Sprintf("m %d ", k)
			w.WriteString(text)
			w.WriteString(strings.Repeat("x", size-len(text)))
			if err := w.WriteByte('\n'); err != nil {
				sent <- err
				return
			}
		}
		err := w.Flush()
		sendTook = time.Since(start)
		sent <- err
	}()

	results := map[string]result{"a": <-ra, "b": <-rb, "s (its echo)": <-rs}
	if err := <-sent; err != nil {
		t.Fatalf("s: %v", err)
	}
	gone := "*** x was disconnected: not reading"
	for who, res := range results {
		if res.err != nil {
			t.Fatalf("%s: %v", who, res.err)
		}
		t.Logf("%s got all %d lines in order, the last %v after the first send; notices %q (%v)",
			who, n, res.last.Round(time.Millisecond), res.notices, res.goneAt.Round(time.Millisecond))
		for _, l := range res.notices {
			if l != gone {
				t.Errorf("%s got notice %q", who, l)
			}
		}
	}
	t.Logf("s's writes took %v (back to back; the room read its socket at its own pace)", sendTook.Round(time.Millisecond))
	for who, r := range map[string]*bufio.Reader{"a": ar, "b": br} {
		if !slices.Contains(results[who].notices, gone) {
			readUntil(t, r, gone)
		}
	}
	// s is still in the room; x is not.
	fmt.Fprintf(s, "/who\n")
	readUntil(t, sr, "*** 3 here: a, b, s")
	// x's connection was closed: reading it ends (after what it was sent).
	if _, err := io.Copy(io.Discard, x); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("x: %v, want its connection closed", err)
	}
	h.Stop(15 * time.Second)
}
