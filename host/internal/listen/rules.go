package listen

import (
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// gate applies the rules to the connections a TCP listener accepts, before
// any is handed over: a refused one is closed at once, so it costs the host
// one accept and one close and the plugin nothing. With no rules it costs one
// atomic load per connection.
//
// Connection limits need to know when a connection closes, which the host
// does not see once it handed the descriptor over. So the gate keeps both
// ends of every connection it admitted, counts it open, and only when a
// limit would refuse one does it ask the kernel which of them are still open
// (stillOpen: sock_diag lookups, 32 to a netlink message), forgets the
// others and decides again. Below the limits that costs nothing; at a limit,
// one round trip per 32 connections counted.
type gate struct {
	*rules.Gate
	local netip.AddrPort
	log   atomic.Pointer[hclog.Logger]

	rebuild atomic.Bool // the rules began to count: learn what is open now

	// Touched by the accept loop only (TCP.mu). admitted keeps at most
	// maxAdmitted connections: past that the one admitted first is
	// forgotten and counted closed, in constant time (it errs on the side
	// of admitting); a resync costs at most maxAdmitted lookups.
	admitted *simplelru.LRU[netip.AddrPort, netip.AddrPort] // client -> local end
	diagLog  time.Time
}

// maxAdmitted bounds the connections a listener remembers for its limits:
// clients that connect from ever new addresses and ports (each closing at
// once, so that no limit is reached and nothing is resynced) cannot grow it
// past this.
const maxAdmitted = 1 << 16

func newGate(addr net.Addr) *gate {
	g := &gate{Gate: rules.NewGate(nil), local: rules.AddrPort(addr)}
	g.admitted, _ = simplelru.NewLRU[netip.AddrPort, netip.AddrPort](maxAdmitted, nil)
	log := hclog.NewNullLogger()
	g.log.Store(&log)
	return g
}

// SetRules replaces the rules the listener enforces as it accepts (nil:
// none), at once and safely while it serves. Connections already open stay
// open and count against the new limits.
func (l *TCP) SetRules(r *rules.Rules) {
	counted := l.gate.Rules().Counts()
	l.gate.SetRules(r)
	if r.Counts() && !counted {
		l.gate.rebuild.Store(true)
	}
}

// Rules returns the rules in force (nil: none).
func (l *TCP) Rules() *rules.Rules { return l.gate.Rules() }

// SetLogger sets where refusals (at most one line per source per second)
// and accept errors (at most one line a second) are logged.
func (l *TCP) SetLogger(log hclog.Logger) { l.gate.log.Store(&log) }

// Refused returns how many connections the listener refused, by reason.
func (l *TCP) Refused() map[string]uint64 {
	out := map[string]uint64{}
	for r, n := range l.gate.Refused() {
		out[string(r)] = n
	}
	return out
}

// admit decides on the connection fd from sa; it closes a refused one.
func (g *gate) admit(fd int, sa syscall.Sockaddr) bool {
	peer := sockaddrAddrPort(sa)
	now := time.Now()
	if g.rebuild.Load() && g.rebuild.Swap(false) {
		g.resync(true, peer)
	}
	why, counted := g.AdmitCounted(peer.Addr(), now)
	if (why == rules.MaxConns || why == rules.MaxPerSource) && g.resync(false, peer) {
		why, counted = g.AdmitCounted(peer.Addr(), now)
	}
	if why != "" {
		log := g.Refuse(why, peer.Addr(), now) // counted before the client can see it
		syscall.Close(fd)
		if log {
			(*g.log.Load()).Info("refused", "peer", peer.String(), "reason", string(why))
		}
		return false
	}
	if counted {
		if g.admitted.Remove(peer) { // the same client port again: the old one is gone
			g.Release(peer.Addr())
		} else if g.admitted.Len() >= maxAdmitted { // full: the first admitted counts as closed
			if old, _, ok := g.admitted.RemoveOldest(); ok {
				g.Release(old.Addr())
			}
		}
		g.admitted.Add(peer, g.localOf(fd))
	} else if g.admitted.Len() > 0 && !g.Rules().Counts() {
		g.forgetAll()
	}
	return true
}

// resync forgets the admitted connections that are closed, or with all
// learns every open one, and recounts; except is the connection being
// decided. It reports whether the kernel answered.
func (g *gate) resync(all bool, except netip.AddrPort) bool {
	var err error
	if all {
		var live []conn
		if live, err = openConns(g.local); err == nil {
			g.forgetAll()
			for _, c := range live {
				g.admitted.Add(c.remote, c.local)
			}
		}
	} else {
		conns := make([]conn, 0, g.admitted.Len())
		for _, remote := range g.admitted.Keys() {
			local, _ := g.admitted.Peek(remote)
			conns = append(conns, conn{local, remote})
		}
		var open []bool
		if open, err = stillOpen(conns); err == nil {
			for i, c := range conns {
				if !open[i] {
					g.forget(c.remote)
				}
			}
		}
	}
	if err != nil {
		if time.Since(g.diagLog) > time.Second {
			g.diagLog = time.Now()
			(*g.log.Load()).Warn("cannot count open connections; the limits count every connection admitted as open", "error", err)
		}
		return false
	}
	g.forget(except)
	addrs := make([]netip.Addr, 0, g.admitted.Len())
	for _, a := range g.admitted.Keys() {
		addrs = append(addrs, a.Addr())
	}
	g.Recount(addrs)
	return true
}

// forget drops peer from admitted; the caller recounts.
func (g *gate) forget(peer netip.AddrPort) { g.admitted.Remove(peer) }

// forgetAll empties admitted; the caller recounts, or nothing counts.
func (g *gate) forgetAll() { g.admitted.Purge() }

// localOf is the local end of the accepted connection fd: the listener's
// address, or when that is unspecified (0.0.0.0, ::) the socket's own.
func (g *gate) localOf(fd int) netip.AddrPort {
	if !g.local.Addr().IsUnspecified() {
		return g.local
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return g.local
	}
	return sockaddrAddrPort(sa)
}

func sockaddrAddrPort(sa syscall.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
