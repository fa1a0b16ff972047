package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/internal/e2e"
)

// binaryCopy writes a copy of the built plugin src as dir/sockplay-NAME with
// junk appended (an ELF binary runs the same with bytes after its end), so
// that it is the same program with another SHA-256, as a rebuild would be.
func binaryCopy(t *testing.T, src, dir, name, junk string) catalog.Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e2e.Bin(t), "sockplay-"+src))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sockplay-"+name)
	// Written beside and renamed over, as go build and sockplay dev do: a
	// running binary cannot be opened for writing (ETXTBSY).
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, junk...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	e, err := catalog.Reread(catalog.Entry{Name: name, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// syncBuffer is a log destination that tests read while the supervisor writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// supervisedEntry runs a supervisor, as serve does, over binary e on ln,
// logging into the returned buffer.
func supervisedEntry(t *testing.T, e catalog.Entry, ln Listener, cfg Config) (*Supervisor, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Launch = LaunchConfig{
		Entry: e, RunDir: t.TempDir(), LogLevel: hclog.Warn, StartTimeout: 10 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: e.Name, Output: logs}),
	}
	if cfg.BackoffInitial == 0 {
		cfg.BackoffInitial, cfg.BackoffMax, cfg.CrashLimit, cfg.CrashWindow = time.Millisecond, 10*time.Millisecond, 5, time.Minute
	}
	proc, desc, err := Probe(context.Background(), cfg.Launch)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Configure(context.Background(), cfg.Options, ln.Addr().String(), nil); err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = time.Second // what Shutdown gives open connections
	}
	s := New(cfg, proc, desc)
	go s.Run(context.Background())
	return s, logs
}

// loadResult counts what a client loop saw.
type loadResult struct {
	trips, refused atomic.Int64
	mu             sync.Mutex
	errs           []error
}

func (r *loadResult) fail(err error) {
	if errors.Is(err, syscall.ECONNREFUSED) {
		r.refused.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 20 {
		r.errs = append(r.errs, err)
	}
}

func (r *loadResult) check(t *testing.T, what string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused.Load() > 0 || len(r.errs) > 0 {
		t.Errorf("%s: %d round trips, %d refused; errors (at most 20): %v", what, r.trips.Load(), r.refused.Load(), r.errs)
	}
}

// echoTrip writes msg on c and reads it back.
func echoTrip(c net.Conn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: sent %q, got %q", msg, got)
	}
	return nil
}

// Under load, Replace twice: a connect-echo-close loop at full speed and 20
// long connections that keep talking across both replaces see no refusal, no
// reset and no error of any kind; the long connections are served by their
// old process until they close, and the new processes take every new
// connection. Bounded: each loop stops after a count or at a deadline.
func TestReplaceUnderLoad(t *testing.T) {
	for _, mode := range []string{"conn", "listener"} {
		t.Run(mode, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			var ln Listener
			var err error
			var needs []string
			if mode == "conn" {
				ln, err = listen.ListenTCP("127.0.0.1:0", 4096)
			} else {
				ln, err = listen.ListenTCPShared("127.0.0.1:0", 4096)
				needs = []string{"listener"}
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			v1 := binaryCopy(t, "echo", dir, "echo", "")
			s, logs := supervisedEntry(t, v1, ln, Config{DrainTimeout: time.Minute, Needs: needs})
			addr := ln.Addr().String()
			firstPid := s.Status().Pid

			stop := make(chan struct{})
			deadline := time.Now().Add(60 * time.Second) // only a bound: the loops stop on stop
			var wg sync.WaitGroup
			var short, long loadResult
			for range 2 {
				wg.Go(func() {
					msg := bytes.Repeat([]byte("s"), 64)
					for i := 0; i < 200000 && time.Now().Before(deadline); i++ {
						select {
						case <-stop:
							return
						default:
						}
						c, err := net.DialTimeout("tcp", addr, 5*time.Second)
						if err != nil {
							short.fail(err)
							continue
						}
						_ = c.SetDeadline(time.Now().Add(10 * time.Second))
						if err := echoTrip(c, msg); err != nil {
							short.fail(err)
						} else {
							short.trips.Add(1)
						}
						c.Close()
					}
				})
			}
			// The long connections: each keeps its one connection and
			// counts its round trips after each replace.
			const longConns = 20
			var replaces atomic.Int32
			var afterBoth atomic.Int32 // long connections that talked after both replaces
			opened := make(chan struct{}, longConns)
			for i := range longConns {
				wg.Go(func() {
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						long.fail(err)
						opened <- struct{}{}
						return
					}
					defer c.Close()
					opened <- struct{}{}
					counted := false
					for seq := 0; seq < 100000 && time.Now().Before(deadline); seq++ {
						_ = c.SetDeadline(time.Now().Add(10 * time.Second))
						if err := echoTrip(c, fmt.Appendf(nil, "long %d seq %d\n", i, seq)); err != nil {
							long.fail(fmt.Errorf("long connection %d, round trip %d: %w", i, seq, err))
							return
						}
						long.trips.Add(1)
						if replaces.Load() == 2 && !counted {
							counted = true
							afterBoth.Add(1)
						}
						select {
						case <-stop:
							// The client ends the conversation: an orderly close.
							if err := c.(*net.TCPConn).CloseWrite(); err != nil {
								long.fail(err)
							} else if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
								long.fail(fmt.Errorf("long connection %d at its close: read %d, %v; want EOF", i, n, err))
							}
							return
						case <-time.After(time.Millisecond):
						}
					}
				})
			}
			for range longConns {
				<-opened
			}
			// waitTrips waits until the short loop has made n more round
			// trips: load on the processes, measured by count, not time.
			waitTrips := func(n int64) {
				t.Helper()
				target := short.trips.Load() + n
				for short.trips.Load() < target && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
			}
			waitTrips(200)
			var results []Replaced
			for i, junk := range []string{"v2", "v3"} {
				e := binaryCopy(t, "echo", dir, "echo", junk)
				start := time.Now()
				r, err := s.Replace(context.Background(), e)
				if err != nil {
					t.Fatalf("replace %d: %v", i+1, err)
				}
				// Logged, not asserted: start, configure and handover of
				// the new process, under this test's own load.
				t.Logf("replace %d took %s", i+1, time.Since(start).Round(time.Millisecond))
				results = append(results, r)
				replaces.Add(1)
				waitTrips(200)
			}
			for afterBoth.Load() < longConns && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			close(stop)
			wg.Wait()

			short.check(t, "connect-echo-close loop")
			long.check(t, "long connections")
			if n := afterBoth.Load(); n != longConns {
				t.Errorf("%d of %d long connections talked after both replaces", n, longConns)
			}
			if results[0].OldPid != firstPid || results[1].OldPid != results[0].NewPid || results[1].NewPid == firstPid {
				t.Errorf("replaces: %+v", results)
			}
			st := s.Status()
			if st.Pid != results[1].NewPid || st.Replaced != 2 || st.Restarts != 0 || st.State != Running {
				t.Errorf("status after the replaces: %+v", st)
			}
			if got := strings.Count(logs.String(), "plugin replaced"); got != 2 {
				t.Errorf("%d \"plugin replaced\" lines, want 2:\n%s", got, logs)
			}
			t.Logf("%d short round trips, %d long ones", short.trips.Load(), long.trips.Load())
			s.Shutdown(context.Background())
			if left := e2e.WaitGone([]int{firstPid, results[0].NewPid, results[1].NewPid}, 5*time.Second); len(left) > 0 {
				t.Fatalf("processes left: %v", left)
			}
			if strings.Contains(logs.String(), "drain timeout") || strings.Contains(logs.String(), "drain failed") {
				t.Errorf("a replaced process was not drained cleanly:\n%s", logs)
			}
		})
	}
}

// A UDP plugin is replaced too: the new process gets the shared socket, and
// every datagram sent before and after is answered.
func TestReplaceUDP(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := listen.ListenUDP("127.0.0.1:0", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, _ := supervisedEntry(t, binaryCopy(t, "udpecho", dir, "udpecho", ""), ln, Config{DrainTimeout: 5 * time.Second})
	c, err := net.Dial("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(i int) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := fmt.Sprintf("datagram %d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1024)
		n, err := c.Read(buf)
		if err != nil || !strings.HasSuffix(string(buf[:n]), msg) {
			t.Fatalf("datagram %d: %q, %v", i, buf[:n], err)
		}
	}
	for i := range 5 {
		ask(i)
	}
	old := s.Status().Pid
	r, err := s.Replace(context.Background(), binaryCopy(t, "udpecho", dir, "udpecho", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	if r.OldPid != old || r.NewPid == old || s.Status().Pid != r.NewPid {
		t.Fatalf("replace: %+v, status %+v", r, s.Status())
	}
	for i := 5; i < 10; i++ {
		ask(i)
	}
	if left := e2e.WaitGone([]int{old}, 10*time.Second); len(left) > 0 {
		t.Fatalf("the replaced process is still running: %v", left)
	}
	ask(10)
	s.Shutdown(context.Background())
}

// A replace whose new binary fails its handshake (it exits at start with a
// message of its own) leaves the old process serving, untouched, and the
// error and the log carry that message.
func TestReplaceWithBrokenBinary(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := listen.ListenTCP("127.0.0.1:0", 128)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, logs := supervisedEntry(t, binaryCopy(t, "echo", dir, "echo", ""), ln, Config{DrainTimeout: 5 * time.Second})
	addr := ln.Addr().String()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := echoTrip(c, []byte("before\n")); err != nil {
		t.Fatal(err)
	}
	before := s.Status()

	script := filepath.Join(dir, "broken")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'broken: cannot read my settings file' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		e    catalog.Entry
		want string
	}{
		// A Go plugin that exits before its handshake, with its message.
		{"go binary", binaryCopy(t, "crashy", t.TempDir(), "echo", ""), "no configuration for the flux capacitor"},
		{"script", mustReread(t, catalog.Entry{Name: "echo", Path: script}), "broken: cannot read my settings file"},
		// Another plugin altogether.
		{"other plugin", binaryCopy(t, "hello", t.TempDir(), "echo", ""), `says its name is "hello"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Replace(context.Background(), tc.e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("replace: %v, want an error with %q", err, tc.want)
			}
			if l := lineWith(logs.String(), tc.e.Hex()); !strings.Contains(l, "replace failed; the old process serves on") ||
				!strings.Contains(l, strings.ReplaceAll(tc.want, `"`, `\"`)) {
				t.Errorf("log lacks the failure and %q:\n%s", tc.want, logs)
			}
			// The old process serves the open connection and new ones.
			if err := echoTrip(c, []byte("still here\n")); err != nil {
				t.Fatal(err)
			}
			roundTrip(t, addr, "new connection")
			if st := s.Status(); st.Pid != before.Pid || st.SHA256 != before.SHA256 || st.Replaced != 0 || st.Restarts != 0 {
				t.Fatalf("status after a failed replace: %+v, before %+v", st, before)
			}
		})
	}
	c.Close()
	s.Shutdown(context.Background())
}

// lineWith returns the first line of log that contains s.
func lineWith(log, s string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func mustReread(t *testing.T, e catalog.Entry) catalog.Entry {
	t.Helper()
	e, err := catalog.Reread(e)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The student's crash loop: the binary is rebuilt in place while the host
// runs, then the process crashes. The restart hashes the binary afresh and
// adopts it, with one log line naming the old and new SHA-256 and version;
// no "SHA-256 mismatch", no crash loop.
func TestRestartAdoptsRebuiltBinary(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := listen.ListenTCP("127.0.0.1:0", 128)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v1 := binaryCopy(t, "echo", dir, "echo", "")
	s, logs := supervisedEntry(t, v1, ln, Config{CrashLimit: 2, CrashWindow: time.Minute,
		BackoffInitial: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	first := s.Status().Pid
	v2 := binaryCopy(t, "echo", dir, "echo", "rebuilt")
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.Status()
		if st.State == Running && st.Pid != first && st.Pid != 0 {
			break
		}
		if st.State == Failed || time.Now().After(deadline) {
			t.Fatalf("not restarted: %+v\n%s", st, logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
	roundTrip(t, ln.Addr().String(), "after the rebuild")
	st := s.Status()
	if st.Restarts != 1 || st.SHA256 != v2.Hex() {
		t.Errorf("status: %+v, want 1 restart and SHA-256 %s", st, v2.Hex())
	}
	log := logs.String()
	var adopted []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "plugin binary changed on disk; adopted it") {
			adopted = append(adopted, l)
		}
	}
	if len(adopted) != 1 || !strings.Contains(adopted[0], "old_sha256="+v1.Hex()) ||
		!strings.Contains(adopted[0], "new_sha256="+v2.Hex()) || !strings.Contains(adopted[0], "old_version=1.0.0") ||
		!strings.Contains(adopted[0], "new_version=1.0.0") {
		t.Errorf("want one adoption line with both SHA-256 and versions, got %q:\n%s", adopted, log)
	}
	if strings.Contains(log, "mismatch") || strings.Contains(log, "restart failed") {
		t.Errorf("the restart failed on the way:\n%s", log)
	}
	s.Shutdown(context.Background())
}

// With a standby process, a replace stops the spare (it runs the old
// binary) and a spare of the new binary follows; when the serving process
// then dies, that spare takes over.
func TestReplaceWithStandby(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := listen.ListenTCP("127.0.0.1:0", 128)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, _ := supervisedEntry(t, binaryCopy(t, "echo", dir, "echo", ""), ln, Config{Standby: true, DrainTimeout: 5 * time.Second})
	waitStatus := func(what string, ok func(Status) bool) Status {
		t.Helper()
		return waitForStatus(t, s, what, 20*time.Second, ok)
	}
	oldSpare := waitStatus("a standby", func(st Status) bool { return st.StandbyPid != 0 }).StandbyPid
	v2 := binaryCopy(t, "echo", dir, "echo", "v2")
	r, err := s.Replace(context.Background(), v2)
	if err != nil {
		t.Fatal(err)
	}
	if left := e2e.WaitGone([]int{oldSpare, r.OldPid}, 10*time.Second); len(left) > 0 {
		t.Fatalf("the old spare or the replaced process still runs: %v", left)
	}
	newSpare := waitStatus("a new standby", func(st Status) bool { return st.StandbyPid != 0 && st.StandbyPid != oldSpare }).StandbyPid
	if err := syscall.Kill(r.NewPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitStatus("the new spare serving", func(st Status) bool { return st.Pid == newSpare })
	if st.SHA256 != v2.Hex() || st.Replaced != 1 {
		t.Fatalf("after the takeover: %+v, want SHA-256 %s", st, v2.Hex())
	}
	roundTrip(t, ln.Addr().String(), "served by the new spare")
	s.Shutdown(context.Background())
}

// A replace on a shared listener returns only once the old process has
// stopped accepting on it (issue 30): the old process is stopped (SIGSTOP)
// while the new one takes over, so that it is still accepting when the
// handover is done; it is let go on only after that. Whatever the old process
// does once it runs again, every client that comes after Replace returned
// gets the new process's greeting: its last accept came before the return.
func TestReplaceReturnsOnceOldStopsAccepting(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := listen.ListenTCPShared("127.0.0.1:0", 128)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := binaryCopy(t, "hello", dir, "hello", "")
	s, _ := supervisedEntry(t, e, ln, Config{DrainTimeout: 10 * time.Second, Needs: []string{"listener"},
		Options: map[string]string{"greeting": "old"}})
	defer s.Close() // after a failure; a no-op after Shutdown
	greet := func() (string, error) {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		return string(b), err
	}
	if g, err := greet(); g != "old" || err != nil {
		t.Fatalf("before the replace: %q, %v", g, err)
	}
	old := s.Status().Pid
	if err := syscall.Kill(old, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   Replaced
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.ReplaceOptions(context.Background(), e, map[string]string{"greeting": "new"})
		done <- result{r, err}
	}()
	for deadline := time.Now().Add(30 * time.Second); s.Status().Pid == old; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(old, syscall.SIGCONT)
			t.Fatal("no handover within 30 s")
		}
	}
	// The handover is done and the old process still holds its accept loop.
	select {
	case r := <-done:
		syscall.Kill(old, syscall.SIGCONT)
		t.Fatalf("Replace returned (%+v, %v) while the old process, stopped, could still accept", r.r, r.err)
	default:
	}
	if err := syscall.Kill(old, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.r.OldPid != old {
		t.Fatalf("replace: %+v, %v", r.r, r.err)
	}
	for i := range 50 {
		if g, err := greet(); g != "new" || err != nil {
			t.Fatalf("client %d after Replace returned: %q, %v", i+1, g, err)
		}
	}
	s.Shutdown(context.Background())
}
