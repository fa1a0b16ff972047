package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockplay/sockplay/internal/e2e"
)

// The failure modes of issue 13 that the host must survive: a plugin out of
// descriptors, a plugin alive but not answering, a long TMPDIR, two hosts on
// one status file.

// limitPlugin lowers the open-file limit (RLIMIT_NOFILE) of process pid so
// that it has room descriptors free, and returns a function that restores
// it.
func limitPlugin(t *testing.T, pid, room int) (restore func()) {
	t.Helper()
	var orig unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &orig); err != nil {
		t.Skipf("prlimit %d: %v", pid, err)
	}
	limit, free := 0, 0
	for fd := 0; fd < 1<<16 && free < room; fd++ {
		if _, err := os.Lstat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); err != nil {
			free++
		}
		limit = fd + 1
	}
	low := unix.Rlimit{Cur: uint64(limit), Max: orig.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &low, nil); err != nil {
		t.Skipf("lower the open-file limit of %d: %v", pid, err)
	}
	restored := false
	restore = func() {
		if !restored {
			restored = true
			if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &orig, nil); err != nil {
				t.Errorf("restore the open-file limit of %d: %v", pid, err)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// lineClient is a client that sent one line and waits for its echo.
type lineClient struct {
	c    net.Conn
	r    *bufio.Reader
	line string
}

func sendLines(t *testing.T, addr string, n int, tag string) []lineClient {
	t.Helper()
	cs := make([]lineClient, n)
	for i := range cs {
		c := dial(t, addr)
		cs[i] = lineClient{c: c, r: bufio.NewReader(c), line: fmt.Sprintf("%s %d\n", tag, i)}
		if _, err := io.WriteString(c, cs[i].line); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	return cs
}

// peek reports whether the client was answered, and fails the test if its
// connection was closed unanswered. A client still waiting is not answered.
func (lc *lineClient) peek(t *testing.T, wait time.Duration) bool {
	t.Helper()
	_ = lc.c.SetReadDeadline(time.Now().Add(wait))
	got, err := lc.r.ReadString('\n')
	switch {
	case err == nil && got == lc.line:
		return true
	case errors.Is(err, os.ErrDeadlineExceeded) && got == "":
		return false
	default:
		t.Fatalf("client %q: read %q, %v: closed unanswered", strings.TrimSpace(lc.line), got, err)
		return false
	}
}

// waitAnswers waits for the answer of each client not yet answered, and
// closes them all.
func waitAnswers(t *testing.T, cs []lineClient, answered []bool) {
	t.Helper()
	for i := range cs {
		if !answered[i] && !cs[i].peek(t, 20*time.Second) {
			t.Fatalf("client %d: no answer in 20 s", i)
		}
	}
	for _, lc := range cs {
		lc.c.Close()
	}
}

// A plugin at its open-file limit cannot take the connections the host
// hands it (the kernel cuts the descriptors off, or its dup fails with
// EMFILE). It returns them, the host keeps them and sends them again, and
// once the plugin has descriptors again every client is served: none is
// closed unanswered, and the plugin is not restarted. (Case 02; conn
// handoff, where the host hands over each connection.)
func TestPluginOutOfDescriptors(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--handoff", "conn"}})
	pid := h.Plugins["echo"].Pid
	restore := limitPlugin(t, pid, 3)
	const n = 10
	cs := sendLines(t, h.Addr("echo"), n, "out of descriptors")
	h.WaitLog("plugin returned connections it could not take", 20*time.Second)
	h.WaitLog("out of descriptors: connections returned to the host", 20*time.Second)
	answered := make([]bool, n)
	waiting := 0
	for i := range cs {
		if answered[i] = cs[i].peek(t, 50*time.Millisecond); !answered[i] {
			waiting++
		}
	}
	if waiting == 0 {
		t.Fatalf("all %d clients served at the limit: the limit did not bite", n)
	}
	restore()
	waitAnswers(t, cs, answered)
	t.Logf("%d of %d clients waited for descriptors and were then served", waiting, n)
	if pids := h.PluginPids("echo"); len(pids) != 1 || pids[0] != pid {
		t.Fatalf("echo processes %v, want the same %d throughout", pids, pid)
	}
	// Rate-limited: one line a second at most, each counting the others.
	if c := strings.Count(h.Stderr(), "plugin returned connections"); c > 30 {
		t.Errorf("%d log lines about returned connections", c)
	}
	h.Stop(15 * time.Second)
}

// With --handoff listener the plugin accepts; at its open-file limit its
// accept fails with EMFILE, and it backs off and retries while clients wait
// in the backlog. (Case 03: the accept loop used to end.)
func TestSharedListenerOutOfDescriptors(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--handoff", "listener"}})
	pid := h.Plugins["echo"].Pid
	restore := limitPlugin(t, pid, 2)
	const n = 6
	cs := sendLines(t, h.Addr("echo"), n, "shared")
	h.WaitLog("accept failed; retrying", 20*time.Second)
	answered := make([]bool, n)
	for i := range cs {
		answered[i] = cs[i].peek(t, 50*time.Millisecond)
	}
	restore()
	waitAnswers(t, cs, answered)
	more := sendLines(t, h.Addr("echo"), 3, "after")
	waitAnswers(t, more, make([]bool, len(more)))
	h.Stop(15 * time.Second)
}

// A plugin that is alive but stopped (SIGSTOP) is found by the health check,
// killed and restarted; the clients that came meanwhile go to its
// successor: every client is served. With conn handoff they are the
// connections handed to it, which it never took; with listener handoff they
// wait in the shared socket's backlog.
func TestFrozenPluginReplaced(t *testing.T) {
	t.Run("conn handoff", func(t *testing.T) { frozenPluginReplaced(t, "conn") })
	t.Run("listener handoff", func(t *testing.T) { frozenPluginReplaced(t, "listener") })
}

func frozenPluginReplaced(t *testing.T, handoff string) {
	status := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--handoff", handoff,
		"--status-file", status, "--health-interval", "200ms", "--health-timeout", "2s"}})
	pid := h.Plugins["echo"].Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	// kill(2) returns before every thread has stopped; one still running
	// could accept a client (listener handoff) that then dies with it.
	waitStopped(t, pid)
	const n = 5
	cs := sendLines(t, h.Addr("echo"), n, "frozen")
	h.WaitLog("plugin is alive but not answering; killing it to restart it", 30*time.Second)
	waitAnswers(t, cs, make([]bool, n))
	if left := e2e.WaitGone([]int{pid}, 5*time.Second); len(left) > 0 {
		t.Fatalf("the stopped process %d is still there", pid)
	}
	if handoff == "conn" {
		h.WaitLog("plugin exited with connections unanswered; those it had not begun to serve go to the next process: next=", 5*time.Second)
	}
	// With listener handoff the clients may be served before the status
	// file says so: it is read until it does, 10 s at most.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := statusOutput(t, status)
		row := statusRow(out, "echo")
		if len(row) >= 8 && row[4] == "running" && row[7] != "0" && strings.Contains(out, "stopped (SIGSTOP?)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after the replacement:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Stop(15 * time.Second)
}

// A plugin whose control service is deadlocked (its data path still works)
// is found by the health check and replaced, the kill counted as a crash.
func TestDeadlockedControlReplaced(t *testing.T) {
	status := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{Enable: []string{"deadlock"},
		Args: []string{"--status-file", status, "--health-interval", "200ms", "--health-timeout", "2s"}})
	pid := h.Plugins["deadlock"].Pid
	c := dial(t, h.Addr("deadlock"))
	fmt.Fprint(c, "deadlock\n")
	if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "locked\n" {
		t.Fatalf("deadlock: %q, %v", l, err)
	}
	c.Close()
	h.WaitLog("plugin is alive but not answering; killing it to restart it", 30*time.Second)
	if waitNewPid(t, h, "deadlock", pid, 20*time.Second) == 0 {
		t.Fatal("not restarted")
	}
	cs := sendLines(t, h.Addr("deadlock"), 3, "after")
	waitAnswers(t, cs, make([]bool, len(cs)))
	out := statusOutput(t, status)
	if !strings.Contains(out, "no answer to Health within 2s, 2 times in a row") || strings.Contains(out, "SIGSTOP") {
		t.Fatalf("status after the replacement:\n%s", out)
	}
	h.Stop(15 * time.Second)
}

// One SIGTERM ends the host within --drain-timeout plus a few seconds even
// when a plugin does not answer: its drain call times out and it is killed,
// and nothing is left running. (Case 09: go-plugin's graceful stop waited
// for ever.)
func TestSigtermWithFrozenPlugin(t *testing.T) {
	for _, tc := range []struct {
		name, plugin string
		freeze       func(t *testing.T, h *e2e.Host)
	}{
		{"stopped", "echo", func(t *testing.T, h *e2e.Host) {
			pid := h.Plugins["echo"].Pid
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
			// kill(2) returns before every thread has stopped: one still
			// running could answer the drain (it did, with make run
			// serving alongside).
			waitStopped(t, pid)
		}},
		{"deadlocked", "deadlock", func(t *testing.T, h *e2e.Host) {
			c := dial(t, h.Addr("deadlock"))
			fmt.Fprint(c, "deadlock\n")
			if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "locked\n" {
				t.Fatalf("deadlock: %q, %v", l, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := e2e.Start(t, e2e.Config{Enable: []string{tc.plugin},
				Args: []string{"--drain-timeout", "1s", "--health-interval", "0"}})
			pids := e2e.Descendants(h.Pid())
			tc.freeze(t, h)
			start := time.Now()
			h.Signal(syscall.SIGTERM)
			// drain-timeout 1s + StopGrace 4s; the bound here only tells a
			// hang from an end, on a machine as loaded as it may be.
			code := h.Wait(60 * time.Second)
			took := time.Since(start)
			if code != 0 {
				t.Fatalf("exit %d %s after SIGTERM, want 0:\n%s", code, took, h.Stderr())
			}
			t.Logf("the host exited %s after SIGTERM", took.Round(time.Millisecond))
			if !strings.Contains(h.Stderr(), "drain failed; killing the plugin") {
				t.Errorf("log does not say the drain failed:\n%s", h.Stderr())
			}
			if left := e2e.WaitGone(pids, 3*time.Second); len(left) > 0 {
				t.Fatalf("left running: %v", left)
			}
		})
	}
}

// Under a TMPDIR too long for a Unix socket path below it, the host puts its
// run directory where the plugins' control sockets fit, says so, and serves.
// (Case 01: the plugin could not bind, and the host refused to start with
// "bind: invalid argument".)
func TestLongTMPDIR(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("t", 120))
	if err := os.Mkdir(long, 0o755); err != nil {
		t.Fatal(err)
	}
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Env: []string{"TMPDIR=" + long}})
	cs := sendLines(t, h.Addr("echo"), 1, "long")
	waitAnswers(t, cs, []bool{false})
	// The log is written on its own goroutine (a stalled reader must not
	// hold the host up): it may come after the ready line on stdout.
	h.WaitLog("would pass the 107-byte limit of a Unix socket path; using ", 10*time.Second)
	h.Stop(15 * time.Second)
	if ents, _ := os.ReadDir(long); len(ents) != 0 {
		t.Errorf("left in TMPDIR: %v", ents)
	}
}

// While a host holds a status file, a second host on the same file refuses
// at once, naming the first, and leaves the file as it was; a host that died
// leaves no lock behind.
func TestOneHostPerStatusFile(t *testing.T) {
	status := filepath.Join(t.TempDir(), "status.json")
	first := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--status-file", status}})
	_, stderr, code := e2e.Run(t, "serve", "--plugin-dir", first.Dir, "--listen", "echo=127.0.0.1:0",
		"--status-file", status)
	want := fmt.Sprintf("sockplay: another sockplay (pid %d) is running; status file %s\n", first.Pid(), status)
	if code != 1 || stderr != want {
		t.Fatalf("second host: exit %d, %q; want 1, %q", code, stderr, want)
	}
	// The file is still the first host's (which rewrites it as its counters
	// change): the second wrote neither its pid nor a stop into it.
	var r struct {
		HostPid int  `json:"host_pid"`
		Stopped bool `json:"stopped"`
	}
	b, err := os.ReadFile(status)
	if err != nil || json.Unmarshal(b, &r) != nil || r.HostPid != first.Pid() || r.Stopped {
		t.Fatalf("status file after the second host (%v):\n%s", err, b)
	}
	if lock, err := os.ReadFile(status + ".lock"); err != nil || strings.TrimSpace(string(lock)) != strconv.Itoa(first.Pid()) {
		t.Fatalf("lock file: %q, %v; want the first host's pid %d", lock, err, first.Pid())
	}
	if left := e2e.Processes(e2e.Bin(t)); len(left) != 1+len(first.Plugins) {
		t.Errorf("processes: %v, want only the first host's", left)
	}

	// A stale lock (its host killed) blocks nobody.
	pids := e2e.Descendants(first.Pid())
	first.Signal(syscall.SIGKILL)
	first.Wait(10 * time.Second)
	e2e.WaitGone(pids, 5*time.Second)
	second := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--status-file", status}})
	if out := statusOutput(t, status); !strings.Contains(out, "host pid "+strconv.Itoa(second.Pid())) {
		t.Fatalf("status after the stale lock:\n%s", out)
	}
	second.Stop(15 * time.Second)
}

// waitStopped waits, up to 10 s, until every thread of process pid is
// stopped (state T in /proc/PID/task/TID/stat).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		stopped := len(tasks) > 0
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			i := bytes.LastIndexByte(b, ')')
			if err == nil && (i < 0 || i+2 >= len(b) || b[i+2] != 'T') {
				stopped = false
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not stopped 10 s after SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond)
	}
}
