// Package systemd is the host's side of systemd's service protocol, with
// github.com/coreos/go-systemd/v22: the listening sockets a socket unit
// passes (socket activation, sd_listen_fds(3): LISTEN_PID, LISTEN_FDS,
// LISTEN_FDNAMES, named by FileDescriptorName=) and the state a Type=notify
// service reports (sd_notify(3): READY=1, STOPPING=1, RELOADING=1, and
// WATCHDOG=1 every half WATCHDOG_USEC).
//
// Plugins never see these variables: Sockets unsets the LISTEN_ ones, and
// the supervisor leaves NOTIFY_SOCKET and WATCHDOG_ out of a plugin's
// environment (Env), so that only the host talks to systemd.
package systemd

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
)

// Sockets returns the sockets systemd passed to this process, by name
// (LISTEN_FDNAMES; an unnamed one is "LISTEN_FD_3" and so on), and unsets
// the LISTEN_ variables. None were passed: an empty map. Two sockets of one
// name are an error, since the name says which plugin serves a socket.
func Sockets() (map[string]*os.File, error) {
	files := activation.Files(true)
	out := make(map[string]*os.File, len(files))
	for _, f := range files {
		if _, dup := out[f.Name()]; dup {
			for _, g := range files {
				g.Close()
			}
			return nil, fmt.Errorf("systemd passed two sockets named %q (FileDescriptorName=): each plugin's socket needs its own name", f.Name())
		}
		out[f.Name()] = f
	}
	return out, nil
}

// Env returns environ without the variables of systemd's service protocol,
// for a child process that must not speak it.
func Env(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Notifier tells systemd how the service is doing. Without NOTIFY_SOCKET
// (not started by systemd as Type=notify) it does nothing.
type Notifier struct {
	log      hclog.Logger
	watchdog time.Duration // 0: no watchdog
}

// NewNotifier reads NOTIFY_SOCKET and WATCHDOG_USEC (and WATCHDOG_PID).
func NewNotifier(log hclog.Logger) *Notifier {
	n := &Notifier{log: log}
	if d, err := daemon.SdWatchdogEnabled(false); err != nil {
		log.Warn("systemd watchdog", "error", err)
	} else {
		n.watchdog = d
	}
	return n
}

// Notify sends state ("READY=1", "STOPPING=1", ...); a failure is logged.
func (n *Notifier) Notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify", "state", state, "error", err)
	}
}

// Watchdog sends WATCHDOG=1 every half watchdog interval until ctx is done;
// without a watchdog it returns at once.
func (n *Notifier) Watchdog(ctx context.Context) {
	if n.watchdog <= 0 {
		return
	}
	t := time.NewTicker(n.watchdog / 2)
	defer t.Stop()
	for {
		n.Notify(daemon.SdNotifyWatchdog)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// The states.
const (
	Ready     = daemon.SdNotifyReady
	Stopping  = daemon.SdNotifyStopping
	Reloading = daemon.SdNotifyReloading
)
