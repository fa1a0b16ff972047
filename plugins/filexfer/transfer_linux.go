package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// oDirect is the O_DIRECT open flag.
const oDirect = unix.O_DIRECT

// statusFlags returns f's file status flags (F_GETFL) and a function that
// sets them (F_SETFL), for directWriter.
func statusFlags(f *os.File) (int, func(int) error, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		return 0, nil, err
	}
	if ferr != nil {
		return 0, nil, ferr
	}
	set := func(flags int) error {
		var ferr error
		if err := rc.Control(func(fd uintptr) { _, ferr = unix.FcntlInt(fd, unix.F_SETFL, flags) }); err != nil {
			return err
		}
		return ferr
	}
	return flags, set, nil
}

// adviseSequential tells the kernel f is read from start to end, which
// doubles its read-ahead. Only a hint: errors are ignored.
func adviseSequential(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.Fadvise(int(fd), 0, 0, unix.FADV_SEQUENTIAL) })
	}
}

// advance is called with the bytes of the transfer written so far.
func (w *writeback) advance(written int64) {
	if w == nil || written-w.requested < flushEvery {
		return
	}
	off, n := w.base+w.requested, written-w.requested
	w.requested = written
	if rc, err := w.f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE) })
	}
}

// freeBytes returns the bytes an unprivileged writer may still use on the
// file system that holds f, as df(1) shows them.
func freeBytes(f *os.File) (int64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st syscall.Statfs_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstatfs(int(fd), &st) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	bs := st.Frsize
	if bs <= 0 {
		bs = st.Bsize
	}
	return int64(st.Bavail) * bs, nil
}
