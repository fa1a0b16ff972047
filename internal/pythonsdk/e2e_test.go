//go:build unix

// Package pythonsdk_test runs the Python SDK (sdk/python) through the real
// host: the Go host builds, starts and serves the SDK's test plugins
// (sdk/python/testplugins) exactly as it serves Go plugins, over go-plugin
// with AutoMTLS and descriptor handoff. It lives in the root module, not
// beside the Python SDK, because it drives the host (internal/e2e), which the
// SDK's own module (sdk/go.mod) cannot import.
package pythonsdk_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends line and returns the reply line.
func ask(t *testing.T, c net.Conn, r *bufio.Reader, line string) string {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		t.Fatalf("send %q: %v", line, err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reply to %q: %q, %v", line, got, err)
	}
	return got
}

// The host serves a Python plugin in both TCP handoff modes: the host's
// accepted connections ('C') and its shared listening socket ('L'), with an
// option set on the host's command line, many connections at once.
func TestServeTCP(t *testing.T) {
	for _, mode := range []string{"conn", "listener"} {
		t.Run(mode, func(t *testing.T) {
			h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobe"},
				Args: []string{"--handoff", mode, "--set", "pyprobe.greeting=hi: "}})
			if p := h.Plugins["pyprobe"]; p.Version != "0.3.0" || p.Transport != "tcp" {
				t.Fatalf("start line: %+v", p)
			}
			const conns, lines = 20, 5
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for i := range conns {
				wg.Go(func() {
					c, err := net.DialTimeout("tcp", h.Addr("pyprobe"), 5*time.Second)
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(20 * time.Second))
					r := bufio.NewReader(c)
					for j := range lines {
						fmt.Fprintf(c, "conn %d line %d\n", i, j)
						got, err := r.ReadString('\n')
						if want := fmt.Sprintf("hi: conn %d line %d\n", i, j); got != want || err != nil {
							errs <- fmt.Errorf("conn %d: got %q, %v; want %q", i, got, err, want)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			h.Stop(15 * time.Second)
		})
	}
}

// A UDP plugin gets the host's bound socket ('P'); an exception in its
// handler loses that datagram only, and its traceback reaches the host log.
func TestServeUDP(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobeudp"}, Args: []string{"--set", "pyprobeudp.prefix=hello "}})
	c := dial(t, "udp", h.Addr("pyprobeudp"))
	buf := make([]byte, 2048)
	for _, msg := range []string{"one", "boom", "two"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if msg == "boom" {
			continue // no reply: the next one read must be two's
		}
		n, err := c.Read(buf)
		if want := "hello " + msg; err != nil || string(buf[:n]) != want {
			t.Fatalf("reply to %q: %q, %v; want %q", msg, buf[:n], err, want)
		}
	}
	h.WaitLog("datagram handler exception; datagram dropped", 5*time.Second)
	h.WaitLog("RuntimeError: pyprobeudp: asked to fail", 5*time.Second)
	h.Stop(15 * time.Second)
}

// An exception in a handler loses its own connection; the plugin's other
// connections and the process go on; the traceback reaches the host log.
func TestHandlerExceptionIsolated(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobe"}})
	pid := h.Plugins["pyprobe"].Pid
	good, bad := dial(t, "tcp", h.Addr("pyprobe")), dial(t, "tcp", h.Addr("pyprobe"))
	goodR, badR := bufio.NewReader(good), bufio.NewReader(bad)
	if got := ask(t, good, goodR, "before"); got != "> before\n" {
		t.Fatalf("before: %q", got)
	}
	fmt.Fprint(bad, "boom\n")
	if l, err := badR.ReadString('\n'); err != io.EOF {
		t.Fatalf("failing connection: read %q, %v; want EOF", l, err)
	}
	if got := ask(t, good, goodR, "after"); got != "> after\n" {
		t.Fatalf("after: %q", got)
	}
	third := dial(t, "tcp", h.Addr("pyprobe"))
	if got := ask(t, third, bufio.NewReader(third), "new"); got != "> new\n" {
		t.Fatalf("new connection: %q", got)
	}
	h.WaitLog("sockplay.pyprobe: handler exception; closing its connection", 5*time.Second)
	h.WaitLog("Traceback (most recent call last)", 5*time.Second)
	h.WaitLog("RuntimeError: pyprobe: asked to fail", 5*time.Second)
	if pids := h.PluginPids("pyprobe"); len(pids) != 1 || pids[0] != pid {
		t.Fatalf("plugin process changed: %v, want [%d]", pids, pid)
	}
	good.Close() // a handler blocked in recv would hold the drain to its timeout
	third.Close()
	h.Stop(15 * time.Second)
}

// plugin.log and print() reach the host's log under the plugin's name, at
// their levels, with their fields.
func TestLoggingReachesHost(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobe"}})
	c := dial(t, "tcp", h.Addr("pyprobe"))
	r := bufio.NewReader(c)
	ask(t, c, r, "print printed by a handler")
	ask(t, c, r, "log logged by a handler")
	h.WaitLog("[INFO]  sockplay.pyprobe: printed by a handler", 5*time.Second)
	h.WaitLog("[WARN]  sockplay.pyprobe: logged by a handler", 5*time.Second)
	h.WaitLog("field=value", 5*time.Second)
	c.Close()
	h.Stop(15 * time.Second)
}

// A Python plugin that cannot start says why in the host's one error line,
// and nothing is left running.
func TestBadStarts(t *testing.T) {
	fake := func(module string) string {
		dir := t.TempDir()
		pkg := filepath.Join(dir, module)
		if err := os.MkdirAll(pkg, 0o755); err != nil {
			t.Fatal(err)
		}
		code := fmt.Sprintf("raise ModuleNotFoundError(\"No module named '%s'\", name=%q)\n", module, module)
		if err := os.WriteFile(filepath.Join(pkg, "__init__.py"), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := e2e.PluginDir(t, "pyprobe")
	cases := []struct {
		name, pythonPath string
		args             []string
		want             []string
	}{
		{"unknown option", "", []string{"--set", "pyprobe.nosuch=1"}, []string{`pyprobe has no option "nosuch" (options: greeting, mode)`}},
		{"setup refuses", "", []string{"--set", "pyprobe.mode=odd"}, []string{"plugin pyprobe", "option pyprobe.mode='odd': want normal"}},
		{"no grpcio", fake("grpc"), nil, []string{"plugin pyprobe", "missing Python module grpc", "python3-grpcio"}},
		{"no cryptography", fake("cryptography"), nil, []string{"plugin pyprobe", "missing Python module cryptography", "python3-cryptography"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pythonPath != "" {
				t.Setenv("PYTHONPATH", tc.pythonPath)
			}
			_, stderr, code := e2e.Run(t, append([]string{"serve", "--plugin-dir", dir, "--listen", "pyprobe=127.0.0.1:0"}, tc.args...)...)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero; stderr:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "sockplay: ") {
				t.Fatalf("last line %q is not the error; stderr:\n%s", last, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error line %q lacks %q", last, w)
				}
			}
			if left := e2e.WaitGone(e2e.Processes(e2e.Bin(t)), 2*time.Second); len(left) > 0 {
				t.Errorf("processes left running: %v", left)
			}
		})
	}
}

// On SIGTERM the host drains: a handler blocked in recv past the drain
// timeout has its connection cut (counted as forced), the plugin exits when
// go-plugin asks it to, the host exits 0, and the run directory is gone.
func TestSigtermDrainsAndExits(t *testing.T) {
	tmp := t.TempDir()
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobe"}, Env: []string{"TMPDIR=" + tmp},
		Args: []string{"--drain-timeout", "300ms"}})
	pids := e2e.Descendants(h.Pid())
	c := dial(t, "tcp", h.Addr("pyprobe"))
	r := bufio.NewReader(c)
	ask(t, c, r, "sync")
	fmt.Fprint(c, "wait\n")
	h.Stop(15 * time.Second)
	if l, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("blocked connection after the drain: %q, %v; want EOF", l, err)
	}
	if !strings.Contains(h.Stderr(), "sockplay.pyprobe: drained: forced=1") {
		t.Errorf("no drained line with forced=1 in the host log:\n%s", h.Stderr())
	}
	if left := e2e.WaitGone(pids, time.Second); len(left) > 0 {
		t.Fatalf("plugin left after a clean stop: %v", left)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("left in TMPDIR after a clean stop: %v", ents)
	}
}

// When the host dies by SIGKILL, the Python plugins see their handoff
// socket close, remove their socket directories and exit.
func TestPluginsExitWhenHostIsKilled(t *testing.T) {
	tmp := t.TempDir()
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobe", "pyprobeudp"}, Env: []string{"TMPDIR=" + tmp}})
	pids := e2e.Descendants(h.Pid())
	if len(pids) != 2 {
		t.Fatalf("host has descendants %v, want 2 plugins", pids)
	}
	h.Signal(syscall.SIGKILL)
	if left := e2e.WaitGone(pids, 2*time.Second); len(left) > 0 {
		t.Fatalf("plugins alive 2 s after the host was killed: %v", left)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		ents, _ := os.ReadDir(tmp)
		if len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in TMPDIR after the host was killed: %v", ents)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A Python plugin killed with SIGKILL is restarted by the host and serves
// again on the same listener.
func TestRestartAfterKill(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobe"}})
	c := dial(t, "tcp", h.Addr("pyprobe"))
	got := ask(t, c, bufio.NewReader(c), "pid")
	pid, err := strconv.Atoi(strings.TrimSpace(got))
	if err != nil || pid != h.Plugins["pyprobe"].Pid {
		t.Fatalf("pid %q, want %d", got, h.Plugins["pyprobe"].Pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.WaitLog("plugin restarted", 20*time.Second)
	c2 := dial(t, "tcp", h.Addr("pyprobe"))
	got = ask(t, c2, bufio.NewReader(c2), "pid")
	if newPid, _ := strconv.Atoi(strings.TrimSpace(got)); newPid == pid || newPid == 0 {
		t.Fatalf("after the restart: pid %q (killed %d)", got, pid)
	}
	c2.Close()
	h.Stop(15 * time.Second)
}

// `sockplay plugins` lists a Python plugin with its version, protocol and
// features.
func TestPluginsCommand(t *testing.T) {
	out, stderr, code := e2e.Run(t, "plugins", "--json", "--plugin-dir", e2e.PluginDir(t, "pyprobe", "echo"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var list struct {
		Plugins []struct {
			Name, Version, Transport string
			Protocol                 int
			DefaultAddr              string `json:"default_addr"`
			Features                 []string
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	var found bool
	for _, p := range list.Plugins {
		if p.Name == "pyprobe" {
			found = true
			if p.Version != "0.3.0" || p.Protocol != 1 || p.Transport != "tcp" || p.DefaultAddr != "127.0.0.1:12398" ||
				strings.Join(p.Features, ",") != "events,listener" {
				t.Errorf("pyprobe: %+v", p)
			}
		}
	}
	if !found {
		t.Fatalf("no pyprobe:\n%s", out)
	}
}

// Run by hand, a Python plugin is its protocol's client, with --help and
// --version laid out as the Go SDK's.
func TestClientCommandLine(t *testing.T) {
	out, _, code := e2e.RunBinary(t, "sockplay-pyprobe", nil, "--version")
	if code != 0 || out != "sockplay-pyprobe 0.3.0 (sockplay protocol 1)\n" {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	out, _, code = e2e.RunBinary(t, "sockplay-pyprobe", nil, "--help")
	for _, want := range []string{"sockplay-pyprobe connect [ADDR]", "--set pyprobe.KEY=VALUE", `greeting       put before each echoed line (default "> ")`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("--help: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
	_, errOut, code := e2e.RunBinary(t, "sockplay-pyprobe", nil, "bogus")
	if code != 2 || !strings.Contains(errOut, `unknown command "bogus"`) {
		t.Errorf("bogus: exit %d, %q", code, errOut)
	}
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobe"}})
	out, errOut, code = e2e.RunBinary(t, "sockplay-pyprobe", []byte("one\ntwo\n"), "connect", h.Addr("pyprobe"))
	if code != 0 || out != "> one\n> two\n" {
		t.Errorf("connect: exit %d, %q, stderr %q", code, out, errOut)
	}
	h.Stop(15 * time.Second)
}
