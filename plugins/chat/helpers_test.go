//go:build unix

package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

// TestMain raises the open-file limit for the many-client tests; e2e.Main
// removes the binaries the end-to-end tests built. Started by
// BenchmarkFanout with serverEnv set, the test binary is a bare chat server.
func TestMain(m *testing.M) {
	raiseFileLimit(4096)
	if os.Getenv(serverEnv) == "1" {
		os.Exit(runBenchServer())
	}
	e2e.Main(m)
}

// noLeaks fails the test if, once its cleanups have run, more goroutines
// run than when it was called: every connection's reader and writer must be
// gone once the server has drained. Call it before anything it should watch
// registers its own cleanup.
func noLeaks(t testing.TB) {
	before, _ := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, stacks := goroutines()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutine leak: %d running, %d before the test:\n%s", n, before, stacks)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// goroutines counts the running goroutines but the signal watcher the
// fuzzing engine starts, and returns their stacks.
func goroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var kept []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "os/signal.") {
			n++
			kept = append(kept, g)
		}
	}
	return n, strings.Join(kept, "\n\n")
}

// raiseFileLimit lifts the soft limit on open files to at least n, as far
// as the hard limit allows.
func raiseFileLimit(n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= n {
		return
	}
	lim.Cur = min(n, lim.Max)
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

func start(t testing.TB, opts map[string]string) *sdktest.Instance {
	t.Helper()
	noLeaks(t)
	return sdktest.Start(t, Plugin(), opts)
}

// peer is a test's line-reading client.
type peer struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// join connects to the room, with a deadline of d on the whole connection.
func join(t testing.TB, in *sdktest.Instance, d time.Duration) *peer {
	t.Helper()
	c := in.Dial(t)
	_ = c.SetDeadline(time.Now().Add(d))
	return &peer{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// named joins and learns the peer's name through /who's welcome.
func named(t testing.TB, in *sdktest.Instance, nick string) *peer {
	t.Helper()
	p := join(t, in, 10*time.Second)
	p.send("/nick " + nick)
	p.expect("is now known as " + nick)
	p.expect("*** welcome to")
	return p
}

// sync reads everything the peer has been sent so far: it asks /who and
// reads up to the reply.
func (p *peer) sync() {
	p.t.Helper()
	p.send("/who")
	p.expect(" here: ")
}

func (p *peer) send(line string) {
	p.t.Helper()
	if _, err := p.c.Write([]byte(line + "\n")); err != nil {
		p.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one line, without its "\n".
func (p *peer) line() string {
	p.t.Helper()
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("read a line (got %q so far): %v", l, err)
	}
	return strings.TrimSuffix(l, "\n")
}

// expect reads lines until one contains want and returns it; the lines it
// skips are returned too. The connection's deadline bounds it.
func (p *peer) expect(want string) (string, []string) {
	p.t.Helper()
	var skipped []string
	for {
		l := p.line()
		if strings.Contains(l, want) {
			return l, skipped
		}
		skipped = append(skipped, l)
	}
}

// closed reports whether the server closed the connection: it reads to EOF
// (or a reset), keeping what came before.
func (p *peer) closed() ([]string, error) {
	var lines []string
	for {
		l, err := p.r.ReadString('\n')
		if l != "" {
			lines = append(lines, strings.TrimSuffix(l, "\n"))
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return lines, err
			}
			return lines, nil
		}
	}
}
