package main

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Framer cuts a connection's byte stream into lines. A line ends at "\n"; a
// "\r" just before it is dropped. Bytes with no "\n" after them stay pending
// until the caller calls Flush, which it does when the sender pauses or goes
// away (see README.md, "Framing"). A line longer than the limit is discarded up
// to its end and reported as one TooLong frame, so the stream stays in step.
type Framer struct {
	max      int
	buf      []byte
	skipping bool // discarding the rest of an over-long line
}

// Frame is one line cut by a Framer. Line is only valid during the callback.
type Frame struct {
	Line    []byte
	TooLong bool
}

// NewFramer returns a Framer for lines of at most max bytes (not counting the
// line end).
func NewFramer(max int) *Framer { return &Framer{max: max} }

// Feed consumes p and calls emit for each line it completes.
func (f *Framer) Feed(p []byte, emit func(Frame)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.add(p)
			return
		}
		if len(f.buf) == 0 && !f.skipping {
			// The common case, a whole line inside one read: no copy.
			f.emit(p[:i], emit)
		} else {
			f.add(p[:i])
			f.end(emit)
		}
		p = p[i+1:]
	}
}

// Pending reports whether bytes of an unfinished line are held.
func (f *Framer) Pending() bool { return len(f.buf) > 0 || f.skipping }

// Flush ends the unfinished line, if any, as if a "\n" had come.
func (f *Framer) Flush(emit func(Frame)) {
	if f.Pending() {
		f.end(emit)
	}
}

func (f *Framer) add(p []byte) {
	if f.skipping {
		return
	}
	// One byte of slack for a "\r" that may precede the "\n".
	if len(f.buf)+len(p) > f.max+1 {
		f.skipping = true
		f.buf = f.buf[:0]
		return
	}
	f.buf = append(f.buf, p...)
}

func (f *Framer) end(emit func(Frame)) {
	if f.skipping {
		f.skipping = false
		f.buf = f.buf[:0]
		emit(Frame{TooLong: true})
		return
	}
	f.emit(f.buf, emit)
	f.buf = f.buf[:0]
}

func (f *Framer) emit(line []byte, emit func(Frame)) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > f.max {
		emit(Frame{TooLong: true})
		return
	}
	emit(Frame{Line: line})
}

// Kind is what a line is.
type Kind uint8

// The kinds of line.
const (
	KindEmpty   Kind = iota // blank: ignored, no reply
	KindText                // a message for the room
	KindCommand             // /name [arg]
	KindQuit                // /quit or the tutorial's bare "quit"
	KindBad                 // refused; Err says why
)

// Why a line is refused.
var (
	ErrTooLong = errors.New("it is longer than the line limit")
	ErrNotUTF8 = errors.New("it is not valid UTF-8")
)

// Message is a parsed line.
type Message struct {
	Kind Kind
	// Text is the message with control characters neutralised (KindText).
	Text string
	// Neutralised reports that Text differs from what was sent.
	Neutralised bool
	// Cmd is the lower-cased command name without its slash, Arg the rest of
	// the line, trimmed and neutralised (KindCommand).
	Cmd, Arg string
	// Err says why a KindBad line was refused.
	Err error
}

// Parse classifies one line. It never fails: a line it cannot accept is
// KindBad with the reason.
//
//   - an over-long line or one that is not UTF-8 is refused whole;
//   - a blank line is ignored;
//   - "quit" (the tutorial's) and "/quit" end the session;
//   - "/" followed by a letter starts a command; "//" sends a text that
//     starts with "/"; any other line is text.
func Parse(fr Frame) Message {
	line := fr.Line
	switch {
	case fr.TooLong:
		return Message{Kind: KindBad, Err: ErrTooLong}
	case !utf8.Valid(line):
		return Message{Kind: KindBad, Err: ErrNotUTF8}
	case len(bytes.TrimSpace(line)) == 0:
		return Message{Kind: KindEmpty}
	case string(line) == "quit":
		return Message{Kind: KindQuit}
	}
	if len(line) >= 2 && line[0] == '/' {
		if line[1] == '/' {
			line = line[1:]
		} else if isLetter(line[1]) {
			name, arg, _ := bytes.Cut(line[1:], []byte(" "))
			cmd := strings.ToLower(string(name))
			if cmd == "quit" {
				return Message{Kind: KindQuit}
			}
			a, _ := Neutralise(bytes.TrimSpace(arg))
			c, _ := Neutralise(name)
			if c != string(name) {
				cmd = c // an unknown command is quoted back: keep it harmless
			}
			return Message{Kind: KindCommand, Cmd: cmd, Arg: a}
		}
	}
	text, changed := Neutralise(line)
	return Message{Kind: KindText, Text: text, Neutralised: changed}
}

func isLetter(b byte) bool { return 'a' <= b|0x20 && b|0x20 <= 'z' }

// Neutralise makes s safe to print on someone else's terminal. C0 control
// characters (but TAB) and DEL are shown in caret notation (ESC is "^[", NUL
// "^@"), so an ANSI escape sequence arrives as harmless text; C1 controls,
// the Unicode bidirectional overrides and isolates and the line and paragraph
// separators become U+FFFD, as does any byte that is not UTF-8. It reports
// whether anything was replaced.
func Neutralise(s []byte) (string, bool) {
	clean := true
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		if unsafeRune(r, size) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return string(s), false
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r < 0x20 && r != '\t':
			b.WriteByte('^')
			b.WriteByte(byte(r) + 0x40)
		case r == 0x7f:
			b.WriteString("^?")
		case unsafeRune(r, size):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), true
}

func unsafeRune(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r < 0x20:
		return r != '\t'
	case r < 0x7f:
		return false
	case r <= 0x9f: // DEL and the C1 controls, CSI (U+009B) among them
		return true
	case 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069: // bidi overrides, isolates
		return true
	case r == 0x2028 || r == 0x2029: // line and paragraph separators
		return true
	}
	return false
}

// Nicknames: a letter, then letters, digits, "-" or "_"; at most 16 bytes.
// Names of the form guestN are reserved for the server to hand out.
var (
	nickRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,15}$`)
	guestRE = regexp.MustCompile(`(?i)^guest[0-9]+$`)
)

// validNick reports what is wrong with name as a nickname, or nil.
func validNick(name string) error {
	switch {
	case name == "":
		return errors.New("usage: /nick NAME")
	case !nickRE.MatchString(name):
		return fmt.Errorf("invalid nick %q: 1 to 16 letters, digits, - or _, starting with a letter", name)
	case guestRE.MatchString(name):
		return fmt.Errorf("invalid nick %q: guestN names are handed out by the server", name)
	}
	return nil
}
