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
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
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
		go rt.receive(fdpass.NewReceiver(c), newAnswerer(fdpass.NewSender(c)))
	}
	go watchParent()
	return nil
}

// receive serves what the host hands over until the host closes its end,
// which means it is gone: then the plugin exits with everything it started.
// It answers the batches of connections on the same socket (feature
// handoff-ack, see package fdpass): those it took, a little later and many at
// once, and at once those it could not take for want of a descriptor, which
// the host keeps and sends again.
func (rt *runtime) receive(r *fdpass.Receiver, answer *answerer) {
	var outOfFDs plog.Limiter
	for {
		batch, err := r.Recv()
		if err != nil && !(errors.Is(err, fdpass.ErrTruncated) && batch != nil) {
			var ne net.Error
			if errors.Is(err, fdpass.ErrShortMessage) || errors.Is(err, fdpass.ErrBadVersion) ||
				errors.Is(err, fdpass.ErrTruncated) || errors.Is(err, fdpass.ErrCountMismatch) {
				rt.log.Error("bad handoff message", "error", err)
				rt.batches.Add(1)
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
		rt.batches.Add(1)
	}
}

// take serves a batch. Connections ('C') whose descriptor arrived and could
// be made a net.Conn are served and answered taken; the others are answered
// returned, at once. It returns how many it returned, and why.
func (rt *runtime) take(srv *Server, psrv *PacketServer, batch []fdpass.Handoff, answer *answerer) (int, error) {
	var returned []uint64
	var cause error
	for _, h := range batch {
		if h.Kind != fdpass.Conn || srv == nil {
			if h.Kind == fdpass.Conn {
				answer.taken(h.ID) // the host may close it: nothing here serves it
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
			answer.taken(h.ID)
			srv.serveConn(h.ID, c) // the host's id, for the events
		case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			returned = append(returned, h.ID)
			cause = err
		default: // not a socket: sending it again would not help
			rt.log.Error("handed-off connection", "conn", h.ID, "error", err)
			answer.taken(h.ID)
		}
	}
	if len(returned) > 0 {
		answer.returned(returned)
	}
	return len(returned), cause
}

// answerer writes the plugin's answers. Taken ids wait up to takenDelay, or
// until fdpass.MaxBatch of them are there, and go in one message: the host
// needs them only to close its copies, and one answer per connection would
// cost both processes a system call and a wakeup each. Returned ids go at
// once (after the taken ones waiting), since the host sends them again.
type answerer struct {
	mu    sync.Mutex
	s     *fdpass.Sender
	ids   []uint64 // taken, not yet answered
	timer *time.Timer
}

// takenDelay is the longest a taken id waits for its answer.
const takenDelay = 2 * time.Millisecond

func newAnswerer(s *fdpass.Sender) *answerer {
	a := &answerer{s: s, ids: make([]uint64, 0, fdpass.MaxBatch)}
	a.timer = time.AfterFunc(time.Hour, a.flush)
	a.timer.Stop()
	return a
}

func (a *answerer) taken(id uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, id)
	switch len(a.ids) {
	case fdpass.MaxBatch:
		a.timer.Stop()
		a.send()
	case 1:
		a.timer.Reset(takenDelay)
	}
}

func (a *answerer) returned(ids []uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.timer.Stop()
	a.send()
	for len(ids) > 0 {
		n := min(len(ids), fdpass.MaxBatch)
		_ = a.s.Send(fdpass.Returned, ids[:n], nil) // fails only when the host is gone
		ids = ids[n:]
	}
}

func (a *answerer) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.send()
}

// send answers the taken ids waiting; a.mu is held.
func (a *answerer) send() {
	if len(a.ids) > 0 {
		_ = a.s.Send(fdpass.Taken, a.ids, nil) // fails only when the host is gone
		a.ids = a.ids[:0]
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
