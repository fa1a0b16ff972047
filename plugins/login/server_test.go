package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk/sdktest"
)

// quick returns options for accounts file path with short delays, so that a
// test's failures do not add up to seconds.
func quick(path string) map[string]string {
	return map[string]string{
		"accounts":        path,
		"base-delay":      "5ms",
		"max-delay":       "20ms",
		"reload-interval": "20ms",
	}
}

// TestTutorialClient runs the tutorial's client loop on one connection: wrong
// password, unknown user, then the right one; the replies are compared byte
// for byte, as the tutorial compares them.
func TestTutorialClient(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse", "bob", "battery staple")
	in, _ := start(t, quick(path))
	c := dialFrom(t, in.Addr, "", 10*time.Second)
	steps := []struct {
		user, password, want string
	}{
		{"alice", "wrong password", "fail"},
		{"nobody", "correct horse", "fail"},
		{"bob", "correct horse", "fail"},
		{"alice", "Correct horse", "fail"},
		{"alice", "correct horse", "success"},
		{"bob", "battery staple", "success"},
	}
	for _, s := range steps {
		if got := mustLogin(t, c, s.user, s.password); got != s.want {
			t.Fatalf("%s|…: reply %q, want exactly %q", s.user, got, s.want)
		}
	}
}

// TestLineMode is a person typing in nc: a request ending in a newline gets
// a reply ending in one; several lines in one write get one reply each.
func TestLineMode(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse")
	passwordsUsed.Store("correct horse", true)
	in, _ := start(t, quick(path))
	cases := []struct {
		name, send, want string
	}{
		{"lf", "alice|correct horse\n", "success\n"},
		{"crlf", "alice|correct horse\r\n", "success\n"},
		{"wrong", "alice|nope nope\n", "fail\n"},
		{"pipelined", "alice|nope nope\nalice|correct horse\n", "fail\nsuccess\n"},
		{"line then message", "alice|nope nope\nalice|correct horse", "fail\nsuccess"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, in.Addr, "", 10*time.Second)
			if _, err := c.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(tc.want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read: %v (got %q)", err, got)
			}
			if string(got) != tc.want {
				t.Fatalf("reply %q, want %q", got, tc.want)
			}
			// Nothing more comes.
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, _ := c.Read(make([]byte, 16)); n != 0 {
				t.Fatalf("%d bytes more than the replies", n)
			}
		})
	}
}

// TestMalformed sends each kind of broken request on its own connection: it
// gets fail and a log line, and the same connection then logs in normally.
func TestMalformed(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse")
	in, logs := start(t, quick(path))
	cases := []struct {
		name, send, want, reason string
	}{
		{"no separator", "alice correct horse", "fail", "no | separator"},
		{"two separators", "alice|correct|horse", "fail", "more than one |"},
		{"three separators", "a|b|c|d", "fail", "more than one |"},
		{"separator only", "|", "fail", "empty user name"},
		{"empty name", "|correct horse", "fail", "empty user name"},
		{"empty password", "alice|", "fail", "empty password"},
		{"empty line", "\n", "fail\n", "no | separator"},
		{"invalid utf-8 name", "al\xffice|correct horse", "fail", "not valid UTF-8"},
		{"invalid utf-8 password", "alice|correct\xc3\x28horse", "fail", "not valid UTF-8"},
		{"nul in name", "ali\x00ce|correct horse", "fail", "control character"},
		{"nul in password", "alice|correct\x00horse", "fail", "control character"},
		{"only nuls", "\x00\x00\x00\x00", "fail", "no | separator"},
		{"space in name", "al ice|correct horse", "fail", "user name has a space"},
		{"long name", strings.Repeat("a", 65) + "|correct horse", "fail", "longer than 64"},
		{"long password", "alice|" + strings.Repeat("p", 1025), "fail", "longer than 1024"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, in.Addr, "", 10*time.Second)
			if _, err := c.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(tc.want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != tc.want {
				t.Fatalf("reply %q (%v), want %q", got, err, tc.want)
			}
			if !logs.waitFor(tc.reason, 2*time.Second) {
				t.Errorf("no log line with %q", tc.reason)
			}
			if r := mustLogin(t, c, "alice", "correct horse"); r != "success" {
				t.Fatalf("after the malformed request, the right login got %q", r)
			}
		})
	}
}

// TestOversized sends 1 MB without a newline, a 1 MB line, and 1 MB of
// random bytes. The first two are over max-request: fail, a log line, and the
// connection is closed. The random bytes hold newlines, so they are many
// malformed requests, each answered fail. Either way nothing but fail comes
// back, and the next connection is served as before.
func TestOversized(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse")
	in, logs := start(t, quick(path))
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"bytes", bytes.Repeat([]byte{'A'}, 1<<20)},
		{"line", append(bytes.Repeat([]byte("a|"), 1<<19), '\n')},
		{"random", randomBytes(1 << 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, in.Addr, "", 10*time.Second)
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(tc.send)
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				werr <- err
			}()
			reply, err := io.ReadAll(c)
			if err != nil && !isReset(err) {
				t.Fatalf("read: %v", err)
			}
			rest := strings.ReplaceAll(strings.ReplaceAll(string(reply), "fail\n", ""), "fail", "")
			if len(reply) == 0 || rest != "" {
				t.Fatalf("reply %.60q, want fail only", reply)
			}
			t.Logf("%d bytes of replies, %d fail", len(reply), strings.Count(string(reply), "fail"))
			c.Close()
			<-werr // the write ends one way or another once the connection is closed
			c2 := dialFrom(t, in.Addr, "", 10*time.Second)
			if r := mustLogin(t, c2, "alice", "correct horse"); r != "success" {
				t.Fatalf("next connection: %q", r)
			}
		})
	}
	if !strings.Contains(logs.String(), "request too large") {
		t.Error("no log line about the oversized request")
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestHotReload changes the accounts file under a running server: the new
// account logs in, the old password stops working, and a file that turns bad
// is logged and ignored.
func TestHotReload(t *testing.T) {
	dir := t.TempDir()
	path := writeAccounts(t, dir, "alice", "correct horse")
	in, logs := start(t, quick(path))
	c := dialFrom(t, in.Addr, "", 20*time.Second)
	if r := mustLogin(t, c, "bob", "battery staple"); r != "fail" {
		t.Fatalf("bob before he exists: %q", r)
	}

	writeAccounts(t, dir, "alice", "new password 1", "bob", "battery staple")
	eventually(t, 3*time.Second, "bob logs in after the reload", func() bool {
		return mustLogin(t, c, "bob", "battery staple") == "success"
	})
	if r := mustLogin(t, c, "alice", "correct horse"); r != "fail" {
		t.Fatalf("alice's old password after the reload: %q", r)
	}

	// A torn file and then a plaintext one are refused; the accounts stay.
	for _, bad := range []string{
		fileHeader + "bob:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2Fs",
		"alice:correct horse\nbob:battery staple\n",
	} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		// The file is looked at when a request comes.
		eventually(t, 3*time.Second, "a log line for the bad file", func() bool {
			if r := mustLogin(t, c, "bob", "battery staple"); r != "success" {
				t.Fatalf("bob after a bad file: %q", r)
			}
			return strings.Contains(logs.String(), "accounts file not reloaded")
		})
		logs.mu.Lock()
		logs.buf.Reset()
		logs.mu.Unlock()
	}
}

// eventually polls cond every 30 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); ; time.Sleep(30 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

// TestPlaintextRefused starts the server on a file in the tutorial's format:
// it does not start, and the error says how to convert, without the password.
func TestPlaintextRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(path, []byte("alice:opensesame\nbob:hunter22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := sdktest.Configure(t, Plugin(), map[string]string{"accounts": path})
	if err == nil {
		t.Fatal("a plaintext accounts file was accepted")
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	for _, want := range []string{"plaintext", "line 1", `"alice"`, "sockplay-login import-plaintext --accounts NEWFILE " + path} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(msg, "opensesame") {
		t.Error("the error shows the password")
	}
}

// TestOptions checks that bad options stop the plugin with a clear error.
func TestOptions(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse")
	cases := []struct {
		name    string
		options map[string]string
		want    string // in the error; "" means no error
	}{
		{"defaults", map[string]string{"accounts": path}, ""},
		{"no accounts", nil, ""},
		{"missing file", map[string]string{"accounts": path + ".nope"}, "useradd --accounts"},
		{"not a number", map[string]string{"addr-failures": "ten"}, "login.addr-failures"},
		{"zero failures", map[string]string{"user-failures": "0"}, "user-failures=0"},
		{"bad duration", map[string]string{"window": "5"}, "login.window"},
		{"zero window", map[string]string{"window": "0s"}, "window=0s"},
		{"delay above max", map[string]string{"base-delay": "5s", "max-delay": "1s"}, "base-delay=5s"},
		{"tiny request", map[string]string{"max-request": "3"}, "max-request=3"},
		{"unknown option", map[string]string{"colour": "red"}, `no option "colour"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := sdktest.Configure(t, Plugin(), tc.options)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want one with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// TestNoAccounts serves without an accounts file: every login fails.
func TestNoAccounts(t *testing.T) {
	in, _ := start(t, map[string]string{"base-delay": "0s"})
	c := dialFrom(t, in.Addr, "", 10*time.Second)
	if r := mustLogin(t, c, "alice", "correct horse"); r != "fail" {
		t.Fatalf("reply %q, want fail", r)
	}
}
