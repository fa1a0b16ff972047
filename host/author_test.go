package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/host/internal/serve"
	"github.com/sockplay/sockplay/internal/e2e"
)

// The plugin author's loop, tested as a newcomer does it, in five commands
// and 30 lines of the author's own code:
//
//  1. sockplay new shout
//  2. go test ./...          (GOPROXY=off: nothing is downloaded)
//  3. sockplay dev shout     builds, runs a host, serves the plugin
//  4. nc                     the plugin answers
//  5. one line of main.go edited: sockplay dev rebuilds, and the new
//     behaviour is served without a restart while a client loop, running
//     all along, sees no refusal and no error, and every answer after the
//     first new one is new.
//
// Then a build that fails prints the compiler's message and the old version
// serves on. The same in Python, with `sockplay new --lang python` and
// unittest.
func TestNewcomerLoop(t *testing.T) {
	t.Run("go", func(t *testing.T) {
		newcomerLoop(t, newcomer{
			lang: "go", file: "main.go",
			test: []string{"go", "test", "-count=1", "./..."}, printed: "go test ./...",
			old: `"you said: %s\n"`, new: `"YOU SAID: %s\n"`,
			breakOld: `fmt.Fprintf(c,`, breakNew: `fmt.Fprintf(c, undefinedThing,`,
			compiler: `undefined: undefinedThing`, failed: `build failed \(go build: exit status 1\)`,
		})
	})
	t.Run("python", func(t *testing.T) {
		newcomerLoop(t, newcomer{
			lang: "python", file: "plugin.py",
			test: []string{"/usr/bin/python3", "-m", "unittest"}, printed: "/usr/bin/python3 -m unittest",
			old: `b"you said: "`, new: `b"YOU SAID: "`,
			breakOld: `conn.sendall(`, breakNew: `conn.sendall((`,
			compiler: `plugin.py:\d+:\d+: `, failed: `build failed \(syntax error\)`,
		})
	})
}

// newcomer says how a newcomer's loop goes in one language.
type newcomer struct {
	lang, file         string   // --lang, and the file the author edits
	test               []string // the unit test command
	printed            string   // as sockplay new prints it
	old, new           string   // the one edit
	breakOld, breakNew string   // an edit that breaks the build
	compiler, failed   string   // what dev prints then
}

func newcomerLoop(t *testing.T, nc newcomer) {
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	src := filepath.Join(work, "shout")

	// 1. sockplay new
	out, stderr, code := e2e.Run(t, "new", "shout", "--lang", nc.lang, "--dir", src, "--sdk", root)
	if code != 0 || stderr != "" || !strings.Contains(out, "\n  "+nc.printed+" ") || !strings.Contains(out, " dev .") {
		t.Fatalf("sockplay new: exit %d\n%s%s", code, out, stderr)
	}
	mine, err := os.ReadFile(filepath.Join(src, nc.file))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(mine), "\n"); n > 30 {
		t.Fatalf("%s has %d lines, want at most 30", nc.file, n)
	}

	// 2. the unit test, with no network
	test := exec.Command(nc.test[0], nc.test[1:]...)
	test.Dir = src
	test.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly", "GOWORK=off")
	if b, err := test.CombinedOutput(); err != nil {
		t.Fatalf("%v in the new plugin: %v\n%s", nc.test, err, b)
	}

	// 3. sockplay dev: it builds, and runs a host
	plugins := t.TempDir()
	statusFile := filepath.Join(t.TempDir(), "status.json")
	// --admin with port 0: a user's make run may hold the default admin port.
	dev := startDev(t, work, "dev", "shout", "--plugin-dir", plugins, "--status-file", statusFile, "--listen", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--sdk", root)
	line := dev.waitOut(t, regexp.MustCompile(`(?m)^shout +0\.1\.0 +tcp (127\.0\.0\.1:\d+) +pid (\d+)$`), 5*time.Minute)
	addr := line[1]
	dev.waitOut(t, regexp.MustCompile(`(?m)^sockplay: serving 1 plugin`), 30*time.Second)
	hostPid := readStatus(t, statusFile).HostPid

	// 4. nc
	host, port, _ := net.SplitHostPort(addr)
	if got := runNC(t, []byte("hello\n"), host, port); got != "you said: hello\n" {
		t.Fatalf("nc: %q", got)
	}

	// 5. a client loop runs while one line is edited and the plugin rebuilt
	var loop lineLoop
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { loop.run(addr, stop, 200000, time.Now().Add(10*time.Minute)) })
	stopLoop := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoop() // on a failure on the way
	loop.waitAnswers(t, "you said: hello\n", 20, time.Minute)
	edited := strings.Replace(string(mine), nc.old, nc.new, 1)
	if edited == string(mine) {
		t.Fatalf("%s has no %s to edit", nc.file, nc.old)
	}
	if err := os.WriteFile(filepath.Join(src, nc.file), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	replaced := dev.waitOut(t, regexp.MustCompile(`shout: replaced: pid (\d+) -> \d+`), 5*time.Minute)
	// The plugin accepts on the host's listening socket (--handoff listener,
	// the default): dev reports the replace once the old process has stopped
	// accepting on it (issue 30), so every client that connects after that
	// gets the new answer; only the one in flight may be old.
	afterReplaced := loop.total() + 1
	oldPid, _ := strconv.Atoi(replaced[1])
	for deadline := time.Now().Add(time.Minute); loop.total() < afterReplaced+20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the client loop got %d answers in a minute after the replace, want 20", loop.total()-afterReplaced)
		}
	}
	if left := e2e.WaitGone([]int{oldPid}, time.Minute); len(left) > 0 {
		t.Fatalf("the replaced process %d is still running a minute later", oldPid)
	}
	stopLoop()
	loop.check(t, "you said: hello\n", "YOU SAID: hello\n", afterReplaced)
	if got := runNC(t, []byte("hello\n"), host, port); got != "YOU SAID: hello\n" {
		t.Fatalf("nc after the edit: %q", got)
	}
	st := readStatus(t, statusFile)
	if st.HostPid != hostPid || len(st.Plugins) != 1 || st.Plugins[0].Restarts != 0 || st.Plugins[0].Replaced != 1 {
		t.Fatalf("after the edit: %+v (host pid was %d)", st, hostPid)
	}
	t.Logf("client loop: %d answers, %d old, then %d new", loop.total(), loop.count("you said: hello\n"), loop.count("YOU SAID: hello\n"))

	// A build that fails: the compiler's message, and the old version serves on.
	broken := strings.Replace(edited, nc.breakOld, nc.breakNew, 1)
	if err := os.WriteFile(filepath.Join(src, nc.file), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	dev.waitOut(t, regexp.MustCompile(nc.compiler), 5*time.Minute)
	dev.waitOut(t, regexp.MustCompile(nc.failed+`; the old version serves on`), time.Minute)
	if got := runNC(t, []byte("hello\n"), host, port); got != "YOU SAID: hello\n" {
		t.Fatalf("nc after a failed build: %q", got)
	}
	dev.stop(t)
	if st := readStatus(t, statusFile); st.HostState != "stopped" {
		t.Fatalf("after Ctrl-C: %+v", st)
	}
}

// lineLoop is a client that connects, sends "hello", reads the answer and
// closes, at full speed, one connection after another.
type lineLoop struct {
	mu      sync.Mutex
	answers []string
	refused int
	errs    []error
}

func (l *lineLoop) run(addr string, stop <-chan struct{}, max int, until time.Time) {
	for i := 0; i < max && time.Now().Before(until); i++ {
		select {
		case <-stop:
			return
		default:
		}
		answer, err := func() (string, error) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return "", err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "hello\n"); err != nil {
				return "", err
			}
			return bufio.NewReader(c).ReadString('\n')
		}()
		l.mu.Lock()
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			l.refused++
		case err != nil:
			if len(l.errs) < 10 {
				l.errs = append(l.errs, err)
			}
		default:
			l.answers = append(l.answers, answer)
		}
		l.mu.Unlock()
	}
}

func (l *lineLoop) count(answer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.answers {
		if a == answer {
			n++
		}
	}
	return n
}

func (l *lineLoop) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answers)
}

func (l *lineLoop) waitAnswers(t *testing.T, answer string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for l.count(answer) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the client loop got %d answers %q in %s, want %d", l.count(answer), answer, timeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// check: no refusal, no error; only old answers until the first new one,
// then, until the replace was reported, both, and only new ones from answer
// oldGone on (the old process took no client by then).
func (l *lineLoop) check(t *testing.T, old, new string, oldGone int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused > 0 || len(l.errs) > 0 {
		t.Errorf("client loop: %d refused, errors %v", l.refused, l.errs)
	}
	seenNew := false
	overlap := 0
	for i, a := range l.answers {
		switch {
		case a == new:
			seenNew = true
		case a == old && i >= oldGone:
			t.Errorf("answer %d is the old one after the replace was reported (answer %d on)", i, oldGone)
			return
		case a == old && seenNew:
			overlap++
		case a != old:
			t.Errorf("answer %d: %q", i, a)
			return
		}
	}
	t.Logf("old answers after the first new one, before the replace was reported: %d", overlap)
}

func readStatus(t *testing.T, path string) serve.StatusReport {
	t.Helper()
	st, err := serve.ReadStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// devProc is a `sockplay dev` running in the background.
type devProc struct {
	cmd            *exec.Cmd
	stdout, stderr *e2e.Buffer
	exited         chan struct{}
}

func startDev(t *testing.T, dir string, args ...string) *devProc {
	t.Helper()
	d := &devProc{stdout: &e2e.Buffer{}, stderr: &e2e.Buffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(filepath.Join(e2e.Bin(t), "sockplay"), args...)
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		pids := e2e.Descendants(d.cmd.Process.Pid)
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if left := e2e.WaitGone(pids, 3*time.Second); len(left) > 0 {
			t.Errorf("processes outlived sockplay dev: %v", left)
		}
	})
	return d
}

// waitOut waits until dev's stdout matches re and returns the submatches.
func (d *devProc) waitOut(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(d.stdout.String()); m != nil {
			return m
		}
		select {
		case <-d.exited:
			t.Fatalf("sockplay dev exited; want %s in its output:\n%s\nstderr:\n%s", re, d.stdout, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in sockplay dev's output after %s:\n%s\nstderr:\n%s", re, timeout, d.stdout, d.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop is Ctrl-C: dev stops its host and exits 0.
func (d *devProc) stop(t *testing.T) {
	t.Helper()
	pids := e2e.Descendants(d.cmd.Process.Pid)
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("sockplay dev did not stop on SIGINT:\n%s", d.stdout)
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("sockplay dev exited %d after SIGINT:\n%s\nstderr:\n%s", code, d.stdout, d.stderr)
	}
	if left := e2e.WaitGone(pids, 3*time.Second); len(left) > 0 {
		t.Fatalf("left running after Ctrl-C: %v", left)
	}
}

// pluginCopy makes dir/sockplay-NAME a file of its own holding the built
// plugin src with junk appended: the same program with another SHA-256, as
// a rebuild gives. It is written beside and renamed over, as go build and
// sockplay dev do.
func pluginCopy(t *testing.T, src, dir, name, junk string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e2e.Bin(t), "sockplay-"+src))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".build")
	if err := os.WriteFile(tmp, append(b, junk...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "sockplay-"+name)); err != nil {
		t.Fatal(err)
	}
}

// `sockplay reload` against a running host, under a client loop that sees
// no refusal and no error: reload NAME replaces, reload with no name
// replaces only what changed, SIGHUP does the same, a new binary that fails
// its handshake leaves the old process serving and reports the binary's own
// message, and reload nosuch names it.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	pluginCopy(t, "echo", dir, "echo", "")
	statusFile := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, PluginDir: dir, Args: []string{"--status-file", statusFile}})
	addr := h.Addr("echo")
	first := h.Plugins["echo"].Pid

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var echoes []attempt
	for range 2 {
		wg.Go(func() {
			until := time.Now().Add(5 * time.Minute)
			for i := 0; i < 100000 && time.Now().Before(until); i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := echoOnce(addr)
				mu.Lock()
				echoes = append(echoes, a)
				mu.Unlock()
			}
		})
	}
	// waitTrips waits for n more round trips of the loop: the reloads happen
	// under load, measured by count.
	waitTrips := func(n int) {
		t.Helper()
		mu.Lock()
		target := len(echoes) + n
		mu.Unlock()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			done := len(echoes) >= target
			mu.Unlock()
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the client loop made fewer than %d round trips in a minute", n)
			}
		}
	}
	reload := func(args ...string) (string, string, int) {
		t.Helper()
		return e2e.Run(t, append([]string{"reload", "--status-file", statusFile}, args...)...)
	}

	waitTrips(50)
	pluginCopy(t, "echo", dir, "echo", "rebuilt")
	out, stderr, code := reload("echo")
	if m := regexp.MustCompile(`^echo: replaced: pid (\d+) -> (\d+), version 1\.0\.0 -> 1\.0\.0, sha256 \w{12} -> \w{12}\n$`).FindStringSubmatch(out); code != 0 || m == nil || m[1] != fmt.Sprint(first) {
		t.Fatalf("reload echo: exit %d, %q, %q", code, out, stderr)
	}
	if out, _, code := reload(); code != 0 || !strings.HasPrefix(out, "echo: unchanged (pid ") {
		t.Fatalf("reload with nothing changed: exit %d, %q", code, out)
	}

	pluginCopy(t, "echo", dir, "echo", "rebuilt again")
	h.Signal(syscall.SIGHUP)
	h.WaitLog("SIGHUP: binaries checked: replaced=1 unchanged=0 failed=0", time.Minute)
	afterHup := readStatus(t, statusFile).Plugins[0]

	// A rebuild that does not start: its own message, and the old serves on.
	script := "#!/bin/sh\necho 'echo: cannot open my settings file' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, ".broken"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, ".broken"), filepath.Join(dir, "sockplay-echo")); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = reload("echo")
	want := fmt.Sprintf("echo: failed: exited before its handshake: echo: cannot open my settings file (pid %d serves on)\n", afterHup.Pid)
	if code != 1 || out != want || stderr != "sockplay: reload failed for echo (see above); what served before serves on\n" {
		t.Fatalf("reload of a broken binary: exit %d\nstdout %q\nwant   %q\nstderr %q", code, out, want, stderr)
	}
	h.WaitLog("replace failed; the old process serves on", 10*time.Second)

	out, stderr, code = reload("nosuch")
	if code != 1 || out != "" || stderr != `sockplay: no plugin "nosuch": the host serves echo, and there is no sockplay-nosuch in `+dir+" or $PATH\n" {
		t.Fatalf("reload nosuch: exit %d, %q, %q", code, out, stderr)
	}

	waitTrips(50)
	close(stop)
	wg.Wait()
	var refused, failed int
	for _, a := range echoes {
		if a.refused {
			refused++
		}
		if a.err != nil {
			failed++
			if failed < 5 {
				t.Errorf("echo: %v", a.err)
			}
		}
	}
	if refused > 0 || failed > 0 {
		t.Errorf("client loop: %d round trips, %d refused, %d failed", len(echoes), refused, failed)
	}
	st := readStatus(t, statusFile).Plugins[0]
	if st.Pid != afterHup.Pid || st.Replaced != 2 || st.Restarts != 0 || st.State != "running" {
		t.Errorf("status: %+v", st)
	}
	roundTripEcho(t, addr)
	h.Stop(15 * time.Second)
	if out, stderr, code := reload(); code != 1 || out != "" || !strings.Contains(stderr, "no host is running") {
		t.Errorf("reload after the host stopped: exit %d, %q, %q", code, out, stderr)
	}
}

func roundTripEcho(t *testing.T, addr string) {
	t.Helper()
	if a := echoOnce(addr); a.err != nil {
		t.Fatalf("echo: %v", a.err)
	}
}

// The student's crash loop of the issue: the binary is rebuilt while the
// host runs, then the plugin crashes. The restart adopts the new binary with
// one log line naming the old and new SHA-256 and version: no "SHA-256
// mismatch", no crash loop, no failed plugin.
func TestCrashAfterRebuild(t *testing.T) {
	dir := t.TempDir()
	pluginCopy(t, "echo", dir, "echo", "")
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, PluginDir: dir})
	pid := h.Plugins["echo"].Pid
	pluginCopy(t, "echo", dir, "echo", "rebuilt")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.WaitLog("plugin binary changed on disk; adopted it", 30*time.Second)
	h.WaitLog("plugin restarted", 30*time.Second)
	roundTripEcho(t, h.Addr("echo"))
	log := h.Stderr()
	if n := strings.Count(log, "adopted it"); n != 1 || strings.Contains(log, "mismatch") || strings.Contains(log, "failed") {
		t.Fatalf("log after the rebuild and crash:\n%s", log)
	}
	if !regexp.MustCompile(`adopted it: pid=\d+ old_sha256=[0-9a-f]{64} new_sha256=[0-9a-f]{64} old_version=1\.0\.0 new_version=1\.0\.0`).MatchString(log) {
		t.Fatalf("the adoption line lacks the SHA-256s or versions:\n%s", log)
	}
	h.Stop(15 * time.Second)
}

// Printing to stdout, the student's first debugging tool: what a Go plugin
// prints while configured and in its handler reaches the host's log under
// its name, as do plain stderr lines. What it prints before sdk.Main, which
// the SDK does not guard, and what a program that is not a plugin prints
// where the handshake belongs, get a start error quoting it.
func TestPrintedBeforeHandshake(t *testing.T) {
	t.Run("go plugin", func(t *testing.T) {
		h := e2e.Start(t, e2e.Config{Enable: []string{"printer"}})
		h.WaitLog(`sockplay.printer: printer: printed while configuring: stream=stdout`, 10*time.Second)
		c := dial(t, h.Addr("printer"))
		c.(*net.TCPConn).CloseWrite() // nothing to relay: the handler ends at once
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "ok\n" {
			t.Fatalf("printer: %q, %v", b, err)
		}
		h.WaitLog(`sockplay.printer: printer: printed by the handler: stream=stdout`, 10*time.Second)
		h.WaitLog(`sockplay.printer: printer: a plain stderr line: stream=stderr`, 10*time.Second)
		h.Stop(15 * time.Second)
	})
	t.Run("go plugin printing before sdk.Main", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("SOCKPLAY_PRINTER_EARLY", "1")
		_, stderr, code := e2e.Run(t, "serve", "--plugin-dir", e2e.PluginDir(t, "printer"), "--enable", "printer",
			"--listen", "printer=127.0.0.1:0", "--status-file", filepath.Join(dir, "status.json"))
		want := `sockplay: plugin printer: not a sockplay plugin: it printed "printer: printed before sdk.Main" on stdout, where its go-plugin handshake line belongs (is it built with sdk.Main? A Go plugin must print nothing on stdout before sdk.Main`
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, want) {
			t.Fatalf("exit %d, stderr %q; want one line starting %q", code, stderr, want)
		}
	})
	t.Run("not a plugin", func(t *testing.T) {
		dir := t.TempDir()
		script := "#!/bin/sh\necho 'Hello from a plain program'\nsleep 5\n"
		if err := os.WriteFile(filepath.Join(dir, "sockplay-plain"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := e2e.Run(t, "serve", "--plugin-dir", dir, "--status-file", filepath.Join(dir, "status.json"))
		want := `sockplay: plugin plain: not a sockplay plugin: it printed "Hello from a plain program" on stdout, where its go-plugin handshake line belongs`
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, want) {
			t.Fatalf("exit %d, stderr %q; want one line starting %q", code, stderr, want)
		}
	})
}

// Bad input to `sockplay new`: one error line and nothing written.
func TestNewRefuses(t *testing.T) {
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"new", "Shout"}, 2, `sockplay: plugin name "Shout": want a lower case letter`},
		{[]string{"new", "my plugin"}, 2, `sockplay: plugin name "my plugin"`},
		{[]string{"new", "../escape"}, 2, `sockplay: plugin name "../escape"`},
		{[]string{"new", "taken", "--dir", filepath.Join(work, "taken")}, 1, "sockplay: " + filepath.Join(work, "taken") + " already exists"},
		{[]string{"new", "a", "b"}, 2, "sockplay: new: want one NAME, got 2 arguments"},
		{[]string{"new", "shout", "--lang", "rust"}, 2, `sockplay: --lang "rust": want go or python`},
		{[]string{"new", "shout", "--sdk", work}, 1, "sockplay: --sdk " + work + ": not a sockplay checkout"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "--sdk") {
				args = append(args, "--sdk", root)
			}
			cmd := exec.Command(filepath.Join(e2e.Bin(t), "sockplay"), args...)
			cmd.Dir = work
			var out, errOut strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errOut
			_ = cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.code || out.Len() != 0 ||
				strings.Count(errOut.String(), "\n") != 1 || !strings.HasPrefix(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and one line starting %q", code, out.String(), errOut.String(), tc.code, tc.want)
			}
			ents, _ := os.ReadDir(work)
			if len(ents) != 1 || ents[0].Name() != "taken" {
				t.Fatalf("written: %v", ents)
			}
			if ents, _ := os.ReadDir(filepath.Join(work, "taken")); len(ents) != 0 {
				t.Fatalf("written into the existing directory: %v", ents)
			}
		})
	}
}

// `sockplay dev` of a directory that holds no plugin, or a name that is no
// directory: one line naming it.
func TestDevRefuses(t *testing.T) {
	work := t.TempDir()
	for _, tc := range []struct {
		arg, want string
	}{
		{"nosuch", "sockplay: dev nosuch: no such directory, nor ./nosuch, ./plugins/nosuch or ./examples/nosuch"},
		{".", "sockplay: " + work + " holds no plugin source"},
	} {
		cmd := exec.CommandContext(context.Background(), filepath.Join(e2e.Bin(t), "sockplay"), "dev", tc.arg,
			"--plugin-dir", t.TempDir(), "--status-file", filepath.Join(work, "status.json"))
		cmd.Dir = work
		b, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || strings.Count(string(b), "\n") != 1 || !strings.HasPrefix(string(b), tc.want) {
			t.Errorf("dev %s: exit %d, %q; want one line starting %q", tc.arg, code, b, tc.want)
		}
	}
}
