//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk/sdktest"
)

// TestManyClients: 200 clients each send 5 messages at once. Every client
// must get every message exactly once, each sender's in the order sent, and
// all in the same order as everyone else.
func TestManyClients(t *testing.T) {
	const (
		clients = 200
		each    = 5
	)
	// Default flow control: every client reads, so nothing waits long and
	// nobody is disconnected; a long linewait keeps a sender starved of CPU
	// mid-line from having its line cut in two.
	in := start(t, map[string]string{"linewait": "5s"})
	deadline := time.Now().Add(30 * time.Second)

	conns := make([]net.Conn, clients)
	readers := make([]*bufio.Reader, clients)
	for i := range conns {
		c, err := net.DialTimeout("tcp", in.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(deadline)
		conns[i], readers[i] = c, bufio.NewReader(c)
	}
	// Wait until everyone is in the room: the reply to /who comes after the
	// join.
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			if _, err := conns[i].Write([]byte("/who\n")); err != nil {
				errs <- err
				return
			}
			for {
				l, err := readers[i].ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("client %d waiting to join: %w", i, err)
					return
				}
				if strings.Contains(l, "welcome to") {
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	// Everyone sends, then reads until it has all the messages.
	orders := make([][]int, clients)
	for i := range conns {
		wg.Go(func() {
			var b strings.Builder
			for k := range each {
				fmt.Fprintf(&b, "m %d %d\n", i, k)
			}
			if _, err := conns[i].Write([]byte(b.String())); err != nil {
				errs <- fmt.Errorf("client %d send: %w", i, err)
				return
			}
			next := make([]int, clients) // per sender, the seq expected next
			order := make([]int, 0, clients*each)
			for len(order) < clients*each {
				l, err := readers[i].ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("client %d after %d messages: %w", i, len(order), err)
					return
				}
				_, text, ok := strings.Cut(strings.TrimSuffix(l, "\n"), ": m ")
				if !ok {
					if strings.Contains(l, "dropped") {
						errs <- fmt.Errorf("client %d: %q", i, l)
						return
					}
					continue // join notices and the like
				}
				from, seq, ok := parsePair(text)
				if !ok || from >= clients {
					errs <- fmt.Errorf("client %d: bad line %q", i, l)
					return
				}
				if seq != next[from] {
					errs <- fmt.Errorf("client %d: from %d got seq %d, want %d", i, from, seq, next[from])
					return
				}
				next[from]++
				order = append(order, from*each+seq)
			}
			orders[i] = order
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	// Exactly once: each reader stopped at clients*each messages with every
	// sender's sequence complete and in order; and the room has one order.
	for i := 1; i < clients; i++ {
		for k := range orders[i] {
			if orders[i][k] != orders[0][k] {
				t.Fatalf("client %d saw message %d at position %d, client 0 saw %d", i, orders[i][k], k, orders[0][k])
			}
		}
	}
}

func parsePair(s string) (a, b int, ok bool) {
	x, y, ok := strings.Cut(s, " ")
	if !ok {
		return 0, 0, false
	}
	a, err1 := strconv.Atoi(x)
	b, err2 := strconv.Atoi(y)
	return a, b, err1 == nil && err2 == nil
}

// dialSmall connects with a small receive buffer, set before the handshake
// so that the advertised window stays small: a client that stops reading
// then stops the server's writes after a few kilobytes.
func dialSmall(t *testing.T, in *sdktest.Instance) *peer {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", in.Addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &peer{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// burst has a send n lines of size bytes ("a: m SEQ xxx..."), chunk at a
// time: the next chunk goes once a has read its own echo of this one and
// the watcher has read it too (each seq it reads arrives on acks). So the
// burst is as fast as the room and the watcher can take it, and no faster.
// It returns a channel that yields nil once done.
func burst(a *peer, n, size, chunk int, acks <-chan int) <-chan error {
	done := make(chan error, 1)
	pad := strings.Repeat("x", size)
	go func() {
		// One write per chunk; and linewait is long in these tests: a
		// sender starved of CPU mid-line must not have its line cut by the
		// framing's pause rule.
		w := bufio.NewWriterSize(a.c, chunk*(size+16))
		seen := -1
		for k := 0; k < n; k += chunk {
			end := min(k+chunk, n)
			for j := k; j < end; j++ {
				fmt.Fprintf(w, "m %d %s\n", j, pad)
			}
			if err := w.Flush(); err != nil {
				done <- fmt.Errorf("burst: %w", err)
				return
			}
			for j := k; j < end; j++ {
				l, err := a.r.ReadString('\n')
				if err != nil {
					done <- fmt.Errorf("sender reading its echo %d: %w", j, err)
					return
				}
				if strings.HasPrefix(l, "*** ") {
					j-- // a notice, such as someone's disconnection
					continue
				}
				if seqOf(strings.TrimSuffix(l, "\n")) != j {
					done <- fmt.Errorf("sender: echo %d is %.80q", j, l)
					return
				}
			}
			for acks != nil && seen < end-1 {
				var ok bool
				if seen, ok = <-acks; !ok {
					done <- fmt.Errorf("the watcher stopped at %d", seen)
					return
				}
			}
		}
		done <- nil
	}()
	return done
}

// watch reads n burst lines from b, in order, sending each seq on the
// returned channel, which is closed at the end or on a failure. Notices
// ("*** ...") may come between them; they are kept. The result comes on the
// second channel.
func watch(b *peer, n int) (<-chan int, <-chan watched) {
	acks := make(chan int, n)
	res := make(chan watched, 1)
	go func() {
		defer close(acks)
		var w watched
		defer func() { res <- w }()
		for w.got < n {
			l, err := b.r.ReadString('\n')
			if err != nil {
				w.err = fmt.Errorf("b after %d lines: %w", w.got, err)
				return
			}
			l = strings.TrimSuffix(l, "\n")
			if strings.HasPrefix(l, "*** ") {
				w.notices = append(w.notices, l)
				continue
			}
			if seqOf(l) != w.got {
				w.err = fmt.Errorf("b: line %d is %.80q", w.got, l)
				return
			}
			acks <- w.got
			w.got++
		}
	}()
	return acks, res
}

// watched is what watch saw.
type watched struct {
	got     int      // burst lines, in order
	notices []string // the notices between them
	err     error
}

// seqOf returns the sequence number of a burst line from a, or -1.
func seqOf(l string) int {
	rest, ok := strings.CutPrefix(l, "a: m ")
	if !ok {
		return -1
	}
	s, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// TestSlowReader: the rules for a client that does not read (README.md,
// "Flow control"). Nothing is ever dropped for a client the room keeps;
// the senders wait for a reader who falls behind, a reader who holds them
// back for stall is disconnected, and the room is told.
func TestSlowReader(t *testing.T) {
	t.Run("stalled reader is disconnected, the room goes on", func(t *testing.T) {
		in := start(t, map[string]string{"stall": "2s", "sndbuf": "16384", "linewait": "5s", "floodrate": "0"})
		a, b := named(t, in, "a"), named(t, in, "b")
		s := dialSmall(t, in)
		s.send("/nick s") // and never reads again
		b.expect("*** guest3 is now known as s")
		a.sync()
		for _, p := range []*peer{a, b} {
			_ = p.c.SetDeadline(time.Now().Add(60 * time.Second))
		}

		// 1 MB: more than s's half of the default sendq and its socket
		// buffers, so the room waits for s until stall, then goes on.
		const n = 1000
		start := time.Now()
		acks, watched := watch(b, n)
		sent := burst(a, n, 1000, 50, acks)
		w := <-watched
		if w.err != nil {
			t.Fatal(w.err)
		}
		took := time.Since(start)
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(w.notices, "*** s was disconnected: not reading") {
			b.expect("*** s was disconnected: not reading")
		}
		t.Logf("1 MB to the room while one client stalled (stall=2s): %v", took)
		// Meanwhile the room still works, and a was never refused.
		b.send("still here")
		a.expect("b: still here")
		// s gets the start of the burst and then the end of the connection.
		lines, err := s.closed()
		if err != nil {
			t.Errorf("stalled client: %v, want the connection closed", err)
		}
		for _, l := range lines {
			if strings.Contains(l, "dropped") {
				t.Errorf("stalled client got %q", l)
			}
		}
	})

	t.Run("paused reader loses nothing, the sender waits for it", func(t *testing.T) {
		const sendq = 64 << 10
		in := start(t, map[string]string{"sendq": fmt.Sprint(sendq), "sndbuf": "16384", "linewait": "5s", "floodrate": "0", "stall": "1m"})
		a, b := named(t, in, "a"), named(t, in, "b")
		p := dialSmall(t, in)
		p.send("/nick p")
		p.expect("*** welcome")
		b.expect("is now known as p")
		a.sync()
		for _, q := range []*peer{a, b, p} {
			_ = q.c.SetDeadline(time.Now().Add(60 * time.Second))
		}

		const n, size = 1000, 500
		acks, watched := watch(b, n)
		var seen atomic.Int64
		relay := make(chan int, n)
		go func() {
			defer close(relay)
			for k := range acks {
				seen.Store(int64(k + 1))
				relay <- k
			}
		}()
		sent := burst(a, n, size, 32, relay) // p does not read meanwhile
		time.Sleep(time.Second)              // p's pause
		// What p's path holds when it is full: half the sendq in the room's
		// queue, its socket buffers in the kernel (32 KiB for a send buffer
		// of 16384, 8 KiB for p's receive buffer of 4096) and a batch in
		// flight. Nothing more can have reached b, whatever the load.
		limit := int64((sendq/2 + batchMax + 64<<10) / (size + 10))
		if got := seen.Load(); got >= limit || got >= n {
			t.Fatalf("b had %d of %d lines while p was paused; flow control allows fewer than %d", got, n, limit)
		}
		select {
		case err := <-sent:
			t.Fatalf("the burst ended while p was paused: %v", err)
		default:
		}
		t.Logf("while p was paused the room let %d of %d lines through", seen.Load(), n)

		// Now p reads: every line, in order, and nothing dropped.
		for k := 0; k < n; {
			l := p.line()
			if strings.Contains(l, "dropped") || strings.HasPrefix(l, "*** ") {
				t.Fatalf("p: %q", l)
			}
			if seq := seqOf(l); seq != k {
				t.Fatalf("p: line %d is %.60q", k, l)
			}
			k++
		}
		if w := <-watched; w.err != nil || len(w.notices) > 0 {
			t.Fatalf("b: %v, notices %q", w.err, w.notices)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		p.send("back")
		b.expect("p: back")
	})
}

// TestDrainStalled: a drain with a client that does not read ends when the
// drain's deadline closes it; the others get the notice.
func TestDrainStalled(t *testing.T) {
	in := start(t, map[string]string{"stall": "1m", "sndbuf": "16384", "linewait": "5s", "floodrate": "0"})
	a := named(t, in, "a")
	s := dialSmall(t, in)
	s.send("/nick s")
	a.expect("is now known as s")
	// 300 KB: more than s's socket buffers take, less than would make the
	// room wait for s.
	if err := <-burst(a, 300, 1000, 50, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := in.Server.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) || in.Server.Stats().Forced != 1 {
		t.Errorf("Shutdown: %v, closed %d connections; want context.DeadlineExceeded, 1 (the stalled one)", err, in.Server.Stats().Forced)
	}
	lines, err := a.closed()
	if err != nil || len(lines) == 0 || lines[len(lines)-1] != "*** the server is shutting down" {
		t.Errorf("a got %q, %v", lines, err)
	}
}
