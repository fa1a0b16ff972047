package sdk

import (
	"context"
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// ErrServerClosed is returned by Server.Serve after Shutdown.
var ErrServerClosed = errors.New("sdk: server closed")

// Server runs a Handler's connections: one goroutine each, panics recovered,
// every connection tracked so that Shutdown can drain them. The plugin runtime
// feeds it the connections the host hands over; package sdktest feeds it from
// a loopback listener; Serve lets a plugin run standalone.
type Server struct {
	handler Handler
	log     hclog.Logger

	ctx    context.Context // handlers' context, cancelled by Shutdown
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	nextID atomic.Uint64
	active atomic.Int64
	total  atomic.Uint64
	panics atomic.Uint64
}

// NewServer returns a Server that runs h, logging to log.
func NewServer(h Handler, log hclog.Logger) *Server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), logKey{}, log))
	return &Server{handler: h, log: log, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
}

// ServeConn serves c on a new goroutine and returns at once. After Shutdown
// it closes c instead.
func (s *Server) ServeConn(c net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.active.Add(1)
	s.total.Add(1)
	go s.run(s.nextID.Add(1), c)
}

func (s *Server) run(id uint64, c net.Conn) {
	defer s.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.log.Error("handler panic; closing its connection", "conn", id, "peer", addrString(c.RemoteAddr()),
				"panic", r, "stack", string(debug.Stack()))
		}
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.active.Add(-1)
	}()
	s.handler.ServeConn(s.ctx, c)
}

// Serve accepts connections on l and serves each until l fails or Shutdown
// is called, when it returns ErrServerClosed. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	stop := context.AfterFunc(s.ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.ServeConn(c)
	}
}

// Shutdown drains: it cancels the handlers' context, refuses new connections,
// waits until every handler has returned or ctx is done, and then closes the
// connections still open and waits for their handlers. It returns how many it
// had to close.
func (s *Server) Shutdown(ctx context.Context) int {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return 0
	case <-ctx.Done():
	}
	s.mu.Lock()
	forced := len(s.conns)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	<-done
	return forced
}

// Stats are a server's counters.
type Stats struct {
	Active int64
	Total  uint64
	Panics uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Active: s.active.Load(), Total: s.total.Load(), Panics: s.panics.Load()}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
