package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockplay/sockplay/internal/e2e"
)

// netnsEnv is set for a test binary run again in a network namespace of its
// own.
const netnsEnv = "SOCKPLAY_TEST_NETNS"

// ownNetwork lets a test that needs fixed addresses (the plugins' default
// ports) run whatever the machine serves on them, `make run` included: it
// runs the test again, in this test binary, in a new user and network
// namespace, where only a loopback interface exists and every port is free,
// and reports false: the caller returns, its result is the child's. In the
// child it brings the loopback up and reports true: the caller goes on.
//
// Where no namespace can be made (a container without user namespaces), the
// test runs here if the addresses are free, and is skipped if not.
func ownNetwork(t *testing.T, addrs map[string]string) bool {
	t.Helper()
	if os.Getenv(netnsEnv) != "" {
		if err := loopbackUp(); err != nil {
			t.Fatalf("network namespace: bring up lo: %v", err)
		}
		return true
	}
	bin := e2e.Bin(t) // built here, once, for the child too
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(e2e.Env(t), netnsEnv+"=1", e2e.BinEnv+"="+bin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		// root in the namespace, as `unshare -rn`: it may configure lo.
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
	if err := cmd.Start(); err != nil {
		if busy := busyAddrs(addrs); len(busy) > 0 {
			t.Skipf("cannot make a network namespace (%v), and %s in use here", err, strings.Join(busy, ", "))
		}
		t.Logf("cannot make a network namespace (%v); the addresses are free here: running here", err)
		return true
	}
	err := cmd.Wait()
	if err != nil || !strings.Contains(out.String(), "--- PASS: "+t.Name()) {
		t.Fatalf("in a network namespace of its own: %v\n%s", err, out.String())
	}
	t.Logf("passed in a network namespace of its own:\n%s", out.String())
	return false
}

// loopbackUp sets the loopback interface up (SIOCSIFFLAGS, IFF_UP): a new
// network namespace has it down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// busyAddrs returns those of addrs ("tcp 127.0.0.1:12345") that cannot be
// bound here.
func busyAddrs(addrs map[string]string) []string {
	var busy []string
	for _, a := range addrs {
		network, addr, _ := strings.Cut(a, " ")
		var err error
		if network == "udp" {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", addr); err == nil {
				pc.Close()
			}
		} else {
			var ln net.Listener
			if ln, err = net.Listen("tcp", addr); err == nil {
				ln.Close()
			}
		}
		if errors.Is(err, syscall.EADDRINUSE) || err != nil {
			busy = append(busy, a)
		}
	}
	return busy
}
