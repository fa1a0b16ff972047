package supervisor

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/internal/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

func echoEntry(t *testing.T) catalog.Entry {
	t.Helper()
	entries, _, err := catalog.Scan(e2e.PluginDir(t, "echo"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("scan: %v %v", entries, err)
	}
	return entries[0]
}

func roundTrip(t *testing.T, addr, msg string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q: %q, %v", msg, got, err)
	}
}

// supervised launches the echo plugin as serve does (Probe, listen,
// Configure) and runs a supervisor over it with cfg, whose Launch and
// Listener it fills in.
func supervised(t *testing.T, runDir string, cfg Config) (*Supervisor, string) {
	t.Helper()
	cfg.Launch = LaunchConfig{
		Entry: echoEntry(t), RunDir: runDir, LogLevel: hclog.Warn, StartTimeout: 10 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "echo", Output: io.Discard}),
	}
	proc, desc, err := Probe(context.Background(), cfg.Launch)
	if err != nil {
		t.Fatal(err)
	}
	if desc.GetName() != "echo" || proc.ProtocolVersion != 1 || proc.Pid == 0 {
		t.Fatalf("probe: %v, protocol %d, pid %d", desc, proc.ProtocolVersion, proc.Pid)
	}
	ln, err := listen.ListenTCP("127.0.0.1:0", 128)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Configure(context.Background(), nil, ln.Addr().String(), nil); err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = time.Second // what Shutdown gives open connections
	}
	s := New(cfg, proc, desc)
	go s.Run(context.Background())
	return s, ln.Addr().String()
}

// A supervised plugin is launched, serves, is restarted after SIGKILL, and is
// shut down, and nothing of it stays behind: no goroutine in the host, no
// process, no socket directory.
func TestSuperviseRestartShutdown(t *testing.T) {
	defer goleak.VerifyNone(t)
	runDir := t.TempDir()
	changes := make(chan struct{}, 100)
	s, addr := supervised(t, runDir, Config{
		BackoffInitial: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		CrashLimit: 3, CrashWindow: time.Minute,
		OnChange: func() { changes <- struct{}{} },
	})
	roundTrip(t, addr, "first")

	first := s.Status().Pid
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Status().Restarts < 1 || s.Status().State != Running {
		if time.Now().After(deadline) {
			t.Fatalf("not restarted: %+v", s.Status())
		}
		select {
		case <-changes:
		case <-time.After(100 * time.Millisecond):
		}
	}
	st := s.Status()
	if st.Pid == first || st.LastExit != "signal: killed" {
		t.Fatalf("after the kill: %+v", st)
	}
	roundTrip(t, addr, "second")

	s.Shutdown(context.Background())
	if st := s.Status(); st.State != Stopped {
		t.Fatalf("after shutdown: %+v", st)
	}
	if left := e2e.WaitGone([]int{first, st.Pid}, 2*time.Second); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
	if ents, _ := os.ReadDir(runDir); len(ents) != 0 {
		t.Fatalf("left in the run directory: %v", ents)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("listener still accepts after shutdown")
	}
}

// Crashes past the limit within the window mark the plugin failed and close
// its listener.
func TestCrashLoopFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, addr := supervised(t, t.TempDir(), Config{BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		CrashLimit: 2, CrashWindow: time.Minute})
	for kill := 1; kill <= 2; kill++ {
		pid := s.Status().Pid
		deadline := time.Now().Add(10 * time.Second)
		for pid == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			pid = s.Status().Pid
		}
		if pid == 0 {
			t.Fatalf("kill %d: no process: %+v", kill, s.Status())
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for s.Status().Pid == pid && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not end after the crash loop: %+v", s.Status())
	}
	st := s.Status()
	if st.State != Failed || st.Error != "crashed 2 times within 1m0s; last: signal: killed" {
		t.Fatalf("status: %+v", st)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("a failed plugin's listener still accepts")
	}
	s.Shutdown(context.Background())
}

func TestProbeRefusesMisnamedBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(e2e.Bin(t), "sockplay-echo")
	if err := os.Symlink(bin, filepath.Join(dir, "sockplay-other")); err != nil {
		t.Fatal(err)
	}
	entries, _, err := catalog.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Probe(context.Background(), LaunchConfig{Entry: entries[0], RunDir: t.TempDir(), StartTimeout: 10 * time.Second,
		Logger: hclog.NewNullLogger()})
	if want := `binary sockplay-other says its name is "echo"`; err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
	if left := e2e.Processes(e2e.Bin(t)); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
}

// With a standby, a killed process is replaced by the spare at once, a new
// spare follows, and shutdown leaves neither behind.
func TestStandbyTakesOver(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, addr := supervised(t, t.TempDir(), Config{BackoffInitial: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		CrashLimit: 5, CrashWindow: time.Minute, Standby: true})
	waitStatus := func(what string, ok func(Status) bool) Status {
		t.Helper()
		return waitForStatus(t, s, what, 10*time.Second, ok)
	}
	st := waitStatus("a standby", func(st Status) bool { return st.StandbyPid != 0 })
	first, spare := st.Pid, st.StandbyPid
	roundTrip(t, addr, "first")
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = waitStatus("the spare serving", func(st Status) bool { return st.Pid == spare })
	if st.Restarts != 1 || st.State != Running {
		t.Fatalf("after the kill: %+v", st)
	}
	roundTrip(t, addr, "second")
	st = waitStatus("a new standby", func(st Status) bool { return st.StandbyPid != 0 && st.StandbyPid != spare })
	third := st.StandbyPid
	s.Shutdown(context.Background())
	if left := e2e.WaitGone([]int{first, spare, third}, 2*time.Second); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
}

// waitForStatus polls s until ok holds of its status, for at most timeout,
// and returns that status; past it the test fails, naming what it waited for.
func waitForStatus(t *testing.T, s *Supervisor, what string, timeout time.Duration, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := s.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v", what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
