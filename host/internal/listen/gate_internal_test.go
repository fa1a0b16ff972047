package listen

import (
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// The connections a listener remembers for its limits are bounded (issue
// 27, kind 6): clients from ever new addresses, none reaching a limit (so
// nothing is resynced), leave at most maxAdmitted remembered and counted
// open; the first admitted are forgotten first, in constant time.
func TestGateBoundsAdmitted(t *testing.T) {
	g := newGate(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	r, err := rules.Compile(&protocol.Rules{MaxPerSource: 2})
	if err != nil {
		t.Fatal(err)
	}
	g.SetRules(r)
	peer := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000)
	}
	sa := func(p netip.AddrPort) syscall.Sockaddr {
		return &syscall.SockaddrInet4{Addr: p.Addr().As4(), Port: int(p.Port())}
	}
	for i := range 3 * maxAdmitted {
		if !g.admit(-1, sa(peer(i))) { // no descriptor: admit closes only the refused
			t.Fatalf("connection %d refused", i)
		}
	}
	if n := g.admitted.Len(); n != maxAdmitted {
		t.Fatalf("%d connections remembered after %d, want maxAdmitted (%d)", n, 3*maxAdmitted, maxAdmitted)
	}
	all, last := g.Open(peer(3*maxAdmitted - 1).Addr())
	_, first := g.Open(peer(0).Addr())
	if all != maxAdmitted || last != 1 || first != 0 {
		t.Fatalf("counted open: %d in all, %d from the last source, %d from the first; want %d, 1, 0", all, last, first, maxAdmitted)
	}
}
