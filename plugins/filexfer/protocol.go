package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The wire format is specified in PROTOCOL.md; this file is its parser and
// formatter, kept free of I/O so that it can be fuzzed.

// Verb names a request.
type Verb string

// The requests.
const (
	VerbList Verb = "LIST"
	VerbSum  Verb = "SUM"
	VerbGet  Verb = "GET"
	VerbPut  Verb = "PUT"
)

const (
	// MaxLine is the longest request or status line, newline included.
	MaxLine = 8 << 10
	// MaxPath is the longest path, in bytes after percent-decoding.
	MaxPath = 4096
	// sumLen is the length of a SHA-256 in hex.
	sumLen = 64
)

// Request is one parsed request line.
type Request struct {
	Verb Verb
	// Path is the decoded path, as the client sent it; CleanPath checks it.
	Path string
	// Offset is where a GET starts.
	Offset int64
	// Size and Sum are what a PUT announces: the whole file's length and its
	// SHA-256 in lower-case hex, or SumAfter.
	Size int64
	Sum  string
}

// SumAfter, in place of a PUT's SHA-256, says that the SHA-256 follows the
// data on a line of its own, so that the client can hash while it sends.
const SumAfter = "-"

// ErrBadRequest is the cause of every error ParseRequest returns.
var ErrBadRequest = errors.New("bad request")

// ParseRequest parses one request line, without its trailing newline (a
// trailing "\r" is tolerated). It is a pure function.
func ParseRequest(line string) (Request, error) {
	line = strings.TrimSuffix(line, "\r")
	if len(line) >= MaxLine {
		return Request{}, badRequest("line longer than %d bytes", MaxLine-1)
	}
	f := strings.Split(line, " ")
	var r Request
	r.Verb = Verb(f[0])
	want := map[Verb]int{VerbList: 2, VerbSum: 2, VerbGet: 3, VerbPut: 4}[r.Verb]
	if want == 0 {
		return Request{}, badRequest("unknown request %+q (want LIST, SUM, GET or PUT)", clip(f[0]))
	}
	if len(f) != want {
		return Request{}, badRequest("%s takes %d fields separated by single spaces, got %d", r.Verb, want-1, len(f)-1)
	}
	var err error
	switch r.Verb {
	case VerbGet:
		if r.Offset, err = parseSize(f[1], "offset"); err != nil {
			return Request{}, err
		}
	case VerbPut:
		if r.Size, err = parseSize(f[1], "size"); err != nil {
			return Request{}, err
		}
		if !isSum(f[2]) && f[2] != SumAfter {
			return Request{}, badRequest("sha256 %+q: want 64 lower-case hex digits, or - to send it after the data", clip(f[2]))
		}
		r.Sum = f[2]
	}
	if r.Path, err = DecodePath(f[len(f)-1]); err != nil {
		return Request{}, err
	}
	return r, nil
}

// String formats r as a request line, without the newline; ParseRequest
// reads it back to r.
func (r Request) String() string {
	p := EncodePath(r.Path)
	switch r.Verb {
	case VerbGet:
		return fmt.Sprintf("GET %d %s", r.Offset, p)
	case VerbPut:
		return fmt.Sprintf("PUT %d %s %s", r.Size, r.Sum, p)
	default:
		return string(r.Verb) + " " + p
	}
}

// parseSize parses a non-negative decimal int64 without sign or leading zeros.
func parseSize(s, what string) (int64, error) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, badRequest("%s %+q: want a decimal number", what, clip(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, badRequest("%s %+q: out of range", what, clip(s))
	}
	return n, nil
}

func isSum(s string) bool {
	if len(s) != sumLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// EncodePath percent-encodes every byte of p outside the printable ASCII range
// 0x21-0x7E, and "%" itself, so that a path is one field of a line.
func EncodePath(p string) string {
	if p == "" {
		return "."
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// DecodePath reverses EncodePath. It refuses an empty field, a raw byte
// EncodePath would have encoded, a malformed escape, a NUL byte and a path
// longer than MaxPath.
func DecodePath(s string) (string, error) {
	if s == "" {
		return "", badRequest("empty path (use . for the root)")
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", badRequest("path: truncated %%-escape")
			}
			v, err := hex.DecodeString(s[i+1 : i+3])
			if err != nil {
				return "", badRequest("path: bad %%-escape %+q", s[i:i+3])
			}
			c = v[0]
			i += 2
		case c <= ' ' || c >= 0x7f:
			return "", badRequest("path: byte 0x%02x must be %%-encoded", c)
		}
		if c == 0 {
			return "", badRequest("path: NUL byte")
		}
		b = append(b, c)
	}
	if len(b) > MaxPath {
		return "", badRequest("path longer than %d bytes", MaxPath)
	}
	return string(b), nil
}

// CleanPath turns a request's path into a name for os.Root: slash-separated,
// relative, without "." or empty elements, "." for the root itself. It
// refuses absolute paths, any ".." element, and the staging directory; os.Root
// then refuses symbolic links that lead outside.
func CleanPath(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		return "", &Error{Code: CodeForbidden, Msg: fmt.Sprintf("%+q is an absolute path; paths are relative to the served root", p)}
	}
	var parts []string
	for _, e := range strings.Split(p, "/") {
		switch e {
		case "", ".":
			continue
		case "..":
			return "", &Error{Code: CodeForbidden, Msg: fmt.Sprintf("%+q: \"..\" is not allowed; paths stay inside the served root", p)}
		}
		parts = append(parts, e)
	}
	if len(parts) == 0 {
		return ".", nil
	}
	if parts[0] == stagingDir {
		return "", &Error{Code: CodeForbidden, Msg: fmt.Sprintf("%+q: %s is the server's staging directory", p, stagingDir)}
	}
	return strings.Join(parts, "/"), nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Code is the machine-readable part of an ERR status line.
type Code string

// The error codes; PROTOCOL.md says when each is sent.
const (
	CodeBadRequest Code = "bad-request"
	CodeNotFound   Code = "not-found"
	CodeForbidden  Code = "forbidden"
	CodeNotFile    Code = "not-a-file"
	CodeNotDir     Code = "not-a-directory"
	CodeReadOnly   Code = "read-only"
	CodeTooLarge   Code = "too-large"
	CodeQuota      Code = "quota"
	CodeBusy       Code = "busy"
	CodeChecksum   Code = "checksum"
	CodeShort      Code = "short"
	CodeIO         Code = "io"
	CodeUnconfig   Code = "unconfigured"
)

// Error is a refusal: the server sends it as "ERR code message", the client
// returns it.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Msg }

// Is makes errors.Is(err, &Error{Code: c}) match any message with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

func badRequest(format string, args ...any) error {
	return &Error{Code: CodeBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// statusLine formats an ERR line (newline included): one line of ASCII, as
// PROTOCOL.md promises, whatever the message holds.
func (e *Error) statusLine() string {
	msg := asciiLine(e.Msg)
	if len(msg) > MaxLine-100 {
		msg = msg[:MaxLine-100]
	}
	return fmt.Sprintf("ERR %s %s\n", asciiLine(string(e.Code)), msg)
}

// ParseStatus reads a status line (without newline): the fields after "OK",
// or the *Error of an "ERR" line.
func ParseStatus(line string) ([]string, error) {
	line = strings.TrimSuffix(line, "\r")
	switch {
	case line == "OK":
		return nil, nil
	case strings.HasPrefix(line, "OK "):
		return strings.Split(line[3:], " "), nil
	case strings.HasPrefix(line, "ERR "):
		code, msg, _ := strings.Cut(line[4:], " ")
		return nil, &Error{Code: Code(code), Msg: msg}
	}
	return nil, fmt.Errorf("malformed status line %+q from server (is it a filexfer server in root mode?)", clip(line))
}

// Entry is one line of a LIST reply.
type Entry struct {
	Type  byte // 'f' regular file, 'd' directory, 'l' symbolic link, 'o' other
	Size  int64
	MTime int64 // Unix seconds
	Name  string
}

func (e Entry) String() string {
	return fmt.Sprintf("%c %d %d %s", e.Type, e.Size, e.MTime, EncodePath(e.Name))
}

// ParseEntry parses one LIST entry line.
func ParseEntry(line string) (Entry, error) {
	f := strings.Split(strings.TrimSuffix(line, "\r"), " ")
	if len(f) != 4 || len(f[0]) != 1 || !strings.Contains("fdlo", f[0]) {
		return Entry{}, fmt.Errorf("malformed listing line %+q", clip(line))
	}
	size, err := parseSize(f[1], "size")
	if err != nil {
		return Entry{}, err
	}
	mt, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return Entry{}, fmt.Errorf("malformed listing line %+q", clip(line))
	}
	name, err := DecodePath(f[3])
	if err != nil {
		return Entry{}, err
	}
	return Entry{Type: f[0][0], Size: size, MTime: mt, Name: name}, nil
}
