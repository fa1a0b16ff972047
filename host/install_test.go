package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// make install PREFIX=DIR puts the host, every bundled plugin and the man
// pages there, and the installed host finds its plugins next to itself.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds everything: not in -short")
	}
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	prefix, build := t.TempDir(), t.TempDir()
	// make's own outputs go to the test's directories too, not the tree's.
	cmd := exec.Command("make", "-s", "install", "PREFIX="+prefix, "BIN="+filepath.Join(build, "bin"), "MANOUT="+filepath.Join(build, "man"))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, name := range append([]string{""}, e2e.Bundled...) {
		bin := "sockplay"
		if name != "" {
			bin += "-" + name
		}
		if st, err := os.Stat(filepath.Join(prefix, "bin", bin)); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s not installed as an executable: %v", bin, err)
		}
	}
	for _, page := range []string{"sockplay.1", "sockplay-serve.1", "sockplay-status.1"} {
		if _, err := os.Stat(filepath.Join(prefix, "share", "man", "man1", page)); err != nil {
			t.Errorf("man page: %v", err)
		}
	}
	plugins := exec.Command(filepath.Join(prefix, "bin", "sockplay"), "plugins")
	plugins.Env = append(os.Environ(), "PATH=/usr/bin:/bin")
	done := make(chan struct{})
	time.AfterFunc(60*time.Second, func() {
		select {
		case <-done:
		default:
			_ = plugins.Process.Kill()
		}
	})
	out, err := plugins.CombinedOutput()
	close(done)
	if err != nil {
		t.Fatalf("installed sockplay plugins: %v\n%s", err, out)
	}
	for _, name := range e2e.Bundled {
		if !strings.Contains(string(out), filepath.Join(prefix, "bin", "sockplay-"+name)) {
			t.Errorf("installed host does not find %s:\n%s", name, out)
		}
	}
}
