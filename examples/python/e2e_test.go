//go:build unix

// The Python example plugins through the real host, next to a Go plugin: the
// tutorial's own clients (testdata/tutorial) against every one of them, in
// both TCP handoff modes, and their client commands run by hand.
package python_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }

func TestTutorialClientsThroughHost(t *testing.T) {
	dir := t.TempDir()
	push := filepath.Join(dir, "pushed.bin")
	data := make([]byte, 300000)
	rand.Read(data)
	if err := os.WriteFile(push, data, 0o644); err != nil {
		t.Fatal(err)
	}
	accounts := filepath.Join(dir, "accounts")
	if out, errOut, code := e2e.RunBinary(t, "sockplay-pylogin", []byte("correct horse\n"), "useradd", "--accounts", accounts, "alice"); code != 0 {
		t.Fatalf("useradd: exit %d: %s %s", code, out, errOut)
	}

	for _, mode := range []string{"conn", "listener"} {
		t.Run(mode, func(t *testing.T) {
			enable := append([]string{"echo"}, e2e.PythonBundled...)
			h := e2e.Start(t, e2e.Config{Enable: enable, Args: []string{"--handoff", mode,
				"--set", "pyfilexfer.push=" + push, "--set", "pylogin.accounts=" + accounts}})

			tutorial := func(script, stdin, plugin string, args ...string) string {
				t.Helper()
				out, errOut, code := e2e.Tutorial(t, script, []byte(stdin), append(e2e.HostPort(h.Addr(plugin)), args...)...)
				if code != 0 {
					t.Errorf("%s against %s: exit %d, stdout %q, stderr %q", script, plugin, code, out, errOut)
				}
				return out
			}
			if out := tutorial("hello_client.py", "", "pyhello"); out != "成功连接到服务器 socket message\n" {
				t.Errorf("hello_client.py: %q", out)
			}
			// On a loaded machine two echoes can arrive in one recv: compare
			// the bytes and their order, not how recv split them.
			if out := tutorial("echo_client.py", "hello\n你好\nexit\n", "pyecho"); strings.ReplaceAll(out, "\n", "") != "hello你好exit" {
				t.Errorf("echo_client.py: %q", out)
			}
			out := tutorial("chat_client.py", "hello\n你好\n\n", "pychat")
			if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 2 ||
				!strings.HasPrefix(lines[0], "服务器当前时间=") || !strings.HasPrefix(lines[1], "服务器当前时间=") {
				t.Errorf("chat_client.py: %q", out)
			}
			if out := tutorial("udp_client.py", "hi\n你好\nquit\n", "pyudpecho"); out != "hello hi\nhello 你好\n" {
				t.Errorf("udp_client.py: %q", out)
			}
			got := filepath.Join(t.TempDir(), "got.bin")
			if out := tutorial("file_client.py", "", "pyfilexfer", got); out != "received 300000 of 300000\n" {
				t.Errorf("file_client.py: %q", out)
			}
			if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, data) {
				t.Errorf("file_client.py's file differs from the one pushed (%d bytes, %v)", len(b), err)
			}
			if out := tutorial("login_client.py", "alice\nwrong\nalice\ncorrect horse\n", "pylogin"); out != "user: password: fail\nuser: password: success\n" {
				t.Errorf("login_client.py: %q", out)
			}
			// The Go echo plugin, served by the same host, is untouched.
			if out := tutorial("echo_client.py", "go\nexit\n", "echo"); strings.ReplaceAll(out, "\n", "") != "goexit" {
				t.Errorf("echo_client.py against the Go echo: %q", out)
			}
			h.WaitLog("sockplay.pyhello: 连接地址:", 5*time.Second) // the tutorial's print(), in the host's log
			h.Stop(15 * time.Second)
		})
	}
}

func TestClientCommands(t *testing.T) {
	dir := t.TempDir()
	push := filepath.Join(dir, "pushed.txt")
	if err := os.WriteFile(push, []byte("file body\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyhello", "pyecho", "pyudpecho", "pyfilexfer"},
		Args: []string{"--set", "pyhello.greeting=hi there", "--set", "pyfilexfer.push=" + push}})
	run := func(bin, stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := e2e.RunBinary(t, bin, []byte(stdin), args...)
		if code != 0 {
			t.Errorf("%s %v: exit %d, stderr %q", bin, args, code, errOut)
		}
		return out
	}
	if out := run("sockplay-pyhello", "", "connect", h.Addr("pyhello")); out != "hi there\n" {
		t.Errorf("sockplay-pyhello connect: %q", out)
	}
	if out := run("sockplay-pyecho", "one\ntwo\n", "connect", h.Addr("pyecho")); out != "one\ntwo\n" {
		t.Errorf("sockplay-pyecho connect: %q", out)
	}
	if out := run("sockplay-pyudpecho", "a\nb\n", "connect", h.Addr("pyudpecho")); out != "hello a\nhello b\n" {
		t.Errorf("sockplay-pyudpecho connect: %q", out)
	}
	got := filepath.Join(dir, "got.txt")
	if out := run("sockplay-pyfilexfer", "", "get", h.Addr("pyfilexfer"), got); out != "received 10 of 10\n" {
		t.Errorf("sockplay-pyfilexfer get: %q", out)
	}
	if b, _ := os.ReadFile(got); string(b) != "file body\n" {
		t.Errorf("got %q", b)
	}
	for _, name := range e2e.PythonBundled {
		out := run("sockplay-"+name, "", "--help")
		if !strings.Contains(out, "sockplay-"+name+" connect [ADDR]") {
			t.Errorf("sockplay-%s --help:\n%s", name, out)
		}
	}
	h.Stop(15 * time.Second)
}

// Bad options of the examples stop the host with the plugin's own words.
func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("alice:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		plugin, set, want string
	}{
		{"pylogin", "pylogin.accounts=" + plain, "line 1 (user alice): not a hashed password"},
		{"pyfilexfer", "pyfilexfer.push=" + filepath.Join(dir, "missing"), "not a readable file"},
	}
	for _, tc := range cases {
		t.Run(tc.plugin, func(t *testing.T) {
			_, stderr, code := e2e.Run(t, "serve", "--plugin-dir", e2e.PluginDir(t, tc.plugin),
				"--listen", tc.plugin+"=127.0.0.1:0", "--set", tc.set)
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if last := lines[len(lines)-1]; code == 0 || !strings.Contains(last, "plugin "+tc.plugin) || !strings.Contains(last, tc.want) {
				t.Fatalf("exit %d, last line %q, want %q", code, last, tc.want)
			}
			if strings.Contains(stderr, "secret") {
				t.Errorf("the error shows the plaintext password:\n%s", stderr)
			}
		})
	}
}
