// Command sockplay-panicky is a test plugin: a line echo that misbehaves on
// demand. On the line
//
//	panic  the handler panics (the SDK recovers; one connection is lost)
//	exit   the process exits with status 7
//	crash  a goroutine panics, which kills the process with a stack on stderr
//	spawn  the plugin starts `sleep 60` and answers its pid
//
// If the file named by $PANICKY_CRASH_FILE exists when it starts, it exits at
// once with a message of its own, so a restart fails.
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"

	"github.com/sockplay/sockplay/sdk"
)

func main() {
	if f := os.Getenv("PANICKY_CRASH_FILE"); f != "" {
		if _, err := os.Stat(f); err == nil {
			fmt.Fprintln(os.Stderr, "panicky: refusing to start: crash file present")
			os.Exit(3)
		}
	}
	sdk.Main(sdk.Plugin{
		Name:        "panicky",
		Version:     "0.0.1",
		Summary:     "test plugin: line echo that misbehaves on demand",
		DefaultAddr: "127.0.0.1:0",
		TCP:         func(sdk.Config) (sdk.Handler, error) { return sdk.HandlerFunc(serve), nil },
	})
}

func serve(_ context.Context, c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		switch sc.Text() {
		case "panic":
			panic("panicky: asked to panic")
		case "exit":
			fmt.Fprintln(os.Stderr, "panicky: asked to exit")
			os.Exit(7)
		case "crash":
			done := make(chan struct{})
			go func() { defer close(done); panic("panicky: crash in a goroutine") }()
			<-done
		case "spawn":
			cmd := exec.Command("sleep", "60")
			if err := cmd.Start(); err != nil {
				fmt.Fprintf(c, "error %v\n", err)
				continue
			}
			go func() { _ = cmd.Wait() }()
			fmt.Fprintf(c, "%d\n", cmd.Process.Pid)
			continue
		}
		fmt.Fprintf(c, "%s\n", sc.Text())
	}
}
