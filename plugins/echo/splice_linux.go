package main

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// spliced counts the connections echoed with splice (for tests).
var spliced atomic.Int64

// maxChunk is the most one splice moves, and the pipe's size: Go's own
// splice path (internal/poll) uses the same 1 MiB, the default
// /proc/sys/fs/pipe-max-size.
const maxChunk = 1 << 20

// spliceEcho echoes the rest of c back to it through a pipe: splice(2) from
// the socket into the pipe, then from the pipe into the socket, waiting in
// the runtime poller as io.Copy's splice does. It reports false, having
// read nothing, when it cannot make a pipe.
//
// Each splice from the socket takes what is there, as a read would, so the
// chunks are a read's: one of at most quitMax bytes is read out of the pipe
// and checked for quit like any other, and written back with write(2).
func spliceEcho(c rawConn) bool {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return false
	}
	pr, pw := p[0], p[1]
	defer unix.Close(pr)
	defer unix.Close(pw)
	_, _ = unix.FcntlInt(uintptr(pw), unix.F_SETPIPE_SZ, maxChunk) // a smaller pipe works too
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	spliced.Add(1)
	small := make([]byte, quitMax)
	const flags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK
	for {
		var n int64
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			n, serr = unix.Splice(int(fd), nil, pw, nil, maxChunk, flags)
			return serr != unix.EAGAIN // EAGAIN: wait until readable
		})
		if err != nil || serr != nil || n == 0 { // closed, reset, deadline or EOF
			return true
		}
		if n <= quitMax {
			m, err := unix.Read(pr, small[:n])
			if err != nil || m != int(n) || isQuit(small[:m]) {
				return true
			}
			if _, err := c.Write(small[:m]); err != nil {
				return true
			}
			continue
		}
		for n > 0 {
			var m int64
			err := rc.Write(func(fd uintptr) bool {
				m, serr = unix.Splice(pr, nil, int(fd), nil, int(n), flags)
				return serr != unix.EAGAIN // EAGAIN: wait until writable
			})
			if err != nil || serr != nil {
				return true
			}
			n -= m
		}
	}
}
