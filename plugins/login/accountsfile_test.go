package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// failingFile fails one step of writeFileAtomic with err.
type failingFile struct {
	tempFile
	step string
	err  error
}

func (f failingFile) Chmod(m fs.FileMode) error {
	if f.step == "chmod" {
		return &fs.PathError{Op: "chmod", Path: f.Name(), Err: f.err}
	}
	return f.tempFile.Chmod(m)
}

func (f failingFile) Write(b []byte) (int, error) {
	if f.step == "write" {
		// A short write, as a file system that fills up mid-way gives.
		n, _ := f.tempFile.Write(b[:len(b)/2])
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: f.err}
	}
	return f.tempFile.Write(b)
}

func (f failingFile) Sync() error {
	if f.step == "fsync" {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: f.err}
	}
	return f.tempFile.Sync()
}

func (f failingFile) Close() error {
	err := f.tempFile.Close()
	if f.step == "close" && err == nil {
		return &fs.PathError{Op: "close", Path: f.Name(), Err: f.err}
	}
	return err
}

// injectWriteError makes writeFileAtomic fail at step with err until the
// test ends.
func injectWriteError(t *testing.T, step string, err error) {
	orig := createTemp
	createTemp = func(dir, pattern string) (tempFile, error) {
		if step == "create" {
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, pattern), Err: err}
		}
		f, cerr := orig(dir, pattern)
		if cerr != nil {
			return nil, cerr
		}
		return failingFile{tempFile: f, step: step, err: err}, nil
	}
	t.Cleanup(func() { createTemp = orig })
}

// toolWrites are the four tools that write the accounts file, each one a
// change to a file holding alice and bob.
func toolWrites(dir, path string) []struct {
	name, stdin string
	args        []string
} {
	plain := filepath.Join(dir, "users.txt")
	return []struct {
		name, stdin string
		args        []string
	}{
		{"useradd", "battery staple\n", []string{"useradd", "--accounts", path, "carol"}},
		{"passwd", "new password 1\n", []string{"passwd", "--accounts", path, "alice"}},
		{"userdel", "", []string{"userdel", "--accounts", path, "bob"}},
		{"import-plaintext", "", []string{"import-plaintext", "--accounts", path, plain}},
	}
}

// setUpAccounts writes alice and bob to dir/accounts, and a plaintext file
// for import-plaintext, and returns the accounts file's path and content.
func setUpAccounts(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	path := writeAccounts(t, dir, "alice", "correct horse", "bob", "battery staple")
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), []byte("dave:dave's pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, before
}

// checkIntact fails the test unless path still holds before and dir has no
// temporary file left.
func checkIntact(t *testing.T, dir, path string, before []byte) {
	t.Helper()
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(after, before) {
		t.Errorf("accounts file changed after a failed write (%v):\n%s", err, after)
	}
	if _, err := parseAccounts(path, after); err != nil {
		t.Errorf("accounts file no longer parses: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestWriteErrors injects ENOSPC, EDQUOT and EIO at every step of the
// accounts file's replacement, and a short write for each tool that writes
// it (all four share writeFileAtomic): the tool fails
// with a message naming the file, that it was not changed, and the cause;
// the file is byte for byte what it was; no temporary file is left.
func TestWriteErrors(t *testing.T) {
	// Every step with userdel (which hashes nothing, so it is quick), and
	// a short write with every tool.
	for _, inj := range []struct {
		step  string
		err   syscall.Errno
		hint  string
		tools string
	}{
		{"create", syscall.ENOSPC, "file system is full", "userdel"},
		{"chmod", syscall.EIO, "I/O error", "userdel"},
		{"write", syscall.ENOSPC, "file system is full", "useradd passwd userdel import-plaintext"},
		{"write", syscall.EDQUOT, "quota", "userdel"},
		{"fsync", syscall.EIO, "I/O error", "userdel"},
		{"close", syscall.EDQUOT, "quota", "userdel"}, // NFS reports a full disk at close
	} {
		dir := t.TempDir()
		path, _ := setUpAccounts(t, dir)
		for _, tool := range toolWrites(dir, path) {
			if !strings.Contains(" "+inj.tools+" ", " "+tool.name+" ") {
				continue
			}
			t.Run(inj.step+"/"+inj.err.Error()+"/"+tool.name, func(t *testing.T) {
				before, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				injectWriteError(t, inj.step, inj.err)
				code, out, errs := runTool(t, tool.stdin, tool.args...)
				if code != 1 {
					t.Fatalf("exit %d, out %q, err %q; want 1", code, out, errs)
				}
				for _, want := range []string{"accounts file " + path + " not changed", inj.err.Error(), inj.hint} {
					if !strings.Contains(errs, want) {
						t.Errorf("stderr %q does not say %q", errs, want)
					}
				}
				checkIntact(t, dir, path, before)
			})
		}
	}
}
