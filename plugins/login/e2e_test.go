package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// TestE2ETutorialClient runs the real host with the real plugin binary: the
// accounts file is made with the real tool, and the tutorial's own Python
// login client gets fail for a wrong password and an unknown user, then
// success, and stops.
func TestE2ETutorialClient(t *testing.T) {
	// Build first: RunBinary's 30 s count the build when it comes first.
	e2e.Bin(t)
	path := filepath.Join(t.TempDir(), "accounts")
	if out, errs, code := e2e.RunBinary(t, "sockplay-login", []byte("correct horse\n"),
		"useradd", "--accounts", path, "alice"); code != 0 {
		t.Fatalf("useradd: exit %d: %s %s", code, out, errs)
	}
	h := e2e.Start(t, e2e.Config{Enable: []string{"login"}, Args: []string{
		"--set", "login.accounts=" + path, "--set", "login.base-delay=10ms",
	}})
	addr := h.Addr("login")

	stdin := "alice\nwrong horse\nmallory\ncorrect horse\nalice\ncorrect horse\nnever\nread\n"
	out, stderr, code := e2e.Tutorial(t, "login_client.py", []byte(stdin), e2e.HostPort(addr)...)
	want := "user: password: fail\nuser: password: fail\nuser: password: success\n"
	if code != 0 || out != want {
		t.Fatalf("login_client.py: exit %d, stdout %q, stderr %q; want %q", code, out, stderr, want)
	}

	// The tool's own client, and an account added while the host runs.
	if out, errs, code := e2e.RunBinary(t, "sockplay-login", []byte("battery staple\n"),
		"useradd", "--accounts", path, "bob"); code != 0 {
		t.Fatalf("useradd bob: exit %d: %s %s", code, out, errs)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _, code := e2e.RunBinary(t, "sockplay-login", []byte("bob\nbattery staple\n"), "check", addr)
		if code == 0 && out == "success\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check bob after useradd: exit %d, %q", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, _, code := e2e.RunBinary(t, "sockplay-login", []byte("bob\nwrong staple\n"), "check", addr); code != 1 || out != "fail\n" {
		t.Fatalf("check with a wrong password: exit %d, %q", code, out)
	}
	if strings.Contains(h.Stderr(), "correct horse") || strings.Contains(h.Stderr(), "battery staple") {
		t.Error("the host's log holds a password")
	}
	h.Stop(15 * time.Second)
}

// TestE2EPlaintextRefused starts the host on a tutorial-format accounts file:
// it does not serve, and says how to convert the file.
func TestE2EPlaintextRefused(t *testing.T) {
	e2e.Bin(t)
	path := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(path, []byte("alice:opensesame\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := e2e.RunBinary(t, "sockplay", nil, "serve", "--plugin-dir", e2e.PluginDir(t, "login"),
		"--listen", "login=127.0.0.1:0", "--status-file", filepath.Join(t.TempDir(), "status.json"),
		"--set", "login.accounts="+path)
	if code == 0 || !strings.Contains(stderr, "import-plaintext") {
		t.Fatalf("exit %d, stderr %q: want a failure that names import-plaintext", code, stderr)
	}
	if strings.Contains(stderr, "opensesame") {
		t.Error("the error shows the password")
	}
	t.Logf("host: %s", strings.TrimSpace(stderr))
}
