package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sockplay/sockplay/internal/testfs"
)

// TestDiskFull runs each writing tool on a real full file system: a 256 KiB
// tmpfs mounted under the test's temporary directory and filled up (root
// only). Then, with space freed, the same commands succeed.
func TestDiskFull(t *testing.T) {
	dir := testfs.Tmpfs(t, 256<<10, "")
	path, before := setUpAccounts(t, dir)
	// The lock file exists before the disk fills, as it does after any
	// earlier write: creating it is not the step under test here.
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	testfs.Fill(t, filler, 4<<20)
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
