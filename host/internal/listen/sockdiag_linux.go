//go:build linux

package listen

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"time"
	"unsafe"
)

// openConns asks the kernel (sock_diag, NETLINK_INET_DIAG, the interface
// ss(8) uses) which TCP connections to the local address local are open on
// the server's side: ESTABLISHED, SYN_RECV or CLOSE_WAIT (the client closed,
// the server not yet). A connection whose server side has closed (FIN_WAIT,
// TIME_WAIT, LAST_ACK) or is gone is not open.
//
// This is how the host learns that a connection it handed to a plugin has
// closed: after the handoff it holds no descriptor and sees no byte, and the
// plugin may not report closes at all (a plugin without feature "events").
// The kernel filters by the local port (an inet_diag bytecode program), but
// a dump still walks the whole connection table, TIME_WAIT sockets included:
// the gate dumps only when rules begin to count, and otherwise asks about
// the connections it admitted (stillOpen).
func openConns(local netip.AddrPort) ([]conn, error) {
	families := []uint8{syscall.AF_INET, syscall.AF_INET6}
	switch ip := local.Addr(); {
	case ip.Is4() || ip.Is4In6() && !ip.IsUnspecified():
		families = []uint8{syscall.AF_INET}
	case ip.Is6() && !ip.IsUnspecified():
		families = []uint8{syscall.AF_INET6}
	}
	var out []conn
	for _, fam := range families {
		got, err := dumpTCP(fam, local)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

const (
	sockDiagByFamily    = 20 // SOCK_DIAG_BY_FAMILY
	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE
	bcSGE, bcSLE        = 2, 3
	tcpEstablished      = 1
	tcpSynRecv          = 3
	tcpCloseWait        = 8
	reqV2Len            = 56 // struct inet_diag_req_v2
	diagMsgLen          = 72 // struct inet_diag_msg
)

func dumpTCP(family uint8, local netip.AddrPort) ([]conn, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(int64(2 * time.Second))
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)

	// The filter: local port >= port and local port <= port. An op is
	// {code u8, yes u8, no u16}; a port comparison is followed by an op
	// whose "no" holds the port; jumping past the end rejects.
	port := local.Port()
	bc := make([]byte, 16)
	putOp := func(b []byte, code uint8, yes uint8, no uint16) {
		b[0], b[1] = code, yes
		binary.NativeEndian.PutUint16(b[2:], no)
	}
	putOp(bc[0:], bcSGE, 8, 16+4)
	putOp(bc[4:], 0, 0, port)
	putOp(bc[8:], bcSLE, 8, 8+4)
	putOp(bc[12:], 0, 0, port)

	req := make([]byte, syscall.NLMSG_HDRLEN+reqV2Len+syscall.SizeofRtAttr+len(bc))
	hdr := (*syscall.NlMsghdr)(unsafe.Pointer(&req[0]))
	hdr.Len = uint32(len(req))
	hdr.Type = sockDiagByFamily
	hdr.Flags = syscall.NLM_F_REQUEST | syscall.NLM_F_DUMP
	hdr.Seq = 1
	r := req[syscall.NLMSG_HDRLEN:]
	r[0], r[1] = family, syscall.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], 1<<tcpEstablished|1<<tcpSynRecv|1<<tcpCloseWait)
	attr := r[reqV2Len:]
	binary.NativeEndian.PutUint16(attr[0:], uint16(syscall.SizeofRtAttr+len(bc)))
	binary.NativeEndian.PutUint16(attr[2:], inetDiagReqBytecode)
	copy(attr[syscall.SizeofRtAttr:], bc)

	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag request: %w", err)
	}
	var out []conn
	buf := make([]byte, 64<<10)
	for range 1 << 16 { // bounded: a dump ends with NLMSG_DONE long before
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return out, nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						return nil, fmt.Errorf("sock_diag: %w", syscall.Errno(-e))
					}
				}
				return out, nil
			}
			if len(m.Data) < diagMsgLen {
				continue
			}
			d := m.Data
			lport := binary.BigEndian.Uint16(d[4:])
			rport := binary.BigEndian.Uint16(d[6:])
			var src, dst netip.Addr
			if d[0] == syscall.AF_INET {
				src = netip.AddrFrom4([4]byte(d[8:12]))
				dst = netip.AddrFrom4([4]byte(d[24:28]))
			} else {
				src = netip.AddrFrom16([16]byte(d[8:24])).Unmap()
				dst = netip.AddrFrom16([16]byte(d[24:40])).Unmap()
			}
			if lport != port || !local.Addr().IsUnspecified() && src != local.Addr().Unmap() {
				continue
			}
			out = append(out, conn{netip.AddrPortFrom(src, lport), netip.AddrPortFrom(dst, rport)})
		}
	}
	return nil, fmt.Errorf("sock_diag: the dump did not end")
}

// conn is one TCP connection, by its two ends.
type conn struct{ local, remote netip.AddrPort }

// stillOpen asks the kernel, one exact sock_diag lookup per connection (a
// hash lookup, whatever else the machine holds, where a dump walks every
// socket including the TIME_WAIT ones a busy server has by the hundred
// thousand), which of conns are still open on the server's side:
// ESTABLISHED, SYN_RECV or CLOSE_WAIT. Lookups go 32 to a message.
func stillOpen(conns []conn) ([]bool, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(int64(2 * time.Second))
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	open := make([]bool, len(conns))
	// Each reply takes a socket buffer of its own (about 1-2 KiB of the
	// receive buffer): a batch must fit the default one (208 KiB).
	const batch = 32
	msgLen := syscall.NLMSG_HDRLEN + reqV2Len
	req := make([]byte, batch*msgLen)
	buf := make([]byte, 64<<10)
	for start := 0; start < len(conns); start += batch {
		part := conns[start:min(start+batch, len(conns))]
		clear(req)
		for i, c := range part {
			m := req[i*msgLen : (i+1)*msgLen]
			hdr := (*syscall.NlMsghdr)(unsafe.Pointer(&m[0]))
			hdr.Len = uint32(msgLen)
			hdr.Type = sockDiagByFamily
			hdr.Flags = syscall.NLM_F_REQUEST
			hdr.Seq = uint32(start + i + 1)
			r := m[syscall.NLMSG_HDRLEN:]
			fam := uint8(syscall.AF_INET)
			if !c.local.Addr().Is4() || !c.remote.Addr().Is4() {
				fam = syscall.AF_INET6
			}
			r[0], r[1] = fam, syscall.IPPROTO_TCP
			binary.NativeEndian.PutUint32(r[4:], ^uint32(0)) // states: any
			id := r[8:]
			binary.BigEndian.PutUint16(id[0:], c.local.Port())
			binary.BigEndian.PutUint16(id[2:], c.remote.Port())
			putAddr(id[4:20], c.local.Addr(), fam)
			putAddr(id[20:36], c.remote.Addr(), fam)
			binary.NativeEndian.PutUint32(id[40:], ^uint32(0)) // INET_DIAG_NOCOOKIE
			binary.NativeEndian.PutUint32(id[44:], ^uint32(0))
		}
		if err := syscall.Sendto(fd, req[:len(part)*msgLen], 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
			return nil, fmt.Errorf("sock_diag request: %w", err)
		}
		for got := 0; got < len(part); {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				return nil, fmt.Errorf("sock_diag reply: %w", err)
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				return nil, fmt.Errorf("sock_diag reply: %w", err)
			}
			for _, m := range msgs {
				i := int(m.Header.Seq) - 1
				if i < start || i >= start+len(part) {
					continue
				}
				got++
				if m.Header.Type == syscall.NLMSG_ERROR {
					if len(m.Data) >= 4 {
						if e := syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data))); e != 0 && e != syscall.ENOENT {
							return nil, fmt.Errorf("sock_diag lookup: %w", e)
						}
					}
					continue // ENOENT: gone
				}
				if len(m.Data) >= diagMsgLen {
					switch m.Data[1] {
					case tcpEstablished, tcpSynRecv, tcpCloseWait:
						open[i] = true
					}
				}
			}
		}
	}
	return open, nil
}

func putAddr(b []byte, a netip.Addr, fam uint8) {
	if fam == syscall.AF_INET {
		v4 := a.As4()
		copy(b, v4[:])
		return
	}
	v6 := a.As16() // an IPv4 address as IPv4-mapped IPv6
	copy(b, v6[:])
}
