package supervisor

import "syscall"

// These let `sockplay check-plugin` (host/internal/conformance) watch a
// process keep the contract's exit duties.

// CloseHandoff closes the host's end of the handoff socket only, as a host
// that died would: the process must notice and exit.
func (p *Process) CloseHandoff() error {
	p.abandon.Store(true)
	return p.hand.conn.Close()
}

// SocketDir is the directory the host made for the process's go-plugin
// socket, which the process must remove when its host is gone.
func (p *Process) SocketDir() string { return p.sockDir }

// Gone reports whether the process itself (not only its handoff socket) has
// ended: it can no longer be signalled, or is a zombie that go-plugin reaped.
func (p *Process) Gone() bool {
	if p.client.Exited() {
		return true
	}
	return p.cmd.Process == nil || syscall.Kill(p.cmd.Process.Pid, 0) != nil
}
