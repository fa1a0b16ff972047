package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/host/internal/cli"
	"github.com/sockplay/sockplay/internal/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTutorialClients(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"hello", "echo"}})

	out, stderr, code := e2e.Tutorial(t, "hello_client.py", nil, e2e.HostPort(h.Addr("hello"))...)
	if code != 0 || strings.TrimSpace(out) != "成功连接到服务器 socket message" {
		t.Errorf("hello_client.py: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	// The client prints each recv on a line of its own; on a loaded machine
	// two echoes can arrive in one recv, so only the bytes and their order
	// are compared.
	out, stderr, code = e2e.Tutorial(t, "echo_client.py", []byte("hello\n你好\nexit\n"), e2e.HostPort(h.Addr("echo"))...)
	if code != 0 || strings.ReplaceAll(out, "\n", "") != "hello你好exit" {
		t.Errorf("echo_client.py: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	h.Stop(15 * time.Second)
}

func TestNetcatAndPluginClients(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"hello", "echo"}, Args: []string{"--set", "hello.greeting=hi there"}})

	out, _, code := e2e.RunBinary(t, "sockplay-hello", nil, "connect", h.Addr("hello"))
	if code != 0 || out != "hi there\n" {
		t.Errorf("sockplay-hello connect: exit %d, %q", code, out)
	}
	out, _, code = e2e.RunBinary(t, "sockplay-echo", []byte("one\ntwo\n"), "connect", h.Addr("echo"))
	if code != 0 || out != "one\ntwo\n" {
		t.Errorf("sockplay-echo connect: exit %d, %q", code, out)
	}
	if _, err := exec_LookPath("nc"); err == nil {
		hp := e2e.HostPort(h.Addr("echo"))
		out = runNC(t, []byte("over netcat\n"), hp[0], hp[1])
		if out != "over netcat\n" {
			t.Errorf("nc: %q", out)
		}
	} else {
		t.Errorf("nc (netcat-openbsd) is needed; .ci/run installs it")
	}
	h.Stop(15 * time.Second)
}

func TestEchoQuitClosesConnection(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}})
	c := dial(t, h.Addr("echo"))
	fmt.Fprint(c, "ping")
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("echo: %q, %v", buf[:n], err)
	}
	fmt.Fprint(c, "quit")
	if n, err := c.Read(buf); err != io.EOF {
		t.Fatalf("after quit: read %q, %v; want EOF", buf[:n], err)
	}
}

// A handler that panics loses its own connection; the plugin's other
// connections, and the plugin, go on; the stack reaches the host's log.
func TestHandlerPanicIsolated(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"panicky"}})
	pid := h.Plugins["panicky"].Pid
	good := dial(t, h.Addr("panicky"))
	bad := dial(t, h.Addr("panicky"))
	goodR, badR := bufio.NewReader(good), bufio.NewReader(bad)
	for i := range 3 {
		fmt.Fprintf(good, "line %d\n", i)
		if l, err := goodR.ReadString('\n'); err != nil || l != fmt.Sprintf("line %d\n", i) {
			t.Fatalf("before the panic: %q, %v", l, err)
		}
	}
	fmt.Fprint(bad, "panic\n")
	if l, err := badR.ReadString('\n'); err != io.EOF {
		t.Fatalf("panicking connection: read %q, %v; want EOF", l, err)
	}
	for i := range 3 {
		fmt.Fprintf(good, "after %d\n", i)
		if l, err := goodR.ReadString('\n'); err != nil || l != fmt.Sprintf("after %d\n", i) {
			t.Fatalf("after the panic: %q, %v", l, err)
		}
	}
	third := dial(t, h.Addr("panicky"))
	fmt.Fprint(third, "new\n")
	if l, err := bufio.NewReader(third).ReadString('\n'); err != nil || l != "new\n" {
		t.Fatalf("new connection after the panic: %q, %v", l, err)
	}
	h.WaitLog("handler panic", 5*time.Second)
	h.WaitLog("panicky: asked to panic", 5*time.Second)
	h.WaitLog("goroutine ", 5*time.Second) // the stack
	if pids := h.PluginPids("panicky"); len(pids) != 1 || pids[0] != pid {
		t.Fatalf("plugin process changed: %v, want [%d]", pids, pid)
	}
	good.Close()
	third.Close()
	h.Stop(15 * time.Second)
}

// Every bad start is one line naming the cause, a non-zero exit, and nothing
// left running.
func TestBadStarts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	notPlugin := e2e.PluginDir(t, "echo")
	script := filepath.Join(notPlugin, "sockplay-x")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'I am just a script'\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	echoDir := e2e.PluginDir(t, "echo")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"port in use", []string{"--plugin-dir", echoDir, "--listen", "echo=" + busy.Addr().String()}, []string{"plugin echo", busy.Addr().String(), "address already in use"}},
		{"unknown plugin", []string{"--plugin-dir", echoDir, "--enable", "nosuch"}, []string{`unknown plugin "nosuch"`, "found: echo"}},
		{"unknown option", []string{"--plugin-dir", echoDir, "--set", "echo.nosuchoption=1"}, []string{"echo.nosuchoption", `no option "nosuchoption"`}},
		{"bad --set", []string{"--plugin-dir", echoDir, "--set", "echo=1"}, []string{"--set", "NAME.KEY=VALUE"}},
		{"listen without port", []string{"--plugin-dir", echoDir, "--listen", "echo=127.0.0.1"}, []string{"--listen echo=127.0.0.1", "missing port"}},
		{"listen for unknown plugin", []string{"--plugin-dir", echoDir, "--listen", "nosuch=127.0.0.1:0"}, []string{"--listen nosuch", "no plugin"}},
		{"not a plugin", []string{"--plugin-dir", notPlugin, "--enable", "x"}, []string{"plugin x", "not a sockplay plugin", "I am just a script"}},
		{"a named plugin fails", []string{"--plugin-dir", e2e.PluginDir(t, "echo", "crashy"), "--enable", "echo,crashy", "--listen", "echo=127.0.0.1:0"}, []string{"plugin crashy", "flux capacitor"}},
		{"no plugin starts", []string{"--plugin-dir", e2e.PluginDir(t, "badversion", "crashy")}, []string{"no plugin started", "plugin badversion", "protocol version", "plugin crashy", "flux capacitor"}},
		{"other protocol version", []string{"--plugin-dir", e2e.PluginDir(t, "badversion")}, []string{"plugin badversion", "protocol version", "Plugin version: 99", "this host speaks version 1"}},
		{"plugin exits at start", []string{"--plugin-dir", e2e.PluginDir(t, "crashy")}, []string{"plugin crashy", "no configuration for the flux capacitor"}},
		{"empty plugin dir", []string{"--plugin-dir", t.TempDir()}, []string{"no plugins in"}},
		// Every bundled plugin starts, and some log warnings on the way
		// (filexfer and login are unconfigured): none of it is printed.
		{"port in use, all plugins", allPluginsBusyEcho(t, busy.Addr().String()), []string{"plugin echo", "address already in use"}},
		{"bad --listen", []string{"--plugin-dir", echoDir, "--listen", "echo:127.0.0.1:1"}, []string{"--listen", "want NAME=HOST:PORT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := e2e.Run(t, append([]string{"serve"}, tc.args...)...)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero; stderr:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if len(lines) != 1 || !strings.HasPrefix(last, "sockplay: ") {
				t.Fatalf("stderr has %d lines, want exactly one, the error:\n%s", len(lines), stderr)
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

func TestSigtermStopsCleanly(t *testing.T) {
	tmp := t.TempDir()
	h := e2e.Start(t, e2e.Config{Enable: []string{"hello", "echo"}, Env: []string{"TMPDIR=" + tmp}})
	pids := e2e.Descendants(h.Pid())
	if len(pids) != 2 {
		t.Fatalf("host has %d descendants %v, want 2 plugins", len(pids), pids)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
		t.Fatalf("run directory: %v", ents)
	}
	h.Stop(15 * time.Second)
	if left := e2e.WaitGone(pids, time.Second); len(left) > 0 {
		t.Fatalf("plugins left after a clean stop: %v", left)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("left in TMPDIR after a clean stop: %v", ents)
	}
}

// When the host dies by SIGKILL, its plugins notice (their handoff socket
// closes) and exit, removing their socket directories.
func TestPluginsExitWhenHostIsKilled(t *testing.T) {
	tmp := t.TempDir()
	h := e2e.Start(t, e2e.Config{Enable: []string{"hello", "echo"}, Env: []string{"TMPDIR=" + tmp}})
	pids := e2e.Descendants(h.Pid())
	killed := time.Now()
	h.Signal(syscall.SIGKILL)
	if left := e2e.WaitGone(pids, 2*time.Second); len(left) > 0 {
		t.Fatalf("plugins alive 2 s after the host was killed: %v", left)
	}
	t.Logf("plugins gone %s after SIGKILL of the host", time.Since(killed).Round(time.Millisecond))
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

func TestPluginsCommand(t *testing.T) {
	dir := e2e.PluginDir(t, "hello", "echo")
	if err := os.WriteFile(filepath.Join(dir, "sockplay-x"), []byte("#!/bin/sh\necho nope\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sockplay-noexec"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := e2e.Run(t, "plugins", "--plugin-dir", dir, "--wide")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{"hello", "echo"} {
		b, err := os.ReadFile(filepath.Join(e2e.Bin(t), "sockplay-"+name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		var row string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, name+" ") {
				row = l
			}
		}
		// NAME VERSION PROTOCOL TRANSPORT ADDRESS FEATURES SOURCE PATH SHA256
		f := strings.Fields(row)
		if len(f) != 9 || f[1] != "1.0.0" || f[2] != "1" || f[3] != "tcp" || !strings.Contains(f[5], "listener") ||
			f[6] != "plugin-dir" || f[7] != filepath.Join(dir, "sockplay-"+name) || f[8] != hex.EncodeToString(sum[:]) {
			t.Errorf("row for %s: %q\n%s", name, row, out)
		}
	}
	for _, want := range []string{"sockplay-x: not a sockplay plugin", "sockplay-noexec: not executable"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if left := e2e.WaitGone(e2e.Processes(e2e.Bin(t)), 2*time.Second); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
}

func TestVersionAndHelp(t *testing.T) {
	out, _, code := e2e.Run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "sockplay "+cli.Version) {
		t.Errorf("sockplay version: %d %q", code, out)
	}
	out, _, code = e2e.RunBinary(t, "sockplay-echo", nil, "--version")
	if code != 0 || out != "sockplay-echo 1.0.0 (sockplay protocol 1)\n" {
		t.Errorf("sockplay-echo --version: %d %q", code, out)
	}
	out, _, code = e2e.RunBinary(t, "sockplay-hello", nil, "--help")
	if code != 0 || !strings.Contains(out, "connect") || !strings.Contains(out, "greeting") {
		t.Errorf("sockplay-hello --help: %d %q", code, out)
	}
	_, stderr, code := e2e.RunBinary(t, "sockplay-echo", nil, "bogus")
	if code != 2 || !strings.Contains(stderr, `unknown command "bogus"`) {
		t.Errorf("sockplay-echo bogus: %d %q", code, stderr)
	}
	_, stderr, code = e2e.Run(t, "bogus")
	if code != 2 || !strings.Contains(stderr, `unknown command "bogus"`) {
		t.Errorf("sockplay bogus: %d %q", code, stderr)
	}
}

// With no flags, sockplay serve serves every bundled plugin on its default
// address: udpecho on UDP 127.0.0.1:12345 next to hello on TCP 127.0.0.1:12345.
// (The one test that uses the default ports; every other test asks for port 0.
// It runs in a network namespace of its own, so that it passes while the
// machine serves on those ports, `make run` say.)
func TestDefaultServe(t *testing.T) {
	want := map[string]string{
		"hello": "tcp 127.0.0.1:12345", "udpecho": "udp 127.0.0.1:12345", "chat": "tcp 127.0.0.1:12346",
		"filexfer": "tcp 127.0.0.1:12347", "echo": "tcp 127.0.0.1:12348", "login": "tcp 127.0.0.1:8001",
	}
	if !ownNetwork(t, want) {
		return
	}
	h := e2e.Start(t, e2e.Config{PluginDir: e2e.PluginDir(t, e2e.Bundled...), KeepPorts: true})
	for name, w := range want {
		p, ok := h.Plugins[name]
		if !ok || p.Transport+" "+p.Addr != w {
			t.Errorf("%s: %+v, want %s", name, p, w)
		}
	}
	if a := helloOnce("127.0.0.1:12345"); a.err != nil {
		t.Errorf("hello on TCP 12345: %v", a.err)
	}
	u, err := net.Dial("udp", "127.0.0.1:12345")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	_ = u.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(u, "ping")
	buf := make([]byte, 64)
	if n, err := u.Read(buf); err != nil || string(buf[:n]) != "hello ping" {
		t.Errorf("udpecho on UDP 12345: %q, %v", buf[:n], err)
	}
	h.Stop(15 * time.Second)
}

// Every bundled plugin's every client command answers --help with its usage
// and exit status 0, without running; a plugin with no commands says so.
func TestPluginCommandsHelp(t *testing.T) {
	for _, name := range e2e.Bundled {
		out, stderr, code := e2e.RunBinary(t, "sockplay-"+name, nil, "--help")
		if code != 0 || !strings.Contains(out, "Available Commands:") {
			t.Errorf("sockplay-%s --help: exit %d, %q %q", name, code, out, stderr)
			continue
		}
		_, cmds, _ := strings.Cut(out, "Available Commands:\n")
		cmds, _, _ = strings.Cut(cmds, "\n\n")
		n := 0
		for _, l := range strings.Split(cmds, "\n") {
			f := strings.Fields(l)
			if len(f) == 0 || f[0] == "help" || f[0] == "version" {
				continue
			}
			n++
			for _, args := range [][]string{{f[0], "--help"}, {f[0], "-h"}, {"help", f[0]}} {
				out, stderr, code := e2e.RunBinary(t, "sockplay-"+name, nil, args...)
				if code != 0 || !strings.Contains(out, "Usage:\n  sockplay-"+name+" "+f[0]) || stderr != "" {
					t.Errorf("sockplay-%s %v: exit %d, stdout %q, stderr %q", name, args, code, out, stderr)
				}
			}
		}
		if n == 0 {
			t.Errorf("sockplay-%s lists no client commands:\n%s", name, out)
		}
	}
	// The panicky test plugin has no client: it says so.
	_, stderr, code := e2e.RunBinary(t, "sockplay-panicky", nil)
	if code != 2 || !strings.Contains(stderr, "no client commands") {
		t.Errorf("sockplay-panicky: exit %d, %q", code, stderr)
	}
}

// sockplay NAME ARGS runs sockplay-NAME ARGS, found next to the host binary.
func TestPluginPassthrough(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}})
	out, stderr, code := e2e.RunBinary(t, "sockplay", []byte("through the host\n"), "echo", "connect", h.Addr("echo"))
	if code != 0 || out != "through the host\n" {
		t.Errorf("sockplay echo connect: exit %d, %q, %q", code, out, stderr)
	}
	_, stderr, code = e2e.RunBinary(t, "sockplay", nil, "echo", "connect", "--nosuch")
	if code != 2 || !strings.Contains(stderr, "sockplay-echo: unknown flag: --nosuch") {
		t.Errorf("sockplay echo connect --nosuch: exit %d, %q", code, stderr)
	}
	_, stderr, code = e2e.RunBinary(t, "sockplay", nil, "nosuchplugin", "x")
	if code != 2 || !strings.Contains(stderr, `unknown command "nosuchplugin"`) {
		t.Errorf("sockplay nosuchplugin: exit %d, %q", code, stderr)
	}
}

// With --log-format json every line the host writes, its plugins' relayed
// lines included, is one JSON object with an RFC 3339 @timestamp (with the
// date), no second timestamp, and durations as Go duration strings.
func TestJSONLog(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo", "filexfer"}, Args: []string{"--log-format", "json"}})
	pid := h.Plugins["echo"].Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.WaitLog("plugin restarted", 15*time.Second)
	h.Stop(15 * time.Second)
	lines := strings.Split(strings.TrimSpace(h.Stderr()), "\n")
	if len(lines) < 4 {
		t.Fatalf("only %d log lines:\n%s", len(lines), h.Stderr())
	}
	var sawRelayed, sawDuration bool
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("not JSON: %q: %v", l, err)
			continue
		}
		ts, _ := m["@timestamp"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("@timestamp %q is not RFC 3339: %q", ts, l)
		}
		if _, ok := m["timestamp"]; ok {
			t.Errorf("a second timestamp field: %q", l)
		}
		if m["@module"] == "sockplay.filexfer" {
			sawRelayed = true
		}
		for _, k := range []string{"took", "backoff", "drain_timeout"} {
			if v, ok := m[k]; ok {
				if _, isString := v.(string); !isString {
					t.Errorf("%s is %T, want a duration string: %q", k, v, l)
				} else if _, err := time.ParseDuration(v.(string)); err != nil {
					t.Errorf("%s %q: %v", k, v, err)
				} else {
					sawDuration = true
				}
			}
		}
	}
	if !sawRelayed || !sawDuration {
		t.Errorf("relayed plugin line seen: %v, duration seen: %v:\n%s", sawRelayed, sawDuration, h.Stderr())
	}
	if n := strings.Count(h.Stderr(), "plugin process exited"); n != 1 {
		t.Errorf("the crash is logged %d times, want once:\n%s", n, h.Stderr())
	}
}

// allPluginsBusyEcho serves every bundled plugin, each named with
// --enable, on a free port but echo, which is sent to busy: no default port
// is used, so the case holds while `make run` serves.
func allPluginsBusyEcho(t *testing.T, busy string) []string {
	args := []string{"--plugin-dir", e2e.PluginDir(t, e2e.Bundled...), "--enable", strings.Join(e2e.Bundled, ",")}
	for _, name := range e2e.Bundled {
		addr := "127.0.0.1:0"
		if name == "echo" {
			addr = busy
		}
		args = append(args, "--listen", name+"="+addr)
	}
	return args
}
