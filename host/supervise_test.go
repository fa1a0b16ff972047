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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/host/internal/serve"
	"github.com/sockplay/sockplay/internal/e2e"
)

type attempt struct {
	start, dialed, end time.Time
	err                error
	refused            bool
}

// loadUntil repeats one until stop says so, maxEach times at most; it
// returns every attempt.
func loadUntil(maxEach int, stop func() bool, one func() attempt) []attempt {
	var all []attempt
	for i := 0; i < maxEach && !stop(); i++ {
		all = append(all, one())
	}
	return all
}

// dialAttempt starts an attempt; a nil connection means it ended there.
func dialAttempt(addr string) (attempt, net.Conn) {
	a := attempt{start: time.Now()}
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	a.dialed = time.Now()
	if err != nil {
		a.err, a.refused, a.end = err, errors.Is(err, syscall.ECONNREFUSED), time.Now()
		return a, nil
	}
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	return a, c
}

func echoOnce(addr string) attempt {
	a, c := dialAttempt(addr)
	if c == nil {
		return a
	}
	defer c.Close()
	msg := bytes.Repeat([]byte{'e'}, 64)
	if _, err := c.Write(msg); err != nil {
		a.err, a.end = err, time.Now()
		return a
	}
	got := make([]byte, 64)
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		a.err = fmt.Errorf("echo: %q, %v", got, err)
	}
	a.end = time.Now()
	return a
}

func helloOnce(addr string) attempt {
	a, c := dialAttempt(addr)
	if c == nil {
		return a
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "成功连接到服务器 socket message" {
		a.err = fmt.Errorf("hello: %q, %v", b, err)
	}
	a.end = time.Now()
	return a
}

// Under load, kill -9 of the echo plugin: no client of either plugin is
// refused; only echo connections already open at the kill may fail; echo
// serves again quickly (the figure is logged); hello's clients see nothing.
func TestKillUnderLoad(t *testing.T) {
	// The target is 100 ms. A restart is a 5 ms backoff and a ~45 ms start on
	// a quiet machine, but the start competes for the CPU with this test's
	// own load and the other packages' tests; a standby process takes over
	// without starting anything. The figures are logged against the targets;
	// what must hold on any machine is counted: no refusal, no failure but
	// of connections open at the kill, echo served again.
	// How fast is measured by the bench (bin/bench --scenario restart).
	t.Run("listener handoff", func(t *testing.T) { killUnderLoad(t, []string{"--handoff", "listener"}, time.Second) })
	t.Run("conn handoff", func(t *testing.T) { killUnderLoad(t, []string{"--handoff", "conn"}, time.Second) })
	t.Run("standby", func(t *testing.T) { killUnderLoad(t, []string{"--standby"}, 100*time.Millisecond) })
}

func killUnderLoad(t *testing.T, args []string, target time.Duration) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"hello", "echo"}, Args: args})
	pid := h.Plugins["echo"].Pid
	// The load goes on until echo has served a connection begun after the
	// kill, and 200 ms more, or 30 s at most.
	var killedAt time.Time
	var killed atomic.Bool
	var servedAgain atomic.Int64 // unix nanoseconds
	hard := time.Now().Add(30 * time.Second)
	stop := func() bool {
		at := servedAgain.Load()
		return time.Now().After(hard) || at != 0 && time.Since(time.Unix(0, at)) > 200*time.Millisecond
	}
	var echoes, hellos []attempt
	var wg sync.WaitGroup
	wg.Go(func() {
		echoes = loadUntil(20000, stop, func() attempt {
			a := echoOnce(h.Addr("echo"))
			if a.err == nil && killed.Load() && a.start.After(killedAt) {
				servedAgain.CompareAndSwap(0, a.end.UnixNano())
			}
			return a
		})
	})
	wg.Go(func() { hellos = loadUntil(20000, stop, func() attempt { return helloOnce(h.Addr("hello")) }) })
	time.Sleep(500 * time.Millisecond)
	if slices.Contains(args, "--standby") {
		// The spare must be started and configured before the kill, or
		// there is nothing to take over: on a loaded machine that can take
		// longer than the half second above.
		if standbyPid(t, h, "echo", 20*time.Second) == 0 {
			t.Fatal("echo has no standby process after 20 s")
		}
	}
	killedAt = time.Now()
	killed.Store(true)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// kill(2) returns before the process is dead: until its descriptors are
	// closed it still takes connections, and those die with it, so
	// connections dialed before that count as open at the kill.
	deadline := time.Now().Add(2 * time.Second)
	for !e2e.FilesClosed(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
	deadAt := time.Now()
	wg.Wait()

	var lostOpen, refused int
	recovered := time.Duration(-1)
	for _, a := range echoes {
		if a.refused {
			refused++
		}
		switch {
		case a.err != nil && a.start.Before(deadAt):
			// Its dial began before the process died, so it may have been
			// open then (the client's clock is taken around the dial, and a
			// loaded machine can delay the goroutine that takes it).
			lostOpen++
		case a.err != nil:
			t.Errorf("echo connection dialed %s after the process died failed: %v", a.start.Sub(deadAt), a.err)
		case a.start.After(killedAt) && (recovered < 0 || a.end.Sub(killedAt) < recovered):
			recovered = a.end.Sub(killedAt)
		}
	}
	helloFailed := 0
	for _, a := range hellos {
		if a.refused {
			refused++
		}
		if a.err != nil {
			helloFailed++
			t.Errorf("hello connection failed: %v", a.err)
		}
	}
	t.Logf("echo: %d connections, %d lost that were open at the kill; hello: %d connections, %d failed; refused: %d; the process died %s after kill(2); echo served again %s after the kill",
		len(echoes), lostOpen, len(hellos), helloFailed, refused, deadAt.Sub(killedAt).Round(10*time.Microsecond), recovered.Round(100*time.Microsecond))
	if refused > 0 {
		t.Errorf("%d connections refused", refused)
	}
	if recovered < 0 {
		t.Fatal("echo never served again after the kill")
	}
	if recovered > target {
		t.Logf("echo served again %s after the kill, over the target of %s: a loaded machine", recovered, target)
	}
	// The status may go on: "signal: killed (handoff failed: ...)" when a
	// handoff found the process gone before its socket's end of file did.
	h.WaitLog(fmt.Sprintf("sockplay.echo: plugin process exited: pid=%d status=\"signal: killed", pid), 5*time.Second)
	if slices.Contains(args, "--standby") {
		h.WaitLog("sockplay.echo: standby process took over", 5*time.Second)
	} else {
		h.WaitLog("sockplay.echo: restarting plugin: attempt=1 backoff=", 5*time.Second)
	}
	h.Stop(15 * time.Second)
}

func waitNewPid(t *testing.T, h *e2e.Host, name string, old int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if pids := h.PluginPids(name); len(pids) == 1 && pids[0] != old {
			return pids[0]
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0
}

func statusOutput(t *testing.T, file string) string {
	t.Helper()
	out, stderr, code := e2e.Run(t, "status", "--status-file", file, "--wide")
	if code != 0 {
		t.Fatalf("sockplay status: exit %d: %s", code, stderr)
	}
	return out
}

func statusRow(out, name string) []string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

// Ten kills in a row inside the crash-loop window mark echo failed; hello
// keeps serving; status and log say so; echo's port refuses.
func TestCrashLoopMarksFailed(t *testing.T) {
	status := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{Enable: []string{"hello", "echo"},
		Args: []string{"--status-file", status, "--crash-limit", "5", "--crash-window", "30s"}})
	if row := statusRow(statusOutput(t, status), "echo"); len(row) < 5 || row[4] != "running" {
		t.Fatalf("echo before the kills: %v", row)
	}
	pid := h.Plugins["echo"].Pid
	kills := 0
	for kills < 10 && pid != 0 {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		kills++
		pid = waitNewPid(t, h, "echo", pid, 3*time.Second)
	}
	if kills != 5 {
		t.Errorf("killed %d times before echo stopped coming back; want it failed after 5", kills)
	}
	h.WaitLog("sockplay.echo: plugin marked failed", 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	var row []string
	for time.Now().Before(deadline) {
		if row = statusRow(statusOutput(t, status), "echo"); len(row) > 4 && row[4] == "failed" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := statusOutput(t, status)
	if len(row) < 5 || row[4] != "failed" || !strings.Contains(out, "crashed 5 times within 30s") {
		t.Fatalf("status after the kills:\n%s", out)
	}
	if row := statusRow(out, "hello"); len(row) < 5 || row[4] != "running" {
		t.Errorf("hello in status: %v", row)
	}
	if a := helloOnce(h.Addr("hello")); a.err != nil {
		t.Errorf("hello after echo failed: %v", a.err)
	}
	if _, err := net.DialTimeout("tcp", h.Addr("echo"), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial the failed echo: %v, want connection refused", err)
	}
	t.Logf("status:\n%s", out)

	// A reload of every plugin leaves a failed one failed; one that names it
	// starts it again, on the address it had.
	stdout, stderr, code := e2e.Run(t, "reload", "--status-file", status)
	if code != 1 || !strings.Contains(stdout, "echo: failed: plugin echo is failed") || !strings.Contains(stdout, "'sockplay reload echo' starts it again") {
		t.Fatalf("reload of every plugin: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = e2e.Run(t, "reload", "echo", "--status-file", status)
	if code != 0 || !strings.HasPrefix(stdout, "echo: started: pid ") || !strings.Contains(stdout, " on "+h.Addr("echo")+"\n") {
		t.Fatalf("reload echo: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if a := echoOnce(h.Addr("echo")); a.err != nil {
		t.Fatalf("echo after the reload: %v", a.err)
	}
	if row := statusRow(statusOutput(t, status), "echo"); len(row) < 5 || row[4] != "running" {
		t.Fatalf("echo after the reload: %v", row)
	}
	h.WaitLog("sockplay.echo: failed plugin started again by a reload", 5*time.Second)
	h.Stop(15 * time.Second)
}

// A plugin whose restart exits at once is reported failed with its own error
// message, promptly rather than by a hang.
func TestRestartThatExitsAtOnce(t *testing.T) {
	crash := filepath.Join(t.TempDir(), "crash")
	status := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{Enable: []string{"panicky"}, Env: []string{"PANICKY_CRASH_FILE=" + crash},
		Args: []string{"--status-file", status, "--crash-limit", "3"}})
	if err := os.WriteFile(crash, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := dial(t, h.Addr("panicky"))
	start := time.Now()
	fmt.Fprint(c, "exit\n")
	h.WaitLog("plugin marked failed", 10*time.Second)
	t.Logf("marked failed %s after the first exit", time.Since(start).Round(time.Millisecond))
	out := statusOutput(t, status)
	row := statusRow(out, "panicky")
	if len(row) < 5 || row[4] != "failed" || !strings.Contains(out, "refusing to start: crash file present") {
		t.Fatalf("status:\n%s", out)
	}
	if !strings.Contains(h.Stderr(), "exit status 7") {
		t.Errorf("the first exit's status is not in the log:\n%s", h.Stderr())
	}
	h.Stop(15 * time.Second)
}

// A panic that kills the plugin process puts its stack in the host's log,
// and the plugin is restarted.
func TestProcessPanicReachesLog(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"panicky"}})
	pid := h.Plugins["panicky"].Pid
	c := dial(t, h.Addr("panicky"))
	fmt.Fprint(c, "crash\n")
	h.WaitLog("panic: panicky: crash in a goroutine", 5*time.Second)
	h.WaitLog("goroutine ", 5*time.Second)
	h.WaitLog("exit status 2", 5*time.Second)
	if waitNewPid(t, h, "panicky", pid, 5*time.Second) == 0 {
		t.Fatal("panicky was not restarted")
	}
	c2 := dial(t, h.Addr("panicky"))
	fmt.Fprint(c2, "back\n")
	if l, err := bufio.NewReader(c2).ReadString('\n'); err != nil || l != "back\n" {
		t.Fatalf("after the restart: %q, %v", l, err)
	}
	c2.Close()
	h.Stop(15 * time.Second)
}

// SIGTERM with 100 connections open: each may finish its work during the
// drain; new clients are refused; the host exits 0 once they are done, and
// nothing is left running.
func TestSigtermDrains100Connections(t *testing.T) {
	t.Run("conn handoff", func(t *testing.T) { sigtermDrains(t, "--handoff", "conn") })
	t.Run("listener handoff", func(t *testing.T) { sigtermDrains(t, "--handoff", "listener") })
}

func sigtermDrains(t *testing.T, args ...string) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: append([]string{"--drain-timeout", "20s"}, args...)})
	conns := make([]net.Conn, 100)
	for i := range conns {
		conns[i] = dial(t, h.Addr("echo"))
		fmt.Fprintf(conns[i], "before %03d", i)
		buf := make([]byte, 10)
		if _, err := io.ReadFull(conns[i], buf); err != nil {
			t.Fatal(err)
		}
	}
	pids := e2e.Descendants(h.Pid())
	h.Signal(syscall.SIGTERM)
	h.WaitLog("stopping: draining connections", 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", h.Addr("echo"), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting 5 s after SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, c := range conns {
		fmt.Fprintf(c, "after  %03d", i)
		buf := make([]byte, 10)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != fmt.Sprintf("after  %03d", i)[:10] {
			t.Fatalf("connection %d during the drain: %q, %v", i, buf, err)
		}
		c.Close()
	}
	start := time.Now()
	if code := h.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, h.Stderr())
	}
	t.Logf("host exited %s after the last connection closed", time.Since(start).Round(time.Millisecond))
	if left := e2e.WaitGone(pids, time.Second); len(left) > 0 {
		t.Fatalf("left running: %v", left)
	}
}

// A second signal during the drain stops at once.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--drain-timeout", "60s"}})
	c := dial(t, h.Addr("echo"))
	fmt.Fprint(c, "x")
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	pids := e2e.Descendants(h.Pid())
	h.Signal(syscall.SIGTERM)
	h.WaitLog("stopping: draining connections", 5*time.Second)
	start := time.Now()
	h.Signal(syscall.SIGINT)
	code := h.Wait(5 * time.Second)
	if code != 1 {
		t.Fatalf("exit %d after the second signal, want 1:\n%s", code, h.Stderr())
	}
	t.Logf("stopped %s after the second signal", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(h.Stderr(), "stopped at once on a second signal") {
		t.Errorf("no message about the second signal:\n%s", h.Stderr())
	}
	if left := e2e.WaitGone(pids, time.Second); len(left) > 0 {
		t.Fatalf("left running: %v", left)
	}
}

// What a plugin starts dies with it: when the plugin is killed, and when the
// host is.
func TestPluginChildrenDie(t *testing.T) {
	spawn := func(t *testing.T, h *e2e.Host) int {
		c := dial(t, h.Addr("panicky"))
		fmt.Fprint(c, "spawn\n")
		l, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil || !e2e.Alive(pid) {
			t.Fatalf("spawn: %q", l)
		}
		return pid
	}
	t.Run("plugin killed", func(t *testing.T) {
		h := e2e.Start(t, e2e.Config{Enable: []string{"panicky"}})
		child := spawn(t, h)
		if err := syscall.Kill(h.Plugins["panicky"].Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if left := e2e.WaitGone([]int{child}, 2*time.Second); len(left) > 0 {
			t.Fatalf("the plugin's child outlived it: %v", left)
		}
		h.Stop(15 * time.Second)
	})
	t.Run("host killed", func(t *testing.T) {
		h := e2e.Start(t, e2e.Config{Enable: []string{"panicky", "echo"}})
		child := spawn(t, h)
		all := append(e2e.Descendants(h.Pid()), child)
		h.Signal(syscall.SIGKILL)
		if left := e2e.WaitGone(all, 2*time.Second); len(left) > 0 {
			t.Fatalf("alive 2 s after the host was killed: %v", left)
		}
	})
}

// standbyPid waits up to timeout for plugin name's standby process to be
// started and configured (the admin endpoint's /api/status shows its pid),
// and returns its pid, or 0.
func standbyPid(t *testing.T, h *e2e.Host, name string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		code, b := httpGet(t, h.Admin+"api/status")
		var st serve.StatusReport
		if code == 200 && json.Unmarshal(b, &st) == nil {
			for _, p := range st.Plugins {
				if p.Name == name && p.StandbyPid != 0 {
					return p.StandbyPid
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}
