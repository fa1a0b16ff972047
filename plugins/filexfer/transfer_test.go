//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directSupported reports whether dir's file system takes an aligned
// O_DIRECT write.
func directSupported(t *testing.T, dir string) bool {
	t.Helper()
	fd, err := unix.Open(filepath.Join(dir, "probe"), unix.O_CREAT|unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, alignedBytes(t, dioAlign))
	return err == nil
}

// alignedBytes returns n random bytes at a dioAlign-aligned address.
func alignedBytes(t testing.TB, n int) []byte {
	b := make([]byte, n+dioAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % dioAlign); r != 0 {
		off = dioAlign - r
	}
	copy(b[off:], randomBytes(t, n))
	return b[off : off+n : off+n]
}

// TestDirectWriter writes a file the way receive does (an unaligned head,
// aligned middles, an unaligned tail) with O_DIRECT allowed, refused by
// fcntl, and refused by the first write; the file always holds the bytes,
// and O_DIRECT is used exactly when it can be.
func TestDirectWriter(t *testing.T) {
	dir := t.TempDir()
	canDirect := directSupported(t, dir)
	if !canDirect {
		t.Logf("O_DIRECT is not supported on %s: only the fallbacks are checked", dir)
	}
	head := randomBytes(t, 1000)
	middle := [][]byte{alignedBytes(t, 8*dioAlign), alignedBytes(t, 256*dioAlign)}
	tail := randomBytes(t, 777)
	tests := []struct {
		name       string
		enable     bool
		flagsFail  bool
		writeFails bool
	}{
		{"direct", true, false, false},
		{"disabled", false, false, false},
		{"fcntl refuses", true, true, false},
		{"first direct write refused", true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(dir, tt.name)
			f, err := os.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			prefix := dioAlign*3 - len(head) // the head ends on a boundary
			if _, err := f.Write(make([]byte, prefix)); err != nil {
				t.Fatal(err)
			}
			d := newDirectWriter(f, int64(prefix), tt.enable)
			if tt.flagsFail {
				d.setFlags = func(int) error { return syscall.EINVAL }
			}
			refusedWrites := 0
			if tt.writeFails {
				write := d.write
				d.write = func(p []byte) (int, error) {
					if d.direct {
						refusedWrites++
						return 0, &os.PathError{Op: "write", Path: name, Err: syscall.EINVAL}
					}
					return write(p)
				}
			}
			want := append([]byte(nil), make([]byte, prefix)...)
			for _, p := range append(append([][]byte{head}, middle...), tail) {
				if n, err := d.Write(p); err != nil || n != len(p) {
					t.Fatalf("write of %d bytes: %d, %v", len(p), n, err)
				}
				want = append(want, p...)
			}
			d.restore()
			if got, err := os.ReadFile(name); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("the file holds %d bytes (%v), not the %d written", len(got), err, len(want))
			}
			wantDirect := int64(0)
			if tt.enable && !tt.flagsFail && !tt.writeFails && canDirect {
				wantDirect = int64(len(middle[0]) + len(middle[1]))
			}
			if d.directBytes != wantDirect {
				t.Fatalf("%d bytes went with O_DIRECT, want %d", d.directBytes, wantDirect)
			}
			if tt.writeFails && refusedWrites != 1 {
				t.Fatalf("%d direct writes were tried after a refusal, want 1", refusedWrites)
			}
			fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
			if err != nil || fl&unix.O_DIRECT != 0 {
				t.Fatalf("after restore the flags are %#x, %v: O_DIRECT still set", fl, err)
			}
		})
	}
}

// TestResumeUnaligned resumes an upload from a partial file whose length is
// not a multiple of the O_DIRECT alignment: the head is written through the
// page cache, the rest directly, and the file lands whole.
func TestResumeUnaligned(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	in := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{})
	data := randomBytes(t, 5<<20+333)
	const kept = 12345
	if err := os.Mkdir(filepath.Join(root, stagingDir), 0o700); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, stagingDir, stageName("f.bin", int64(len(data)), SumAfter)), data[:kept])
	r := dialRaw(t, in.Addr)
	if got := r.send(fmt.Sprintf("PUT %d - f.bin\n", len(data))); got != fmt.Sprintf("OK %d", kept) {
		t.Fatalf("PUT: %q, want a resume at %d", got, kept)
	}
	if _, err := r.c.Write(append(data[kept:], []byte(sumOf(data)+"\n")...)); err != nil {
		t.Fatal(err)
	}
	if got := r.line(); got != "OK" {
		t.Fatalf("upload: %q", got)
	}
	if got, err := os.ReadFile(filepath.Join(root, "f.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the landed file differs (%d bytes, %v)", len(got), err)
	}
}
