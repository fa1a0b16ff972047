package main

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"
)

var exec_LookPath = exec.LookPath

// runNC sends stdin with netcat-openbsd and returns what came back; -N shuts
// the socket down at the end of stdin, -w bounds the wait.
func runNC(t *testing.T, stdin []byte, host, port string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nc", "-N", "-w", "3", host, port)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("nc: %v", err)
	}
	return out.String()
}
