package catalog_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sockplay/sockplay/host/internal/catalog"
)

// Verify hashes a binary again only when its identity moved, and catches
// every way of changing it.
func TestVerify(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the identity cache is Linux's (change times)")
	}
	defer catalog.SetRacyWindow(-1e18)() // remember every version, however new
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string) // nil: unchanged
		want   error
	}{
		{"unchanged", nil, nil},
		{"renamed over", func(t *testing.T, path string) {
			tmp := path + ".new"
			write(t, filepath.Dir(path), filepath.Base(tmp), "#!/bin/sh\necho B\n", 0o755)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, catalog.ErrChanged},
		{"appended to", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("# more\n")
			f.Close()
		}, catalog.ErrChanged},
		{"removed", func(t *testing.T, path string) { os.Remove(path) }, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "sockplay-a", "#!/bin/sh\necho A\n", 0o755)
			entries, _, err := catalog.Scan(dir)
			if err != nil || len(entries) != 1 {
				t.Fatalf("scan: %v, %v", entries, err)
			}
			if tc.change != nil {
				tc.change(t, entries[0].Path)
			}
			before := catalog.Hashes()
			err = catalog.Verify(entries[0])
			if !errors.Is(err, tc.want) {
				t.Fatalf("verify: %v, want %v", err, tc.want)
			}
			read := catalog.Hashes() - before
			if tc.change == nil && read != 0 {
				t.Errorf("an unchanged binary was read %d times to verify it, want 0 (its hash is remembered)", read)
			}
			if tc.change != nil && tc.want == catalog.ErrChanged && read != 1 {
				t.Errorf("a changed binary was read %d times to verify it, want 1", read)
			}
		})
	}
}

// A version whose change time is too recent to trust is hashed every time:
// a write in the same clock tick may not move the change time.
func TestVerifyRacyVersionIsHashedAgain(t *testing.T) {
	defer catalog.SetRacyWindow(1e18)() // no version is old enough
	dir := t.TempDir()
	write(t, dir, "sockplay-a", "#!/bin/sh\necho A\n", 0o755)
	entries, _, err := catalog.Scan(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("scan: %v, %v", entries, err)
	}
	// The same size, in place: only the change time tells it apart.
	if err := os.WriteFile(entries[0].Path, []byte("#!/bin/sh\necho Z\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := catalog.Hashes()
	if err := catalog.Verify(entries[0]); !errors.Is(err, catalog.ErrChanged) {
		t.Fatalf("verify: %v, want %v", err, catalog.ErrChanged)
	}
	if read := catalog.Hashes() - before; read != 1 {
		t.Errorf("read %d times, want 1", read)
	}
}
