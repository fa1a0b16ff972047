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
		go rt.receive(fdpass.NewReceiver(c), fdpass.NewSender(c))
	}
	go watchParent()
	return nil
}

// receive serves what the host hands over until the host closes its end,
// which means it is gone: then the plugin exits with everything it started.
// It answers every batch of connections on the same socket (feature
// handoff-ack, see package fdpass): those it took, and those it could not
// take for want of a descriptor, which the host keeps and sends again.
func (rt *runtime) receive(r *fdpass.Receiver, answer *fdpass.Sender) {
	var outOfFDs LogLimiter
	for {
		batch, err := r.Recv()
		if err != nil && !(errors.Is(err, fdpass.ErrTruncated) && batch != nil) {
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
		returned, cause := rt.take(srv, psrv, batch, answer)
		if err != nil {
			cause = err
		}
		if returned > 0 {
			if ok, suppressed := outOfFDs.Allow(time.Now()); ok {
				rt.log.Warn("out of descriptors: connections returned to the host, which sends them again",
					"returned", returned, "error", cause, "suppressed", suppressed)
			}
		}
	}
}

// take serves a batch. Connections ('C') are answered before any of them is
// served: those whose descriptor arrived and could be made a net.Conn as
// taken, the others as returned. It returns how many it returned, and why.
func (rt *runtime) take(srv *Server, psrv *PacketServer, batch []fdpass.Handoff, answer *fdpass.Sender) (int, error) {
	var conns []net.Conn
	var ids, taken, returned []uint64
	var cause error
	for _, h := range batch {
		if h.Kind != fdpass.Conn || srv == nil {
			if h.Kind == fdpass.Conn {
				taken = append(taken, h.ID) // the host may close it: nothing here serves it
			}
			rt.accept(srv, psrv, h)
			continue
		}
		if h.File == nil { // cut off by the kernel: no descriptor was free
			returned = append(returned, h.ID)
			continue
		}
		c, err := net.FileConn(h.File) // a dup: one more descriptor
		h.File.Close()
		switch {
		case err == nil:
			conns = append(conns, c)
			ids = append(ids, h.ID)
			taken = append(taken, h.ID)
		case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			returned = append(returned, h.ID)
			cause = err
		default: // not a socket: sending it again would not help
			rt.log.Error("handed-off connection", "conn", h.ID, "error", err)
			taken = append(taken, h.ID)
		}
	}
	// A Send fails only when the host is gone.
	if len(taken) > 0 {
		_ = answer.Send(fdpass.Taken, taken, nil)
	}
	if len(returned) > 0 {
		_ = answer.Send(fdpass.Returned, returned, nil)
	}
	for i, c := range conns {
		srv.serveConn(ids[i], c) // the host's id, for the events
	}
	return len(returned), cause
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
