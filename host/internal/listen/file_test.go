package listen_test

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/sockplay/sockplay/host/internal/listen"
)

func fileOf(t *testing.T, c interface{ File() (*os.File, error) }) *os.File {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAdoptSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	tl, err := listen.FileTCP(fileOf(t, ln.(*net.TCPListener)))
	if err != nil || tl.Addr().String() != ln.Addr().String() {
		t.Fatalf("FileTCP = %v, %v", tl, err)
	}
	tl.Close()
	u, err := listen.FileUDP(fileOf(t, pc.(*net.UDPConn)), 0, 0)
	if err != nil || u.Addr().String() != pc.LocalAddr().String() {
		t.Fatalf("FileUDP = %v, %v", u, err)
	}
	u.Close()
	sh, err := listen.FileTCPShared(fileOf(t, ln.(*net.TCPListener)))
	if err != nil {
		t.Fatal(err)
	}
	sh.Close()

	// A socket of the wrong kind is refused, saying what it is.
	if _, err := listen.FileTCP(fileOf(t, pc.(*net.UDPConn))); err == nil || !strings.Contains(err.Error(), "a datagram (UDP) socket, want stream (TCP)") {
		t.Fatalf("FileTCP of a UDP socket: %v", err)
	}
	if _, err := listen.FileUDP(fileOf(t, ln.(*net.TCPListener)), 0, 0); err == nil || !strings.Contains(err.Error(), "a stream (TCP) socket, want datagram (UDP)") {
		t.Fatalf("FileUDP of a TCP socket: %v", err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listen.FileTCP(os.NewFile(uintptr(fd), "unbound")); err == nil || !strings.Contains(err.Error(), "not listening") {
		t.Fatalf("FileTCP of a socket that does not listen: %v", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	if _, err := listen.FileTCP(pr); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("FileTCP of a pipe: %v", err)
	}
}
