package load

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Memory is the idle-connections measurement: resident memory of the host,
// and of each server that held the connections, before and after.
type Memory struct {
	Conns         int            `json:"conns"`
	HostBeforeKiB int64          `json:"host_before_kib"`
	HostAfterKiB  int64          `json:"host_after_kib"`
	HostFDsBefore int            `json:"host_fds_before"`
	HostFDsAfter  int            `json:"host_fds_after"`
	Servers       []ServerMemory `json:"servers"`
}

// ServerMemory is one server's resident memory with Conns idle connections.
type ServerMemory struct {
	Target     string  `json:"target"`
	Conns      int     `json:"conns"`
	BeforeKiB  int64   `json:"before_kib"`
	AfterKiB   int64   `json:"after_kib"`
	PerConnKiB float64 `json:"per_conn_kib"`
}

// RSS returns a process's resident set size in KiB (VmRSS).
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// FDs returns how many descriptors a process has open.
func FDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// RaiseFDLimit sets this process's soft descriptor limit to its hard one
// (children inherit it) and returns the new soft limit.
func RaiseFDLimit() (int, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return int(min(r.Cur, 1<<30)), nil
}

// idleConns opens n connections to t in parallel batches, waits until t's
// process holds them all (so the host has handed every one over), lets the
// processes settle, and reads the server's resident memory. It closes every
// connection (with a reset, leaving no TIME_WAIT) before it returns.
func idleConns(ctx context.Context, t *Target, n int, atPeak func()) (ServerMemory, error) {
	m := ServerMemory{Target: t.Name, Conns: n}
	fds0, err := FDs(t.Pid)
	if err != nil {
		return m, err
	}
	if m.BeforeKiB, err = RSS(t.Pid); err != nil {
		return m, err
	}
	conns := make([]*net.TCPConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.SetLinger(0)
				c.Close()
			}
		}
		// Let the server see them go before the next measurement. The
		// direct server's io.Copy splice pipes (two descriptors a
		// connection) go back to a pool, not away.
		left := 8
		if t.Name != Plugin {
			left += 2 * n
		}
		waitFDs(t.Pid, func(k int) bool { return k <= fds0+left }, 5*time.Second)
	}()
	const workers = 16
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n && ctx.Err() == nil; i += workers {
				c, err := dial(ctx, t.TCP)
				if err != nil {
					errs[w] = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return m, err
		}
	}
	if !waitFDs(t.Pid, func(k int) bool { return k >= fds0+n }, 60*time.Second) {
		k, _ := FDs(t.Pid)
		return m, fmt.Errorf("%s holds %d descriptors, want at least %d", t.Name, k, fds0+n)
	}
	time.Sleep(time.Second)
	if m.AfterKiB, err = RSS(t.Pid); err != nil {
		return m, err
	}
	m.PerConnKiB = float64(m.AfterKiB-m.BeforeKiB) / float64(n)
	if atPeak != nil {
		atPeak()
	}
	return m, nil
}

func waitFDs(pid int, ok func(int) bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		k, err := FDs(pid)
		if err != nil || ok(k) {
			return err == nil
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clockTick is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// CPUTime returns the CPU time a process has used, user and system, with
// that of the children it has waited for (a super-server's cat processes).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: utime is the 14th field, the 12th after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if i < 0 || len(f) < 15 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// cpuOf sums CPUTime over pids; a pid that cannot be read counts as 0.
func cpuOf(pids []int) time.Duration {
	var sum time.Duration
	for _, p := range pids {
		d, _ := CPUTime(p)
		sum += d
	}
	return sum
}
