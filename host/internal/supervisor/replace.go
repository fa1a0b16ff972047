package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/sdk/protocol"
)

// Replaced describes a replace: the process and binary before and after.
type Replaced struct {
	OldPid, NewPid         int
	OldVersion, NewVersion string
	OldSHA256, NewSHA256   string // hexadecimal
}

// Entry returns the binary of the serving process, with the SHA-256 it was
// verified against when it started.
func (s *Supervisor) Entry() catalog.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entry
}

// handover carries a started, configured process from Replace to Run, which
// makes it the serving one.
type handover struct {
	proc    *Process
	options map[string]string // the plugin's options from now on (nil: unchanged)
	done    chan struct{}     // closed when proc serves, or err is set
	err     error
	result  Replaced
}

// refuse ends a handover that Run cannot complete.
func (h *handover) refuse(err error) {
	h.proc.Kill()
	h.err = err
	close(h.done)
}

var errStopped = errors.New("the plugin was stopped during the replace")

// Replace swaps the plugin's serving process for a new process of binary e,
// with no client refused and no open connection cut:
//
//  1. it starts the new process and configures it with the plugin's options
//     and listen address, while the old process goes on serving;
//  2. it hands the listener over: with the host accepting (listen.TCP) the
//     accept loop stops sending to the old process and sends to the new
//     one, connections accepted and not yet sent included, and clients
//     arriving meanwhile wait in the kernel's backlog; with a shared socket
//     (UDP, --handoff listener) the new process gets its copy and both
//     serve it until the old one lets go;
//  3. it drains the old process in the background: it waits until the old
//     process has taken every connection handed to it, then asks it to drain
//     (it stops reading or accepting on the shared socket at once, and its
//     open connections get up to Config.DrainTimeout to finish), then stops
//     it.
//
// Replace returns, and "plugin replaced" is logged, once the new process
// serves and the old one takes no new client (on a shared socket: once it has
// stopped accepting and reading, see retire), so that every client after it
// reaches the new process. If the new binary does not
// start, does not speak the protocol, has another name or transport, lacks a
// feature the listener needs (Config.Needs) or refuses the configuration,
// Replace returns that error, with the binary's own message where it gave
// one, and the old process serves on as if nothing happened.
//
// A plugin that is restarting takes the new process instead of starting one;
// a failed or stopped plugin is an error. Replaces are serialized.
func (s *Supervisor) Replace(ctx context.Context, e catalog.Entry) (Replaced, error) {
	return s.replace(ctx, e, nil)
}

// ReplaceOptions is Replace with new option values: the new process of
// binary e is configured with options, and they are the plugin's from then on
// (a later restart uses them). If the plugin refuses them, the old process
// serves on with the old ones. A reload of the configuration file uses it.
func (s *Supervisor) ReplaceOptions(ctx context.Context, e catalog.Entry, options map[string]string) (Replaced, error) {
	if options == nil {
		options = map[string]string{}
	}
	return s.replace(ctx, e, options)
}

func (s *Supervisor) replace(ctx context.Context, e catalog.Entry, opts map[string]string) (Replaced, error) {
	s.replaceMu.Lock()
	defer s.replaceMu.Unlock()
	if err := s.notServing(); err != nil {
		return Replaced{}, err
	}
	proc, err := s.launchEntry(ctx, e, opts)
	if err != nil && ctx.Err() != nil {
		s.log.Info("replace cut short; the old process serves on", "path", e.Path, "cause", context.Cause(ctx).Error())
		return Replaced{}, err
	}
	if err != nil {
		s.log.Error("replace failed; the old process serves on", "path", e.Path, "sha256", e.Hex(), "error", err)
		return Replaced{}, err
	}
	h := &handover{proc: proc, options: opts, done: make(chan struct{})}
	select {
	case s.handovers <- h:
	case <-s.done:
		proc.Kill()
		if err := s.notServing(); err != nil {
			return Replaced{}, err
		}
		return Replaced{}, errStopped
	case <-ctx.Done():
		proc.Kill()
		return Replaced{}, ctx.Err()
	}
	<-h.done
	return h.result, h.err
}

// notServing says why Replace cannot replace anything, or returns nil.
func (s *Supervisor) notServing() error {
	st := s.Status()
	switch st.State {
	case Failed:
		return fmt.Errorf("plugin %s is failed (%s) and its listener closed: once it is fixed, 'sockplay reload %s' starts it again", st.Name, st.Error, st.Name)
	case Stopped:
		return fmt.Errorf("plugin %s is stopped", st.Name)
	}
	select {
	case <-s.ctx.Done():
		return fmt.Errorf("plugin %s is stopping", st.Name)
	default:
	}
	return nil
}

// promoted completes a handover: h.proc serves from now on. old, if not nil,
// is drained and stopped in the background. A standby process, of the old
// binary, is stopped; keepSpare starts one of the new.
func (s *Supervisor) promoted(h *handover, old *Process) {
	var spare *Process
	s.set(func() {
		h.result = Replaced{
			OldVersion: s.desc.GetVersion(), OldSHA256: s.entry.Hex(),
			NewPid: h.proc.Pid, NewVersion: h.proc.Description.GetVersion(), NewSHA256: h.proc.Entry.Hex(),
		}
		if old != nil {
			h.result.OldPid = old.Pid
			s.retired[old] = true
		}
		s.proc, s.state, s.startedAt = h.proc, Running, time.Now()
		s.entry, s.desc = h.proc.Entry, h.proc.Description
		if h.options != nil {
			s.cfg.Options = h.options // a later restart configures with them too
		}
		s.replaced++
		spare, s.spare = s.spare, nil
	})
	if spare != nil {
		select {
		case s.taken <- struct{}{}:
		default:
		}
		spare.Kill()
	}
	done := func() {
		r := h.result
		s.log.Info("plugin replaced", "old_pid", r.OldPid, "new_pid", r.NewPid, "old_version", r.OldVersion,
			"new_version", r.NewVersion, "old_sha256", r.OldSHA256, "new_sha256", r.NewSHA256)
		close(h.done)
	}
	if old == nil {
		done()
		return
	}
	s.retire(old, done)
}

// retire drains a replaced process and stops it, in the background; Shutdown
// and Close wait for it. It calls quiet once the old process takes no new
// client: at once when the host accepts (it no longer sends old anything),
// and on a shared socket (--handoff listener, UDP), where old accepts or
// reads itself, once old says so (Health's draining, which a plugin answers
// once its Drain has stopped its accepts and reads), its Drain has returned,
// or it is gone. A replace is reported done only then: a client that comes
// after "plugin replaced" (and after `sockplay reload` returns) reaches the
// new process, never the old one.
func (s *Supervisor) retire(old *Process, quiet func()) {
	_, shared := s.cfg.Listener.(*listen.Shared)
	if !shared {
		quiet()
	}
	s.retiring.Go(func() {
		defer s.set(func() { delete(s.retired, old) })
		start := time.Now()
		old.settle(context.Background(), sendTimeout)
		drained := make(chan struct{}) // Drain returned, or old was killed
		var waiting sync.WaitGroup
		if shared {
			waiting.Go(func() {
				old.awaitQuiet(drained)
				quiet()
			})
		}
		forced, err := old.Drain(context.Background(), s.cfg.DrainTimeout)
		if err != nil {
			old.Kill() // a plugin that does not answer Drain will not answer a graceful stop
		}
		close(drained)
		waiting.Wait()
		if err == nil {
			old.Stop()
		}
		switch {
		case err != nil:
			s.log.Warn("replaced process: drain failed; killed", "pid", old.Pid, "error", rpcMessage(err))
		case forced > 0:
			s.log.Warn("replaced process: drain timeout: connections closed", "pid", old.Pid, "forced", forced)
		default:
			s.log.Info("replaced process drained and stopped", "pid", old.Pid, "took", time.Since(start).Round(time.Millisecond))
		}
	})
}

// adopt records proc, which a restart made the serving process, as the
// plugin's binary. A binary that changed on disk since the last start (a
// rebuild in place) gets one log line with the old and new SHA-256 and
// version.
func (s *Supervisor) adopt(proc *Process) {
	var oldSum, oldVersion string
	changed := false
	s.set(func() {
		changed = !bytes.Equal(s.entry.SHA256, proc.Entry.SHA256) || s.entry.Path != proc.Entry.Path
		oldSum, oldVersion = s.entry.Hex(), s.desc.GetVersion()
		s.entry = proc.Entry
		if proc.Description != nil {
			s.desc = proc.Description
		}
	})
	if changed {
		s.log.Info("plugin binary changed on disk; adopted it", "pid", proc.Pid, "old_sha256", oldSum,
			"new_sha256", proc.Entry.Hex(), "old_version", oldVersion, "new_version", proc.Description.GetVersion())
	}
}

// awaitQuiet returns once the process takes no new client on its shared
// socket: it says draining in Health, drained is closed, or it is gone. It
// asks every millisecond at first, backing off to every 20 ms; a Health
// call that fails (a plugin that does not answer) leaves the wait to drained,
// which its Drain's deadline, and then a kill, bound.
func (p *Process) awaitQuiet(drained <-chan struct{}) {
	ctx, cancel := context.WithCancel(p.life)
	defer cancel()
	go func() {
		select {
		case <-drained:
			cancel()
		case <-ctx.Done():
		}
	}()
	for wait := time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 20*time.Millisecond) {
		cctx, ccancel := context.WithTimeout(ctx, controlTimeout)
		h, err := p.Control.Health(cctx, &protocol.HealthRequest{})
		ccancel()
		if err == nil && h.GetDraining() {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}
