package sdk

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Escape returns s with everything that could act on a terminal made
// visible, for printing a field a server sent (a file name, an error text):
// C0 controls and DEL as \n, \r, \t, \x1b ..., C1 controls and the Unicode
// bidirectional and line-separator controls as \u202e ..., a backslash as \\,
// and bytes that are not UTF-8 as \xff. Printable text, non-ASCII letters
// included, is unchanged. An escape sequence from a hostile server (a title
// change, a cursor move, a "Trojan Source" bidi override, CVE-2021-42574)
// then prints as text instead of being obeyed.
func Escape(s string) string { return escape(s, false) }

// EscapeLines is Escape for text made of lines: LF and TAB stay as they are,
// so the text keeps its shape; a CR does not (it could overprint a line).
func EscapeLines(s string) string { return escape(s, true) }

func escape(s string, lines bool) string {
	if !needsEscape(s, lines) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case lines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string, lines bool) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == '\\' && !lines:
			return true
		case lines && (r == '\n' || r == '\t'):
		case r < 0x20 || r == 0x7f || unsafeRune(r):
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports the non-ASCII code points that act on a terminal or on
// the order text is shown in: C1 controls (U+0080-U+009F, among them CSI),
// the bidi embeddings, overrides and isolates (U+202A-U+202E,
// U+2066-U+2069), the marks U+200E, U+200F and U+061C, and the line and
// paragraph separators U+2028 and U+2029.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f,
		r >= 0x202a && r <= 0x202e,
		r >= 0x2066 && r <= 0x2069,
		r == 0x200e, r == 0x200f, r == 0x061c,
		r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

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
