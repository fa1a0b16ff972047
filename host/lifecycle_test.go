package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockplay/sockplay/internal/e2e"
)

// slowReloadHost serves echo from a plugin directory of its own, with a
// --config file, then puts a binary that never completes its handshake in
// place of sockplay-echo: a reload that replaces echo then waits for the
// start timeout (60 s), which is what a stop must never wait for.
func slowReloadHost(t *testing.T) (h *e2e.Host, statusFile string) {
	t.Helper()
	dir := e2e.PluginDir(t, "echo")
	file := filepath.Join(t.TempDir(), "sockplay.hcl")
	if err := os.WriteFile(file, []byte("plugin \"echo\" {\n  listen = \"127.0.0.1:0\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	statusFile = filepath.Join(t.TempDir(), "status.json")
	h = e2e.Start(t, e2e.Config{Enable: []string{"echo"}, PluginDir: dir, KeepPorts: true,
		Args: []string{"--config", file, "--status-file", statusFile, "--start-timeout", "60s", "--drain-timeout", "1s"}})
	bin := filepath.Join(dir, "sockplay-echo")
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 120\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return h, statusFile
}

// waitStarting waits until the host has started the binary that never
// completes its handshake, and returns its pid.
func waitStarting(t *testing.T, h *e2e.Host) int {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, pid := range e2e.Children(h.Pid()) {
			if filepath.Base(e2e.Executable(pid)) == "sleep" {
				return pid
			}
		}
	}
	t.Fatalf("the reload did not start the new binary within 20 s:\n%s", h.Stderr())
	return 0
}

// A stop is never lost and never waits for a reload (issue 27, kind 1; the
// shared case 10-sighup-storm-loses-sigterm): SIGHUPs collapse into one
// pending reload, which runs off the loop that reads the signals, and a
// SIGTERM that comes while a reload replaces a plugin cuts it short. The
// same holds for `sockplay reload` over the control socket.
func TestStopCutsReloadShort(t *testing.T) {
	t.Run("SIGHUP", func(t *testing.T) {
		t.Parallel()
		h, _ := slowReloadHost(t)
		for range 4 {
			h.Signal(syscall.SIGHUP)
			time.Sleep(10 * time.Millisecond)
		}
		starting := waitStarting(t, h)
		h.Signal(syscall.SIGTERM)
		stopped(t, h, starting)
		// The first reload ran; the three SIGHUPs during it collapsed into
		// one pending reload, which the stop dropped.
		if n := strings.Count(h.Stderr(), "reloading: reading the configuration again"); n != 1 {
			t.Errorf("%d reloads began, want 1 (four SIGHUPs, then SIGTERM during the first):\n%s", n, h.Stderr())
		}
		if !strings.Contains(h.Stderr(), "reload cut short: the host is stopping") {
			t.Errorf("the log does not say that the stop cut the reload short:\n%s", h.Stderr())
		}
	})
	t.Run("sockplay reload", func(t *testing.T) {
		t.Parallel()
		h, statusFile := slowReloadHost(t)
		reload := exec.Command(filepath.Join(e2e.Bin(t), "sockplay"), "reload", "--status-file", statusFile, "echo")
		reload.Env = e2e.Env(t)
		var out bytes.Buffer
		reload.Stdout, reload.Stderr = &out, &out
		if err := reload.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- reload.Wait() }()
		starting := waitStarting(t, h)
		h.Signal(syscall.SIGTERM)
		stopped(t, h, starting)
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("sockplay reload succeeded although the host stopped during it: %s", out.String())
			}
			t.Logf("sockplay reload: %v: %s", err, strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Second):
			reload.Process.Kill()
			<-done
			t.Errorf("sockplay reload still waits 20 s after the host stopped")
		}
	})
}

// stopped checks that the host, sent SIGTERM while a reload waited for a
// start that takes 60 s, exits 0 well before that (its drain timeout is 1 s,
// StopGrace 4 s; the bound is generous), and that the start was abandoned.
func stopped(t *testing.T, h *e2e.Host, starting int) {
	t.Helper()
	start := time.Now()
	if code := h.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM during a reload, want 0:\n%s", code, h.Stderr())
	}
	t.Logf("the host exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if left := e2e.WaitGone([]int{starting}, 5*time.Second); len(left) > 0 {
		t.Errorf("the binary the reload was starting still runs: %v", left)
	}
}

// A log nobody reads costs log lines, never service (issue 27, kind 5; the
// shared case 14-stalled-log-freezes-host): with the host's stdout and
// stderr on a pipe whose reader stopped once the host served, and filled by
// --log-conns, a killed plugin is restarted and serves again, and SIGTERM
// stops the host, exit status 0.
func TestStalledLogCostsLinesNotService(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(filepath.Join(e2e.Bin(t), "sockplay"), "serve", "--plugin-dir", e2e.PluginDir(t, "echo"),
		"--enable", "echo", "--listen", "echo=127.0.0.1:0", "--log-conns", "--admin", "off", "--drain-timeout", "1s",
		"--status-file", filepath.Join(t.TempDir(), "status.json"))
	cmd.Stdout, cmd.Stderr, cmd.Env = w, w, e2e.Env(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill() // if it still runs
		<-exited
	}()

	// Read until the host serves, then never again.
	var out []byte
	buf := make([]byte, 64<<10)
	_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
	for !bytes.Contains(out, []byte("sockplay: serving")) {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			t.Fatalf("the host did not serve: %v:\n%s", err, out)
		}
	}
	addr := ""
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 6 && f[0] == "echo" {
			addr = f[3]
		}
	}
	unread := func() int { // FIONREAD (TIOCINQ): the bytes waiting in the pipe
		n, _ := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
		return n
	}
	conns := 0
	for ; unread() < 60000 && conns < 5000; conns++ {
		echoOnce(addr)
	}
	if unread() < 60000 {
		t.Fatalf("the log pipe holds %d bytes after %d connections; want it full", unread(), conns)
	}
	for _, pid := range e2e.Children(cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	back := false
	for deadline := time.Now().Add(20 * time.Second); !back && time.Now().Before(deadline); {
		back = echoOnce(addr).err == nil
		if !back {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !back {
		t.Fatalf("with its log stalled (%d bytes unread), the host did not restart echo within 20 s", unread())
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("the host, its log stalled, exited with %v after SIGTERM", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the host, its log stalled (%d bytes unread), still runs 30 s after SIGTERM", unread())
	}
	t.Logf("%d connections filled the log pipe; echo was restarted; the host exited %s after SIGTERM",
		conns, time.Since(start).Round(time.Millisecond))
}
