// Package listen owns the host's sockets: it binds a TCP listener or a UDP
// socket for each plugin, keeps it open for the host's lifetime, and hands what
// it accepts to the plugin's current process by descriptor.
//
// The TCP accept loop calls accept4(2) directly on the listening socket from
// inside the runtime poller (syscall.RawConn.Read): it makes no net.Conn, reads
// no byte, and sends every connection that is ready in one SCM_RIGHTS message,
// so under a burst one sendmsg carries many connections. When no plugin
// process is there to take them, or the one there does not take more (a
// Pacer), the host simply does not accept, and new clients wait in the
// kernel's backlog until one does. A connection the host accepted is served
// or kept: one the plugin could not take comes back (Requeue) and is sent
// again, first.
package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// Sink takes descriptors: a plugin process's end of the handoff socket.
//
// After a Send of connections (fdpass.Conn) returns nil, the sink owns their
// descriptors: it closes each once the plugin holds its own copy, or gives it
// back with TCP.Requeue. After a failed Send nothing was delivered and the
// caller still owns them. A shared socket's descriptor (fdpass.Packet,
// fdpass.Listener) stays the caller's either way.
type Sink interface {
	Send(kind fdpass.Kind, ids []uint64, fds []int) error
}

// A Pacer is a Sink that is sometimes not taking connections: Ready blocks
// until it is, and fails when it never will be (its process is gone). TCP's
// Serve calls it before each Send, and does not accept meanwhile.
type Pacer interface {
	Ready(ctx context.Context) error
}

// The accept loop's back-off after an error that is not the connection's own
// (EMFILE, ENFILE, ENOBUFS, ENOMEM: the host is out of descriptors or
// memory), as net/http's Server.Serve: 5 ms, doubling up to 1 s. Meanwhile
// clients wait in the backlog.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// TCP is a listener whose connections go to a Sink.
type TCP struct {
	// f is the listening socket as a pollable file: a net.TCPListener's
	// RawConn cannot wait for readability, an *os.File's can.
	f      *os.File
	rc     syscall.RawConn
	addr   net.Addr
	closed atomic.Bool

	mu      sync.Mutex // held by Serve; one Serve at a time
	nextID  uint64
	pending []int // accepted, not yet taken by a sink
	ids     []uint64

	gate *gate // the rules the host enforces as it accepts (rules.go); its logger is ours too

	rmu       sync.Mutex // guards the requeued connections
	requeued  []int
	requeueID []uint64
	woken     chan struct{} // a token when connections were requeued

	acceptLog, recoverLog plog.Limiter
}

// ListenTCP binds addr with the given accept backlog.
func ListenTCP(addr string, backlog int) (*TCP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return newTCP(ln.(*net.TCPListener), backlog)
}

// FileTCP adopts a listening TCP socket passed to the process, such as one
// systemd's socket activation passed (sd_listen_fds(3)), instead of binding
// one. It keeps the socket's own backlog (the unit's Backlog=). f is
// closed; the TCP holds a duplicate.
func FileTCP(f *os.File) (*TCP, error) {
	ln, err := adoptListener(f)
	if err != nil {
		return nil, err
	}
	return newTCP(ln, 0)
}

// adoptListener makes a net.TCPListener of an inherited listening socket,
// and closes f.
func adoptListener(f *os.File) (*net.TCPListener, error) {
	defer f.Close()
	if err := checkSocket(f, syscall.SOCK_STREAM, true); err != nil {
		return nil, err
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("a %s socket, not TCP", ln.Addr().Network())
	}
	return tl, nil
}

// checkSocket checks that f is a socket of type typ (SOCK_STREAM or
// SOCK_DGRAM), listening if listening is set.
func checkSocket(f *os.File, typ int, listening bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var got, acc int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		if got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE); gerr == nil && listening {
			acc, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
		}
	}); err != nil {
		return err
	}
	name := map[int]string{syscall.SOCK_STREAM: "stream (TCP)", syscall.SOCK_DGRAM: "datagram (UDP)"}
	switch {
	case gerr != nil:
		return fmt.Errorf("not a socket: %w", gerr)
	case got != typ:
		n := name[got]
		if n == "" {
			n = fmt.Sprintf("type %d", got)
		}
		return fmt.Errorf("a %s socket, want %s", n, name[typ])
	case listening && acc == 0:
		return fmt.Errorf("a stream socket that is not listening")
	}
	return nil
}

// newTCP makes a TCP of ln, which it closes; a positive backlog is set with
// listen(2) again.
func newTCP(ln *net.TCPListener, backlog int) (*TCP, error) {
	// The duplicate shares the socket and its O_NONBLOCK flag, so os.NewFile
	// registers it with the runtime poller.
	f, err := ln.File()
	bound := ln.Addr()
	ln.Close()
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var lerr error
	// Go listens with the system's somaxconn; listen(2) again sets ours.
	if backlog > 0 {
		if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), backlog) }); err != nil || lerr != nil {
			f.Close()
			return nil, fmt.Errorf("set backlog %d: %w", backlog, errors.Join(err, lerr))
		}
	}
	return &TCP{f: f, rc: rc, addr: bound, gate: newGate(bound), woken: make(chan struct{}, 1)}, nil
}

// Addr is the bound address.
func (l *TCP) Addr() net.Addr { return l.addr }

func (l *TCP) logger() hclog.Logger { return *l.gate.log.Load() }

// Close closes the listener and any connection accepted but not handed over.
// New clients are refused from then on.
func (l *TCP) Close() error {
	l.closed.Store(true)
	err := l.f.Close()
	// A Serve blocked in a Send to a plugin that does not read must not block
	// Close: whoever holds the lock last closes what is pending.
	if l.mu.TryLock() {
		l.closePending()
		l.mu.Unlock()
	}
	l.rmu.Lock()
	closeFDs(l.requeued)
	l.requeued, l.requeueID = nil, nil
	l.rmu.Unlock()
	return err
}

func (l *TCP) closePending() {
	closeFDs(l.pending)
	l.pending, l.ids = l.pending[:0], l.ids[:0]
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// Requeue gives back connections a sink took but whose plugin could not take
// them, or exited before it did: they go to the sink of the current or next
// Serve before any connection accepted after them. It is safe to call from
// any goroutine; after Close it closes them.
func (l *TCP) Requeue(ids []uint64, fds []int) {
	l.rmu.Lock()
	if l.closed.Load() {
		l.rmu.Unlock()
		closeFDs(fds)
		return
	}
	l.requeued = append(l.requeued, fds...)
	l.requeueID = append(l.requeueID, ids...)
	l.rmu.Unlock()
	select {
	case l.woken <- struct{}{}:
	default:
	}
	_ = l.f.SetReadDeadline(time.Unix(1, 0)) // wakes a Serve waiting in the poller
}

// takeRequeued puts the requeued connections at the front of pending.
func (l *TCP) takeRequeued() {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if len(l.requeued) == 0 {
		return
	}
	l.pending = append(l.requeued, l.pending...)
	l.ids = append(l.requeueID, l.ids...)
	l.requeued, l.requeueID = nil, nil
}

// Serve accepts connections and sends them to sink until ctx is done (it
// returns nil), the listener is closed (net.ErrClosed) or the sink fails (its
// error). Connections the sink did not take are kept and go first to the sink
// of the next Serve: a plugin that died between accept and handoff loses none.
// A sink that is a Pacer is asked before each Send whether it takes more.
//
// An accept error that is not a connection's own (EMFILE, ENFILE, ENOBUFS,
// ENOMEM and any other) does not end Serve: it waits 5 ms, doubling up to
// 1 s while the errors go on, and tries again, as net/http does; the errors
// are logged at most once a second. A connection's own error (ECONNABORTED,
// and the network errors Linux passes on from a new connection, accept(2))
// is retried at once.
func (l *TCP) Serve(ctx context.Context, sink Sink) error {
	l.mu.Lock()
	defer func() {
		l.mu.Unlock()
		if l.closed.Load() && l.mu.TryLock() { // Close ran while we held the lock
			l.closePending()
			l.mu.Unlock()
		}
	}()

	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		_ = l.f.SetReadDeadline(time.Unix(1, 0)) // wakes the poller wait in rc.Read
	})
	defer func() {
		if !stop() {
			<-woken
		}
		_ = l.f.SetReadDeadline(time.Time{})
	}()
	pacer, _ := sink.(Pacer)

	var delay time.Duration
	failures := 0 // accept errors in a row
	for {
		l.takeRequeued()
		for len(l.pending) > 0 {
			if pacer != nil {
				if err := pacer.Ready(ctx); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
			n := min(len(l.pending), fdpass.MaxBatch)
			if err := sink.Send(fdpass.Conn, l.ids[:n], l.pending[:n]); err != nil {
				return err
			}
			l.pending = append(l.pending[:0], l.pending[n:]...)
			l.ids = append(l.ids[:0], l.ids[n:]...)
			l.takeRequeued()
		}
		var acceptErr error
		err := l.rc.Read(func(fd uintptr) bool {
			for len(l.pending) < fdpass.MaxBatch {
				nfd, sa, err := syscall.Accept4(int(fd), syscall.SOCK_CLOEXEC)
				switch {
				case err == nil:
					if l.gate.Active() && !l.gate.admit(nfd, sa) {
						continue // refused: closed at once
					}
					l.nextID++
					l.pending = append(l.pending, nfd)
					l.ids = append(l.ids, l.nextID)
				case err == syscall.EAGAIN:
					return len(l.pending) > 0 // false: wait until readable
				case connectionError(err):
				default:
					acceptErr = err
					return true
				}
			}
			return true
		})
		switch {
		case ctx.Err() != nil:
			return nil
		case l.closed.Load():
			return net.ErrClosed
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Requeue woke us (or ctx, which the next check sees).
			_ = l.f.SetReadDeadline(time.Time{})
			if ctx.Err() != nil {
				return nil
			}
		case err != nil:
			return err
		case acceptErr != nil && len(l.pending) == 0:
			failures++
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			if ok, suppressed := l.acceptLog.Allow(time.Now()); ok {
				l.logger().Warn("accept failed; clients wait in the backlog, retrying", "error", acceptErr,
					"retry_in", delay.String(), "failures", failures, "suppressed", suppressed)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.woken:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			t.Stop()
		case acceptErr == nil && failures > 0:
			if ok, suppressed := l.recoverLog.Allow(time.Now()); ok {
				l.logger().Info("accepting again", "failures", failures, "suppressed", suppressed)
			}
			failures, delay = 0, 0
		}
	}
}

// connectionError reports whether an accept4 error is the new connection's
// own, to be retried at once: the client aborted, or one of the network
// errors Linux passes on from the new connection, which accept(2) says to
// treat like EAGAIN.
func connectionError(err error) bool {
	switch err {
	case syscall.EINTR, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.ENOPROTOOPT,
		syscall.EHOSTDOWN, syscall.ENONET, syscall.EHOSTUNREACH, syscall.EOPNOTSUPP, syscall.ENETUNREACH,
		syscall.ENETDOWN, syscall.EPERM, syscall.ETIMEDOUT:
		return true
	}
	return false
}

// Shared is a socket the host binds and shares with the plugin process rather
// than accepting on: a UDP socket (ListenUDP), or a TCP listener whose
// connections the plugin accepts itself (ListenTCPShared). The host keeps its
// own descriptor for its lifetime and gives each plugin process a copy, so
// datagrams, or clients in the accept backlog, wait in the kernel while a
// plugin restarts.
//
// The host's copy is a bare descriptor, kept out of the runtime poller: the
// host never reads it, and registered there (edge-triggered) every datagram
// woke the host for nothing, about 4-7 µs of host CPU per datagram.
type Shared struct {
	addr net.Addr
	kind fdpass.Kind

	mu     sync.Mutex // a closed descriptor's number may be reused: never send it
	fd     int
	closed bool
}

// ListenUDP binds addr; readBuf and writeBuf, when positive, set the socket's
// kernel buffer sizes.
func ListenUDP(addr string, readBuf, writeBuf int) (*Shared, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	u := pc.(*net.UDPConn)
	defer u.Close() // deregisters it from the poller; the duplicate stays
	if readBuf > 0 {
		if err := u.SetReadBuffer(readBuf); err != nil {
			return nil, fmt.Errorf("UDP read buffer %d: %w", readBuf, err)
		}
	}
	if writeBuf > 0 {
		if err := u.SetWriteBuffer(writeBuf); err != nil {
			return nil, fmt.Errorf("UDP write buffer %d: %w", writeBuf, err)
		}
	}
	return share(u, fdpass.Packet, u.LocalAddr(), nil)
}

// FileUDP adopts a bound UDP socket passed to the process (systemd's socket
// activation, ListenDatagram=); readBuf and writeBuf as for ListenUDP. f is
// closed.
func FileUDP(f *os.File, readBuf, writeBuf int) (*Shared, error) {
	defer f.Close()
	if err := checkSocket(f, syscall.SOCK_DGRAM, false); err != nil {
		return nil, err
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	u, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("a %s socket, not UDP", pc.LocalAddr().Network())
	}
	defer u.Close()
	if readBuf > 0 {
		if err := u.SetReadBuffer(readBuf); err != nil {
			return nil, fmt.Errorf("UDP read buffer %d: %w", readBuf, err)
		}
	}
	if writeBuf > 0 {
		if err := u.SetWriteBuffer(writeBuf); err != nil {
			return nil, fmt.Errorf("UDP write buffer %d: %w", writeBuf, err)
		}
	}
	return share(u, fdpass.Packet, u.LocalAddr(), nil)
}

// FileTCPShared adopts a listening TCP socket passed to the process for a
// plugin that accepts itself (ListenTCPShared). f is closed.
func FileTCPShared(f *os.File) (*Shared, error) {
	ln, err := adoptListener(f)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	return share(ln, fdpass.Listener, ln.Addr(), nil)
}

// ListenTCPShared binds a TCP listener with the given backlog whose
// connections the plugin accepts itself: the host hands over the listening
// socket, as it does a UDP socket, and takes no part in any connection. It
// saves the per-connection handoff (one sendmsg in the host, a dup and a few
// fcntls in the plugin) at the price of the host seeing no connection.
func ListenTCPShared(addr string, backlog int) (*Shared, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer ln.Close() // deregisters it from the poller; the duplicate stays
	return share(ln.(*net.TCPListener), fdpass.Listener, ln.Addr(), func(fd int) error {
		return syscall.Listen(fd, backlog) // Go listens with somaxconn
	})
}

// share duplicates sc's descriptor into a Shared of the given kind, after
// prepare (if any) has run on it. The caller closes sc, which takes the
// original out of the runtime poller; the duplicate is never in it.
func share(sc syscall.Conn, kind fdpass.Kind, addr net.Addr, prepare func(fd int) error) (*Shared, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) {
		if prepare != nil {
			if derr = prepare(int(s)); derr != nil {
				return
			}
		}
		fd, derr = unixDupCloexec(int(s))
	}); err != nil || derr != nil {
		return nil, fmt.Errorf("share %s socket: %w", addr.Network(), errors.Join(err, derr))
	}
	return &Shared{fd: fd, addr: addr, kind: kind}, nil
}

func unixDupCloexec(fd int) (int, error) {
	nfd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(nfd), nil
}

// Addr is the bound address.
func (u *Shared) Addr() net.Addr { return u.addr }

// Close closes the host's descriptor. A plugin's copy stays open until the
// plugin closes it.
func (u *Shared) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return net.ErrClosed
	}
	u.closed = true
	return syscall.Close(u.fd)
}

// Serve hands the socket to sink and returns when ctx is done: the plugin
// serves it from then on, and the host does nothing with it.
func (u *Shared) Serve(ctx context.Context, sink Sink) error {
	u.mu.Lock()
	err := net.ErrClosed
	if !u.closed {
		err = sink.Send(u.kind, []uint64{0}, []int{u.fd})
	}
	u.mu.Unlock()
	if err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
