package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/internal/e2e"
	"github.com/sockplay/sockplay/sdk/cmdline"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// helpEnv makes the defaults that come from the environment the same on
// every machine.
func helpEnv(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
}

// Every command's --help is a golden file: go test -update rewrites them.
func TestHelpGolden(t *testing.T) {
	helpEnv(t)
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if !sub.Hidden && sub.Name() != "help" {
				walk(sub, append(append([]string{}, path...), sub.Name()))
			}
		}
	}
	walk(New(Streams{}), nil)
	if len(paths) < 6 {
		t.Fatalf("only %d commands: %v", len(paths), paths)
	}
	for _, p := range paths {
		name := strings.Join(append([]string{"sockplay"}, p...), "-")
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), append(append([]string{}, p...), "--help"), Streams{Out: &out, Err: &errOut})
			if code != 0 || errOut.Len() != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut.String())
			}
			for _, bad := range []string{"stringArray", "stringSlice", " string ", " int ", " duration "} {
				if strings.Contains(out.String(), bad) {
					t.Errorf("help names a flag type, %q:\n%s", bad, out.String())
				}
			}
			if !strings.Contains(out.String(), "Usage:") {
				t.Errorf("no usage line:\n%s", out.String())
			}
			if len(p) > 0 && !strings.Contains(out.String(), "Examples:") {
				t.Errorf("no examples:\n%s", out.String())
			}
			golden := filepath.Join("testdata", "help", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if out.String() != string(want) {
				t.Errorf("--help differs from %s (go test -update rewrites it):\n%s", golden, out.String())
			}
		})
	}
}

// -h and --help, and help CMD, print help and run nothing.
func TestHelpDoesNotRun(t *testing.T) {
	helpEnv(t)
	for _, args := range [][]string{
		{"status", "--help"}, {"status", "-h"}, {"plugins", "--help"}, {"help", "status"},
		{"serve", "--enable", "nosuch", "--help"}, {"-help"},
	} {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), args, Streams{Out: &out, Err: &errOut})
		if code != 0 || errOut.Len() != 0 || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	helpEnv(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `sockplay: unknown command "bogus" for "sockplay"`},
		{[]string{"status", "--nosuch"}, "sockplay: unknown flag: --nosuch"},
		{[]string{"status", "extra"}, `sockplay: status: unexpected argument "extra"`},
		{[]string{"serve", "--listen", "echo"}, `sockplay: --listen "echo": want NAME=HOST:PORT`},
		{[]string{"serve", "--set", "echo=1"}, `sockplay: --set "echo=1": want NAME.KEY=VALUE`},
		{[]string{"serve", "--log-level", "loud"}, `sockplay: --log-level "loud": want trace, debug, info, warn or error`},
		{[]string{"serve", "--drain-timeout", "soon"}, `sockplay: invalid argument "soon" for "--drain-timeout" flag`},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), c.args, Streams{Out: &out, Err: &errOut})
		lines := strings.Split(strings.TrimRight(errOut.String(), "\n"), "\n")
		if code != cmdline.ExitUsage || len(lines) != 1 || !strings.HasPrefix(lines[0], c.want) ||
			!strings.HasSuffix(lines[0], " --help')") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line: %q and a pointer to --help", c.args, code, errOut.String(), c.want)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}, {"-v"}} {
		var out bytes.Buffer
		if code := Main(context.Background(), args, Streams{Out: &out, Err: &out}); code != 0 ||
			!strings.HasPrefix(out.String(), "sockplay "+Version+" (plugin protocol 1)\nrevision ") {
			t.Errorf("%v: exit %d, %q", args, code, out.String())
		}
	}
}

// stallWriter blocks every Write until release is closed.
type stallWriter struct {
	release chan struct{}
	e2e.Buffer
}

func (w *stallWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.Buffer.Write(p)
}

// A log output nobody reads never blocks a writer: past logQueueBytes the
// lines are dropped and counted, and the count is reported once the output
// takes writes again (issue 27, kind 5).
func TestNonBlockingLog(t *testing.T) {
	w := &stallWriter{release: make(chan struct{})}
	nb := newNonBlocking(w)
	var reports []uint64
	var mu sync.Mutex
	nb.onDropped(func(n uint64) {
		mu.Lock()
		reports = append(reports, n)
		mu.Unlock()
		fmt.Fprintf(nb, "dropped %d\n", n)
	})
	line := bytes.Repeat([]byte("x"), 1023)
	line = append(line, '\n')
	const lines = 2 * logQueueBytes / 1024 // twice what the queue holds
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range lines {
			if _, err := nb.Write(line); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writes to a stalled log blocked")
	}
	close(w.release)
	nb.Close(30 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	written := strings.Count(w.String(), string(line))
	if len(reports) != 1 || uint64(written)+reports[0] != lines {
		t.Fatalf("%d lines written, reports %v; want them to add up to %d", written, reports, lines)
	}
	if written < logQueueBytes/1024-1 || !strings.HasSuffix(w.String(), fmt.Sprintf("dropped %d\n", reports[0])) {
		out := w.String()
		t.Errorf("%d lines written (the queue holds %d); the output ends %q", written, logQueueBytes/1024, out[max(0, len(out)-40):])
	}
}

// Close returns within its timeout even when the output never takes a write
// again: a stalled log must not keep the host from exiting.
func TestNonBlockingLogCloseStalled(t *testing.T) {
	w := &stallWriter{release: make(chan struct{})}
	defer close(w.release) // lets run's stuck write end after the test
	nb := newNonBlocking(w)
	fmt.Fprintln(nb, "one")
	fmt.Fprintln(nb, "two")
	done := make(chan struct{})
	go func() {
		nb.Close(50 * time.Millisecond)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close waits for a write that never returns")
	}
}
