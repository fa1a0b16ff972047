package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sockplay/sockplay/internal/e2e"
)

// Every bundled plugin, Go and Python, passes `sockplay check-plugin`: one
// line per check, all ok, exit 0.
func TestCheckPluginBundled(t *testing.T) {
	names := append(append([]string{}, e2e.Bundled...), e2e.PythonBundled...)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"check-plugin", filepath.Join(e2e.Bin(t), "sockplay-"+name)}
			out, stderr, code := e2e.Run(t, args...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 0 || len(lines) != 8 || stderr != "" {
				t.Fatalf("exit %d, %d lines:\n%s\nstderr: %s", code, len(lines), out, stderr)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "ok ") {
					t.Errorf("check not ok: %q", l)
				}
			}
		})
	}
}

// A binary that breaks the contract fails the check that it breaks, the
// later checks are skipped, and the exit status is 1.
func TestCheckPluginFails(t *testing.T) {
	script := filepath.Join(t.TempDir(), "sockplay-notaplugin")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'hello from a script'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path      string
		failed    string
		inMessage string
	}{
		{script, "handshake", "hello from a script"},
		{filepath.Join(e2e.Bin(t), "sockplay-crashy"), "handshake", "flux capacitor"},
		{filepath.Join(e2e.Bin(t), "sockplay-badversion"), "handshake", "protocol version"},
	}
	for _, c := range cases {
		out, stderr, code := e2e.Run(t, "check-plugin", c.path)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 1 || len(lines) != 8 || !strings.HasPrefix(lines[0], "FAIL "+c.failed) ||
			!strings.Contains(lines[0], c.inMessage) || !strings.HasPrefix(lines[7], "skip ") ||
			!strings.Contains(stderr, "checks failed") {
			t.Errorf("%s: exit %d\n%s\nstderr: %s", c.path, code, out, stderr)
		}
	}
	_, stderr, code := e2e.Run(t, "check-plugin")
	if code != 2 || !strings.Contains(stderr, "want one PATH") {
		t.Errorf("no PATH: exit %d, %q", code, stderr)
	}
}
