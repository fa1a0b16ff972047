package main

import (
	"net"
	"testing"
	"time"
)

// TestCheckEscapesReply: check prints what a (hostile) server replies with
// its control characters escaped.
func TestCheckEscapesReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1024)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("fail\x1b[2J\u202e"))
	}()
	code, out, errs := runTool(t, "alice\nsome password\n", "check", ln.Addr().String())
	<-done
	if want := `fail\x1b[2J\u202e` + "\n"; code != 1 || out != want {
		t.Fatalf("exit %d, out %q, err %q; want exit 1, out %q", code, out, errs, want)
	}
}
