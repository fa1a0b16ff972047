package sdk

import (
	"context"
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// MaxDatagram is the largest UDP payload over IPv4 (65,535 minus the IPv4
// and UDP headers). DatagramFunc reads into a 64 KiB buffer, which also holds
// the largest IPv6 payload.
const MaxDatagram = 65507

// DatagramFunc handles one datagram: it gets the payload and its sender and
// returns the reply, or nil for none (an empty non-nil slice sends an empty
// datagram). The payload is only valid during the call. It adapts the simple
// request/reply case to a PacketHandler; a panic loses that one datagram.
type DatagramFunc func(ctx context.Context, payload []byte, from net.Addr) []byte

var _ PacketHandler = DatagramFunc(nil)

// ServePackets reads datagrams until ctx is cancelled or pc is closed.
func (f DatagramFunc) ServePackets(ctx context.Context, pc net.PacketConn) {
	buf := make([]byte, 1<<16)
	for ctx.Err() == nil {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			continue // a timeout set by a drain, or a transient error such as ICMP feedback
		}
		if reply := f.call(ctx, buf[:n], from); reply != nil {
			_, _ = pc.WriteTo(reply, from)
		}
	}
}

func (f DatagramFunc) call(ctx context.Context, payload []byte, from net.Addr) (reply []byte) {
	defer func() {
		if r := recover(); r != nil {
			reply = nil
			logFrom(ctx).Error("datagram handler panic; datagram dropped", "peer", addrString(from),
				"panic", r, "stack", string(debug.Stack()))
		}
	}()
	return f(ctx, payload, from)
}

type logKey struct{}

// Logger returns the plugin's logger carried by a handler's context, or a
// logger that discards.
func Logger(ctx context.Context) hclog.Logger {
	return logFrom(ctx)
}

func logFrom(ctx context.Context) hclog.Logger {
	if l, ok := ctx.Value(logKey{}).(hclog.Logger); ok {
		return l
	}
	return hclog.NewNullLogger()
}

// PacketServer runs a PacketHandler on one or more UDP sockets. A handler that
// panics is logged and started again on the same socket, so one bad datagram
// costs only itself. Its lifecycle is Server's: Serve(pc) blocks,
// Shutdown(ctx) drains, Close stops at once.
type PacketServer struct {
	handler PacketHandler
	log     hclog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	// gate, when set, drops the datagrams the host's rules refuse before
	// the handler reads them.
	gate *rules.Gate

	mu      sync.Mutex
	pcs     []net.PacketConn
	closed  bool
	cut     bool // cutOff has run
	running int  // handlers not yet returned
	wg      sync.WaitGroup
	panics  uint64
	total   uint64
	forced  uint64

	// events, when set, counts the datagrams (and traces them).
	events *eventQueue
}

// NewPacketServer returns a PacketServer that runs h.
func NewPacketServer(h PacketHandler, log hclog.Logger) *PacketServer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), logKey{}, log))
	return &PacketServer{handler: h, log: log, ctx: ctx, cancel: cancel}
}

// Serve runs the handler on pc, again after each panic (10 ms later), and
// blocks until Shutdown or Close, when it returns ErrServerClosed, or until
// the handler returns by itself, when it returns nil. The server closes pc on
// Shutdown or Close; after them Serve closes pc at once.
func (s *PacketServer) Serve(pc net.PacketConn) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		return ErrServerClosed
	}
	s.pcs = append(s.pcs, pc)
	if s.events != nil {
		// Under the gate: every datagram read is counted, refused ones too.
		pc = observePacketConn(pc, s.events)
	}
	if s.gate != nil {
		pc = s.gate.PacketConn(pc)
	}
	s.running++
	s.total++
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}()
	for s.ctx.Err() == nil && !s.runOnce(pc) {
		select { // a handler that panics at once must not spin
		case <-time.After(10 * time.Millisecond):
		case <-s.ctx.Done():
		}
	}
	if s.ctx.Err() != nil {
		return ErrServerClosed
	}
	return nil
}

// runOnce runs the handler and reports whether it returned normally.
func (s *PacketServer) runOnce(pc net.PacketConn) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.mu.Lock()
			s.panics++
			s.mu.Unlock()
			s.log.Error("packet handler panic; restarting it", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	s.handler.ServePackets(s.ctx, pc)
	return true
}

// Shutdown cancels the handlers' context, wakes their reads, and waits for
// them until ctx is done; then it closes the sockets, and waits for the
// handlers still running. It returns nil when every handler returned in
// time, or ctx's error when some were still running at the deadline;
// Stats().Forced counts them.
func (s *PacketServer) Shutdown(ctx context.Context) error {
	pcs := s.stopReading()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	forced := 0
	select {
	case <-done:
	case <-ctx.Done():
		forced = s.cutOff()
	}
	for _, pc := range pcs {
		pc.Close()
	}
	<-done
	if forced == 0 {
		return nil
	}
	return ctx.Err()
}

// Close cancels the handlers' context and closes the sockets at once,
// without waiting for the handlers (Shutdown waits). The handlers still
// running count in Stats().Forced. It returns nil.
func (s *PacketServer) Close() error {
	pcs := s.refuse()
	s.cutOff()
	for _, pc := range pcs {
		pc.Close()
	}
	return nil
}

// stopReading is refuse, then it wakes the handlers' reads with a deadline in
// the past: once it returns, no read on the server's sockets returns a
// datagram any more (a handler that sets its own deadline again breaks
// this). It returns the sockets.
func (s *PacketServer) stopReading() []net.PacketConn {
	pcs := s.refuse()
	for _, pc := range pcs {
		_ = pc.SetReadDeadline(time.Now())
	}
	return pcs
}

// refuse makes Serve refuse new sockets, cancels the handlers' context and
// returns the sockets served.
func (s *PacketServer) refuse() []net.PacketConn {
	s.mu.Lock()
	s.closed = true
	pcs := s.pcs
	s.mu.Unlock()
	s.cancel()
	return pcs
}

// cutOff counts the handlers still running as forced and returns how many;
// after refuse none starts, so only its first call counts.
func (s *PacketServer) cutOff() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		return 0
	}
	s.cut = true
	s.forced += uint64(s.running)
	return s.running
}

// Stats returns the server's counters: Active the handlers running, Total
// the sockets served, Panics, and Forced.
func (s *PacketServer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Active: int64(s.running), Total: s.total, Panics: s.panics, Forced: s.forced}
}
