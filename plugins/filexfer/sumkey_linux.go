package main

import (
	"io/fs"
	"syscall"
)

func keyOf(st fs.FileInfo) (sumKey, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return sumKey{}, false
	}
	return sumKey{dev: uint64(sys.Dev), ino: sys.Ino, size: st.Size(),
		mtime: sys.Mtim.Nano(), ctime: sys.Ctim.Nano()}, true
}
