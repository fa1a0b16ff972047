//go:build linux

package sdk

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// The TCP states closeReason tells apart (include/net/tcp_states.h).
const (
	tcpFinWait2  = unix.BPF_TCP_FIN_WAIT2
	tcpTimeWait  = unix.BPF_TCP_TIME_WAIT
	tcpClosing   = unix.BPF_TCP_CLOSING
	tcpClose     = unix.BPF_TCP_CLOSE
	tcpCloseWait = unix.BPF_TCP_CLOSE_WAIT
	tcpLastAck   = unix.BPF_TCP_LAST_ACK
)

// tcpInfo reads the kernel's TCP_INFO of c (tcp(7)): its state, the bytes
// received from the peer (tcpi_bytes_received) and the bytes the peer
// acknowledged (tcpi_bytes_acked). ok is false when c is no TCP socket or
// is closed.
func tcpInfo(c net.Conn) (state uint8, in, out uint64, ok bool) {
	sc, isSC := unwrapConn(c).(syscall.Conn)
	if !isSC {
		return 0, 0, 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, 0, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil {
		return 0, 0, 0, false
	}
	return info.State, info.Bytes_received, info.Bytes_acked, true
}

func tcpState(c net.Conn) (uint8, bool) {
	st, _, _, ok := tcpInfo(c)
	return st, ok
}
