package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

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
