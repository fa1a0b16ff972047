package rules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// HeaderTimeout bounds how long a trusted proxy may take to send its PROXY
// header (go-proxyproto's default): a proxy sends it the moment it connects,
// so only a broken or hostile one waits that long.
var HeaderTimeout = 10 * time.Second

// Refusal is one refused connection or datagram, for the log and the
// REFUSED event.
type Refusal struct {
	Reason Reason
	// Peer is the client: from the PROXY header when there was one.
	Peer  netip.AddrPort
	Local net.Addr
	// Err says what was wrong with a PROXY header.
	Err error
	// Log is set on the first refusal of this source within a second.
	Log bool
}

// OnRefuse sets the function told of each refusal by AcceptConn and
// PacketConn. Set it before the gate is used.
func (g *Gate) OnRefuse(f func(Refusal)) { g.onRefuse = f }

// refuse closes c (if not nil) and reports the refusal, counted first, so
// that whoever sees the close also finds it counted.
func (g *Gate) refuse(c net.Conn, rf Refusal) {
	rf.Log = g.Refuse(rf.Reason, rf.Peer.Addr(), time.Now())
	if c != nil {
		c.Close()
	}
	if g.onRefuse != nil {
		g.onRefuse(rf)
	}
}

// AcceptConn runs a newly accepted connection through the gate, the pipeline
// a plugin that accepts itself needs: when the peer is a trusted proxy it
// reads the PROXY header (v1 or v2, github.com/pires/go-proxyproto, within
// HeaderTimeout) and takes the client from it; then the rules apply to the
// client. Admitted, it returns the connection to serve, whose RemoteAddr is
// the client and whose Close counts it closed; refused, it closes c at once,
// reports the refusal (OnRefuse) and returns false.
//
// Reading the header blocks, so with PROXY protocol call it on the
// connection's own goroutine. A connection from a peer that is not a trusted
// proxy must not start with a header: its first read is checked (see
// IsProxyHeader), and a header makes that read fail and the connection close,
// refused for ProxyHeader. An untrusted peer's header is never parsed, so it
// cannot choose the address the rules and the handler see.
func (g *Gate) AcceptConn(c net.Conn) (net.Conn, bool) {
	r := g.rules.Load()
	if r == nil {
		return c, true
	}
	peer := AddrPort(c.RemoteAddr())
	client := peer
	served := c
	if r.ProxyProtocol() {
		if r.Trusted(peer.Addr()) {
			hc, err := readHeader(c)
			if err != nil {
				g.refuse(c, Refusal{Reason: ProxyHeader, Peer: peer, Local: c.LocalAddr(), Err: err})
				return nil, false
			}
			client, served = AddrPort(hc.remote), hc
		} else {
			served = &untrustedConn{Conn: c, g: g, peer: peer}
		}
	}
	why, counted := g.AdmitCounted(client.Addr(), time.Now())
	if why != "" {
		g.refuse(c, Refusal{Reason: why, Peer: client, Local: c.LocalAddr()})
		return nil, false
	}
	if counted {
		served = &countedConn{Conn: served, release: func() { g.Release(client.Addr()) }}
	}
	return served, true
}

// readHeader reads a trusted proxy's PROXY header. A LOCAL command (the
// proxy's own health check) keeps the proxy's address.
func readHeader(c net.Conn) (*headerConn, error) {
	br := bufio.NewReaderSize(c, 256) // a v1 line is at most 107 bytes; v2 refills
	h, err := proxyproto.ReadHeaderTimeout(c, br, HeaderTimeout)
	if err != nil {
		return nil, fmt.Errorf("PROXY header from trusted proxy %s: %w", c.RemoteAddr(), err)
	}
	hc := &headerConn{Conn: c, r: br, remote: c.RemoteAddr()}
	if !h.Command.IsLocal() {
		src, _, ok := h.TCPAddrs()
		if !ok {
			return nil, fmt.Errorf("PROXY header from trusted proxy %s: %v is not a TCP client address", c.RemoteAddr(), h.SourceAddr)
		}
		hc.remote = src
	}
	return hc, nil
}

// headerConn is a connection whose PROXY header was read: it serves the bytes
// read past the header first, and RemoteAddr is the client's.
type headerConn struct {
	net.Conn
	remote net.Addr

	mu      sync.Mutex
	r       *bufio.Reader // nil once drained
	drained atomic.Bool
}

func (c *headerConn) Read(b []byte) (int, error) {
	if c.drained.Load() {
		return c.Conn.Read(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r != nil && c.r.Buffered() > 0 {
		return c.r.Read(b)
	}
	c.r = nil
	c.drained.Store(true)
	return c.Conn.Read(b)
}

func (c *headerConn) RemoteAddr() net.Addr { return c.remote }

func (c *headerConn) CloseWrite() error { return closeWrite(c.Conn) }

// SyscallConn is the socket's once the bytes read past the header have been
// served: until then a raw read (a splice) would skip them.
func (c *headerConn) SyscallConn() (syscall.RawConn, error) {
	if !c.drained.Load() {
		c.mu.Lock()
		held := c.r != nil && c.r.Buffered() > 0
		c.mu.Unlock()
		if held {
			return nil, errors.ErrUnsupported
		}
	}
	return syscallConn(c.Conn)
}

// ErrProxyHeader is the read error of a connection refused for sending a
// PROXY header it was not trusted to send.
var ErrProxyHeader = fmt.Errorf("PROXY header from an untrusted peer: %w", ErrRefused)

// untrustedConn checks the first bytes an untrusted peer sends for a PROXY
// header. Only reads are checked: a server that speaks first writes at once,
// and nothing waits for the peer.
type untrustedConn struct {
	net.Conn
	g       *Gate
	peer    netip.AddrPort
	checked atomic.Bool
	mu      sync.Mutex
	bad     bool
}

func (c *untrustedConn) Read(b []byte) (int, error) {
	if c.checked.Load() {
		return c.Conn.Read(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bad {
		return 0, ErrProxyHeader
	}
	if c.checked.Load() {
		return c.Conn.Read(b)
	}
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	c.checked.Store(true)
	if IsProxyHeader(b[:n]) {
		c.bad = true
		c.checked.Store(false)
		c.g.refuse(c.Conn, Refusal{Reason: ProxyHeader, Peer: c.peer, Local: c.Conn.LocalAddr(), Err: ErrProxyHeader})
		return 0, ErrProxyHeader
	}
	return n, err
}

func (c *untrustedConn) CloseWrite() error { return closeWrite(c.Conn) }

// SyscallConn is the socket's once the first bytes were checked: a raw read
// before that would pass a PROXY header unchecked.
func (c *untrustedConn) SyscallConn() (syscall.RawConn, error) {
	if !c.checked.Load() {
		return nil, errors.ErrUnsupported
	}
	return syscallConn(c.Conn)
}

// The PROXY protocol's signatures (haproxy's proxy-protocol.txt, 2.1 and 2.2).
var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// IsProxyHeader reports whether the first bytes a peer sent, b, start with a
// PROXY protocol signature: "PROXY " (v1) or the 12-byte v2 signature. A
// proxy writes its whole header at once, so the first read holds the
// signature; bytes too few to hold one are taken for the protocol's own.
func IsProxyHeader(b []byte) bool {
	return bytes.HasPrefix(b, sigV1) || bytes.HasPrefix(b, sigV2)
}

// countedConn counts its connection closed once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (c *countedConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *countedConn) SyscallConn() (syscall.RawConn, error) { return syscallConn(c.Conn) }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func syscallConn(c net.Conn) (syscall.RawConn, error) {
	if sc, ok := c.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// PacketConn wraps pc so that ReadFrom returns only the datagrams the gate
// admits (allow, deny and rate per datagram); the others are dropped and
// reported (OnRefuse). Writes pass through.
func (g *Gate) PacketConn(pc net.PacketConn) net.PacketConn { return &packetConn{PacketConn: pc, g: g} }

type packetConn struct {
	net.PacketConn
	g *Gate
}

func (p *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := p.PacketConn.ReadFrom(b)
		if err != nil || !p.g.Active() {
			return n, addr, err
		}
		from := AddrPort(addr)
		why := p.g.AdmitDatagram(from.Addr(), time.Now())
		if why == "" {
			return n, addr, err
		}
		p.g.refuse(nil, Refusal{Reason: why, Peer: from, Local: p.LocalAddr()})
	}
}

func (p *packetConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := p.PacketConn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// AddrPort is a TCP or UDP address's IP and port (the zero AddrPort for
// another kind).
func AddrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap
		}
	}
	return netip.AddrPort{}
}
