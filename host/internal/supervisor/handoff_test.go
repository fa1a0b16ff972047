package supervisor

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
)

// fakePlugin is the plugin's end of a handoff socket pair, driven by a test.
type fakePlugin struct {
	c      *net.UnixConn
	r      *fdpass.Receiver
	answer *fdpass.Sender
}

// requeued records what a handoff gave back.
type requeued struct {
	mu  sync.Mutex
	ids []uint64
	fds []int
}

func (r *requeued) requeue(ids []uint64, fds []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, ids...)
	r.fds = append(r.fds, fds...)
}

func (r *requeued) get() ([]uint64, []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids), slices.Clone(r.fds)
}

// newTestHandoff returns a running handoff (answers: whether its plugin has
// feature handoff-ack), the fake plugin at the other end, and what it gives
// back. Cleanup closes both ends and waits for run.
func newTestHandoff(t *testing.T, answers bool) (*handoff, *fakePlugin, *requeued) {
	t.Helper()
	hostEnd, child, err := fdpass.Pair()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := fdpass.FileConn(child)
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	_ = pc.SetDeadline(time.Now().Add(10 * time.Second))
	h := newHandoff(hostEnd, hclog.NewNullLogger())
	h.answers.Store(answers)
	rq := &requeued{}
	h.setRequeue(rq.requeue)
	go h.run()
	fp := &fakePlugin{c: pc, r: fdpass.NewReceiver(pc), answer: fdpass.NewSender(pc)}
	t.Cleanup(func() {
		pc.Close()
		<-h.done
		hostEnd.Close()
		_, fds := rq.get()
		for _, fd := range fds {
			syscall.Close(fd)
		}
	})
	return h, fp, rq
}

// conns makes n pipes and returns their write ends' descriptors as the
// "connections" to hand over, and the read ends, which see end of file once
// every copy of their write end is closed.
func conns(t *testing.T, n int) (fds []int, readers []*os.File) {
	t.Helper()
	for range n {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Dup(int(w.Fd()))
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		_ = r.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { r.Close() })
		fds, readers = append(fds, fd), append(readers, r)
	}
	return fds, readers
}

// closedEverywhere reports whether every copy of a pipe's write end is
// closed: its reader sees end of file.
func closedEverywhere(t *testing.T, r *os.File) bool {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(make([]byte, 1))
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	switch {
	case err == io.EOF:
		return true
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false
	}
	t.Fatalf("pipe: %v", err)
	return false
}

func (fp *fakePlugin) recv(t *testing.T) []fdpass.Handoff {
	t.Helper()
	got, err := fp.r.Recv()
	if err != nil {
		t.Fatalf("plugin: Recv: %v", err)
	}
	return got
}

func ready(t *testing.T, h *handoff, within time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return h.Ready(ctx)
}

// The host keeps each connection until the plugin answers for it: a taken
// one's host copy is closed then, a returned one goes back to the listener
// with its host copy open, and returns pause the sends, 5 ms doubling, until
// one is taken again.
func TestHandoffAnswers(t *testing.T) {
	h, fp, rq := newTestHandoff(t, true)
	fds, readers := conns(t, 3)
	if err := h.Send(fdpass.Conn, []uint64{1, 2, 3}, fds); err != nil {
		t.Fatal(err)
	}
	got := fp.recv(t)
	for _, g := range got {
		g.File.Close() // the plugin's copies: the host's decide now
	}
	for i, r := range readers {
		if closedEverywhere(t, r) {
			t.Fatalf("connection %d closed before the plugin answered", i+1)
		}
	}
	if err := fp.answer.Send(fdpass.Taken, []uint64{1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := fp.answer.Send(fdpass.Returned, []uint64{2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ids, _ := rq.get(); len(ids) < 2 && time.Now().Before(deadline); ids, _ = rq.get() {
		time.Sleep(time.Millisecond)
	}
	ids, back := rq.get()
	if !slices.Equal(ids, []uint64{2, 3}) || !slices.Equal(back, fds[1:]) {
		t.Fatalf("given back: ids %v fds %v, want [2 3] %v", ids, back, fds[1:])
	}
	if !closedEverywhere(t, readers[0]) {
		t.Fatal("the host kept its copy of a taken connection")
	}
	if closedEverywhere(t, readers[1]) || closedEverywhere(t, readers[2]) {
		t.Fatal("a returned connection was closed")
	}
	h.mu.Lock()
	pause, left := h.pause, len(h.inflight)
	h.mu.Unlock()
	if pause != minReturnPause || left != 0 {
		t.Fatalf("after a return: pause %s, %d unanswered; want %s, 0", pause, left, minReturnPause)
	}
	if err := ready(t, h, 10*time.Second); err != nil {
		t.Fatalf("Ready after the pause: %v", err)
	}

	// A second return doubles the pause; a batch taken resets it.
	more, _ := conns(t, 2)
	for i, want := range []time.Duration{2 * minReturnPause, 0} {
		id := uint64(10 + i)
		if err := h.Send(fdpass.Conn, []uint64{id}, more[i:i+1]); err != nil {
			t.Fatal(err)
		}
		fp.recv(t)[0].File.Close()
		kind := fdpass.Returned
		if want == 0 {
			kind = fdpass.Taken
		}
		if err := fp.answer.Send(kind, []uint64{id}, nil); err != nil {
			t.Fatal(err)
		}
		if err := ready(t, h, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			h.mu.Lock()
			pause, left := h.pause, len(h.inflight)
			h.mu.Unlock()
			if left == 0 {
				if pause != want {
					t.Fatalf("answer %q: pause %s, want %s", kind, pause, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("answer not applied")
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// A plugin with maxUnanswered connections unanswered gets no more: Ready
// waits until it answers.
func TestHandoffWindow(t *testing.T) {
	h, fp, _ := newTestHandoff(t, true)
	fds, _ := conns(t, maxUnanswered)
	for i := 0; i < maxUnanswered; i += fdpass.MaxBatch {
		ids := make([]uint64, fdpass.MaxBatch)
		for j := range ids {
			ids[j] = uint64(i + j + 1)
		}
		if err := h.Send(fdpass.Conn, ids, fds[i:i+fdpass.MaxBatch]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ready(t, h, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ready with %d unanswered: %v, want it to wait", maxUnanswered, err)
	}
	for range maxUnanswered / fdpass.MaxBatch {
		for _, g := range fp.recv(t) {
			g.File.Close()
		}
	}
	if err := fp.answer.Send(fdpass.Taken, []uint64{1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ready(t, h, 10*time.Second); err != nil {
		t.Fatalf("Ready after an answer: %v", err)
	}

	// A plugin that stays full without answering (its control service
	// fine, its handoff loop stuck) is not taking connections: the handoff
	// fails, so that the supervisor replaces it.
	more, _ := conns(t, 1)
	if err := h.Send(fdpass.Conn, []uint64{1000}, more); err != nil {
		t.Fatal(err)
	}
	h.answerTimeout = 100 * time.Millisecond
	if err := ready(t, h, 10*time.Second); !errors.Is(err, errStalled) {
		t.Fatalf("Ready with the window full and no answer: %v, want errStalled", err)
	}
}

// When the plugin's end closes (it died), every connection it left
// unanswered goes back in accept order, and the handoff refuses more.
func TestHandoffExitGivesBack(t *testing.T) {
	h, fp, rq := newTestHandoff(t, true)
	fds, readers := conns(t, 3)
	if err := h.Send(fdpass.Conn, []uint64{7, 8}, fds[:2]); err != nil {
		t.Fatal(err)
	}
	if err := h.Send(fdpass.Conn, []uint64{9}, fds[2:]); err != nil {
		t.Fatal(err)
	}
	fp.c.Close() // the process dies with both messages unread
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not see the end of file")
	}
	ids, back := rq.get()
	if !slices.Equal(ids, []uint64{7, 8, 9}) || !slices.Equal(back, fds) {
		t.Fatalf("given back: %v %v, want [7 8 9] %v", ids, back, fds)
	}
	for i, r := range readers {
		if closedEverywhere(t, r) {
			t.Fatalf("connection %d was closed with the dead process", i)
		}
	}
	extra, _ := conns(t, 1)
	defer syscall.Close(extra[0])
	if err := h.Send(fdpass.Conn, []uint64{10}, extra); !errors.Is(err, errExited) {
		t.Fatalf("Send after the exit: %v, want errExited", err)
	}
	if err := ready(t, h, 10*time.Second); !errors.Is(err, errExited) {
		t.Fatalf("Ready after the exit: %v, want errExited", err)
	}
}

// When a process dies with connections unanswered, those it did nothing
// with go to the next process, and those it had begun to serve (a byte read
// or written) end with it, as a crash's connections do.
func TestHandoffExitKeepsUntouched(t *testing.T) {
	h, fp, rq := newTestHandoff(t, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cases := []struct {
		name      string
		touch     func(t *testing.T, client net.Conn, fd int)
		untouched bool
	}{
		{"sent, not read", func(t *testing.T, c net.Conn, _ int) { write(t, c, "hi") }, true},
		{"half-closed by the client", func(t *testing.T, c net.Conn, _ int) {
			write(t, c, "bye")
			_ = c.(*net.TCPConn).CloseWrite()
		}, true},
		{"written to", func(t *testing.T, _ net.Conn, fd int) { _, _ = syscall.Write(fd, []byte("greeting")) }, false},
		{"read from", func(t *testing.T, c net.Conn, fd int) {
			write(t, c, "hi")
			time.Sleep(10 * time.Millisecond) // for the bytes to arrive
			_, _ = syscall.Read(fd, make([]byte, 1))
		}, false},
	}
	var ids []uint64
	var fds []int
	clients := map[uint64]net.Conn{}
	for i, tc := range cases {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.(*net.TCPConn).File()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		tc.touch(t, c, fd)
		id := uint64(i + 1)
		ids, fds = append(ids, id), append(fds, fd)
		clients[id] = c
	}
	time.Sleep(20 * time.Millisecond) // for a half-close to arrive
	if err := h.Send(fdpass.Conn, ids, fds); err != nil {
		t.Fatal(err)
	}
	for _, g := range fp.recv(t) {
		g.File.Close()
	}
	fp.c.Close() // the process dies without answering
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not see the end of file")
	}
	back, _ := rq.get()
	var want []uint64
	for i, tc := range cases {
		if tc.untouched {
			want = append(want, uint64(i+1))
		}
	}
	if !slices.Equal(back, want) {
		t.Fatalf("given back %v, want %v (the untouched ones)", back, want)
	}
	for i, tc := range cases {
		if tc.untouched {
			continue
		}
		c := clients[uint64(i+1)]
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		// Closed: end of file, or a reset when it held bytes unread.
		if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("%s: the client's connection was not closed: %v", tc.name, err)
		}
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// A plugin without handoff-ack: the host closes its copy once sendmsg
// succeeds, and holds back while the plugin leaves more than maxUnreadBytes
// unread.
func TestHandoffWithoutAnswers(t *testing.T) {
	h, fp, _ := newTestHandoff(t, false)
	fds, readers := conns(t, 1)
	if err := h.Send(fdpass.Conn, []uint64{1}, fds); err != nil {
		t.Fatal(err)
	}
	got := fp.recv(t)
	got[0].File.Close()
	if !closedEverywhere(t, readers[0]) {
		t.Fatal("the host kept its copy after sendmsg")
	}
	sent := 0
	for q, _ := h.unread(); q <= maxUnreadBytes && sent < 10000; q, _ = h.unread() {
		more, _ := conns(t, 1)
		if err := h.Send(fdpass.Conn, []uint64{uint64(sent + 2)}, more); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if err := ready(t, h, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ready with %d messages unread: %v, want it to wait", sent, err)
	}
	h.answerTimeout = 100 * time.Millisecond
	if err := ready(t, h, 10*time.Second); !errors.Is(err, errStalled) {
		t.Fatalf("Ready with messages unread for long: %v, want errStalled", err)
	}
	h.answerTimeout = answerTimeout
	for range sent {
		for _, g := range fp.recv(t) {
			g.File.Close()
		}
	}
	if err := ready(t, h, 10*time.Second); err != nil {
		t.Fatalf("Ready once all is read: %v", err)
	}
	t.Logf("%d messages of one connection passed %d bytes unread", sent, maxUnreadBytes)
}

// BenchmarkHandoff is one connection's handoff, host and plugin side in one
// process over a real socket pair: the host sends a descriptor (a dup of a
// pipe's, standing for an accepted connection), the plugin receives it and
// closes its copy, and, with answers (feature handoff-ack), answers it taken,
// and the host closes its copy on the answer. Compare the two sub-benchmarks
// for the cost of the answers:
//
//	go test -run '^$' -bench Handoff -count 10 ./host/internal/supervisor
func BenchmarkHandoff(b *testing.B) {
	for _, answers := range []bool{false, true} {
		name := "without answers"
		if answers {
			name = "with answers"
		}
		b.Run(name, func(b *testing.B) {
			hostEnd, child, err := fdpass.Pair()
			if err != nil {
				b.Fatal(err)
			}
			pc, err := fdpass.FileConn(child)
			child.Close()
			if err != nil {
				b.Fatal(err)
			}
			h := newHandoff(hostEnd, hclog.NewNullLogger())
			h.answers.Store(answers)
			go h.run()
			plugin := make(chan struct{})
			go func() {
				defer close(plugin)
				r, answer := fdpass.NewReceiver(pc), fdpass.NewSender(pc)
				ids := make([]uint64, 0, fdpass.MaxBatch)
				for {
					got, err := r.Recv()
					if err != nil {
						return
					}
					ids = ids[:0]
					for _, g := range got {
						g.File.Close()
						ids = append(ids, g.ID)
					}
					if answers {
						_ = answer.Send(fdpass.Taken, ids, nil)
					}
				}
			}()
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				fd, err := syscall.Dup(int(w.Fd()))
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Ready(ctx); err != nil {
					b.Fatal(err)
				}
				if err := h.Send(fdpass.Conn, []uint64{uint64(i + 1)}, []int{fd}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			hostEnd.CloseWrite()
			<-plugin
			pc.Close()
			<-h.done
			hostEnd.Close()
		})
	}
}
