package main

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
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/internal/e2e"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

// toolEnv makes the test binary run the plugin's client instead of the tests:
// the concurrent-writers test starts real tool processes that way.
const toolEnv = "SOCKPLAY_LOGIN_TEST_TOOL"

func TestMain(m *testing.M) {
	if os.Getenv(toolEnv) == "1" {
		p := Plugin()
		os.Exit(client.Run(context.Background(), p.Client(), os.Args[1:],
			client.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	}
	e2e.Main(m)
}

// hashCache keeps the tests from hashing the same password twice: each hash
// costs OWASP's 19 MiB and two passes, tens of milliseconds under -race.
var hashCache sync.Map // password → passwordHash

func testHash(t testing.TB, password string) passwordHash {
	t.Helper()
	if h, ok := hashCache.Load(password); ok {
		return h.(passwordHash)
	}
	h, err := hashPassword(algArgon2id, password)
	if err != nil {
		t.Fatal(err)
	}
	hashCache.Store(password, h)
	return h
}

// writeAccounts writes an accounts file of name/password pairs, 0600, and
// returns its path.
func writeAccounts(t testing.TB, dir string, pairs ...string) string {
	t.Helper()
	path := filepath.Join(dir, "accounts")
	l := &accountList{}
	for i := 0; i+1 < len(pairs); i += 2 {
		l.accounts = append(l.accounts, account{name: pairs[i], hash: testHash(t, pairs[i+1])})
	}
	if err := writeFileAtomic(path, l.format()); err != nil {
		t.Fatal(err)
	}
	return path
}

// logBuffer collects a plugin's log lines, for the tests that look for one.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls until the log holds substr or d passes.
func (b *logBuffer) waitFor(substr string, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(b.String(), substr) {
			return true
		}
	}
	return strings.Contains(b.String(), substr)
}

// passwordsUsed are every password the tests send; no log may hold one.
var passwordsUsed sync.Map

// start serves the login plugin through sdktest with options, its log going
// to t.Log and to the returned buffer.
func start(t *testing.T, options map[string]string) (*sdktest.Instance, *logBuffer) {
	t.Helper()
	// Registered first, so run last: after sdktest has shut the server
	// down, no goroutine of it may be left.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	logs := &logBuffer{}
	p := Plugin()
	build := p.TCP
	p.TCP = func(cfg sdk.Config) (sdk.Handler, error) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "login", Level: hclog.Debug,
			Output: io.MultiWriter(logs, testLogWriter{t})})
		return build(cfg)
	}
	in := sdktest.Start(t, p, options)
	t.Cleanup(func() {
		text := logs.String()
		passwordsUsed.Range(func(k, _ any) bool {
			if pw := k.(string); len(pw) >= 6 && strings.Contains(text, pw) {
				t.Errorf("a log line holds the password %q", pw)
			}
			return true
		})
	})
	return in, logs
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// dialFrom connects to addr from the loopback address src ("" for any),
// with a deadline on the whole connection.
func dialFrom(t *testing.T, addr, src string, deadline time.Duration) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	_ = c.SetDeadline(time.Now().Add(deadline))
	t.Cleanup(func() { c.Close() })
	return c
}

// tutorialLogin is one round of the tutorial's client: user|password in one
// send, without a newline, then one recv(1024). It returns the reply as the
// tutorial compares it.
func tutorialLogin(c net.Conn, user, password string) (string, error) {
	passwordsUsed.Store(password, true)
	if _, err := c.Write([]byte(user + "|" + password)); err != nil {
		return "", err
	}
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if n == 0 {
		return "", fmt.Errorf("no reply: %w", err)
	}
	return string(buf[:n]), nil
}

// mustLogin runs tutorialLogin and fails the test on a transport error. Only
// for the test's own goroutine.
func mustLogin(t *testing.T, c net.Conn, user, password string) string {
	t.Helper()
	r, err := tutorialLogin(c, user, password)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return r
}

// isTimeout reports whether err is a deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
