// Package testfs gives tests a real full disk: a small tmpfs mounted under
// the test's temporary directory (Tmpfs) and a file that fills it (Fill),
// so that ENOSPC comes from the kernel, not from an injected error. Mounting
// needs root (CAP_SYS_ADMIN); elsewhere the test is skipped.
package testfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes (mode 0700) on a new directory under
// t.TempDir and unmounts it when the test ends; it returns the directory.
// Without root, or where mounting fails, the test is skipped with why, and
// alt says what covers the same logic instead ("" for nothing).
func Tmpfs(t testing.TB, size int64, alt string) string {
	t.Helper()
	why := ""
	if alt != "" {
		why = "; " + alt
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root" + why)
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v)%s", err, why)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes the file name until its file system is full (ENOSPC), 4 KiB
// at a time, and fails the test if another error comes first or if it is
// not full after max bytes.
func Fill(t testing.TB, name string, max int64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for n := int64(0); n < max; n += int64(len(block)) {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", name, err)
			}
			return
		}
	}
	t.Fatalf("filling %s: the file system is not full after %d bytes", name, max)
}
