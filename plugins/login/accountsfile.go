package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// updateAccounts is how the tools change the accounts file: under an exclusive
// lock on FILE.lock it reads the file (an absent one is empty), lets edit
// change the list, and replaces the file atomically with writeFileAtomic. Two
// tools running at once therefore never lose each other's change, and the
// server, which reads without the lock, sees the old file or the new one,
// never a mix.
func updateAccounts(path string, edit func(*accountList) error) error {
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return fmt.Errorf("accounts file %s not changed: %w%s", path, err, diskHint(err))
	}
	defer unlock()
	l := &accountList{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("accounts file: %w%s", err, diskHint(err))
	default:
		if l, err = parseAccounts(path, data); err != nil {
			return err
		}
	}
	if err := edit(l); err != nil {
		return err
	}
	return writeFileAtomic(path, l.format())
}

// tempFile is what writeFileAtomic needs of its temporary file.
type tempFile interface {
	Name() string
	Chmod(fs.FileMode) error
	Write([]byte) (int, error)
	Sync() error
	Close() error
}

// createTemp makes writeFileAtomic's temporary file; tests put failures in.
var createTemp = func(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, mode 0600, written and synced, then renamed over path, then the
// directory synced so that the rename survives a crash.
//
// A write error (ENOSPC, EDQUOT, EIO: from the write, the fsync, or the
// close, where NFS reports a full disk) leaves path as it was, never
// truncated, and removes the temporary file; the error says that path was
// not changed and why. Only a failed sync of the directory comes after the
// rename: then path holds the new content, and the error says so.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// Each error is an *fs.PathError or *os.LinkError: it names the step and
	// the file.
	notChanged := func(err error) error {
		return fmt.Errorf("accounts file %s not changed: %w%s", path, err, diskHint(err))
	}
	tmp, err := createTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return notChanged(err)
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return notChanged(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return notChanged(err)
	}
	if err := tmp.Sync(); err != nil {
		return notChanged(err)
	}
	if err := tmp.Close(); err != nil {
		return notChanged(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return notChanged(err)
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("accounts file %s written, but syncing directory %s failed, so the change may not survive a crash: %w%s",
			path, dir, err, diskHint(err))
	}
	return nil
}

// diskHint names the usual cause of the errors that are the disk's, not the
// user's.
func diskHint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return " (the file system is full: free some space and run the command again)"
	case errors.Is(err, syscall.EDQUOT):
		return " (the disk quota is used up: free some space and run the command again)"
	case errors.Is(err, syscall.EIO):
		return " (the disk reported an I/O error: check it, then run the command again)"
	}
	return ""
}
