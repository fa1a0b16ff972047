package catalog

import (
	"os"
	"syscall"
	"time"
)

// fileID identifies one version of a file (see sums).
type fileID struct {
	dev, ino      uint64
	size          int64
	mtime, ctimeN int64 // Unix nanoseconds
}

func (id fileID) ctime() time.Time { return time.Unix(0, id.ctimeN) }

func statID(f *os.File) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return fileID{dev: st.Dev, ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctimeN: st.Ctim.Nano()}, nil
}
