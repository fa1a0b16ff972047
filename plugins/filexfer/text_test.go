package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestQuoteNameAndASCIILine(t *testing.T) {
	for in, want := range map[string]string{
		"a/b.txt":         "a/b.txt",
		"a b":             `"a b"`,
		"café":            `"caf\u00e9"`,
		"\x1b[31mred":     `"\x1b[31mred"`,
		"evil\u202eexe.":  `"evil\u202eexe."`,
		"line\nbreak":     `"line\nbreak"`,
		`quote"back\sl`:   `"quote\"back\\sl"`,
		"":                `""`,
		"\xff\xfe binary": `"\xff\xfe binary"`,
	} {
		if got := quoteName(in); got != want {
			t.Errorf("quoteName(%q) = %s, want %s", in, got, want)
		}
	}
	if got := asciiLine("ok \x1b[2J é\r\n"); got != `ok \x1b[2J \xc3\xa9\x0d\x0a` {
		t.Errorf("asciiLine: %q", got)
	}
	e := &Error{Code: CodeNotFound, Msg: "x\ny \u202e"}
	if got := e.statusLine(); got != `ERR not-found x\x0ay \xe2\x80\xae`+"\n" {
		t.Errorf("statusLine: %q", got)
	}
}

// isASCIILine reports whether s is printable ASCII ending in one newline.
func isASCIILine(s string) bool {
	if !strings.HasSuffix(s, "\n") {
		return false
	}
	for i := 0; i < len(s)-1; i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// TestStatusLinesStayASCII sends paths with control characters, bidi
// overrides and non-ASCII letters to every request; every status line that
// comes back is one line of printable ASCII.
func TestStatusLinesStayASCII(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	bad := []string{"\x1b[2Jgone", "evil\u202etxt.exe", "café", "two\nlines\r", "nul\x01\x7f\u009b", "../\x1b]0;x\x07", "/\u2066abs", "dir\x1b/x"}
	for _, name := range []string{"\x1b[2Jgone", "café"} {
		writeFile(t, filepath.Join(root, name), []byte("x"))
	}
	if err := os.Mkdir(filepath.Join(root, "dir\x1b"), 0o755); err != nil {
		t.Fatal(err)
	}
	in := start(t, map[string]string{"root": root, "writable": "true", "maxfile": "10"}, testHooks{})
	c, err := net.DialTimeout("tcp", in.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for _, name := range bad {
		p := EncodePath(name)
		for _, req := range []string{"LIST " + p, "SUM " + p, "GET 5 " + p, "PUT 11 - " + p, "PUT 1 " + sumOf([]byte("y")) + " " + p + "/z", "LIST " + p + "/x"} {
			if _, err := fmt.Fprintf(c, "%s\n", req); err != nil {
				t.Fatal(err)
			}
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%+q: %v", req, err)
			}
			if !isASCIILine(line) {
				t.Errorf("%+q answered %+q: not one line of printable ASCII", req, line)
			}
			if strings.HasPrefix(line, "OK") && !strings.HasPrefix(req, "SUM ") {
				t.Fatalf("%+q unexpectedly succeeded: %q", req, line)
			}
		}
	}
	// A malformed request line with raw control bytes.
	if _, err := c.Write([]byte("FROB\x1b[2J \xff\u202e\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := br.ReadString('\n'); err != nil || !isASCIILine(line) || !strings.HasPrefix(line, "ERR bad-request ") {
		t.Errorf("malformed request answered %+q, %v", line, err)
	}
}

// TestClientEscapesServerText runs the client against a server that puts
// terminal controls in its file names and error text: nothing reaches the
// output unescaped.
func TestClientEscapesServerText(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			switch {
			case strings.HasPrefix(line, "LIST"):
				fmt.Fprintf(c, "OK 2\nf 1 0 %s\nd 0 0 %s\n", EncodePath("\x1b[2J\x1b]0;pwned\x07red"), EncodePath("evil\u202etxt.exe\r\nx"))
			default:
				c.Write([]byte("ERR not-\x1b[31mfound \x1b[2Jgone\u202eevil\rover\x9b1m\n"))
			}
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	addr := ln.Addr().String()
	clean := func(what, s string) {
		t.Helper()
		for _, r := range s {
			if r < 0x20 || r >= 0x7f && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 ||
				r == 0x200e || r == 0x200f || r == 0x061c || r == 0x2028 || r == 0x2029 || r == utf8.RuneError {
				t.Errorf("%s printed control characters: %q", what, s)
				return
			}
		}
	}
	code, out, errs := run(t, "ls", addr)
	if code != 0 {
		t.Fatalf("ls: exit %d, %q", code, errs)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		clean("ls", l)
	}
	if !strings.Contains(out, `\x1b[2J\x1b]0;pwned\x07red`) || !strings.Contains(out, `evil\u202etxt.exe\r\nx/`) {
		t.Errorf("ls output does not show the names escaped:\n%s", out)
	}
	code, _, errs = run(t, "sum", addr, "x")
	clean("sum's error", strings.TrimSuffix(errs, "\n"))
	if code != 1 || !strings.Contains(errs, `refused by the server: not-\x1b[31mfound: \x1b[2Jgone\u202eevil\rover\x9b1m`) {
		t.Errorf("sum: exit %d, %q", code, errs)
	}
	code, _, errs = run(t, "get", addr, "x", filepath.Join(t.TempDir(), "x"))
	clean("get's error", strings.TrimSuffix(errs, "\n"))
	if code != 1 {
		t.Errorf("get: exit %d, %q", code, errs)
	}
}
