package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// TestServeEverythingIsBestEffort: `sockplay serve` without --enable serves
// every plugin that starts. One that does not (crashy exits before its
// handshake; pyecho is run by an interpreter that cannot see its modules,
// as on a machine without python3-grpcio; x is not a plugin at all) is one
// log line with the reason and the way back, shows as failed in the status
// and /metrics, and starts with `sockplay reload NAME` once fixed.
func TestServeEverythingIsBestEffort(t *testing.T) {
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := e2e.PluginDir(t, "echo", "crashy")
	if err := os.WriteFile(filepath.Join(dir, "sockplay-x"), []byte("#!/bin/sh\necho 'I am just a script'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// -S: no site module, so no dist-packages, so no grpc.
	build := exec.Command("python3", filepath.Join(root, "sdk/python/build_plugin.py"), "--python", "/usr/bin/python3 -S",
		dir, "pyecho="+filepath.Join(root, "examples/python/echo.py"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build_plugin.py: %v\n%s", err, out)
	}
	status := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{PluginDir: dir, Args: []string{"--status-file", status,
		"--listen", "echo=127.0.0.1:0", "--listen", "crashy=127.0.0.1:0", "--listen", "pyecho=127.0.0.1:0", "--listen", "x=127.0.0.1:0"}})

	if !strings.Contains(h.Stdout(), "(not started: crashy, pyecho, x)") {
		t.Errorf("the ready line does not name the plugins not started:\n%s", h.Stdout())
	}
	for _, name := range []string{"crashy", "pyecho", "x"} {
		if !regexp.MustCompile(`(?m)^` + name + ` +- +not started`).MatchString(h.Stdout()) {
			t.Errorf("no 'not started' line for %s:\n%s", name, h.Stdout())
		}
	}
	roundTripEcho(t, h.Addr("echo"))

	// One log line each, with the reason and the way back.
	h.WaitLog("sockplay.x: plugin not started", 5*time.Second)
	want := map[string]string{
		"crashy": "no configuration for the flux capacitor",
		"pyecho": "missing Python module grpc: install the Debian package python3-grpcio",
		"x":      "not a sockplay plugin",
	}
	for name, reason := range want {
		var lines []string
		for _, l := range strings.Split(h.Stderr(), "\n") {
			if strings.Contains(l, "sockplay."+name+":") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 {
			t.Errorf("%s: %d log lines, want one:\n%s", name, len(lines), strings.Join(lines, "\n"))
			continue
		}
		for _, w := range []string{"[ERROR]", "plugin not started; the others serve", reason, `then="sockplay reload ` + name + `"`} {
			if !strings.Contains(lines[0], w) {
				t.Errorf("%s's log line lacks %q: %s", name, w, lines[0])
			}
		}
	}

	// The status and /metrics say so.
	st := readStatus(t, status)
	states := map[string]string{}
	for _, p := range st.Plugins {
		states[p.Name] = string(p.State)
		if p.Name == "pyecho" && !strings.Contains(p.Error, "missing Python module grpc") {
			t.Errorf("pyecho's status error: %q", p.Error)
		}
	}
	if states["echo"] != "running" || states["crashy"] != "failed" || states["pyecho"] != "failed" || states["x"] != "failed" {
		t.Errorf("states: %v", states)
	}
	fams := metrics(t, h)
	for name, up := range map[string]float64{"echo": 1, "crashy": 0, "pyecho": 0} {
		if got := metricValue(t, fams, "sockplay_plugin_up", "plugin", name); got != up {
			t.Errorf("sockplay_plugin_up{plugin=%q} = %v, want %v", name, got, up)
		}
	}

	// Fixed (the interpreter that sees the modules), `sockplay reload pyecho`
	// starts it; crashy, still broken, fails again and stays failed.
	build = exec.Command("python3", filepath.Join(root, "sdk/python/build_plugin.py"), dir,
		"pyecho="+filepath.Join(root, "examples/python/echo.py"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build_plugin.py: %v\n%s", err, out)
	}
	out, stderr, code := e2e.Run(t, "reload", "--status-file", status, "pyecho")
	if code != 0 || !strings.Contains(out, "started") {
		t.Fatalf("sockplay reload pyecho: exit %d\n%s%s", code, out, stderr)
	}
	if _, _, code := e2e.Run(t, "reload", "--status-file", status, "crashy"); code == 0 {
		t.Errorf("sockplay reload crashy: exit 0, want 1 (it still exits before its handshake)")
	}
	st = readStatus(t, status)
	for _, p := range st.Plugins {
		switch {
		case p.Name == "pyecho" && (p.State != "running" || p.Addr == ""):
			t.Errorf("pyecho after its reload: %s at %q", p.State, p.Addr)
		case p.Name == "pyecho":
			roundTripEcho(t, p.Addr)
		case p.Name == "crashy" && p.State != "failed":
			t.Errorf("crashy after a failed reload: %s", p.State)
		}
	}
	h.Stop(15 * time.Second)
}
