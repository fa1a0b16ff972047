package sdk

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// traceConn is a connection in trace mode: it copies the first budget bytes
// of each direction into TRACE events. Only in trace mode is a connection
// wrapped; the handler then gets a traceConn instead of the *net.TCPConn
// (CloseWrite still works; io.Copy's splice and sendfile do not apply).
type traceConn struct {
	net.Conn
	ce     *connEvents
	budget uint64

	mu      sync.Mutex
	in, out uint64 // bytes seen so far each way
}

func newTraceConn(c net.Conn, ce *connEvents, budget int64) *traceConn {
	return &traceConn{Conn: c, ce: ce, budget: uint64(budget)}
}

func (t *traceConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.record(protocol.Direction_DIRECTION_IN, p[:n])
	}
	return n, err
}

func (t *traceConn) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if n > 0 {
		t.record(protocol.Direction_DIRECTION_OUT, p[:n])
	}
	return n, err
}

func (t *traceConn) record(dir protocol.Direction, p []byte) {
	t.mu.Lock()
	seen := &t.in
	if dir == protocol.Direction_DIRECTION_OUT {
		seen = &t.out
	}
	off := *seen
	*seen += uint64(len(p))
	t.mu.Unlock()
	if off >= t.budget {
		return
	}
	if left := t.budget - off; uint64(len(p)) > left {
		p = p[:left]
	}
	t.ce.trace(dir, off, p)
}

// CloseWrite half-closes the connection, as *net.TCPConn's does.
func (t *traceConn) CloseWrite() error {
	if cw, ok := t.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// observedPacketConn counts a UDP socket's datagrams for DATAGRAMS events
// and, in trace mode, copies the start of each into a TRACE event. It
// embeds the *net.UDPConn, so that its other methods stay reachable; the
// usual read and write methods are counted.
type observedPacketConn struct {
	*net.UDPConn
	q      *eventQueue
	budget int // trace bytes per datagram; 0: no trace
	local  string
}

func observePacketConn(pc net.PacketConn, q *eventQueue) net.PacketConn {
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return pc
	}
	return &observedPacketConn{UDPConn: u, q: q, budget: int(q.traceBytes.Load()), local: addrString(u.LocalAddr())}
}

func (o *observedPacketConn) in(n int, from net.Addr, p []byte) {
	o.q.datagram(true, n)
	o.traceDatagram(protocol.Direction_DIRECTION_IN, from, p[:n])
}

func (o *observedPacketConn) out(n int, to net.Addr, p []byte) {
	o.q.datagram(false, n)
	o.traceDatagram(protocol.Direction_DIRECTION_OUT, to, p[:n])
}

func (o *observedPacketConn) traceDatagram(dir protocol.Direction, peer net.Addr, p []byte) {
	if o.budget <= 0 {
		return
	}
	if len(p) > o.budget {
		p = p[:o.budget]
	}
	o.q.push(&protocol.Event{Kind: protocol.Event_TRACE, TimeUnixNano: time.Now().UnixNano(),
		Peer: addrString(peer), Local: o.local, Direction: dir, Data: append([]byte(nil), p...)})
}

func (o *observedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := o.UDPConn.ReadFrom(p)
	if err == nil {
		o.in(n, a, p)
	}
	return n, a, err
}

func (o *observedPacketConn) WriteTo(p []byte, a net.Addr) (int, error) {
	n, err := o.UDPConn.WriteTo(p, a)
	if err == nil {
		o.out(n, a, p)
	}
	return n, err
}

func (o *observedPacketConn) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	n, a, err := o.UDPConn.ReadFromUDP(p)
	if err == nil {
		o.in(n, a, p)
	}
	return n, a, err
}

func (o *observedPacketConn) WriteToUDP(p []byte, a *net.UDPAddr) (int, error) {
	n, err := o.UDPConn.WriteToUDP(p, a)
	if err == nil {
		o.out(n, a, p)
	}
	return n, err
}

func (o *observedPacketConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	n, a, err := o.UDPConn.ReadFromUDPAddrPort(p)
	if err == nil {
		o.q.datagram(true, n)
		if o.budget > 0 {
			o.traceDatagram(protocol.Direction_DIRECTION_IN, net.UDPAddrFromAddrPort(a), p[:n])
		}
	}
	return n, a, err
}

func (o *observedPacketConn) WriteToUDPAddrPort(p []byte, a netip.AddrPort) (int, error) {
	n, err := o.UDPConn.WriteToUDPAddrPort(p, a)
	if err == nil {
		o.q.datagram(false, n)
		if o.budget > 0 {
			o.traceDatagram(protocol.Direction_DIRECTION_OUT, net.UDPAddrFromAddrPort(a), p[:n])
		}
	}
	return n, err
}

func (o *observedPacketConn) ReadMsgUDP(p, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, oobn, flags, addr, err = o.UDPConn.ReadMsgUDP(p, oob)
	if err == nil {
		o.in(n, addr, p)
	}
	return
}

func (o *observedPacketConn) WriteMsgUDP(p, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	n, oobn, err = o.UDPConn.WriteMsgUDP(p, oob, addr)
	if err == nil {
		o.out(n, addr, p)
	}
	return
}
