package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text that crosses the wire is made harmless at both ends. The server's
// status lines are ASCII (PROTOCOL.md), so a path it echoes back is quoted
// with quoteName; the client escapes whatever a server sent (file names, error
// text) with printable before it reaches a terminal, because the server may
// not be this one.

// quoteName returns name as it appears in a server message: unchanged when it
// is printable ASCII without spaces or quotes, else Go-quoted with every
// non-ASCII rune escaped ("caf\u00e9", "a\x1b[2Jb").
func quoteName(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.QuoteToASCII(name)
		}
	}
	if name == "" {
		return `""`
	}
	return name
}

// asciiLine makes s fit on one ASCII line: every byte outside printable ASCII
// (0x20-0x7E), line breaks included, becomes \xNN. Messages quote names with
// quoteName, so this only ever catches text that did not come through it.
func asciiLine(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, `\x%02x`, c)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// printable makes text a server sent safe to print on a terminal: C0
// controls (ESC, CR and LF among them, and TAB), DEL, the C1 controls, the
// Unicode bidirectional marks, embeddings, overrides and isolates, the line
// and paragraph separators, and bytes that are not UTF-8 are shown as \xNN or
// \uNNNN escapes. Every other character, in any script, is kept.
func printable(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports whether r can move the cursor, change the terminal's
// state or reorder the text around it.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f: // C0, DEL, C1 (CSI is U+009B)
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // Arabic letter mark, LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // embeddings, overrides, isolates
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	}
	return false
}
