package main

import (
	"fmt"
	"strconv"
	"strings"
)

// Text that crosses the wire is made harmless at both ends. The server's
// status lines are ASCII (PROTOCOL.md), so a path it echoes back is quoted
// with quoteName; the client escapes whatever a server sent (file names, error
// text) with escape.String before it reaches a terminal, because the server may
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
