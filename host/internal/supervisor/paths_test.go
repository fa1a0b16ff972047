package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMakeRunDir(t *testing.T) {
	short := t.TempDir()
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	longer := filepath.Join(t.TempDir(), strings.Repeat("e", 90))
	for _, d := range []string{long, longer} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name         string
		base         string
		others       []string
		wantIn       string // "" when an error is wanted
		wantFallback bool
		wantErr      string
	}{
		{"fits", short, []string{longer}, short, false, ""},
		{"falls back", long, []string{"", "relative", short}, short, true, ""},
		{"nothing fits", long, []string{longer}, "", false, "over the 107-byte limit of a Unix socket path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, fallback, err := makeRunDir(tc.base, tc.others)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), long) {
					t.Fatalf("err %v, want one naming %s and %q", err, long, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			if filepath.Dir(dir) != tc.wantIn || !strings.HasPrefix(filepath.Base(dir), runDirPrefix) {
				t.Fatalf("run directory %s, want sockplay-* in %s", dir, tc.wantIn)
			}
			if (fallback != "") != tc.wantFallback || tc.wantFallback && !strings.Contains(fallback, "107-byte limit") {
				t.Fatalf("fallback %q", fallback)
			}
			// The longest name a process's socket directory and go-plugin's
			// socket can take still fits.
			sock, err := makeSocketDir(dir, strings.Repeat("n", 40))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(filepath.Join(sock, pluginSocket+"4294967295")); n > MaxSocketPath {
				t.Fatalf("a socket path of %d bytes", n)
			}
		})
	}
	if _, err := makeSocketDir(long, "echo"); err == nil || !strings.Contains(err.Error(), "107-byte limit") {
		t.Fatalf("makeSocketDir under a long directory: %v", err)
	}
}
