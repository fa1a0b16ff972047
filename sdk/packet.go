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
// costs only itself.
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
	running int // handler goroutines not yet returned
	wg      sync.WaitGroup
	panics  uint64

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

// Serve runs the handler on pc in a new goroutine and returns at once. The
// server closes pc on Shutdown.
func (s *PacketServer) Serve(pc net.PacketConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		pc.Close()
		return
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
	s.wg.Add(1)
	go func() {
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
	}()
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

// Shutdown cancels the handlers' context, wakes their reads, and waits for them
// until ctx is done; then it closes the sockets. It returns how many handlers
// were still running at the deadline.
func (s *PacketServer) Shutdown(ctx context.Context) int {
	s.mu.Lock()
	s.closed = true
	pcs := s.pcs
	s.mu.Unlock()
	s.cancel()
	for _, pc := range pcs {
		_ = pc.SetReadDeadline(time.Now())
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	forced := 0
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		forced = s.running
		s.mu.Unlock()
	}
	for _, pc := range pcs {
		pc.Close()
	}
	<-done
	return forced
}

// Panics returns how many times a handler panicked.
func (s *PacketServer) Panics() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.panics
}
