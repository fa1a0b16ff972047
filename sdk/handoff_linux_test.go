//go:build linux

package sdk

import (
	"context"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
)

// A batch whose descriptors were partly cut off (the process at its
// open-file limit): the connections that arrived are served and answered
// taken, the others answered returned at once, after the taken ones waiting,
// so that the host sends them again (feature handoff-ack).
func TestTakeAnswers(t *testing.T) {
	hostEnd, pc := handoffPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var clients []net.Conn
	var files []*os.File
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.(*net.TCPConn).File()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	srv := NewServer(HandlerFunc(func(_ context.Context, c net.Conn) {
		_, _ = c.Write([]byte("served\n"))
	}), nil)
	defer srv.Shutdown(context.Background())
	rt := &runtime{log: hclog.NewNullLogger()}
	batch := []fdpass.Handoff{
		{Kind: fdpass.Conn, ID: 1, File: files[0]},
		{Kind: fdpass.Conn, ID: 2}, // cut off
		{Kind: fdpass.Conn, ID: 3, File: files[1]},
	}
	returned, _ := rt.take(srv, nil, batch, newAnswerer(fdpass.NewSender(pc)))
	if returned != 1 {
		t.Fatalf("take returned %d, want 1", returned)
	}
	r := fdpass.NewReceiver(hostEnd)
	taken, err := r.Recv()
	if err != nil {
		t.Fatal(err)
	}
	back, err := r.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if taken[0].Kind != fdpass.Taken || !slices.Equal(ids(taken), []uint64{1, 3}) ||
		back[0].Kind != fdpass.Returned || !slices.Equal(ids(back), []uint64{2}) {
		t.Fatalf("answers: %q %v then %q %v; want T [1 3] then R [2]", taken[0].Kind, ids(taken), back[0].Kind, ids(back))
	}
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 7)
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "served\n" {
			t.Fatalf("client %d: %q, %v", i, buf[:n], err)
		}
	}
}

// Taken ids are answered many at once: at the latest takenDelay after the
// first, and at once when fdpass.MaxBatch of them wait.
func TestAnswererBatches(t *testing.T) {
	hostEnd, pc := handoffPair(t)
	a := newAnswerer(fdpass.NewSender(pc))
	for id := range uint64(fdpass.MaxBatch) {
		a.taken(id + 1)
	}
	// The 64th sent them all, before taken returned: nothing waits for a
	// timer (the first message may be a timer's, on a slow machine).
	r := fdpass.NewReceiver(hostEnd)
	var got []uint64
	for n := 0; len(got) < fdpass.MaxBatch && n < fdpass.MaxBatch; n++ {
		if q := inq(t, hostEnd); q == 0 {
			t.Fatalf("after %d of %d ids read, nothing more is waiting", len(got), fdpass.MaxBatch)
		}
		msg, err := r.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(msg)...)
	}
	if len(got) != fdpass.MaxBatch || got[0] != 1 || got[len(got)-1] != fdpass.MaxBatch {
		t.Fatalf("answered %v", got)
	}
	a.taken(100) // alone: the timer answers it
	msg, err := r.Recv()
	if err != nil || msg[0].Kind != fdpass.Taken || !slices.Equal(ids(msg), []uint64{100}) {
		t.Fatalf("a lone taken id: %+v, %v", msg, err)
	}
}

func ids(hs []fdpass.Handoff) []uint64 {
	var out []uint64
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return out
}

// handoffPair is a handoff socket pair: the host's end and the plugin's.
func handoffPair(t *testing.T) (host, plugin *net.UnixConn) {
	t.Helper()
	hostEnd, child, err := fdpass.Pair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostEnd.Close() })
	pc, err := fdpass.FileConn(child)
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	_ = hostEnd.SetDeadline(time.Now().Add(10 * time.Second))
	return hostEnd, pc
}

// inq is SIOCINQ (FIONREAD) on a SOCK_SEQPACKET socket: the bytes of every message
// waiting to be read (unix(7)).
func inq(t *testing.T, c *net.UnixConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Error(err)
		return -1
	}
	var n int32
	var errno syscall.Errno
	_ = rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, unix.SIOCINQ, uintptr(unsafe.Pointer(&n)))
	})
	if errno != 0 {
		t.Error(errno)
	}
	return int(n)
}
