package conformance

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// holdsSocket reports whether process pid has a descriptor for the socket
// that addr identifies: for a TCP connection, the server side of the
// connection whose client end is bound to addr; for UDP, the socket bound to
// addr. It reads /proc/net/{tcp,tcp6,udp,udp6} and /proc/PID/fd.
func holdsSocket(pid int, addr net.Addr) (bool, error) {
	var inodes map[string]bool
	var err error
	switch a := addr.(type) {
	case *net.TCPAddr:
		inodes, err = socketInodes([]string{"tcp", "tcp6"}, a.IP, a.Port, 2) // the peer is the client
	case *net.UDPAddr:
		inodes, err = socketInodes([]string{"udp", "udp6"}, a.IP, a.Port, 1)
	default:
		return false, fmt.Errorf("address %v: not TCP or UDP", addr)
	}
	if err != nil || len(inodes) == 0 {
		return false, err
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("descriptors of process %d: %w", pid, err)
	}
	for _, e := range ents {
		link, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
			return true, nil
		}
	}
	return false, nil
}

// socketInodes returns the inodes of the sockets whose address in column col
// (1 local, 2 remote) is ip:port.
func socketInodes(files []string, ip net.IP, port, col int) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open("/proc/net/" + f)
		if err != nil {
			continue // no IPv6, say
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			if a, p, ok := parseProcAddr(fields[col]); ok && p == port && a.Equal(ip) {
				out[fields[9]] = true
			}
		}
		fh.Close()
	}
	return out, nil
}

// parseProcAddr parses /proc/net's "0100007F:1F90": the address as
// host-order 32-bit words in hex, then the port.
func parseProcAddr(s string) (net.IP, int, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, 0, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, 0, false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 { // each 32-bit word is little-endian
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return ip, int(port), true
}
