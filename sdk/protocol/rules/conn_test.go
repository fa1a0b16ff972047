package rules

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

type accepted struct {
	c  net.Conn
	ok bool
}

// acceptVia accepts one connection on ln and runs it through g.
func acceptVia(t *testing.T, ln net.Listener, g *Gate) accepted {
	t.Helper()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := g.AcceptConn(c)
	if ok {
		t.Cleanup(func() { sc.Close() })
		_ = sc.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return accepted{sc, ok}
}

func header(t *testing.T, version byte, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAcceptConnProxyProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var refusals []Refusal
	g := NewGate(mustCompile(t, &protocol.Rules{
		ProxyProtocol: []string{"127.0.0.2"}, Allow: []string{"127.0.0.0/8", "192.0.2.0/24"}, Deny: []string{"192.0.2.66"},
	}))
	g.OnRefuse(func(r Refusal) { mu.Lock(); refusals = append(refusals, r); mu.Unlock() })
	addr := ln.Addr().String()

	for _, tc := range []struct {
		name    string
		src     string
		send    []byte
		ok      bool
		remote  string
		reason  Reason
		payload string
	}{
		{name: "v2 from the trusted proxy", src: "127.0.0.2", send: append(header(t, 2, "192.0.2.7:4000"), "hi"...), ok: true, remote: "192.0.2.7:4000", payload: "hi"},
		{name: "v1 from the trusted proxy", src: "127.0.0.2", send: append(header(t, 1, "192.0.2.8:4001"), "yo"...), ok: true, remote: "192.0.2.8:4001", payload: "yo"},
		{name: "rules apply to the header's client", src: "127.0.0.2", send: header(t, 2, "192.0.2.66:1"), reason: Deny},
		{name: "client outside allow", src: "127.0.0.2", send: header(t, 2, "198.51.100.1:1"), reason: NotAllowed},
		{name: "trusted proxy without a header", src: "127.0.0.2", send: []byte("GET / HTTP/1.0\r\n\r\n"), reason: ProxyHeader},
		{name: "trusted proxy with a broken header", src: "127.0.0.2", send: []byte("PROXY TCP4 1.2.3.4\r\n"), reason: ProxyHeader},
		{name: "direct client", src: "127.0.0.3", send: []byte("plain"), ok: true, remote: "127.0.0.3", payload: "plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			refusals = nil
			mu.Unlock()
			c := dialFrom(t, tc.src, addr)
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			a := acceptVia(t, ln, g)
			if a.ok != tc.ok {
				t.Fatalf("admitted = %v, want %v (refusals %v)", a.ok, tc.ok, refusals)
			}
			if !tc.ok {
				mu.Lock()
				defer mu.Unlock()
				if len(refusals) != 1 || refusals[0].Reason != tc.reason {
					t.Fatalf("refusals %+v, want one for %q", refusals, tc.reason)
				}
				// Closed at once: the client reads the end.
				if _, err := c.Read(make([]byte, 1)); err == nil {
					t.Fatal("a refused connection is still open")
				}
				return
			}
			got := a.c.RemoteAddr().String()
			if tc.remote != got && netip.MustParseAddrPort(got).Addr().String() != tc.remote {
				t.Fatalf("RemoteAddr = %s, want %s", got, tc.remote)
			}
			// The socket is not given out (for a splice) while bytes are
			// held back or unchecked, and is once they were read.
			if _, err := a.c.(syscall.Conn).SyscallConn(); err == nil {
				t.Fatal("SyscallConn before the first bytes were read: a splice would skip them")
			}
			b := make([]byte, len(tc.payload))
			if _, err := io.ReadFull(a.c, b); err != nil || string(b) != tc.payload {
				t.Fatalf("read %q, %v; want %q", b, err, tc.payload)
			}
			if _, err := a.c.(syscall.Conn).SyscallConn(); err != nil {
				t.Fatalf("SyscallConn once the bytes were read: %v", err)
			}
		})
	}

	t.Run("header from an untrusted peer", func(t *testing.T) {
		mu.Lock()
		refusals = nil
		mu.Unlock()
		c := dialFrom(t, "127.0.0.3", addr)
		a := acceptVia(t, ln, g)
		if !a.ok {
			t.Fatal("refused before it sent anything")
		}
		// A server that speaks first is not held up by the check.
		if _, err := a.c.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(header(t, 2, "192.0.2.9:1")); err != nil {
			t.Fatal(err)
		}
		n, err := a.c.Read(make([]byte, 64))
		if n != 0 || !errors.Is(err, ErrProxyHeader) || !errors.Is(err, ErrRefused) {
			t.Fatalf("first read = %d, %v; want the PROXY-header refusal", n, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(refusals) != 1 || refusals[0].Reason != ProxyHeader || refusals[0].Peer.Addr().String() != "127.0.0.3" {
			t.Fatalf("refusals %+v", refusals)
		}
		line := make([]byte, 6)
		if _, err := io.ReadFull(c, line); err != nil || string(line) != "hello\n" {
			t.Fatalf("client read %q, %v", line, err)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the connection is still open")
		}
	})
	if got := g.Refused(); got[ProxyHeader] != 3 || got[Deny] != 1 || got[NotAllowed] != 1 {
		t.Fatalf("Refused() = %v", got)
	}
}

func TestAcceptConnCountsUntilClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g := NewGate(mustCompile(t, &protocol.Rules{MaxPerSource: 2}))
	addr := ln.Addr().String()
	var open []net.Conn
	for i, want := range []bool{true, true, false} {
		dialFrom(t, "127.0.0.2", addr)
		a := acceptVia(t, ln, g)
		if a.ok != want {
			t.Fatalf("connection %d from .2: admitted %v, want %v", i, a.ok, want)
		}
		if a.ok {
			open = append(open, a.c)
		}
	}
	dialFrom(t, "127.0.0.3", addr)
	if a := acceptVia(t, ln, g); !a.ok {
		t.Fatal("another source is refused")
	}
	if _, err := open[1].(syscall.Conn).SyscallConn(); err != nil {
		t.Fatalf("a counted connection hides its socket (echo's splice needs it): %v", err)
	}
	open[0].Close()
	open[0].Close() // counted once
	dialFrom(t, "127.0.0.2", addr)
	if a := acceptVia(t, ln, g); !a.ok {
		t.Fatal("refused after one of the two closed")
	}
	if all, src := g.Open(netip.MustParseAddr("127.0.0.2")); all != 3 || src != 2 {
		t.Fatalf("open %d, %d from .2; want 3, 2", all, src)
	}
}

func TestPacketConnDrops(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var refused []Reason
	g := NewGate(mustCompile(t, &protocol.Rules{Deny: []string{"127.0.0.3"}}))
	g.OnRefuse(func(r Refusal) { mu.Lock(); refused = append(refused, r.Reason); mu.Unlock() })
	fpc := g.PacketConn(pc)
	send := func(src, msg string) {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, pc.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("127.0.0.3", "denied")
	send("127.0.0.2", "ok")
	_ = fpc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 64)
	n, from, err := fpc.ReadFrom(b)
	if err != nil || string(b[:n]) != "ok" || AddrPort(from).Addr().String() != "127.0.0.2" {
		t.Fatalf("ReadFrom = %q from %v, %v", b[:n], from, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 1 || refused[0] != Deny {
		t.Fatalf("refused %v", refused)
	}
}

// pipeConn is one end of net.Pipe that says it is a TCP connection from a
// trusted proxy.
type pipeConn struct{ net.Conn }

func (pipeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9} }

// FuzzAcceptConn feeds a trusted proxy's first bytes through the header
// reader: it never panics, refuses anything that is not one whole valid
// header, and an admitted connection's bytes after the header reach the
// handler unchanged.
func FuzzAcceptConn(f *testing.F) {
	for _, s := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\nabc"),
		[]byte("PROXY TCP6 2001:db8::1 ::1 1 2\r\n"),
		[]byte("PROXY UNKNOWN\r\nxyz"),
		[]byte("PROXY TCP4 1.2.3.4\r\n"),
		append(append([]byte{}, sigV2...), 0x21, 0x11, 0, 12, 192, 0, 2, 1, 127, 0, 0, 1, 0, 1, 0, 2, 'q'),
		append(append([]byte{}, sigV2...), 0x20, 0x00, 0, 0),
		[]byte("hello"),
		{},
	} {
		f.Add(s)
	}
	g := NewGate(&Rules{Proxy: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	f.Fuzz(func(t *testing.T, data []byte) {
		server, client := net.Pipe()
		go func() {
			_, _ = client.Write(data)
			client.Close()
		}()
		c, ok := g.AcceptConn(pipeConn{server})
		if !ok {
			return
		}
		defer c.Close()
		if !IsProxyHeader(data) {
			t.Fatalf("admitted %q, which has no PROXY signature", data)
		}
		if _, isTCP := c.RemoteAddr().(*net.TCPAddr); !isTCP {
			t.Fatalf("RemoteAddr %v is not a TCP address", c.RemoteAddr())
		}
		rest, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(data, rest) {
			t.Fatalf("the handler read %q, not the end of %q", rest, data)
		}
	})
}

func FuzzIsProxyHeader(f *testing.F) {
	for _, s := range []string{"PROXY TCP4", "PROXY", "\r\n\r\n\x00\r\nQUIT\n", "\r\n\r\n", "GET /"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := IsProxyHeader(b)
		_, err := proxyproto.Read(bufioReader(b))
		// Whatever go-proxyproto parses as a header, IsProxyHeader sees.
		if err == nil && !got {
			t.Fatalf("go-proxyproto parses %q as a header; IsProxyHeader says no", b)
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
