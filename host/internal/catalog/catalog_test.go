package catalog_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/host/internal/catalog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// write creates dir/name with content and mode.
func write(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
	return path
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	contents := map[string]string{
		"zeta":  "#!/bin/sh\necho zeta\n",
		"a":     "#!/bin/sh\necho a\n",
		"chat2": strings.Repeat("large binary ", 100000),
		"x-y":   "",
	}
	for name, content := range contents {
		write(t, dir, "sockplay-"+name, content, 0o755)
	}
	write(t, dir, "sockplay-b", "not executable", 0o644)
	write(t, dir, "sockplay-B!", "bad name", 0o755)
	write(t, dir, "sockplay-", "no name", 0o755)
	write(t, dir, "sockplay-owner-only", "#!/bin/sh\n", 0o700)
	write(t, dir, "README", "unrelated", 0o644)
	write(t, dir, "other-tool", "unrelated", 0o755)
	if err := os.Mkdir(filepath.Join(dir, "sockplay-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "sockplay-a"), filepath.Join(dir, "sockplay-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "sockplay-dangling")); err != nil {
		t.Fatal(err)
	}

	entries, skipped, err := catalog.Scan(dir)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}

	contents["owner-only"] = "#!/bin/sh\n"
	contents["link"] = contents["a"] // a symlink to a plugin is that plugin
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	wantNames := []string{"a", "chat2", "link", "owner-only", "x-y", "zeta"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("entries %q, want %q (sorted by name)", names, wantNames)
	}
	for _, e := range entries {
		t.Run("entry "+e.Name, func(t *testing.T) {
			if want := filepath.Join(dir, "sockplay-"+e.Name); e.Path != want || !filepath.IsAbs(e.Path) {
				t.Errorf("Path %q, want %q", e.Path, want)
			}
			sum := sha256.Sum256([]byte(contents[e.Name]))
			if !bytes.Equal(e.SHA256, sum[:]) {
				t.Errorf("SHA256 %x, want %x", e.SHA256, sum)
			}
			if e.Hex() != hex.EncodeToString(sum[:]) {
				t.Errorf("Hex %s, want %x", e.Hex(), sum)
			}
		})
	}

	wantSkipped := map[string]string{ // base name: a word the reason must contain
		"sockplay-":         "name is not sockplay-NAME",
		"sockplay-B!":       "name is not sockplay-NAME",
		"sockplay-b":        "not executable",
		"sockplay-dir":      "not a regular file",
		"sockplay-dangling": "no such file",
	}
	gotSkipped := map[string]string{}
	for _, s := range skipped {
		if filepath.Dir(s.Path) != dir {
			t.Errorf("skipped path %q is not in %s", s.Path, dir)
		}
		gotSkipped[filepath.Base(s.Path)] = s.Reason
	}
	if len(gotSkipped) != len(wantSkipped) || len(skipped) != len(wantSkipped) {
		t.Errorf("skipped %v, want %v", gotSkipped, wantSkipped)
	}
	for base, want := range wantSkipped {
		if got, ok := gotSkipped[base]; !ok || !strings.Contains(got, want) {
			t.Errorf("skipped %s: reason %q, want it to contain %q", base, got, want)
		}
	}
}

func TestScanRelativeDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "sockplay-a", "a", 0o755)
	t.Chdir(dir)
	entries, _, err := catalog.Scan(".")
	if err != nil {
		t.Fatalf("Scan(.): %v", err)
	}
	if len(entries) != 1 || !filepath.IsAbs(entries[0].Path) {
		t.Fatalf("Scan(.): %+v, want one entry with an absolute path", entries)
	}
}

func TestScanErrors(t *testing.T) {
	dir := t.TempDir()
	file := write(t, dir, "file", "", 0o644)
	for name, d := range map[string]string{
		"missing dir": filepath.Join(dir, "missing"),
		"not a dir":   file,
	} {
		t.Run(name, func(t *testing.T) {
			entries, skipped, err := catalog.Scan(d)
			if err == nil || !strings.HasPrefix(err.Error(), "plugin dir") || !strings.Contains(err.Error(), d) {
				t.Fatalf("Scan(%s): %v, want an error naming the plugin dir", d, err)
			}
			if entries != nil || skipped != nil {
				t.Fatalf("Scan(%s) with an error: %v, %v", d, entries, skipped)
			}
		})
	}
	t.Run("empty dir", func(t *testing.T) {
		entries, skipped, err := catalog.Scan(t.TempDir())
		if err != nil || len(entries) != 0 || len(skipped) != 0 {
			t.Fatalf("Scan(empty): %v, %v, %v", entries, skipped, err)
		}
	})
}

func TestFind(t *testing.T) {
	entries := []catalog.Entry{{Name: "chat", Path: "/p/sockplay-chat"}, {Name: "hello", Path: "/p/sockplay-hello"}}
	cases := []struct {
		name    string
		entries []catalog.Entry
		find    string
		want    string // the path found, or the error
	}{
		{"first", entries, "chat", "/p/sockplay-chat"},
		{"last", entries, "hello", "/p/sockplay-hello"},
		{"unknown", entries, "echo", `unknown plugin "echo" (found: chat, hello)`},
		{"case matters", entries, "Chat", `unknown plugin "Chat" (found: chat, hello)`},
		{"none found", nil, "chat", `unknown plugin "chat" (found: none)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := catalog.Find(tc.entries, tc.find)
			got := e.Path
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("Find(%q): %q, want %q", tc.find, got, tc.want)
			}
		})
	}
}
