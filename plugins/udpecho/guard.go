package main

import (
	"hash/maphash"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Source ports udpecho never answers. A reply to one of them lands on a
// service that answers whatever it gets: two such services answering each
// other never stop (the "UDP packet storm", CERT CA-1996-01, CVE-1999-0103),
// and a single datagram forged to come from one starts them; and a service
// with a large answer turns an echo into an amplifier's trigger.
//
//   - 0 to 1023, where the well-known services live and clients never send
//     from: OpenBSD inetd's rule for its built-in echo, chargen, daytime and
//     time (dg_badinput refuses source ports below IPPORT_RESERVED). This
//     covers echo 7, discard 9, daytime 13, qotd 17, chargen 19, time 37 (the
//     ports NetBSD's inetd refuses by name), DNS 53, TFTP 69, portmap 111,
//     NTP 123, NetBIOS 137, SNMP 161, LDAP/CLDAP 389 and RIPv1 520, the
//     protocols below 1024 in US-CERT alert TA14-017A, "UDP-Based
//     Amplification Attacks". Port 0 means no reply is wanted (RFC 768).
//   - NFS 2049, which trusts a client by its port (OpenBSD inetd again).
//   - the amplifiers above 1023 in TA14-017A and its revisions: SSDP 1900,
//     WS-Discovery 3702, mDNS 5353, memcached 11211, Quake 26000, Steam 27015.
//   - udpecho's own port: another udpecho (or any echo on the same port) on
//     another host would answer it back.
var reflectorPorts = map[int]string{
	2049: "NFS", 1900: "SSDP", 3702: "WS-Discovery", 5353: "mDNS",
	11211: "memcached", 26000: "Quake", 27015: "Steam",
}

// firstClientPort is the lowest source port answered (IPPORT_RESERVED).
const firstClientPort = 1024

// refusedPort says why a datagram from port gets no reply, "" if it may get
// one. own is udpecho's own port.
func refusedPort(port, own int) string {
	switch {
	case port < firstClientPort:
		return "a well-known service port (below 1024)"
	case port == own:
		return "udpecho's own port (another echo)"
	}
	if name, ok := reflectorPorts[port]; ok {
		return "the " + name + " port"
	}
	return ""
}

// portOf returns a's port, -1 if it has none.
func portOf(a net.Addr) int {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.Port
	}
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return -1
	}
	return n
}

// loopGuard spots another echo service answering udpecho's replies, so that
// the two cannot answer each other forever; one dropped datagram ends such a
// loop for good. It remembers, per sender (address and port), a hash and the
// length of the last reply sent there, and when, for at most maxSources
// senders.
//
// With a prefix every reply is longer than the datagram it answers, so a
// datagram that ends with the last reply sent to the same sender is that
// reply coming back, echoed, perhaps with the other side's prefix in front.
// A plain echo's reply is the request itself, which a client may also send
// twice: there a datagram equal to the last reply to its sender is taken
// for that reply only if it comes within loopWindow of it. A loop runs at the
// round-trip time, milliseconds; a client that repeats itself faster than
// that gets the same bytes answered at most once per loopWindow.
type loopGuard struct {
	plain bool
	seed  maphash.Seed
	last  *simplelru.LRU[string, sent] // maxSources, the least recently sent to forgotten first
}

// loopWindow is how soon after a plain echo's reply the same bytes from the
// same sender count as that reply coming back.
const loopWindow = time.Second

type sent struct {
	sum uint64
	n   int
	at  time.Time
}

func newLoopGuard(plain bool) *loopGuard {
	last, _ := simplelru.NewLRU[string, sent](maxSources, nil)
	return &loopGuard{plain: plain, seed: maphash.MakeSeed(), last: last}
}

// echoed reports whether payload, from sender at now, is the last reply sent
// to it coming back.
func (g *loopGuard) echoed(now time.Time, sender string, payload []byte) bool {
	s, ok := g.last.Peek(sender)
	if !ok || len(payload) < s.n {
		return false
	}
	if g.plain && (len(payload) != s.n || now.Sub(s.at) >= loopWindow) {
		return false
	}
	return maphash.Bytes(g.seed, payload[len(payload)-s.n:]) == s.sum
}

// sent records reply as the last one sent to sender, at now.
func (g *loopGuard) sent(now time.Time, sender string, reply []byte) {
	// Past maxSources the sender sent to least recently is forgotten:
	// forgetting only lets one more round of a loop through.
	g.last.Add(sender, sent{sum: maphash.Bytes(g.seed, reply), n: len(reply), at: now})
}
