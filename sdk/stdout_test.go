package sdk

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// What is printed on stdout between guardStdout (Main) and restoreStdout
// (just before the handshake) reaches stderr as a log line, and the real
// stdout, where the handshake goes, stays empty.
func TestGuardStdout(t *testing.T) {
	dir := t.TempDir()
	stdout, err := os.Create(dir + "/stdout")
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(dir + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	realOut, realErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = stdout, stderr
	defer func() { os.Stdout, os.Stderr = realOut, realErr }()

	guardStdout()
	fmt.Println("printed while starting")
	restoreStdout()
	fmt.Println("1|1|unix|/tmp/handshake|grpc|")
	os.Stdout, os.Stderr = realOut, realErr

	out, _ := os.ReadFile(stdout.Name())
	if string(out) != "1|1|unix|/tmp/handshake|grpc|\n" {
		t.Errorf("stdout %q, want the handshake line only", out)
	}
	logged, _ := os.ReadFile(stderr.Name())
	lines := strings.Split(strings.TrimSpace(string(logged)), "\n")
	if len(lines) != 1 {
		t.Fatalf("stderr %q, want one log line", logged)
	}
	e, ok := plog.ParseLine([]byte(lines[0]))
	if !ok || e.Message != "printed while starting" || fmt.Sprint(e.Fields) != "[stream stdout]" {
		t.Errorf("stderr %q: parsed %+v, %v; want the line logged with stream=stdout", lines[0], e, ok)
	}
	if handshakeStdout != nil {
		t.Error("restoreStdout left the guard set")
	}
}
