package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
		return err
	}
	defer unlock()
	l := &accountList{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("accounts file: %w", err)
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

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, mode 0600, written and synced, then renamed over path, then the
// directory synced so that the rename survives a crash.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write accounts: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write accounts: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write accounts: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write accounts: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write accounts: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write accounts: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write accounts: sync %s: %w", dir, err)
	}
	return nil
}
