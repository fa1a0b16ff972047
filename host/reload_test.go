package main

import (
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
