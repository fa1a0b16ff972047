package conformance

import (
	"net"
	"os"
	"testing"
)

func TestParseProcAddr(t *testing.T) {
	cases := []struct {
		in   string
		ip   string
		port int
		ok   bool
	}{
		{"0100007F:1F90", "127.0.0.1", 8080, true},
		{"0200007F:0050", "127.0.0.2", 80, true},
		{"00000000000000000000000001000000:1F90", "::1", 8080, true},
		{"0100007F", "", 0, false},
		{"zz00007F:1F90", "", 0, false},
	}
	for _, c := range cases {
		ip, port, ok := parseProcAddr(c.in)
		if ok != c.ok || (ok && (!ip.Equal(net.ParseIP(c.ip)) || port != c.port)) {
			t.Errorf("parseProcAddr(%q) = %v, %d, %v; want %s, %d, %v", c.in, ip, port, ok, c.ip, c.port, c.ok)
		}
	}
}

// holdsSocket finds a socket this process holds, and no other.
func TestHoldsSocket(t *testing.T) {
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ok, err := holdsSocket(os.Getpid(), ln.LocalAddr()); !ok || err != nil {
		t.Errorf("holdsSocket(self, %v) = %v, %v; want true", ln.LocalAddr(), ok, err)
	}
	if ok, _ := holdsSocket(1, ln.LocalAddr()); ok {
		t.Errorf("pid 1 holds this test's socket?")
	}
}
