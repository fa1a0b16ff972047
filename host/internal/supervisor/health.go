package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// healthFailures is how many Health calls in a row a process may miss before
// it is taken for frozen.
const healthFailures = 2

// checkHealth asks proc for its Health every HealthInterval, each call with a
// HealthTimeout deadline, until ctx is done or proc exits. A process that is
// alive but does not answer (stopped with SIGSTOP, its control service
// deadlocked) misses healthFailures in a row: it is killed, with the reason
// for its death line, and the supervisor restarts it as after a crash.
func (s *Supervisor) checkHealth(ctx context.Context, proc *Process) {
	if s.cfg.HealthInterval <= 0 {
		return
	}
	timeout := s.cfg.HealthTimeout
	if timeout <= 0 {
		timeout = controlTimeout
	}
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-proc.Exited():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := proc.Control.Health(cctx, &protocol.HealthRequest{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		s.log.Warn("plugin did not answer Health", "pid", proc.Pid, "error", rpcMessage(err),
			"timeout", timeout.String(), "failures", failures)
		if failures >= healthFailures {
			reason := fmt.Sprintf("no answer to Health within %s, %d times in a row", timeout, failures)
			if stopped(proc.Pid) {
				reason = "stopped (SIGSTOP?): " + reason
			}
			s.log.Error("plugin is alive but not answering; killing it to restart it", "pid", proc.Pid, "reason", reason)
			proc.killFor(reason)
			return
		}
	}
}

// stopped reports whether process pid is stopped: state T in /proc/PID/stat
// (proc(5)), which follows the command name in parentheses.
func stopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'T'
}
