package sdk

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol/plog"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// ErrServerClosed is returned by Server.Serve and PacketServer.Serve after
// Shutdown or Close.
var ErrServerClosed = errors.New("sdk: server closed")

// Server runs a Handler's connections: one goroutine each, panics recovered,
// every connection tracked so that Shutdown can drain them. The plugin runtime
// feeds it the connections the host hands over (ServeConn) or the host's
// shared listener (Serve); package sdktest feeds it from a loopback listener.
//
// Its lifecycle is net/http's: Serve(l) blocks until l fails or the server
// stops, and then returns ErrServerClosed; Shutdown(ctx) drains, waiting for
// the handlers until ctx is done and closing the connections left; Close
// closes everything at once. A Server is not reused after either.
type Server struct {
	handler Handler
	log     hclog.Logger

	ctx    context.Context // handlers' context, cancelled by Shutdown
	cancel context.CancelFunc

	// lingerTimeout and lingerBytes bound the lingering close (see
	// closeConn); a zero lingerTimeout closes at once. Tests change them.
	lingerTimeout time.Duration
	lingerBytes   int64

	// gate enforces the host's rules where this process accepts (a shared
	// listener) or reads PROXY headers; nil or inactive: none.
	gate *rules.Gate

	mu      sync.Mutex
	conns   map[net.Conn]bool     // true while the conn lingers
	pending map[net.Conn]struct{} // PROXY headers being read
	closed  bool
	cut     bool // closeConns has run
	wg      sync.WaitGroup

	// Accept loops (Serve): Shutdown ends them first, so that a connection
	// an accept returned is served, never closed unserved.
	listeners map[net.Listener]bool
	stopping  bool // under mu: Serve starts no more loops
	accepting sync.WaitGroup

	acceptLog plog.Limiter

	// events, when set (the plugin runtime, with the Events stream on),
	// records each connection's open and close.
	events *eventQueue

	nextID       atomic.Uint64
	active       atomic.Int64
	total        atomic.Uint64
	panics       atomic.Uint64
	acceptErrors atomic.Uint64
	forced       atomic.Uint64
}

// The bounds of the lingering close that ends every connection: after its
// handler returns, the Server half-closes the connection (FIN) and reads and
// discards what the client still sends, until the client closes its side,
// LingerTimeout passes or LingerBytes have been read, and only then closes it.
// Closing a socket whose receive queue holds unread bytes makes the kernel
// send a reset (RST) instead of an orderly FIN (RFC 1122, 4.2.2.13), and a
// reset can destroy the reply the client has not read yet.
//
// This is Apache httpd's lingering close (ap_lingering_close in
// server/connection.c: shutdown(SHUT_WR), then read until EOF, each read
// waiting at most SECONDS_TO_LINGER, 2 s) and net/http's closeWriteAndWait.
// LingerTimeout is shorter than Apache's, since a client that never closes
// holds a goroutine and a descriptor that long; LingerBytes caps the CPU a
// client that streams can make one closing connection cost (reading 4 MiB
// on loopback takes about a millisecond).
const (
	LingerTimeout = time.Second
	LingerBytes   = 4 << 20
)

// NewServer returns a Server that runs h, logging to log.
func NewServer(h Handler, log hclog.Logger) *Server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), logKey{}, log))
	return &Server{handler: h, log: log, ctx: ctx, cancel: cancel, conns: map[net.Conn]bool{},
		pending: map[net.Conn]struct{}{}, listeners: map[net.Listener]bool{},
		lingerTimeout: LingerTimeout, lingerBytes: LingerBytes}
}

// ServeConn serves c on a new goroutine and returns at once. After Shutdown
// it closes c instead.
//
// With rules (the host's, in the plugin runtime), c first goes through them:
// one they refuse is closed at once and never reaches the handler. A
// connection from a trusted proxy has its PROXY header read on its own
// goroutine before the rules apply to the client the header names.
func (s *Server) ServeConn(c net.Conn) { s.serveConn(0, c) }

// serveConn is ServeConn with the connection's id: the one the host gave
// with its descriptor, or 0 for the server to number it.
func (s *Server) serveConn(id uint64, c net.Conn) {
	if g := s.gate; g.Active() {
		if r := g.Rules(); r.ProxyProtocol() && r.Trusted(rules.AddrPort(c.RemoteAddr()).Addr()) {
			s.admitLater(g, id, c)
			return
		}
		sc, ok := g.AcceptConn(c)
		if !ok {
			return
		}
		c = sc
	}
	s.serve(id, c)
}

// admitLater reads c's PROXY header and applies the rules on a goroutine of
// its own. Shutdown closes the connections still sending their header.
func (s *Server) admitLater(g *rules.Gate, id uint64, c net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.pending[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		sc, ok := g.AcceptConn(c)
		s.mu.Lock()
		delete(s.pending, c)
		s.mu.Unlock()
		if ok {
			s.serve(id, sc)
		}
	}()
}

func (s *Server) serve(id uint64, c net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = false
	s.wg.Add(1)
	s.mu.Unlock()
	s.active.Add(1)
	s.total.Add(1)
	if id == 0 {
		id = s.nextID.Add(1)
	}
	go s.run(id, c)
}

func (s *Server) run(id uint64, c net.Conn) {
	defer s.wg.Done()
	var ce *connEvents
	if s.events != nil {
		ce, c = s.events.opened(id, c)
	}
	panicked := true
	defer func() {
		if panicked {
			r := recover()
			s.panics.Add(1)
			s.log.Error("handler panic; closing its connection", "conn", id, "peer", addrString(c.RemoteAddr()),
				"panic", r, "stack", string(debug.Stack()))
		}
		s.closeConn(c, ce, panicked)
	}()
	s.handler.ServeConn(s.ctx, c)
	panicked = false
}

// closeConn ends a connection whose handler returned, with a lingering close
// (see LingerTimeout) unless Shutdown has begun: then the connection closes
// at once, and Shutdown cuts short the lingering ones. With events on it
// records why the connection ended and, from the kernel just before the
// close, how many bytes it carried.
func (s *Server) closeConn(c net.Conn, ce *connEvents, panicked bool) {
	var reason string
	eof := false // the client's FIN was read
	if ce != nil {
		s.mu.Lock()
		drained := s.closed
		s.mu.Unlock()
		switch {
		case panicked:
			reason = reasonPanic
		case drained:
			reason = reasonDrained
		default:
			reason = closeReason(c)
		}
	}
	defer func() {
		if ce != nil {
			st, in, out, _ := tcpInfo(c)
			finIn, finOut := finCounted(st, eof || reason == reasonEOF)
			ce.closed(reason, in-min(in, finIn), out-min(out, finOut))
		}
		c.Close()
		s.mu.Lock()
		delete(s.conns, unwrapConn(c))
		s.mu.Unlock()
		s.active.Add(-1)
	}()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || s.lingerTimeout <= 0 {
		return
	}
	// It fails when the handler closed c, or when the client reset it.
	if cw.CloseWrite() != nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	// Under the lock, so that Shutdown's earlier deadline is never overwritten.
	_ = c.SetReadDeadline(time.Now().Add(s.lingerTimeout))
	s.conns[unwrapConn(c)] = true
	s.mu.Unlock()
	_, err := io.CopyN(io.Discard, c, s.lingerBytes)
	eof = errors.Is(err, io.EOF)
}

// The accept loop's back-off after a temporary error, as net/http's
// Server.Serve: 5 ms, doubling up to 1 s.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// Serve accepts connections on l and serves each until l fails, when it
// returns the error, or Shutdown or Close is called, when it returns
// ErrServerClosed. Serve closes l.
//
// A temporary accept error (see TemporaryAcceptError), such as EMFILE when the
// process is at its open-file limit, does not end Serve: it waits 5 ms,
// doubling up to 1 s while the errors go on, and tries again, as net/http's
// Server.Serve does. The connection that could not be accepted waits in the
// kernel's backlog meanwhile. The errors are logged at WARN at most once a
// second (plog.Limiter), each line with the count of lines suppressed before it.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = true
	s.accepting.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		s.accepting.Done()
	}()
	stop := context.AfterFunc(s.ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	var delay time.Duration
	failures := 0 // in a row
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isStopping() || s.ctx.Err() != nil {
				return ErrServerClosed
			}
			if !TemporaryAcceptError(err) {
				return err
			}
			s.acceptErrors.Add(1)
			failures++
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			if ok, suppressed := s.acceptLog.Allow(time.Now()); ok {
				s.log.Warn("accept failed; retrying", "error", err, "retry_in", delay.String(),
					"failures", failures, "suppressed", suppressed)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		if failures > 0 {
			if ok, suppressed := s.acceptLog.Allow(time.Now()); ok {
				s.log.Info("accepting again", "failures", failures, "suppressed", suppressed)
			}
			failures, delay = 0, 0
		}
		s.ServeConn(c)
	}
}

// TemporaryAcceptError reports whether err, returned by a listener's Accept,
// is one the listener recovers from, so that the accept loop should wait and
// try again rather than stop: a deadline, the process or the system out of
// descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), a connection that
// was aborted or reset before it was accepted (ECONNABORTED, ECONNRESET),
// EINTR and EAGAIN, a firewall refusing it (EPERM), and the network errors
// that Linux passes on from the new connection, which accept(2) says to
// treat like EAGAIN (ENETDOWN, EPROTO, ENOPROTOOPT, EHOSTDOWN, EHOSTUNREACH,
// EOPNOTSUPP, ENETUNREACH). net/http retries the same through
// net.Error.Temporary, which misses ENOBUFS and ENOMEM.
func TemporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPERM,
		syscall.ENETDOWN, syscall.EPROTO, syscall.ENOPROTOOPT, syscall.EHOSTDOWN, syscall.EHOSTUNREACH,
		syscall.EOPNOTSUPP, syscall.ENETUNREACH, syscall.ETIMEDOUT:
		return true
	}
	return false
}

func (s *Server) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// Shutdown drains: it closes the listeners of Serve and waits for their
// accept loops, so that a connection already accepted is served rather than
// dropped (on a listening socket shared with a replacement process, the
// connections not yet accepted wait for that process); then it cancels the
// handlers' context, refuses new connections, waits until every handler has
// returned or ctx is done, and then closes the connections still open and
// waits for their handlers. Once Shutdown has begun, connections close
// without lingering.
//
// It returns nil when every handler returned in time, or ctx's error when it
// had to close connections; Stats().Forced counts them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	s.refuse()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	forced := s.closeConns()
	<-done
	if forced == 0 {
		return nil
	}
	return ctx.Err()
}

// Close stops the server at once: it closes the listeners of Serve, cancels
// the handlers' context and closes every connection, without waiting for the
// handlers to return (Shutdown waits). The connections it closes count in
// Stats().Forced. It returns nil.
func (s *Server) Close() error {
	s.stopAccepting()
	s.refuse()
	s.closeConns()
	return nil
}

// stopAccepting closes the listeners of Serve and waits for their accept
// loops: a connection an accept returned has reached ServeConn by then.
func (s *Server) stopAccepting() {
	s.mu.Lock()
	s.stopping = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.accepting.Wait()
}

// refuse makes the server refuse new connections, cuts the lingering closes
// short, closes the connections still sending a PROXY header and cancels
// the handlers' context.
func (s *Server) refuse() {
	s.mu.Lock()
	s.closed = true
	for c, lingering := range s.conns {
		if lingering {
			_ = c.SetReadDeadline(time.Now())
		}
	}
	for c := range s.pending { // no handler has it yet
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
}

// closeConns closes the connections still open and returns how many; after
// refuse no connection is added, so only its first call finds any to count.
func (s *Server) closeConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		return 0
	}
	s.cut = true
	for c := range s.conns {
		c.Close()
	}
	s.forced.Add(uint64(len(s.conns)))
	return len(s.conns)
}

// Stats are a server's counters.
type Stats struct {
	// Active counts a Server's connections whose handler runs or that
	// linger before closing; a PacketServer's handlers running.
	Active int64
	// Total counts the connections served (a PacketServer: the sockets).
	Total uint64
	// Panics counts the handlers that panicked.
	Panics uint64
	// AcceptErrors counts the temporary accept errors Serve retried.
	AcceptErrors uint64
	// Forced counts the connections (a PacketServer: the running handlers)
	// that Shutdown's deadline or Close cut off.
	Forced uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Active: s.active.Load(), Total: s.total.Load(), Panics: s.panics.Load(),
		AcceptErrors: s.acceptErrors.Load(), Forced: s.forced.Load()}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
