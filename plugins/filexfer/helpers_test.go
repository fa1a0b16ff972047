package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/internal/e2e"
	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

// The test binary doubles as a client process and a server process, so that
// tests can kill either with SIGKILL in the middle of a transfer.
const (
	helperEnv     = "FILEXFER_TEST_HELPER" // "client" or "server"
	helperArgsEnv = "FILEXFER_TEST_ARGS"   // client: arguments separated by \x1f
	helperRootEnv = "FILEXFER_TEST_ROOT"   // server: the writable root
	helperStopEnv = "FILEXFER_TEST_STOP"   // server: stop every upload at this many bytes
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "client":
		p := Plugin()
		os.Exit(client.Run(context.Background(), p.Client(), strings.Split(os.Getenv(helperArgsEnv), "\x1f"),
			client.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	case "server":
		os.Exit(helperServer())
	}
	e2e.Main(m)
}

// helperServer serves a writable root on an ephemeral port, prints the
// address, and, when told, stops every upload at a byte count and prints
// "stopped" until it is killed.
func helperServer() int {
	s, err := NewServer(Config{Root: os.Getenv(helperRootEnv), Writable: true, MaxTransfers: 4,
		LockWait: time.Second, Idle: time.Minute}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if stop, _ := strconv.ParseInt(os.Getenv(helperStopEnv), 10, 64); stop > 0 {
		s.hooks.received = func(_ string, n int64) {
			if n >= stop {
				fmt.Println("stopped")
				select {} // until killed
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	_ = sdk.NewServer(s, nil).Serve(ln)
	return 0
}

// helper starts the test binary as a helper process; stdout is readable line
// by line from the returned reader.
func helper(t *testing.T, env ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &lockedBuffer{t: t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

// lockedBuffer logs a helper's stderr through t.
type lockedBuffer struct{ t *testing.T }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.t.Logf("helper: %s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// readLine reads one line from a helper, failing the test after 20 s.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		ch <- strings.TrimSpace(s)
	}()
	select {
	case s := <-ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("helper said nothing for 20 s")
		return ""
	}
}

// started is a filexfer server under test.
type started struct {
	*sdktest.Instance
	srv *Server
}

// start serves a root directory in-process with options, applying hooks.
func start(t testing.TB, opts map[string]string, hooks testHooks) *started {
	t.Helper()
	st := &started{}
	p := Plugin()
	p.TCP = func(cfg sdk.Config) (sdk.Handler, error) {
		h, err := newHandler(cfg)
		if s, ok := h.(*Server); ok {
			s.hooks = hooks
			st.srv = s
			t.Cleanup(func() { s.Close() }) // after the sdktest server has stopped
		}
		return h, err
	}
	st.Instance = sdktest.Start(t, p, opts)
	return st
}

// run runs the client in-process and returns its exit status and output.
func run(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	p := Plugin()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = client.Run(ctx, p.Client(), args, client.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// mustRun runs the client and fails the test unless it succeeds.
func mustRun(t testing.TB, args ...string) string {
	t.Helper()
	code, out, errs := run(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errs)
	}
	return out
}

// raw is a hand-driven protocol connection.
type raw struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes s (a request line, newline included) and returns the status line.
func (r *raw) send(s string) string {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
	return r.line()
}

func (r *raw) line() string {
	r.t.Helper()
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read status: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSum(t testing.TB, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeFile(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stagedFiles lists the partial uploads under root.
func stagedFiles(t *testing.T, root string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	ents, _ := os.ReadDir(filepath.Join(root, stagingDir))
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			m[e.Name()] = info.Size()
		}
	}
	return m
}

func mustNotExist(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Lstat(name); err == nil {
		t.Fatalf("%s exists", name)
	}
}

// waitFor polls cond every 10 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// shutdownNow drains s with no grace: open connections are closed at once.
func shutdownNow(s *sdk.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	s.Shutdown(ctx)
}

// noLeaks fails the test if it leaves goroutines behind; called first, its
// check runs after every other cleanup (servers stopped, clients done).
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func sdkStdio(errw io.Writer) client.Stdio {
	return client.Stdio{In: strings.NewReader(""), Out: io.Discard, Err: errw}
}
