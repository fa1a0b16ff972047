// Package e2e runs the real thing for tests: it builds the real binaries once
// per test process, starts the real host on 127.0.0.1 with ephemeral ports,
// and checks on cleanup that the host and every plugin process are gone.
//
// A test in any package uses it like this:
//
//	func TestMain(m *testing.M) { e2e.Main(m) }
//
//	func TestEcho(t *testing.T) {
//		h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}})
//		c, _ := net.Dial("tcp", h.Addr("echo"))
//		...
//	}
//
// Bundled plugins, the Python example plugins (examples/python, built as
// `make build` does), and the test plugins of internal/testplugins
// (badversion, panicky, crashy, whoami, deadlock, printer) and sdk/python/testplugins are all built; PluginDir makes a directory holding just the
// ones a test names, since the host serves every plugin in its directory.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bundled lists the bundled plugins.
var Bundled = []string{"hello", "chat", "udpecho", "filexfer", "login", "echo"}

// PythonBundled lists the Python example plugins: sockplay-pyNAME is built
// from examples/python/NAME.py, as `make build` does.
var PythonBundled = []string{"pyhello", "pychat", "pyudpecho", "pyfilexfer", "pylogin", "pyecho"}

// pythonTestPlugins are the Python SDK's own test plugins, built from
// sdk/python/testplugins/NAME.py.
var pythonTestPlugins = []string{"pyprobe", "pyprobeudp"}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// BinEnv names a directory of binaries already built (by the test process
// that started this one, say in another network namespace): Bin uses it
// instead of building, and Main leaves it.
const BinEnv = "SOCKPLAY_E2E_BIN"

// Main runs the tests and removes the build directory.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" && os.Getenv(BinEnv) == "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// ModuleRoot returns the repository's root directory.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the sockplay module")
	}
	return filepath.Dir(mod), nil
}

// Bin builds the host, every bundled plugin that exists in the tree and the
// test plugins into one directory, once per test process, and returns it.
func Bin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if dir := os.Getenv(BinEnv); dir != "" {
			buildDir = dir
			return
		}
		buildDir, buildErr = build()
	})
	if buildErr != nil {
		t.Fatalf("e2e: build: %v", buildErr)
	}
	return buildDir
}

func build() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "sockplay-e2e-bin-")
	if err != nil {
		return "", err
	}
	targets := map[string]string{"sockplay": "./host"}
	for _, name := range Bundled {
		if _, err := os.Stat(filepath.Join(root, "plugins", name, "main.go")); err == nil {
			targets["sockplay-"+name] = "./plugins/" + name
		}
	}
	for _, name := range []string{"badversion", "panicky", "crashy", "whoami", "deadlock", "printer"} {
		targets["sockplay-"+name] = "./internal/testplugins/" + name
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	sem := make(chan struct{}, 4)
	for out, pkg := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v\n%s", pkg, err, b))
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		if err := buildPython(root, dir); err != nil {
			mu.Lock()
			errs = append(errs, err.Error())
			mu.Unlock()
		}
	})
	wg.Wait()
	if len(errs) > 0 {
		os.RemoveAll(dir)
		return "", fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return dir, nil
}

// buildPython builds the Python plugins into dir with the builder `make
// build` uses (each one file: the script and the SDK as a zipapp).
func buildPython(root, dir string) error {
	args := []string{filepath.Join(root, "sdk", "python", "build_plugin.py"), dir}
	for _, name := range PythonBundled {
		src := filepath.Join(root, "examples", "python", strings.TrimPrefix(name, "py")+".py")
		if _, err := os.Stat(src); err == nil {
			args = append(args, name+"="+src)
		}
	}
	for _, name := range pythonTestPlugins {
		args = append(args, name+"="+filepath.Join(root, "sdk", "python", "testplugins", name+".py"))
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		return fmt.Errorf("python3 is needed to build the Python plugins (scripts/setup.sh installs it): %w", err)
	}
	if b, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("build the Python plugins: %v\n%s", err, b)
	}
	return nil
}

// PluginDir returns a new directory with links to the named plugins' binaries
// (a name with no built binary fails the test).
func PluginDir(t testing.TB, names ...string) string {
	t.Helper()
	bin := Bin(t)
	dir := t.TempDir()
	for _, n := range names {
		src := filepath.Join(bin, "sockplay-"+n)
		if _, err := os.Stat(src); err != nil {
			t.Fatalf("e2e: plugin %s: %v", n, err)
		}
		if err := os.Symlink(src, filepath.Join(dir, "sockplay-"+n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Config says how to start a host.
type Config struct {
	// Enable names the plugins to serve; each listens on an ephemeral
	// 127.0.0.1 port unless Args moves it.
	Enable []string
	// Args are more `sockplay serve` arguments, such as --set.
	Args []string
	// PluginDir defaults to a directory of just the enabled plugins.
	PluginDir string
	// Env is added to the host's environment (and so its plugins').
	Env []string
	// KeepPorts keeps the plugins' default addresses instead of port 0.
	KeepPorts bool
}

// Plugin is a plugin's line from the host's start-up output.
type Plugin struct {
	Name, Version, Transport, Addr string
	Pid                            int
}

// Host is a running `sockplay serve`.
type Host struct {
	t       testing.TB
	cmd     *exec.Cmd
	stdout  *Buffer
	stderr  *Buffer
	exited  chan struct{}
	waitErr error
	Plugins map[string]Plugin
	Dir     string
	// Admin is the admin endpoint's URL ("http://127.0.0.1:PORT/"), from
	// the host's start-up line; "" with --admin off.
	Admin string
}

// Start runs `sockplay serve` and waits until it serves. The host is stopped
// with SIGKILL at the end of the test if it still runs, and the test fails if
// any process it started outlives it by more than 3 s.
func Start(t testing.TB, cfg Config) *Host {
	t.Helper()
	h, err := start(t, cfg)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return h
}

func start(t testing.TB, cfg Config) (*Host, error) {
	bin := Bin(t)
	dir := cfg.PluginDir
	if dir == "" {
		dir = PluginDir(t, cfg.Enable...)
	}
	// A status file of its own, so that parallel hosts do not share the
	// default one, and an admin endpoint on a free port, so that they do
	// not collide with each other or with `make run` on the default one; a
	// --status-file or --admin in cfg.Args comes later and wins.
	args := []string{"serve", "--plugin-dir", dir, "--status-file", filepath.Join(t.TempDir(), "status.json"),
		"--admin", "127.0.0.1:0"}
	if len(cfg.Enable) > 0 {
		args = append(args, "--enable", strings.Join(cfg.Enable, ","))
	}
	if !cfg.KeepPorts {
		for _, n := range cfg.Enable {
			args = append(args, "--listen", n+"=127.0.0.1:0")
		}
	}
	args = append(args, cfg.Args...)
	h := &Host{t: t, stdout: &Buffer{}, stderr: &Buffer{}, exited: make(chan struct{}), Plugins: map[string]Plugin{}, Dir: dir}
	h.cmd = exec.Command(filepath.Join(bin, "sockplay"), args...)
	h.cmd.Env = append(Env(t), cfg.Env...)
	h.cmd.Stdout = h.stdout
	h.cmd.Stderr = h.stderr
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { h.waitErr = h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(h.cleanup)

	ready := false
	deadline := time.Now().Add(30 * time.Second)
	for !ready && time.Now().Before(deadline) {
		select {
		case <-h.exited:
			return nil, fmt.Errorf("sockplay %s exited before serving (%v):\n%s", strings.Join(args, " "), h.waitErr, h.stderr)
		case <-time.After(5 * time.Millisecond):
		}
		ready = strings.Contains(h.stdout.String(), "sockplay: serving")
	}
	if !ready {
		return nil, fmt.Errorf("sockplay did not serve within 30 s:\n%s", h.stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(h.stdout.String()))
	for sc.Scan() {
		// hello     1.0.0    tcp 127.0.0.1:12345       pid 11964
		if rest, ok := strings.CutPrefix(sc.Text(), AdminLine); ok {
			h.Admin, _, _ = strings.Cut(rest, " ")
		}
		f := strings.Fields(sc.Text())
		if len(f) == 6 && f[4] == "pid" {
			pid, _ := strconv.Atoi(f[5])
			h.Plugins[f[0]] = Plugin{Name: f[0], Version: f[1], Transport: f[2], Addr: f[3], Pid: pid}
		}
	}
	return h, nil
}

// AdminLine starts the host's start-up line that gives the admin
// endpoint's URL.
const AdminLine = "sockplay: live page at "

// Addr returns where plugin name listens.
func (h *Host) Addr(name string) string {
	h.t.Helper()
	p, ok := h.Plugins[name]
	if !ok {
		h.t.Fatalf("e2e: plugin %s is not served (have %v)", name, h.Plugins)
	}
	return p.Addr
}

// Pid returns the host's pid.
func (h *Host) Pid() int { return h.cmd.Process.Pid }

// Stderr returns what the host logged so far.
func (h *Host) Stderr() string { return h.stderr.String() }

// Stdout returns what the host printed so far.
func (h *Host) Stdout() string { return h.stdout.String() }

// WaitLog waits until the host's log contains s, and fails the test after
// timeout.
func (h *Host) WaitLog(s string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(h.stderr.String(), s) {
		if time.Now().After(deadline) {
			h.t.Fatalf("e2e: the host's log has no %q after %s:\n%s", s, timeout, h.stderr)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// PluginPids returns the pids of the running processes of plugin name that
// are the host's children (one, normally; none while it restarts).
func (h *Host) PluginPids(name string) []int {
	var pids []int
	for _, pid := range Children(h.cmd.Process.Pid) {
		if filepath.Base(Executable(pid)) == "sockplay-"+name && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Executable returns the program process pid runs: its executable or, for a
// script run by an interpreter through its #! line (a Python plugin), the
// script, which the kernel passes as the interpreter's first argument.
func Executable(pid int) string {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	if !strings.HasPrefix(filepath.Base(exe), "python") {
		return exe
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if args := strings.Split(string(b), "\x00"); len(args) > 1 && filepath.IsAbs(args[1]) {
		return args[1]
	}
	return exe
}

// Signal sends sig to the host.
func (h *Host) Signal(sig syscall.Signal) {
	_ = h.cmd.Process.Signal(sig)
}

// Wait waits for the host to exit, up to timeout, and returns its exit code
// (-1 if it did not exit, or died by a signal).
func (h *Host) Wait(timeout time.Duration) int {
	select {
	case <-h.exited:
		return h.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return -1
	}
}

// Stop sends SIGTERM and waits for the host to exit; the test fails unless it
// exits 0 within timeout.
func (h *Host) Stop(timeout time.Duration) {
	h.t.Helper()
	h.Signal(syscall.SIGTERM)
	if code := h.Wait(timeout); code != 0 {
		h.t.Fatalf("e2e: sockplay exited %d after SIGTERM (want 0):\n%s", code, h.stderr)
	}
}

func (h *Host) cleanup() {
	pids := Descendants(h.cmd.Process.Pid)
	select {
	case <-h.exited:
	default:
		_ = h.cmd.Process.Kill()
		<-h.exited
	}
	if left := WaitGone(pids, 3*time.Second); len(left) > 0 {
		for _, pid := range left {
			killPid(pid)
		}
		h.t.Errorf("e2e: processes outlived the host by 3 s: %v\nhost log:\n%s", left, h.stderr)
	}
}

// Run runs the sockplay binary with args to completion (30 s at most) and
// returns its output and exit code. A `serve` given no --admin gets --admin
// off, so that it never binds the default admin port, which a host the user
// runs (`make run`) holds.
func Run(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if len(args) > 0 && args[0] == "serve" && !slices.ContainsFunc(args, func(a string) bool {
		return a == "--admin" || strings.HasPrefix(a, "--admin=")
	}) {
		args = append(slices.Clip(args), "--admin", "off")
	}
	return RunBinary(t, "sockplay", nil, args...)
}

// RunBinary runs one of the built binaries (such as "sockplay-echo") with
// stdin and args, 30 s at most.
func RunBinary(t testing.TB, name string, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := Bin(t) // the first call builds: not part of the 30 s
	if name == "sockplay" && len(args) > 0 && args[0] == "serve" {
		// As Start: never the default admin port (a later --admin wins).
		args = append([]string{"serve", "--admin", "127.0.0.1:0"}, args[1:]...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = Env(t)
	cmd.SysProcAttr = ownGroup()
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if ctx.Err() != nil {
		t.Fatalf("e2e: %s %v did not finish in 30 s", name, args)
	}
	if err != nil && code < 0 {
		t.Fatalf("e2e: %s %v: %v", name, args, err)
	}
	return o.String(), e.String(), code
}

// Env is the environment of every command the harness runs: this process's,
// with XDG_RUNTIME_DIR in a temporary directory of the test's, so that a
// command that falls back on the user's default status file
// ($XDG_RUNTIME_DIR/sockplay/status.json) neither reads nor writes the real
// one, nor finds it locked by a host the user runs (`make run`).
func Env(t testing.TB) []string {
	return append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir())
}

// Buffer is a bytes.Buffer safe for one writer and many readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Tutorial runs one of the tutorial's Python clients (testdata/tutorial) with
// stdin and args, 30 s at most, and returns its output and exit code.
func Tutorial(t testing.TB, script string, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("e2e: python3 is needed for the tutorial clients (.ci/run installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{filepath.Join(root, "testdata", "tutorial", script)}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Stdin = bytes.NewReader(stdin)
	_ = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("e2e: %s did not finish in 30 s; stdout:\n%s\nstderr:\n%s", script, o.String(), e.String())
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// HostPort splits addr for the tutorial clients' command lines.
func HostPort(addr string) []string {
	i := strings.LastIndexByte(addr, ':')
	return []string{addr[:i], addr[i+1:]}
}

// Processes returns the pids of running processes whose executable lies in
// dir (the build directory: every host and plugin a test started).
func Processes(dir string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe := Executable(pid); exe != "" && filepath.Dir(exe) == dir && !isZombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}
