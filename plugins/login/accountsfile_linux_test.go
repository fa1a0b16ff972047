package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFull runs each writing tool on a real full file system: a 256 KiB
// tmpfs mounted under the test's temporary directory and filled up (root
// only). Then, with space freed, the same commands succeed.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	path, before := setUpAccounts(t, dir)
	// The lock file exists before the disk fills, as it does after any
	// earlier write: creating it is not the step under test here.
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 4096)
	full := false
	for range 1024 { // 4 MiB at most, far more than the tmpfs holds
		if _, err := f.Write(block); err != nil {
			full = errors.Is(err, syscall.ENOSPC)
			break
		}
	}
	f.Close()
	if !full {
		t.Fatal("the tmpfs did not fill up")
	}
	for _, tool := range toolWrites(dir, path) {
		t.Run(tool.name, func(t *testing.T) {
			code, out, errs := runTool(t, tool.stdin, tool.args...)
			if code != 1 || !strings.Contains(errs, "not changed") || !strings.Contains(errs, "no space left on device") {
				t.Fatalf("exit %d, out %q, err %q; want 1 and a full disk named", code, out, errs)
			}
			checkIntact(t, dir, path, before)
		})
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, tool := range toolWrites(dir, path) {
		if code, out, errs := runTool(t, tool.stdin, tool.args...); code != 0 {
			t.Fatalf("%s with space again: exit %d, %q %q", tool.name, code, out, errs)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseAccounts(path, data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range l.accounts {
		names = append(names, a.name)
	}
	if got := strings.Join(names, ","); got != "alice,carol,dave" {
		t.Fatalf("accounts after the writes: %s, want alice,carol,dave", got)
	}
}
