//go:build !unix

package main

import (
	"fmt"
	"os"
)

// fileStamp identifies a version of a file by size and modification time.
type fileStamp struct {
	size  int64
	mtime int64
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// lockFile is not supported off Unix: concurrent tools may lose each other's
// updates there (the file itself is still replaced atomically).
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { f.Close() }, nil
}

func syncDir(string) error { return nil }
