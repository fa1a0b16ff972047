package serve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// One host per status file: a host holds an exclusive flock(2) on the lock
// file beside its status file (F.lock) for its whole life, and a second host
// given the same file refuses to start, naming the first. The kernel drops the
// lock when its holder dies, however it dies, so a stale lock file never
// blocks a new host; the file stays, with the last holder's pid in it.

// LockSuffix names the lock file beside a status file.
const LockSuffix = ".lock"

// lockStatus takes the lock of the status file path, or says who holds it.
func lockStatus(path string) (*os.File, error) {
	dir, err := statusDirFor(path) // checked: statusdir.go
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	f, err := openInDir(dir, filepath.Base(path)+LockSuffix, os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, errUnsafeDir) {
		return nil, fmt.Errorf("status file %s: lock: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("status file %s: lock: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another sockplay (pid %s) is running; status file %s", holder(f), path)
		}
		return nil, fmt.Errorf("status file %s: lock: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("status file %s: lock: %w", path, err)
	}
	return f, nil
}

// holder reads the pid the lock's holder wrote, which it does just after it
// took the lock: an empty file is read again for up to 100 ms.
func holder(f *os.File) string {
	for range 20 {
		b, _ := io.ReadAll(io.NewSectionReader(f, 0, 64))
		if pid := string(bytes.TrimSpace(b)); pid != "" {
			return pid
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "unknown"
}
