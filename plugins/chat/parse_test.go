package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func frames(max int, chunks ...string) []Frame {
	f := NewFramer(max)
	var out []Frame
	emit := func(fr Frame) {
		fr.Line = bytes.Clone(fr.Line)
		out = append(out, fr)
	}
	for _, c := range chunks {
		f.Feed([]byte(c), emit)
	}
	f.Flush(emit)
	return out
}

func show(fs []Frame) string {
	var parts []string
	for _, f := range fs {
		if f.TooLong {
			parts = append(parts, "<too long>")
		} else {
			parts = append(parts, fmt.Sprintf("%q", f.Line))
		}
	}
	return strings.Join(parts, " ")
}

func TestFramer(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"one line", []string{"hi\n"}, `"hi"`},
		{"crlf", []string{"hi\r\n"}, `"hi"`},
		{"lone cr stays", []string{"a\rb\n"}, `"a\rb"`},
		{"no newline: flushed", []string{"hello"}, `"hello"`},
		{"split line", []string{"he", "l", "lo\nx"}, `"hello" "x"`},
		{"split crlf", []string{"a\r", "\nb\n"}, `"a" "b"`},
		{"empty lines", []string{"\n\n"}, `"" ""`},
		{"at the limit", []string{"12345678\n"}, `"12345678"`},
		{"at the limit with cr", []string{"12345678\r\n"}, `"12345678"`},
		{"over the limit", []string{"123456789\nok\n"}, `<too long> "ok"`},
		{"over the limit, split", []string{"12345", "6789", "abc\nok\n"}, `<too long> "ok"`},
		{"over the limit, flushed", []string{"1234567890"}, `<too long>`},
		{"cr over the limit", []string{"123456789\r\n"}, `<too long>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := show(frames(8, tt.chunks...)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Message
	}{
		{"hello", Message{Kind: KindText, Text: "hello"}},
		{"  spaced  ", Message{Kind: KindText, Text: "  spaced  "}},
		{"", Message{Kind: KindEmpty}},
		{" \t ", Message{Kind: KindEmpty}},
		{"quit", Message{Kind: KindQuit}},
		{"quit now", Message{Kind: KindText, Text: "quit now"}},
		{"QUIT", Message{Kind: KindText, Text: "QUIT"}},
		{"/quit", Message{Kind: KindQuit}},
		{"/Quit bye", Message{Kind: KindQuit}},
		{"/nick  Bob ", Message{Kind: KindCommand, Cmd: "nick", Arg: "Bob"}},
		{"/WHO", Message{Kind: KindCommand, Cmd: "who"}},
		{"//who", Message{Kind: KindText, Text: "/who"}},
		{"/", Message{Kind: KindText, Text: "/"}},
		{"/ 1", Message{Kind: KindText, Text: "/ 1"}},
		{"/1", Message{Kind: KindText, Text: "/1"}},
		{"tab\there", Message{Kind: KindText, Text: "tab\there"}},
		{"\x1b[2J", Message{Kind: KindText, Text: "^[[2J", Neutralised: true}},
		{"a\x00", Message{Kind: KindText, Text: "a^@", Neutralised: true}},
		{"del\x7f", Message{Kind: KindText, Text: "del^?", Neutralised: true}},
		{"c1\u0085", Message{Kind: KindText, Text: "c1\uFFFD", Neutralised: true}},
		{"\u2066iso\u2069", Message{Kind: KindText, Text: "\uFFFDiso\uFFFD", Neutralised: true}},
		{"日本語 ok", Message{Kind: KindText, Text: "日本語 ok"}},
		{"\xff", Message{Kind: KindBad, Err: ErrNotUTF8}},
		{"\xed\xa0\x80", Message{Kind: KindBad, Err: ErrNotUTF8}}, // a surrogate
		{"/nick a\x1bb", Message{Kind: KindCommand, Cmd: "nick", Arg: "a^[b"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got := Parse(Frame{Line: []byte(tt.in)})
			if got != tt.want {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
	if got := Parse(Frame{TooLong: true}); !errors.Is(got.Err, ErrTooLong) {
		t.Errorf("Parse(too long) = %+v", got)
	}
}

func TestNick(t *testing.T) {
	for _, name := range []string{"a", "Bob", "x-1_y", "abcdefghijklmnop", "guest", "guestA", "guests1"} {
		if err := validNick(name); err != nil {
			t.Errorf("validNick(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "1a", "-a", "a b", "abcdefghijklmnopq", "é", "a.b", "guest1", "GUEST22", "a\x00"} {
		if validNick(name) == nil {
			t.Errorf("validNick(%q) = nil, want an error", name)
		}
	}
}

// FuzzParse feeds arbitrary bytes through the framer, cut into reads at
// arbitrary points, and parses every line. Invariants: the cut points do not
// change the lines; no line is longer than the limit or holds a "\n"; what
// reaches the room is non-empty, valid UTF-8 and holds no control character
// a terminal would act on; and neutralising it again changes nothing.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"hello", "hello\n", "a\r\nb\nc", "/nick bob\n/who\n", "quit", "//x\n",
		"\x1b[31mred\x1b[0m\n", "a\x00b", "\xff\xfe\n", "\u202eevil\n", strings.Repeat("y", 80) + "\n",
	} {
		f.Add([]byte(seed), uint8(3))
	}
	const max = 64
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		whole := frames(max, string(data))
		var chunks []string
		n := int(step)%17 + 1
		for i := 0; i < len(data); i += n {
			chunks = append(chunks, string(data[i:min(i+n, len(data))]))
		}
		if a, b := show(whole), show(frames(max, chunks...)); a != b {
			t.Fatalf("cut every %d bytes: %s; whole: %s", n, b, a)
		}
		for _, fr := range whole {
			if len(fr.Line) > max || bytes.IndexByte(fr.Line, '\n') >= 0 {
				t.Fatalf("bad frame %q", fr.Line)
			}
			m := Parse(fr)
			switch m.Kind {
			case KindText:
				if strings.TrimSpace(m.Text) == "" || !utf8.ValidString(m.Text) {
					t.Fatalf("text %q from %q", m.Text, fr.Line)
				}
				for _, r := range m.Text {
					if unsafeRune(r, utf8.RuneLen(r)) || r == 0x1b {
						t.Fatalf("text %q from %q holds %U", m.Text, fr.Line, r)
					}
				}
				if again, changed := Neutralise([]byte(m.Text)); changed || again != m.Text {
					t.Fatalf("Neutralise is not idempotent on %q", m.Text)
				}
			case KindCommand:
				if m.Cmd == "" || !utf8.ValidString(m.Arg) {
					t.Fatalf("command %+v from %q", m, fr.Line)
				}
			case KindBad:
				if m.Err == nil {
					t.Fatalf("bad without a reason from %q", fr.Line)
				}
			}
		}
	})
}
