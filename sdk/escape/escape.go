// Package escape makes text a server or a client sent safe to print on a
// terminal: control characters, bidirectional overrides and bytes that are
// not UTF-8 become visible escapes (\n, \x1b, \u202e, \xff) instead of
// acting on the terminal. String and Lines escape a string, NewWriter a
// stream. A plugin's client prints what a server sent through it; the host
// (`sockplay trace`) prints what it traced through it. It imports nothing of
// the SDK.
package escape

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// String returns s with everything that could act on a terminal made
// visible, for printing a field a server sent (a file name, an error text):
// C0 controls and DEL as \n, \r, \t, \x1b ..., C1 controls and the Unicode
// bidirectional and line-separator controls as \u202e ..., a backslash as \\,
// and bytes that are not UTF-8 as \xff. Printable text, non-ASCII letters
// included, is unchanged. An escape sequence from a hostile server (a title
// change, a cursor move, a "Trojan Source" bidi override, CVE-2021-42574)
// then prints as text instead of being obeyed.
func String(s string) string { return escape(s, false) }

// Lines is String for text made of lines: LF and TAB stay as they are,
// so the text keeps its shape; a CR does not (it could overprint a line).
func Lines(s string) string { return escape(s, true) }

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

// Unsafe reports whether r is a non-ASCII code point that String escapes
// (see unsafeRune): for a writer that escapes in its own syntax, such as a
// JSON \uXXXX.
func Unsafe(r rune) bool { return unsafeRune(r) }

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
