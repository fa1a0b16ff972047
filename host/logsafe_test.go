package main

import (
	"bufio"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// hostile is what a client sends to forge the operator's log and take over
// the terminal: a colour, a screen clear, a window title, a carriage return
// that overprints, a line feed followed by a whole forged record of the
// host's, a Trojan Source bidi override, a C1 CSI.
const hostile = "x\x1b[31mRED\x1b[2J\x1b]0;owned\x07\roverprinted" +
	"\n12:00:00.000 [ERROR] sockplay: forged record\u202eevil\u009b31m"

// recordLine is how every line of the host's text log begins: its time and
// a level, or hclog's block of a multi-line value (a stack, a traceback:
// plog.Lines): "  KEY=", a "  | " before each line, a last "  ".
var recordLine = regexp.MustCompile(`^(\d\d:\d\d:\d\d\.\d{3} \[(TRACE|DEBUG|INFO|WARN|ERROR)\] |  \| |  [a-z_]+=$|\s*$)`)

// forged is hostile's record as a line of the host's own: a time, a level
// and the host's name, not a plugin's ("sockplay.printer: ...").
var forged = regexp.MustCompile(`^\S+ \[\w+\]\s+sockplay: forged record`)

// checkLogSafe checks that the host's log holds none of hostile's control
// bytes, that its forged record is not a record, and that every line is a
// record's (or a block's) line.
func checkLogSafe(t *testing.T, log string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e", "\u009b"} {
		if strings.Contains(log, bad) {
			t.Errorf("the host's log holds %q raw", bad)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !recordLine.MatchString(l) {
			t.Errorf("a line of the host's log that no record of its starts: %q", l)
		}
		if forged.MatchString(l) {
			t.Errorf("a client forged a record of the host's: %q", l)
		}
	}
}

// A client's bytes that a plugin relays to the host's log, by every way a
// plugin writes there, cannot forge a record nor act on the operator's
// terminal (issue 27, kind 4): a Go plugin's stdout, stderr, log message and
// log field (the printer test plugin), a Python plugin's print to stdout and
// stderr and its log (pyprobe), and the host's own lines about them.
func TestClientBytesEscapedInLog(t *testing.T) {
	t.Run("go", func(t *testing.T) {
		t.Parallel()
		h := e2e.Start(t, e2e.Config{Enable: []string{"printer"}})
		c := dial(t, h.Addr("printer"))
		if _, err := io.WriteString(c, hostile); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		if b, err := io.ReadAll(c); err != nil || string(b) != "ok\n" {
			t.Fatalf("printer: %q, %v", b, err)
		}
		for _, l := range []string{`sockplay.printer: stdout: x\x1b[31mRED\x1b[2J\x1b]0;owned\x07\roverprinted: stream=stdout`,
			`sockplay.printer: stderr: x\x1b[31mRED`,
			`sockplay.printer: message: x\x1b[31mRED\x1b[2J\x1b]0;owned\x07\roverprinted\n12:00:00.000 [ERROR] sockplay: forged record\u202eevil\u009b31m:`} {
			h.WaitLog(l, 10*time.Second)
		}
		h.Stop(15 * time.Second)
		checkLogSafe(t, h.Stderr())
	})
	t.Run("python", func(t *testing.T) {
		t.Parallel()
		h := e2e.Start(t, e2e.Config{Enable: []string{"pyprobe"}})
		c := dial(t, h.Addr("pyprobe"))
		oneLine := strings.ReplaceAll(hostile, "\n", " ") // pyprobe takes a command a line
		r := bufio.NewReader(c)
		for _, cmd := range []string{"print ", "eprint ", "log "} {
			if _, err := io.WriteString(c, cmd+oneLine+"\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.ReadString('\n'); err != nil { // pyprobe's echo of the command
				t.Fatal(err)
			}
		}
		c.Close()
		for _, l := range []string{`sockplay.pyprobe: x\x1b[31mRED\x1b[2J\x1b]0;owned\x07\roverprinted 12:00:00.000 [ERROR] sockplay: forged record\u202eevil\u009b31m: stream=stdout`,
			`stream=stderr`, `field=value`} {
			h.WaitLog(l, 10*time.Second)
		}
		h.Stop(15 * time.Second)
		checkLogSafe(t, h.Stderr())
	})
}
