package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// dialFrom connects to addr from the loopback address src, with every
// operation bounded.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// echoes sends a message on c and reports whether it came back; a
// connection the rules refused is closed without an answer.
func echoes(c net.Conn, msg string) bool {
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	b := make([]byte, len(msg))
	_, err := io.ReadFull(c, b)
	return err == nil && string(b) == msg
}

// admittedEventually dials from src until a connection echoes, at most 50
// times over at most 20 s: after a client closed, the next one is admitted
// once the plugin has closed its side too, which the client cannot observe.
func admittedEventually(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 50 && time.Now().Before(deadline); i++ {
		c := dialFrom(t, src, addr)
		if echoes(c, "again\n") {
			return c
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no connection from %s was admitted after one closed", src)
	return nil
}

// waitLogMatch waits up to 10 s for a line of the host's log to match re.
func waitLogMatch(t *testing.T, h *e2e.Host, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for !rx.MatchString(h.Stderr()) {
		if time.Now().After(deadline) {
			t.Fatalf("the host's log has no line matching %s after 10 s:\n%s", re, h.Stderr())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closeAndWait closes c's sending side and reads until the server closes.
func closeAndWait(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("waiting for the server to close: %v", err)
	}
	c.Close()
}

func TestRulesInEveryDeliveryMode(t *testing.T) {
	for _, tc := range []struct {
		plugin, handoff, enforcedBy string
	}{
		{"echo", "conn", "host"},
		{"echo", "listener", "plugin"},
		{"pyecho", "conn", "host"},
		{"pyecho", "listener", "host"}, // no feature "rules": the host accepts for it
	} {
		t.Run(tc.plugin+"/"+tc.handoff, func(t *testing.T) {
			t.Parallel()
			p := tc.plugin
			h := e2e.Start(t, e2e.Config{Enable: []string{p}, Args: []string{
				"--handoff", tc.handoff, "--allow", "*=127.0.0.0/8", "--deny", p + "=127.0.0.3",
				"--max-per-source", p + "=2",
			}})
			h.WaitLog("enforced_by="+tc.enforcedBy, 10*time.Second)
			addr := h.Addr(p)

			a1 := dialFrom(t, "127.0.0.2", addr)
			a2 := dialFrom(t, "127.0.0.2", addr)
			if !echoes(a1, "one\n") || !echoes(a2, "two\n") {
				t.Fatal("the first two connections from 127.0.0.2 do not echo")
			}
			if echoes(dialFrom(t, "127.0.0.2", addr), "three\n") {
				t.Fatal("a third connection from 127.0.0.2 with --max-per-source 2 was served")
			}
			if echoes(dialFrom(t, "127.0.0.3", addr), "denied\n") {
				t.Fatal("a connection from the denied 127.0.0.3 was served")
			}
			if !echoes(dialFrom(t, "127.0.0.4", addr), "other\n") {
				t.Fatal("a connection from 127.0.0.4 was refused")
			}
			closeAndWait(t, a1)
			admittedEventually(t, "127.0.0.2", addr)
			waitLogMatch(t, h, `refused: peer=127\.0\.0\.3:\d+ reason=deny`)
			waitLogMatch(t, h, `refused: peer=127\.0\.0\.2:\d+ reason=max-per-source`)
			if n := strings.Count(h.Stderr(), "reason=deny"); n != 1 {
				t.Fatalf("%d deny lines for one denied connection:\n%s", n, h.Stderr())
			}
		})
	}
}

func TestRulesPerDatagram(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"udpecho"}, Args: []string{
		"--deny", "udpecho=127.0.0.3", "--rate-per-source", "udpecho=1/m:2", "--set", "udpecho.prefix=",
	}})
	server, err := net.ResolveUDPAddr("udp", h.Addr("udpecho"))
	if err != nil {
		t.Fatal(err)
	}
	socket := func(src string) *net.UDPConn {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, server)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	read := func(c *net.UDPConn, d time.Duration) (string, error) {
		_ = c.SetReadDeadline(time.Now().Add(d))
		b := make([]byte, 512)
		n, err := c.Read(b)
		return string(b[:n]), err
	}
	c2, c3, c4 := socket("127.0.0.2"), socket("127.0.0.3"), socket("127.0.0.4")
	for i := range 2 {
		msg := fmt.Sprint("in burst ", i)
		c2.Write([]byte(msg))
		if got, err := read(c2, 10*time.Second); got != msg {
			t.Fatalf("datagram %d from 127.0.0.2: %q, %v", i, got, err)
		}
	}
	c2.Write([]byte("over the rate"))
	c3.Write([]byte("denied"))
	// The plugin reads its socket in order: once 127.0.0.4's reply is back,
	// the two datagrams sent before it were read and dropped.
	c4.Write([]byte("marker"))
	if got, err := read(c4, 10*time.Second); got != "marker" {
		t.Fatalf("127.0.0.4: %q, %v", got, err)
	}
	for _, c := range []*net.UDPConn{c2, c3} {
		var ne net.Error
		if got, err := read(c, 100*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s got %q, %v: a refused datagram was answered", c.LocalAddr(), got, err)
		}
	}
	waitLogMatch(t, h, `refused: peer=127\.0\.0\.2:\d+ reason=rate`)
	waitLogMatch(t, h, `refused: peer=127\.0\.0\.3:\d+ reason=deny`)
}

func TestRulesBadInput(t *testing.T) {
	dir := e2e.PluginDir(t, "echo", "udpecho", "pyudpecho")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"invalid CIDR", []string{"--allow", "echo=127.0.0.1/33"}, 2, `sockplay: --allow echo=127.0.0.1/33: "127.0.0.1/33" is not a CIDR`},
		{"host bits", []string{"--deny", "echo=127.0.0.1/8"}, 2, "did you mean 127.0.0.0/8?"},
		{"overlapping CIDRs", []string{"--allow", "echo=127.0.0.0/8", "--allow", "echo=127.0.0.2"}, 2,
			"sockplay: --allow echo=127.0.0.2: 127.0.0.0/8 and 127.0.0.2/32 overlap"},
		{"unknown plugin", []string{"--max-conns", "nosuch=3"}, 1, `sockplay: --max-conns nosuch=3: no plugin "nosuch" is enabled`},
		{"bad rate", []string{"--rate-per-source", "echo=10/h"}, 2, `sockplay: --rate-per-source echo=10/h: rate "10/h": unit "h" is neither s nor m`},
		{"no name", []string{"--deny", "127.0.0.3"}, 2, `sockplay: --deny "127.0.0.3": want NAME=VALUE`},
		{"max-conns on UDP", []string{"--max-conns", "udpecho=3"}, 1, "a UDP plugin has no connections to count"},
		{"rules for a UDP plugin without feature rules", []string{"--deny", "pyudpecho=127.0.0.3"}, 1,
			`only the plugin sees its datagrams, and pyudpecho 1.0.0 does not enforce rules (it lacks feature "rules")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--plugin-dir", dir, "--status-file", "", "--listen", "echo=127.0.0.1:0",
				"--listen", "udpecho=127.0.0.1:0", "--listen", "pyudpecho=127.0.0.1:0"}, tc.args...)
			_, stderr, code := e2e.Run(t, args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and one line containing %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}
