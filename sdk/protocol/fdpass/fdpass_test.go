//go:build linux

package fdpass_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every read and write on a test's sockets and pipes.
const timeout = 5 * time.Second

// pair is a connected handoff pair: the host's sending end, its raw
// connection (for crafting malformed messages) and the plugin's receiving end.
type pair struct {
	host   *net.UnixConn
	plugin *net.UnixConn
	s      *fdpass.Sender
	r      *fdpass.Receiver
}

func newPair(t *testing.T) *pair {
	t.Helper()
	host, child, err := fdpass.Pair()
	if err != nil {
		t.Fatalf("Pair: %v", err)
	}
	c, err := fdpass.FileConn(child)
	child.Close()
	if err != nil {
		host.Close()
		t.Fatalf("FileConn: %v", err)
	}
	deadline := time.Now().Add(timeout)
	_ = host.SetDeadline(deadline)
	_ = c.SetDeadline(deadline)
	p := &pair{host: host, plugin: c, s: fdpass.NewSender(host), r: fdpass.NewReceiver(c)}
	t.Cleanup(func() {
		p.s.Close()
		p.r.Close()
	})
	return p
}

// sendRaw writes one message with sendmsg(2) itself, bypassing Sender, so a
// test can send what Sender never would.
func (p *pair) sendRaw(t *testing.T, data []byte, fds []int) {
	t.Helper()
	rc, err := p.host.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = sendmsg(int(fd), data, oob)
		return serr != syscall.EAGAIN
	}); err != nil {
		t.Fatalf("sendmsg: %v", err)
	}
	if serr != nil {
		t.Fatalf("sendmsg: %v", serr)
	}
}

// sendmsg is sendmsg(2) without syscall.Sendmsg's help: that one adds a
// dummy byte to a message with control data and no data, and a test needs to
// send a message of zero bytes with descriptors.
func sendmsg(fd int, data, oob []byte) error {
	var msg syscall.Msghdr
	var iov syscall.Iovec
	if len(data) > 0 {
		iov.Base = &data[0]
		iov.SetLen(len(data))
		msg.Iov = &iov
		msg.Iovlen = 1
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	_, _, errno := syscall.Syscall(syscall.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), 0)
	runtime.KeepAlive(data)
	runtime.KeepAlive(oob)
	if errno != 0 {
		return errno
	}
	return nil
}

// pipe returns a pipe whose ends are closed when the test ends (closing twice
// is harmless).
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_ = r.SetDeadline(time.Now().Add(timeout))
	_ = w.SetDeadline(time.Now().Add(timeout))
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(des)
}

// isOpen reports whether fd is an open descriptor, with fcntl(F_GETFD).
func isOpen(fd int) bool {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return errno == 0
}

func closeAll(hs []fdpass.Handoff) {
	for _, h := range hs {
		h.File.Close()
	}
}

func TestRoundTripPipes(t *testing.T) {
	for _, n := range []int{1, 2, fdpass.MaxBatch} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			p := newPair(t)
			readers := make([]*os.File, n)
			ids := make([]uint64, n)
			fds := make([]int, n)
			for i := range n {
				r, w := pipe(t)
				readers[i] = r
				ids[i] = 1<<63 | uint64(i)*0x0101010101 // high bits set: all 8 bytes must survive
				fds[i] = int(w.Fd())
			}
			if err := p.s.Send(fdpass.Conn, ids, fds); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got, err := p.r.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			defer closeAll(got)
			if len(got) != n {
				t.Fatalf("Recv: %d handoffs, want %d", len(got), n)
			}
			for i, h := range got {
				if h.Kind != fdpass.Conn || h.ID != ids[i] {
					t.Fatalf("handoff %d: kind %q id %#x, want %q %#x", i, h.Kind, h.ID, fdpass.Conn, ids[i])
				}
				if int(h.File.Fd()) == fds[i] {
					t.Fatalf("handoff %d: received the sender's own descriptor %d", i, fds[i])
				}
				msg := []byte("through handoff " + strconv.Itoa(i))
				if _, err := h.File.Write(msg); err != nil {
					t.Fatalf("handoff %d: write: %v", i, err)
				}
				buf := make([]byte, len(msg))
				if _, err := io.ReadFull(readers[i], buf); err != nil || !bytes.Equal(buf, msg) {
					t.Fatalf("handoff %d: read %q, %v; want %q", i, buf, err, msg)
				}
			}
		})
	}
}

func TestRoundTripSockets(t *testing.T) {
	t.Run("tcp conn", func(t *testing.T) {
		p := newPair(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client, err := net.DialTimeout("tcp", ln.Addr().String(), timeout)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		_ = client.SetDeadline(time.Now().Add(timeout))
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(timeout))
		accepted, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := accepted.(*net.TCPConn).File()
		accepted.Close()
		if err != nil {
			t.Fatal(err)
		}
		err = p.s.Send(fdpass.Conn, []uint64{42}, []int{int(f.Fd())})
		f.Close() // after a successful Send the peer holds its own copy
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		got, err := p.r.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		defer closeAll(got)
		if len(got) != 1 || got[0].ID != 42 || got[0].Kind != fdpass.Conn {
			t.Fatalf("Recv: %+v, want one Conn with id 42", got)
		}
		c, err := net.FileConn(got[0].File)
		if err != nil {
			t.Fatalf("FileConn: %v", err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("server side read %q, %v", buf, err)
		}
		if _, err := c.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "pong" {
			t.Fatalf("client read %q, %v", buf, err)
		}
	})

	t.Run("udp socket", func(t *testing.T) {
		p := newPair(t)
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		f, err := pc.(*net.UDPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		err = p.s.Send(fdpass.Packet, []uint64{0}, []int{int(f.Fd())})
		f.Close()
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		got, err := p.r.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		defer closeAll(got)
		if len(got) != 1 || got[0].Kind != fdpass.Packet {
			t.Fatalf("Recv: %+v, want one Packet", got)
		}
		rpc, err := net.FilePacketConn(got[0].File)
		if err != nil {
			t.Fatalf("FilePacketConn: %v", err)
		}
		defer rpc.Close()
		if rpc.LocalAddr().String() != pc.LocalAddr().String() {
			t.Fatalf("received socket bound to %s, want %s", rpc.LocalAddr(), pc.LocalAddr())
		}
		client, err := net.DialTimeout("udp", pc.LocalAddr().String(), timeout)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		_ = client.SetDeadline(time.Now().Add(timeout))
		_ = rpc.SetDeadline(time.Now().Add(timeout))
		pc.Close() // only the received copy is left to read with
		if _, err := client.Write([]byte("dgram")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, from, err := rpc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "dgram" {
			t.Fatalf("ReadFrom: %q, %v", buf[:n], err)
		}
		if _, err := rpc.WriteTo([]byte("reply"), from); err != nil {
			t.Fatal(err)
		}
		n, err = client.Read(buf)
		if err != nil || string(buf[:n]) != "reply" {
			t.Fatalf("client read %q, %v", buf[:n], err)
		}
	})
}

func TestRecvEOF(t *testing.T) {
	p := newPair(t)
	_, w := pipe(t)
	if err := p.s.Send(fdpass.Conn, []uint64{7}, []int{int(w.Fd())}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	p.s.Close()
	// A message sent before the close is still delivered, then io.EOF.
	got, err := p.r.Recv()
	if err != nil || len(got) != 1 || got[0].ID != 7 {
		t.Fatalf("Recv: %+v, %v; want the message sent before the close", got, err)
	}
	closeAll(got)
	for i := range 2 { // EOF is sticky
		if got, err := p.r.Recv(); err != io.EOF {
			closeAll(got)
			t.Fatalf("Recv %d after the peer closed: %v, want io.EOF", i, err)
		}
	}
}

func header(kind fdpass.Kind, version byte, count int, ids ...uint64) []byte {
	b := []byte{byte(kind), version, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(count))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint64(b, id)
	}
	return b
}

func TestRecvMalformed(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		nfds int
		want error
	}{
		{"short", []byte{'C', 1}, 1, fdpass.ErrShortMessage},
		{"header only three bytes", []byte{'C', 1, 0}, 2, fdpass.ErrShortMessage},
		// A zero-byte message with descriptors is not the peer closing.
		{"empty with descriptors", nil, 1, fdpass.ErrShortMessage},
		{"bad version", header(fdpass.Conn, 2, 1, 1), 1, fdpass.ErrBadVersion},
		{"version zero", header(fdpass.Conn, 0, 1, 1), 1, fdpass.ErrBadVersion},
		{"fewer descriptors than header", header(fdpass.Conn, 1, 2, 1, 2), 1, fdpass.ErrCountMismatch},
		{"more descriptors than header", header(fdpass.Conn, 1, 1, 1), 2, fdpass.ErrCountMismatch},
		{"ids missing", header(fdpass.Conn, 1, 2, 1), 2, fdpass.ErrCountMismatch},
		{"trailing bytes", append(header(fdpass.Conn, 1, 1, 1), 0xff), 1, fdpass.ErrCountMismatch},
		{"no descriptors", header(fdpass.Conn, 1, 1, 1), 0, fdpass.ErrCountMismatch},
		// The kernel installs only what fits in the receiver's control
		// buffer and sets MSG_CTRUNC; those it installed must be closed.
		{"more than MaxBatch", header(fdpass.Conn, 1, fdpass.MaxBatch+1, make([]uint64, fdpass.MaxBatch+1)...), fdpass.MaxBatch + 1, fdpass.ErrTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			readers := make([]*os.File, tc.nfds)
			fds := make([]int, tc.nfds)
			writers := make([]*os.File, tc.nfds)
			for i := range tc.nfds {
				readers[i], writers[i] = pipe(t)
				fds[i] = int(writers[i].Fd())
			}
			before := openFDs(t)
			p.sendRaw(t, tc.data, fds)
			for _, w := range writers {
				w.Close()
			}
			got, err := p.r.Recv()
			closeAll(got)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recv: %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Fatalf("Recv returned %d handoffs with an error", len(got))
			}
			// Every write end is closed: ours above, the received copies by
			// Recv. A read end sees EOF only if no copy is left open.
			if n := openFDs(t); n != before-tc.nfds {
				t.Errorf("open descriptors: %d, want %d (received descriptors leaked?)", n, before-tc.nfds)
			}
			for i, r := range readers {
				var b [1]byte
				if n, err := r.Read(b[:]); err != io.EOF {
					t.Fatalf("pipe %d: read %d, %v; want io.EOF (a received copy of its write end is open)", i, n, err)
				}
			}
			// The receiver is still usable.
			_, w := pipe(t)
			if err := p.s.Send(fdpass.Conn, []uint64{9}, []int{int(w.Fd())}); err != nil {
				t.Fatalf("Send after malformed: %v", err)
			}
			got, err = p.r.Recv()
			closeAll(got)
			if err != nil || len(got) != 1 || got[0].ID != 9 {
				t.Fatalf("Recv after malformed: %+v, %v", got, err)
			}
		})
	}
}

func TestSendInvalid(t *testing.T) {
	_, w := pipe(t)
	fd := int(w.Fd())
	many := make([]int, fdpass.MaxBatch+1)
	manyIDs := make([]uint64, fdpass.MaxBatch+1)
	for i := range many {
		many[i] = fd
	}
	closedR, closedW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	closedR.Close()
	badFD := int(closedW.Fd())
	closedW.Close()
	if isOpen(badFD) {
		t.Fatalf("descriptor %d is open after Close", badFD)
	}
	cases := []struct {
		name string
		ids  []uint64
		fds  []int
		want string
	}{
		{"none", nil, nil, "send 0 ids with 0 descriptors"},
		{"more ids", []uint64{1, 2}, []int{fd}, "send 2 ids with 1 descriptors"},
		{"more fds", []uint64{1}, []int{fd, fd}, "send 1 ids with 2 descriptors"},
		{"over MaxBatch", manyIDs, many, "send 65 ids with 65 descriptors (1..64)"},
		{"closed descriptor", []uint64{1}, []int{badFD}, "bad file descriptor"},
	}
	p := newPair(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.s.Send(fdpass.Conn, tc.ids, tc.fds)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Send: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if !isOpen(fd) {
		t.Fatal("a failed Send closed the caller's descriptor")
	}
	// Nothing was delivered: the next message the receiver sees is this one.
	if err := p.s.Send(fdpass.Packet, []uint64{5}, []int{fd}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got, err := p.r.Recv()
	closeAll(got)
	if err != nil || len(got) != 1 || got[0].ID != 5 || got[0].Kind != fdpass.Packet {
		t.Fatalf("Recv: %+v, %v; want only the valid message", got, err)
	}
}

func TestFileConnRejectsOtherFiles(t *testing.T) {
	t.Run("pipe", func(t *testing.T) {
		r, _ := pipe(t)
		if c, err := fdpass.FileConn(r); err == nil {
			c.Close()
			t.Fatal("FileConn(pipe): no error")
		}
	})
	t.Run("tcp listener", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c, err := fdpass.FileConn(f)
		if err == nil {
			c.Close()
			t.Fatal("FileConn(tcp listener): no error")
		}
		if !strings.Contains(err.Error(), "not a Unix socket") {
			t.Fatalf("FileConn(tcp listener): %v, want it to say not a Unix socket", err)
		}
	})
}

// TestRecvTruncated: a receiver at its open-file limit gets the descriptors
// that fit, in order, and the kernel drops the rest (MSG_CTRUNC). Recv returns
// the whole batch: the ids that arrived with their files, the others with
// none, so that a plugin can return them to the host; nothing leaks.
func TestRecvTruncated(t *testing.T) {
	const n, room = 5, 2
	p := newPair(t)
	readers := make([]*os.File, n)
	ids := make([]uint64, n)
	fds := make([]int, n)
	for i := range n {
		r, w := pipe(t)
		readers[i], ids[i], fds[i] = r, uint64(100+i), int(w.Fd())
	}
	if err := p.s.Send(fdpass.Conn, ids, fds); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for _, fd := range fds {
		syscall.Close(fd) // only the copies in flight are left
	}

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(limitWithRoom(t, room))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	got, err := p.r.Recv()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("restore RLIMIT_NOFILE: %v", err)
	}
	defer closeAll(got)
	if !errors.Is(err, fdpass.ErrTruncated) {
		t.Fatalf("Recv at the open-file limit: %v, want ErrTruncated", err)
	}
	if len(got) != n {
		t.Fatalf("Recv: %d handoffs, want the whole batch of %d", len(got), n)
	}
	arrived := 0
	for i, h := range got {
		if h.ID != ids[i] || h.Kind != fdpass.Conn {
			t.Fatalf("handoff %d: %q %d, want %q %d", i, h.Kind, h.ID, fdpass.Conn, ids[i])
		}
		if h.File == nil {
			continue
		}
		if i != arrived {
			t.Fatalf("handoff %d has a file after one without: want a prefix", i)
		}
		arrived++
		if _, err := h.File.Write([]byte("x")); err != nil {
			t.Fatalf("handoff %d: %v", i, err)
		}
		var b [1]byte
		if _, err := readers[i].Read(b[:]); err != nil {
			t.Fatalf("pipe %d: %v", i, err)
		}
	}
	if arrived != room {
		t.Fatalf("%d descriptors arrived with room for %d", arrived, room)
	}
	// Those cut off were closed by the kernel: their pipes see end of file.
	for i := room; i < n; i++ {
		var b [1]byte
		if n, err := readers[i].Read(b[:]); err != io.EOF {
			t.Fatalf("pipe %d, cut off: read %d, %v; want io.EOF", i, n, err)
		}
	}
}

// limitWithRoom is the RLIMIT_NOFILE under which this process has exactly
// room free descriptor numbers (a descriptor's number must be below the
// limit, and the lowest free one is taken first).
func limitWithRoom(t *testing.T, room int) int {
	t.Helper()
	free := 0
	for fd := 0; fd < 1<<16; fd++ {
		if !isOpen(fd) {
			free++
			if free == room {
				return fd + 1
			}
		}
	}
	t.Fatal("no free descriptor numbers")
	return 0
}

// Answers (feature handoff-ack) carry ids and no descriptors, both ways.
func TestAnswers(t *testing.T) {
	p := newPair(t)
	// The plugin answers on its end: a Sender over the same connection.
	back := fdpass.NewReceiver(p.host)
	answer := fdpass.NewSender(p.plugin) // p's cleanup closes the connection
	for _, kind := range []fdpass.Kind{fdpass.Taken, fdpass.Returned} {
		if err := answer.Send(kind, []uint64{3, 1 << 40}, nil); err != nil {
			t.Fatalf("Send %q: %v", kind, err)
		}
		got, err := back.Recv()
		if err != nil || len(got) != 2 || got[0].Kind != kind || got[0].ID != 3 || got[1].ID != 1<<40 ||
			got[0].File != nil || got[1].File != nil {
			t.Fatalf("Recv %q: %+v, %v", kind, got, err)
		}
	}
	_, w := pipe(t)
	if err := answer.Send(fdpass.Taken, []uint64{1}, []int{int(w.Fd())}); err == nil {
		t.Fatal("Send of an answer with a descriptor: no error")
	}
	// An answer that carries descriptors anyway is malformed; they are closed.
	r2, w2 := pipe(t)
	before := openFDs(t)
	p.sendRaw(t, header(fdpass.Taken, 1, 1, 1), []int{int(w2.Fd())})
	w2.Close()
	got, err := p.r.Recv()
	closeAll(got)
	if !errors.Is(err, fdpass.ErrCountMismatch) || got != nil {
		t.Fatalf("Recv of an answer with a descriptor: %+v, %v; want ErrCountMismatch", got, err)
	}
	if n := openFDs(t); n != before-1 {
		t.Errorf("open descriptors: %d, want %d", n, before-1)
	}
	var b [1]byte
	if _, err := r2.Read(b[:]); err != io.EOF {
		t.Fatalf("the descriptor that came with the answer is still open: %v", err)
	}
}
