//go:build linux

package sdk

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
)

// startHandoff starts receiving what the host hands over on the handoff
// socket (its descriptor number is in protocol.HandoffFDEnv), and watches for
// the host's death.
func startHandoff(rt *runtime) error {
	if fdStr := os.Getenv(protocol.HandoffFDEnv); fdStr != "" {
		fd, err := strconv.Atoi(fdStr)
		if err != nil {
			return fmt.Errorf("%s=%q: not a descriptor number", protocol.HandoffFDEnv, fdStr)
		}
		f := os.NewFile(uintptr(fd), "handoff")
		c, err := fdpass.FileConn(f)
		f.Close()
		if err != nil {
			return err
		}
		go rt.receive(fdpass.NewReceiver(c))
	}
	go watchParent()
	return nil
}

// receive serves what the host hands over until the host closes its end,
// which means it is gone: then the plugin exits with everything it started.
func (rt *runtime) receive(r *fdpass.Receiver) {
	for {
		batch, err := r.Recv()
		if err != nil {
			var ne net.Error
			if errors.Is(err, fdpass.ErrShortMessage) || errors.Is(err, fdpass.ErrBadVersion) ||
				errors.Is(err, fdpass.ErrTruncated) || errors.Is(err, fdpass.ErrCountMismatch) {
				rt.log.Error("bad handoff message", "error", err)
				continue
			}
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			hostGone()
			return
		}
		<-rt.configured
		srv, psrv := rt.servers()
		for _, h := range batch {
			rt.accept(srv, psrv, h)
		}
	}
}

// watchParent is the fallback watchdog for a plugin that has no handoff socket:
// when the host dies the plugin is re-parented, and it exits.
func watchParent() {
	parent := os.Getppid()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != parent {
			hostGone()
			return
		}
	}
}

// hostGone ends the plugin and everything it started: the host starts each
// plugin as the leader of its own process group, so killing the group takes
// the plugin's children too.
func hostGone() {
	removeSocketDir()
	// Nothing is logged: the host read our stderr, and a write to it now could
	// end the process with SIGPIPE before the group is killed.
	if pid := os.Getpid(); syscall.Getpgrp() == pid {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the plugin and all it started
	}
	os.Exit(1)
}

// removeSocketDir removes the directory the host made for this process's
// go-plugin socket, and the host's run directory once it is empty: a host
// killed with SIGKILL cannot.
func removeSocketDir() {
	dir := os.Getenv(plugin.EnvUnixSocketDir)
	if dir == "" || !strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "sockplay-") {
		return
	}
	_ = os.RemoveAll(dir)
	_ = os.Remove(filepath.Dir(dir)) // fails while other plugins' directories are there
}
