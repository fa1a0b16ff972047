//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sockplay/sockplay/sdk/client"
)

// TestPasswordFromTerminal runs useradd with a real pseudo-terminal as stdin:
// it prompts twice, and what is typed at the prompts is not echoed.
func TestPasswordFromTerminal(t *testing.T) {
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer master.Close()
	defer slave.Close()

	echoed := &logBuffer{}
	copied := make(chan struct{})
	go func() { defer close(copied); _, _ = io.Copy(echoed, master) }()

	path := t.TempDir() + "/accounts"
	var out, prompts logBuffer
	done := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p := Plugin()
		done <- client.Run(ctx, p.Client(), []string{"useradd", "--accounts", path, "alice"},
			client.Stdio{In: slave, Out: &out, Err: &prompts})
	}()

	const secret = "typed secret 1"
	passwordsUsed.Store(secret, true)
	for i, prompt := range []string{"Password: ", "Retype password: "} {
		if !prompts.waitFor(prompt, 10*time.Second) {
			t.Fatalf("no prompt %q; got %q", prompt, prompts.String())
		}
		// Type only once the terminal has stopped echoing.
		deadline := time.Now().Add(10 * time.Second)
		for echoOn(t, slave) {
			if time.Now().After(deadline) {
				t.Fatalf("echo still on at prompt %d", i+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := master.Write([]byte(secret + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "added user alice") {
			t.Fatalf("exit %d, out %q, prompts %q", code, out.String(), prompts.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("useradd did not finish")
	}
	if !echoOn(t, slave) {
		t.Error("echo was not restored")
	}
	slave.Close()
	master.Close()
	<-copied
	if strings.Contains(echoed.String(), secret) {
		t.Fatalf("the terminal echoed the password: %q", echoed.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseAccounts(path, data)
	if err != nil || len(l.accounts) != 1 || !l.accounts[0].hash.verify(secret) {
		t.Fatalf("accounts %v, %v: want alice with the typed password", l, err)
	}
}

// openPTY opens a pseudo-terminal pair with the Linux ioctls.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var unlock int32
	if err := ioctl(master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); err != nil {
		master.Close()
		return nil, nil, err
	}
	var n uint32
	if err := ioctl(master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); err != nil {
		master.Close()
		return nil, nil, err
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

func ioctl(fd, req, arg uintptr) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, arg); e != 0 {
		return e
	}
	return nil
}

func echoOn(t *testing.T, f *os.File) bool {
	var tio syscall.Termios
	if err := ioctl(f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio))); err != nil {
		t.Fatalf("TCGETS: %v", err)
	}
	return tio.Lflag&syscall.ECHO != 0
}
