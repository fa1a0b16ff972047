package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk/client"
)

// runTool runs the plugin binary's command line in-process with stdin and
// returns its exit status, stdout and stderr.
func runTool(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	p := Plugin()
	code := client.Run(ctx, p.Client(), args, client.Stdio{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// TestTools runs the accounts tools in order on one file, the way an
// administrator would; each step's file is checked by parsing it.
func TestTools(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "accounts")
	plain := filepath.Join(dir, "users.txt")
	if err := os.WriteFile(plain, []byte("\ufeffcarol:carol pass 1\n# comment\n dave:12345 \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		stdin string
		args  []string
		code  int
		out   string // in stdout or stderr
		users []string
	}{
		{"useradd", "correct horse\n", []string{"useradd", "--accounts", path, "alice"}, 0, "added user alice", []string{"alice"}},
		{"flags after name", "battery staple\n", []string{"useradd", "bob", "--accounts", path}, 0, "added user bob", []string{"alice", "bob"}},
		{"useradd twice", "correct horse\n", []string{"useradd", "--accounts", path, "alice"}, 1, "already in", []string{"alice", "bob"}},
		{"short password", "short\n", []string{"useradd", "--accounts", path, "eve"}, 1, "at least 8", []string{"alice", "bob"}},
		{"pipe in password", "pass|word\n", []string{"useradd", "--accounts", path, "eve"}, 1, "'|'", []string{"alice", "bob"}},
		{"no password", "", []string{"useradd", "--accounts", path, "eve"}, 1, "no password on stdin", []string{"alice", "bob"}},
		{"bad name", "correct horse\n", []string{"useradd", "--accounts", path, "e:ve"}, 1, "user name has", []string{"alice", "bob"}},
		{"no accounts flag", "x\n", []string{"useradd", "eve"}, 2, "needs --accounts", []string{"alice", "bob"}},
		{"bad hash flag", "correct horse\n", []string{"useradd", "--accounts", path, "--hash", "md5", "eve"}, 2, "argon2id or bcrypt", []string{"alice", "bob"}},
		{"passwd", "new password 1\n", []string{"passwd", "--accounts", path, "alice"}, 0, "password of alice changed", []string{"alice", "bob"}},
		{"passwd unknown", "new password 1\n", []string{"passwd", "--accounts", path, "zed"}, 1, "no user", []string{"alice", "bob"}},
		{"userdel", "", []string{"userdel", "--accounts", path, "bob"}, 0, "removed user bob", []string{"alice"}},
		{"userdel unknown", "", []string{"userdel", "--accounts", path, "bob"}, 1, "no user", []string{"alice"}},
		{"import", "", []string{"import-plaintext", "--accounts", path, plain}, 0, "imported 2 accounts", []string{"alice", "carol", "dave"}},
		{"import again", "", []string{"import-plaintext", "--accounts", path, plain}, 1, "nothing imported", []string{"alice", "carol", "dave"}},
		{"import a hashed file", "", []string{"import-plaintext", "--accounts", path + "2", path}, 1, "already a hash", []string{"alice", "carol", "dave"}},
		{"unknown command", "", []string{"frobnicate"}, 2, "unknown command", []string{"alice", "carol", "dave"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, out, errs := runTool(t, s.stdin, s.args...)
			if code != s.code || !strings.Contains(out+errs, s.out) {
				t.Fatalf("exit %d, out %q, err %q; want exit %d and %q", code, out, errs, s.code, s.out)
			}
			if strings.Contains(out+errs, strings.TrimSpace(s.stdin)) && s.stdin != "" && s.code == 0 {
				t.Fatalf("the output shows the password: %q %q", out, errs)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			l, err := parseAccounts(path, data)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range l.accounts {
				names = append(names, a.name)
			}
			if strings.Join(names, ",") != strings.Join(s.users, ",") {
				t.Fatalf("accounts %v, want %v", names, s.users)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("accounts file mode %v (%v), want 0600", fi.Mode().Perm(), err)
			}
		})
	}

	// The imported and changed passwords are the ones that log in.
	in, _ := start(t, quick(path))
	c := dialFrom(t, in.Addr, "", 20*time.Second)
	for _, l := range []struct{ user, pw, want string }{
		{"alice", "new password 1", "success"},
		{"alice", "correct horse", "fail"},
		{"carol", "carol pass 1", "success"},
		{"dave", "12345", "success"},
		{"bob", "battery staple", "fail"},
	} {
		if r := mustLogin(t, c, l.user, l.pw); r != l.want {
			t.Errorf("%s: %q, want %q", l.user, r, l.want)
		}
	}
}

// TestToolKeepsMode checks that a write leaves the file 0600 even if it was
// more open before, and leaves no temporary file behind.
func TestToolKeepsMode(t *testing.T) {
	dir := t.TempDir()
	path := writeAccounts(t, dir, "alice", "correct horse")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runTool(t, "battery staple\n", "useradd", "--accounts", path, "bob"); code != 0 {
		t.Fatal(errs)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestCheck runs `check ADDR` against a served instance, reading the user
// and password from stdin lines.
func TestCheck(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse")
	in, _ := start(t, quick(path))
	cases := []struct {
		name, stdin string
		code        int
		out         string
	}{
		{"right", "alice\ncorrect horse\n", 0, "success\n"},
		{"wrong", "alice\nwrong horse\n", 1, "fail\n"},
		{"unknown", "nobody\ncorrect horse\n", 1, "fail\n"},
		{"no final newline", "alice\ncorrect horse", 0, "success\n"},
		{"no password", "alice\n", 1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runTool(t, tc.stdin, "check", in.Addr)
			if code != tc.code || out != tc.out {
				t.Fatalf("exit %d, out %q (err %q); want %d, %q", code, out, errs, tc.code, tc.out)
			}
		})
	}
	if code, _, _ := runTool(t, "", "check", in.Addr, "extra"); code != 2 {
		t.Errorf("check with two addresses: exit %d, want 2", code)
	}
}

// TestConcurrentWriters runs useradd and passwd processes at once (the test
// binary re-executed as the tool) and goroutines editing the file, while a
// reader parses it in a loop: the reader never sees a torn or unparsable
// file, and no update is lost.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	path := writeAccounts(t, dir, "alice", "correct horse")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	reads := 0
	go func() {
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			data, err := os.ReadFile(path)
			if err != nil {
				readerDone <- err
				return
			}
			if _, err := parseAccounts(path, data); err != nil {
				readerDone <- fmt.Errorf("read %d: %w", reads, err)
				return
			}
			reads++
		}
	}()

	const procs, routines = 6, 6
	var wg sync.WaitGroup
	errs := make(chan error, procs+routines)
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"useradd", "--accounts", path, fmt.Sprintf("proc%d", i)}
			if i%2 == 1 {
				args = []string{"passwd", "--accounts", path, "alice"}
			}
			cmd := exec.Command(exe, args...)
			cmd.Env = append(os.Environ(), toolEnv+"=1")
			cmd.Stdin = strings.NewReader(fmt.Sprintf("password %d\n", i))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("%v: %v: %s", args, err, out)
			}
		}()
	}
	h := testHash(t, "routine password")
	for i := 0; i < routines; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				name := fmt.Sprintf("g%d-%d", i, j)
				err := updateAccounts(path, func(l *accountList) error {
					l.accounts = append(l.accounts, account{name: name, hash: h})
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatalf("reader: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseAccounts(path, data)
	if err != nil {
		t.Fatal(err)
	}
	want := 1 + procs/2 + routines*5
	t.Logf("%d reads of the file during the writes, never torn; %d accounts at the end", reads, len(l.accounts))
	if len(l.accounts) != want {
		t.Fatalf("%d accounts, want %d: an update was lost", len(l.accounts), want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}
