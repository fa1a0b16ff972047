package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RestartScenario is the name of the restart measurement (--scenario
// restart): it runs against a host of its own, not in the rounds.
const RestartScenario = "restart"

// RestartParams shape the restart measurement.
type RestartParams struct {
	// Kills is how many times the echo plugin is killed with SIGKILL (0:
	// no restart measurement).
	Kills int
	// EchoLoops and HelloLoops are the clients that keep connecting
	// meanwhile: each echo loop connects, echoes 64 bytes and closes; each
	// hello loop connects and reads the greeting to EOF; over and over.
	EchoLoops, HelloLoops int
	// CrashWindow is the host's --crash-window. Each kill waits until the
	// process it kills has served for longer than that, so that every kill
	// is a first crash (no backoff beyond the first, never failed).
	CrashWindow time.Duration
	// Log, if set, gets the host's log (with --host-arg=--log-level=trace,
	// the timing of each start).
	Log io.Writer
}

// DefaultRestartParams are the issue's: 20 kills under four echo loops and
// two hello loops, with a 1 s crash window so that the kills are 1.3 s apart.
func DefaultRestartParams() RestartParams {
	return RestartParams{Kills: 20, EchoLoops: 4, HelloLoops: 2, CrashWindow: time.Second}
}

// Validate reports a RestartParams that cannot run.
func (p RestartParams) Validate() error {
	switch {
	case p.Kills < 0 || p.Kills > 1000:
		return fmt.Errorf("kills %d: want 0 (no restart measurement) to 1000", p.Kills)
	case p.EchoLoops < 1 || p.EchoLoops > 256 || p.HelloLoops < 0 || p.HelloLoops > 256:
		return fmt.Errorf("loops %d echo, %d hello: want 1 to 256 echo and 0 to 256 hello", p.EchoLoops, p.HelloLoops)
	case p.CrashWindow < 10*time.Millisecond || p.CrashWindow > time.Minute:
		return fmt.Errorf("crash window %s: want 10ms to 1m", p.CrashWindow)
	}
	return nil
}

// Restart is the restart measurement's outcome: how long after each kill -9
// of the echo plugin, under load, echo served a client again.
type Restart struct {
	Kills       int    `json:"kills"`
	EchoLoops   int    `json:"echo_loops"`
	HelloLoops  int    `json:"hello_loops"`
	CrashWindow string `json:"crash_window"`
	// HostArgs are the host's arguments besides the bench's own (--host-arg).
	HostArgs []string `json:"host_args,omitempty"`
	// ServedAgainMs is, per kill, the time from kill(2) to the end of the
	// first echo that began after it and succeeded.
	ServedAgainMs []float64 `json:"served_again_ms"`
	MedianMs      float64   `json:"median_ms"`
	P90Ms         float64   `json:"p90_ms"`
	MaxMs         float64   `json:"max_ms"`
	// Attempts counts every connection the loops tried.
	Attempts int `json:"attempts"`
	// Refused counts connections refused (ECONNREFUSED), any plugin.
	Refused int `json:"refused"`
	// LostOpen counts echo connections that failed and had begun before
	// the killed process was gone (its descriptors closed): they may have
	// been open in it.
	LostOpen int `json:"lost_open"`
	// Failed counts the other failures: an echo connection begun after the
	// process was gone, or any hello connection.
	Failed   int      `json:"failed"`
	Failures []string `json:"failures,omitempty"` // the first few
	// Memory of one echo plugin process, idle, before the first kill: its
	// resident set, and the part of it that is its own (anonymous: heap,
	// stacks, runtime) rather than the binary's pages from the page cache,
	// which a second process of the same binary shares. A standby process
	// adds about its anonymous memory and its page tables.
	PluginRSSKiB  int64 `json:"plugin_rss_kib"`
	PluginAnonKiB int64 `json:"plugin_anon_kib"`
	PluginPTEKiB  int64 `json:"plugin_pte_kib"`
	// StandbyTakeovers counts the kills after which a standby process took
	// over (the new pid was the standby's).
	StandbyTakeovers int `json:"standby_takeovers"`
}

// restartAttempt is one client connection of the restart measurement.
type restartAttempt struct {
	start, end time.Time
	err        error
	refused    bool
}

// kill is one kill of the measurement.
type kill struct {
	pid            int
	at, gone, next time.Time // next: the following kill (or the end)
}

// measureRestart runs the restart measurement against a host of its own
// serving echo and hello, with cfg's host arguments and environment.
func measureRestart(ctx context.Context, cfg Config, progress io.Writer) (*Restart, error) {
	p := cfg.Restart
	if err := p.Validate(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sockplay-bench-restart-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	status := filepath.Join(dir, "status.json")
	args := []string{"serve", "--plugin-dir", cfg.BinDir, "--log-level", "warn", "--drain-timeout", "2s",
		"--enable", "echo,hello", "--listen", "echo=127.0.0.1:0", "--listen", "hello=127.0.0.1:0",
		"--crash-window", p.CrashWindow.String(), "--status-file", status, "--admin", "127.0.0.1:0"}
	args = append(args, cfg.HostArgs...)
	cmd := exec.Command(filepath.Join(cfg.BinDir, "sockplay"), args...)
	cmd.Env = append(os.Environ(), cfg.HostEnv...)
	cmd.Stderr = p.Log
	lines, err := startLines(cmd, "sockplay: serving")
	if err != nil {
		return nil, fmt.Errorf("sockplay %s: %w", strings.Join(args, " "), err)
	}
	stop := terminate(cmd)
	defer stop()
	addrs, pids := map[string]string{}, map[string]int{}
	for _, l := range lines {
		f := strings.Fields(l) // echo  1.0.0  tcp 127.0.0.1:40123  pid 4242
		if len(f) == 6 && f[4] == "pid" {
			addrs[f[0]] = f[3]
			pids[f[0]], _ = strconv.Atoi(f[5])
		}
	}
	if addrs["echo"] == "" || addrs["hello"] == "" {
		return nil, fmt.Errorf("sockplay printed no echo or hello line: %q", lines)
	}
	r := &Restart{Kills: p.Kills, EchoLoops: p.EchoLoops, HelloLoops: p.HelloLoops,
		CrashWindow: p.CrashWindow.String(), HostArgs: cfg.HostArgs}
	r.PluginRSSKiB, _ = RSS(pids["echo"])
	r.PluginAnonKiB, _ = procField(fmt.Sprintf("/proc/%d/smaps_rollup", pids["echo"]), "Anonymous:")
	r.PluginPTEKiB, _ = procField(fmt.Sprintf("/proc/%d/status", pids["echo"]), "VmPTE:")

	// The clients, until the last kill has been served again. Bounded by
	// count and by the whole measurement's time.
	perKill := p.CrashWindow + 10*time.Second
	deadline := time.Now().Add(time.Duration(p.Kills+1) * perKill)
	lctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	loops := p.EchoLoops + p.HelloLoops
	attempts := make([][]restartAttempt, loops)
	var wg sync.WaitGroup
	for i := range loops {
		one := func() restartAttempt { return echoAttempt(lctx, addrs["echo"]) }
		if i >= p.EchoLoops {
			one = func() restartAttempt { return helloAttempt(lctx, addrs["hello"]) }
		}
		wg.Go(func() {
			for n := 0; n < 10_000_000 && lctx.Err() == nil; n++ {
				a := one()
				if a.err != nil && lctx.Err() != nil {
					break // cut short by the end of the measurement
				}
				attempts[i] = append(attempts[i], a)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	kills := make([]kill, 0, p.Kills)
	pid, standby := pids["echo"], 0
	for k := range p.Kills {
		// Each kill is a first crash: the process has served for longer
		// than the crash window.
		select {
		case <-time.After(p.CrashWindow + 300*time.Millisecond):
		case <-lctx.Done():
			return nil, fmt.Errorf("kill %d of %d: %w", k+1, p.Kills, lctx.Err())
		}
		if _, sb, err := readPids(status, "echo"); err == nil {
			standby = sb // the spare started after the last takeover, if any
		}
		at := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return nil, fmt.Errorf("kill %d of %d, pid %d: %w", k+1, p.Kills, pid, err)
		}
		// kill(2) returns before the process is gone: until its descriptors
		// are closed it may still take connections, which die with it.
		for !filesClosed(pid) && time.Since(at) < 5*time.Second {
			time.Sleep(50 * time.Microsecond)
		}
		kills = append(kills, kill{pid: pid, at: at, gone: time.Now()})
		next, err := waitNewPid(lctx, status, "echo", pid)
		if err != nil {
			return nil, fmt.Errorf("kill %d of %d: %w", k+1, p.Kills, err)
		}
		if next == standby {
			r.StandbyTakeovers++
		}
		pid = next
		fmt.Fprintf(progress, "bench: restart kill %d/%d: pid %d → %d\n", k+1, p.Kills, kills[k].pid, pid)
	}
	// The last kill's recovery: give the loops a moment to see it.
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	for i := range kills {
		kills[i].next = time.Now()
		if i+1 < len(kills) {
			kills[i].next = kills[i+1].at
		}
	}
	r.summarize(kills, attempts, p.EchoLoops)
	if len(r.ServedAgainMs) < len(kills) {
		return r, fmt.Errorf("echo was not served again after %d of %d kills", len(kills)-len(r.ServedAgainMs), len(kills))
	}
	return r, nil
}

// summarize turns the kills and the loops' attempts (the first echoLoops
// lists are echo's) into the figures.
func (r *Restart) summarize(kills []kill, attempts [][]restartAttempt, echoLoops int) {
	fail := func(format string, args ...any) {
		r.Failed++
		if len(r.Failures) < 5 {
			r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
		}
	}
	served := make([]time.Duration, len(kills))
	for i := range served {
		served[i] = -1
	}
	for l, as := range attempts {
		for _, a := range as {
			r.Attempts++
			if a.refused {
				r.Refused++
			}
			if l >= echoLoops {
				if a.err != nil {
					fail("hello: %v", a.err)
				}
				continue
			}
			// The kill this attempt began after, if any.
			k := -1
			for i := range kills {
				if !a.start.Before(kills[i].at) {
					k = i
				}
			}
			lost := false
			for i := range kills {
				if a.start.Before(kills[i].gone) && a.end.After(kills[i].at) {
					lost = true
				}
			}
			switch {
			case a.err != nil && lost:
				r.LostOpen++
			case a.err != nil:
				fail("echo: %v", a.err)
			case k >= 0 && a.end.Before(kills[k].next):
				if d := a.end.Sub(kills[k].at); served[k] < 0 || d < served[k] {
					served[k] = d
				}
			}
		}
	}
	var ds []time.Duration
	for _, d := range served {
		if d >= 0 {
			r.ServedAgainMs = append(r.ServedAgainMs, millis(d))
			ds = append(ds, d)
		}
	}
	r.MedianMs = Median(r.ServedAgainMs)
	r.P90Ms = millis(Percentile(slices.Clone(ds), 90))
	r.MaxMs = millis(Percentile(ds, 100))
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func echoAttempt(ctx context.Context, addr string) restartAttempt {
	a := restartAttempt{start: time.Now()}
	c, err := dial(ctx, addr)
	if err != nil {
		a.err, a.refused = err, errors.Is(err, syscall.ECONNREFUSED)
		a.end = time.Now()
		return a
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(slack))
	msg := message(64)
	a.err = roundTrip(c, msg, make([]byte, len(msg)))
	a.end = time.Now()
	return a
}

func helloAttempt(ctx context.Context, addr string) restartAttempt {
	a := restartAttempt{start: time.Now()}
	c, err := dial(ctx, addr)
	if err != nil {
		a.err, a.refused = err, errors.Is(err, syscall.ECONNREFUSED)
		a.end = time.Now()
		return a
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(slack))
	b, err := io.ReadAll(io.LimitReader(c, 4096))
	if err == nil && len(b) == 0 {
		err = errors.New("no greeting")
	}
	a.err, a.end = err, time.Now()
	return a
}

// waitNewPid polls the host's status file until plugin name runs with a pid
// other than old, and returns it.
func waitNewPid(ctx context.Context, status, name string, old int) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		pid, _, err := readPids(status, name)
		if errors.Is(err, errFailed) {
			return 0, err
		}
		if err == nil && pid != 0 && pid != old {
			return pid, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s did not run again within 10s of pid %d's death", name, old)
}

var errFailed = errors.New("marked failed")

// readPids reads plugin name's pid (0 unless it runs) and its standby's (0:
// none) from the host's status file.
func readPids(status, name string) (pid, standby int, err error) {
	var st struct {
		Plugins []struct {
			Name       string `json:"name"`
			State      string `json:"state"`
			Pid        int    `json:"pid"`
			StandbyPid int    `json:"standby_pid"`
		} `json:"plugins"`
	}
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, 0, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", status, err)
	}
	for _, p := range st.Plugins {
		switch {
		case p.Name != name:
		case p.State == "failed":
			return 0, 0, fmt.Errorf("%s: %w", name, errFailed)
		case p.State == "running":
			return p.Pid, p.StandbyPid, nil
		default:
			return 0, p.StandbyPid, nil
		}
	}
	return 0, 0, fmt.Errorf("%s: no plugin %s", status, name)
}

// filesClosed reports whether process pid has closed every descriptor (it
// has exited, even if not yet reaped).
func filesClosed(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true
	}
	for _, t := range tasks {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task/%s/fd", pid, t.Name()))
		if err == nil && len(ents) > 0 {
			return false
		}
	}
	return true
}

// procField returns the value in KiB of the line that starts with key in a
// /proc file of "Key: N kB" lines (status, smaps_rollup).
func procField(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}
