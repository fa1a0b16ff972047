package sdk

import (
	"io"
	"unicode/utf8"

	"github.com/sockplay/sockplay/sdk/protocol/escape"
)

// Escape returns s with everything that could act on a terminal made
// visible, for printing a field a server sent (a file name, an error text):
// C0 controls and DEL as \n, \r, \t, \x1b ..., C1 controls and the Unicode
// bidirectional and line-separator controls as \u202e ..., a backslash as \\,
// and bytes that are not UTF-8 as \xff. Printable text, non-ASCII letters
// included, is unchanged. An escape sequence from a hostile server (a title
// change, a cursor move, a "Trojan Source" bidi override, CVE-2021-42574)
// then prints as text instead of being obeyed. (It is
// sdk/protocol/escape.String, which the host shares.)
func Escape(s string) string { return escape.String(s) }

// EscapeLines is Escape for text made of lines: LF and TAB stay as they are,
// so the text keeps its shape; a CR does not (it could overprint a line).
func EscapeLines(s string) string { return escape.Lines(s) }

// NewTerminalWriter returns a writer that passes text to w with EscapeLines
// applied, for copying what a server sends straight to a terminal. A UTF-8
// sequence cut between two writes is kept until the next write completes it;
// Close writes out (escaped) what is left, and does not close w.
func NewTerminalWriter(w io.Writer) io.WriteCloser { return &termWriter{w: w} }

type termWriter struct {
	w    io.Writer
	tail []byte // an incomplete UTF-8 sequence from the last write
}

func (t *termWriter) Write(p []byte) (int, error) {
	buf := append(t.tail, p...)
	t.tail = nil
	// Keep back at most utf8.UTFMax-1 bytes of an unfinished sequence.
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	t.tail = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(t.w, EscapeLines(string(buf[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *termWriter) Close() error {
	if len(t.tail) == 0 {
		return nil
	}
	_, err := io.WriteString(t.w, EscapeLines(string(t.tail)))
	t.tail = nil
	return err
}
