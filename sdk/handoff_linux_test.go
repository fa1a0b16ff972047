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
// open-file limit) is answered before any connection is served: the ids
// whose descriptor arrived as taken, the others as returned, so the host
// sends those again (feature handoff-ack).
func TestTakeAnswersBeforeServing(t *testing.T) {
	hostEnd, child, err := fdpass.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer hostEnd.Close()
	pc, err := fdpass.FileConn(child)
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_ = hostEnd.SetDeadline(time.Now().Add(10 * time.Second))

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

	// Each handler records how many bytes of answers wait on the host's end
	// when it starts: both answers (T of two ids, R of one: 20 + 12 bytes)
	// must be there already.
	queued := make(chan int, 2)
	srv := NewServer(HandlerFunc(func(_ context.Context, c net.Conn) {
		queued <- inq(t, hostEnd)
		_, _ = c.Write([]byte("served\n"))
	}), nil)
	defer srv.Shutdown(context.Background())
	rt := &runtime{log: hclog.NewNullLogger()}
	batch := []fdpass.Handoff{
		{Kind: fdpass.Conn, ID: 1, File: files[0]},
		{Kind: fdpass.Conn, ID: 2}, // cut off
		{Kind: fdpass.Conn, ID: 3, File: files[1]},
	}
	returned, _ := rt.take(srv, nil, batch, fdpass.NewSender(pc))
	if returned != 1 {
		t.Fatalf("take returned %d, want 1", returned)
	}
	for i := range 2 {
		select {
		case n := <-queued:
			if n != 32 {
				t.Fatalf("handler %d started with %d bytes of answers written, want 32", i, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a taken connection was not served")
		}
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
	ids := func(hs []fdpass.Handoff) []uint64 {
		var out []uint64
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out
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
