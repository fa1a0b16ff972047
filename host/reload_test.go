package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

func TestSighupReloadsRules(t *testing.T) {
	for _, tc := range []struct{ handoff, enforcedBy string }{{"conn", "host"}, {"listener", "plugin"}} {
		t.Run(tc.handoff, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "sockplay.hcl")
			write := func(text string) {
				t.Helper()
				if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write(`plugin "echo" {
  listen = "127.0.0.1:0"
  deny   = ["127.0.0.3"]
}
`)
			h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, KeepPorts: true,
				Args: []string{"--config", file, "--handoff", tc.handoff}})
			h.WaitLog("enforced_by="+tc.enforcedBy, 10*time.Second)
			addr := h.Addr("echo")
			if echoes(dialFrom(t, "127.0.0.3", addr), "a\n") {
				t.Fatal("127.0.0.3 is served before the reload")
			}
			held := dialFrom(t, "127.0.0.4", addr)
			if !echoes(held, "held\n") {
				t.Fatal("127.0.0.4 is refused before the reload")
			}

			// Deny .4 instead of .3: the change holds at once for new
			// clients, and .4's open connection is not cut.
			write(`plugin "echo" {
  listen = "127.0.0.1:0"
  deny   = ["127.0.0.4"]
}
`)
			h.Signal(syscall.SIGHUP)
			h.WaitLog("reloaded", 20*time.Second)
			if !echoes(dialFrom(t, "127.0.0.3", addr), "b\n") {
				t.Fatal("127.0.0.3 is still refused after the reload")
			}
			if echoes(dialFrom(t, "127.0.0.4", addr), "c\n") {
				t.Fatal("a new connection from 127.0.0.4 is served after the reload denied it")
			}
			if !echoes(held, "still here\n") {
				t.Fatal("the reload cut 127.0.0.4's open connection")
			}

			// A file with a typo changes nothing, and says why.
			write(`plugin "echo" {
  deny_ = ["127.0.0.3"]
}
`)
			h.Signal(syscall.SIGHUP)
			h.WaitLog("keeping the running configuration", 20*time.Second)
			if !strings.Contains(h.Stderr(), file+`:2,3: Unsupported argument: An argument named \"deny_\" is not expected here`) {
				t.Fatalf("the reload's error does not say why:\n%s", h.Stderr())
			}
			if !echoes(dialFrom(t, "127.0.0.3", addr), "d\n") || echoes(dialFrom(t, "127.0.0.4", addr), "e\n") {
				t.Fatal("a reload of a bad file changed the rules")
			}
			h.Stop(20 * time.Second)
		})
	}
}

// greeting reads what hello sends one new client, or the error.
func greeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// udpAnswer sends payload to the UDP server at addr and returns its answer.
func udpAnswer(addr, payload string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(payload)); err != nil {
		return "", err
	}
	b := make([]byte, 1024)
	n, err := c.Read(b)
	return string(b[:n]), err
}

// allNew checks that n clients in a row, each after the event that reported
// the replace done, reach the new process: in listener mode the old process
// stopped accepting on the shared socket before that event (issue 30).
func allNew(t *testing.T, after string, n int, get func() (string, error), want string) {
	t.Helper()
	for i := range n {
		if got, err := get(); got != want || err != nil {
			t.Fatalf("client %d after %s: %q, %v; want %q", i+1, after, got, err, want)
		}
	}
}

// SIGHUP applies changed option values by replacing the plugin's process
// with one configured with them: clients that keep coming are never refused,
// and every greeting is the old one or the new one. Once the replace is
// reported (the log line, sockplay reload's return), every new client gets
// the new one: the old process stopped taking clients from the shared
// socket before that, for TCP (--handoff listener) and UDP alike. Values the
// plugin does not declare keep the running setup.
func TestSighupReplacesChangedOptions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sockplay.hcl")
	write := func(greeting string) {
		t.Helper()
		text := fmt.Sprintf("plugin \"hello\" {\n  listen = \"127.0.0.1:0\"\n  set = { greeting = %q }\n}\n", greeting) +
			fmt.Sprintf("plugin \"udpecho\" {\n  listen = \"127.0.0.1:0\"\n  set = { prefix = %q }\n}\n", greeting+" ")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	statusFile := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{Enable: []string{"hello", "udpecho"}, KeepPorts: true,
		Args: []string{"--config", file, "--status-file", statusFile, "--handoff", "listener"}})
	addr, udpAddr := h.Addr("hello"), h.Addr("udpecho")
	if g, err := greeting(addr); g != "one" || err != nil {
		t.Fatalf("before the reload: %q, %v", g, err)
	}
	udp := func() (string, error) { return udpAnswer(udpAddr, "x") }
	oldPid := h.Plugins["hello"].Pid

	// A client loop runs across the reload: bounded in count and time.
	stop := make(chan struct{})
	type result struct {
		seen map[string]int
		errs []error
	}
	done := make(chan result, 1)
	go func() {
		r := result{seen: map[string]int{}}
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			g, err := greeting(addr)
			if err != nil {
				r.errs = append(r.errs, err)
				continue
			}
			r.seen[g]++
		}
		done <- r
	}()

	write("two")
	h.Signal(syscall.SIGHUP)
	h.WaitLog("sockplay.hello: options changed; plugin replaced", 30*time.Second)
	allNew(t, "hello's replace was logged", 20, func() (string, error) { return greeting(addr) }, "two")
	h.WaitLog("sockplay.udpecho: options changed; plugin replaced", 30*time.Second)
	allNew(t, "udpecho's replace was logged", 20, udp, "two x")
	close(stop)
	r := <-done
	if len(r.errs) > 0 {
		t.Errorf("%d clients failed across the reload, first: %v", len(r.errs), r.errs[0])
	}
	for g := range r.seen {
		if g != "one" && g != "two" {
			t.Errorf("a client got %q", g)
		}
	}
	t.Logf("greetings across the reload: %v", r.seen)
	// The old process drains in the background, then goes.
	var pids []int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pids = h.PluginPids("hello"); len(pids) == 1 && pids[0] != oldPid {
			break
		}
	}
	if len(pids) != 1 || pids[0] == oldPid {
		t.Errorf("hello processes after the reload: %v (old pid %d)", pids, oldPid)
	}

	// An option hello does not declare: nothing changes.
	if err := os.WriteFile(file, []byte("plugin \"hello\" {\n  listen = \"127.0.0.1:0\"\n  set = { colour = \"red\" }\n}\nplugin \"udpecho\" {\n  listen = \"127.0.0.1:0\"\n  set = { prefix = \"two \" }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.Signal(syscall.SIGHUP)
	h.WaitLog(`keeping the running configuration`, 30*time.Second)
	if g, err := greeting(addr); g != "two" || err != nil {
		t.Errorf("after a refused reload: %q, %v", g, err)
	}

	// sockplay reload (no names) reads the file again too, and says so; a
	// file it cannot apply is its error.
	out, stderr, code := e2e.Run(t, "reload", "--status-file", statusFile)
	if code != 1 || !strings.Contains(out, "config: not applied") || !strings.Contains(stderr, `no option "colour"`) {
		t.Errorf("reload with a bad file: exit %d, %q, %q", code, out, stderr)
	}
	write("three")
	out, stderr, code = e2e.Run(t, "reload", "--status-file", statusFile)
	if code != 0 || !strings.HasPrefix(out, "config: reloaded\n") {
		t.Errorf("reload: exit %d, %q, %q", code, out, stderr)
	}
	allNew(t, "sockplay reload returned", 20, func() (string, error) { return greeting(addr) }, "three")
	allNew(t, "sockplay reload returned", 20, udp, "three x")
	h.Stop(15 * time.Second)
}

// A Python plugin is replaced as a Go one is, in both handoff modes: under
// a connect-echo-close loop no client is refused or fails.
func TestReloadPython(t *testing.T) {
	for _, mode := range []string{"conn", "listener"} {
		t.Run(mode, func(t *testing.T) {
			statusFile := filepath.Join(t.TempDir(), "status.json")
			h := e2e.Start(t, e2e.Config{Enable: []string{"pyecho"}, Args: []string{"--status-file", statusFile, "--handoff", mode}})
			addr := h.Addr("pyecho")
			first := h.Plugins["pyecho"].Pid
			stop := make(chan struct{})
			done := make(chan []attempt, 1)
			go func() {
				var all []attempt
				until := time.Now().Add(2 * time.Minute)
				for i := 0; i < 100000 && time.Now().Before(until); i++ {
					select {
					case <-stop:
						done <- all
						return
					default:
					}
					all = append(all, echoOnce(addr))
				}
				done <- all
			}()
			out, stderr, code := e2e.Run(t, "reload", "--status-file", statusFile, "pyecho")
			if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("pyecho: replaced: pid %d -> ", first)) {
				t.Errorf("reload pyecho: exit %d, %q, %q", code, out, stderr)
			}
			for i := 0; i < 50; i++ { // a few round trips with the new process
				if a := echoOnce(addr); a.err != nil {
					t.Errorf("after the reload: %v", a.err)
					break
				}
			}
			close(stop)
			all := <-done
			failed := 0
			for _, a := range all {
				if a.err != nil {
					failed++
					if failed == 1 {
						t.Errorf("a round trip failed across the reload: %v", a.err)
					}
				}
			}
			t.Logf("%s: %d round trips across the reload, %d failed", mode, len(all), failed)
			h.Stop(15 * time.Second)
		})
	}
}
