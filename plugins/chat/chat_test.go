//go:build unix

package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk/sdktest"
)

// TestTutorialClient behaves exactly like the tutorial's chat client: it
// sends a message with no newline, reads at most 1024 bytes once, and
// expects its own message there; at the end it sends quit.
func TestTutorialClient(t *testing.T) {
	tests := []struct {
		name   string
		opts   map[string]string
		others int // peers already in the room, who talk before it joins
	}{
		{name: "alone"},
		{name: "others in the room", others: 3},
		{name: "history on", opts: map[string]string{"history": "5"}, others: 2},
		{name: "linewait 0", opts: map[string]string{"linewait": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := start(t, tt.opts)
			var others []*peer
			for i := range tt.others {
				p := named(t, in, fmt.Sprintf("p%d", i))
				p.send("hi all")
				p.expect(fmt.Sprintf("p%d: hi all", i))
				others = append(others, p)
			}
			// Every earlier peer has joined (named waits for the reply), so
			// this one is the next guest.
			self := fmt.Sprintf("guest%d", tt.others+1)

			c := in.Dial(t)
			buf := make([]byte, 1024)
			for _, msg := range []string{"hello", "你好，服务器", "third message"} {
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatalf("send %q: %v", msg, err)
				}
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("recv after %q: %v", msg, err)
				}
				if want := self + ": " + msg + "\n"; string(buf[:n]) != want {
					t.Fatalf("recv after %q = %q, want %q", msg, buf[:n], want)
				}
				for _, p := range others {
					p.expect(self + ": " + msg)
				}
			}
			if _, err := c.Write([]byte("quit")); err != nil {
				t.Fatalf("send quit: %v", err)
			}
			n, _ := c.Read(buf)
			if got := string(buf[:n]); got != "*** bye\n" {
				t.Errorf("reply to quit = %q, want %q", got, "*** bye\n")
			}
			if n, err := c.Read(buf); err == nil {
				t.Errorf("after quit the connection is still open: read %q", buf[:n])
			}
			for _, p := range others {
				p.expect("*** " + self + " left")
			}
		})
	}
}

func TestFraming(t *testing.T) {
	tests := []struct {
		name   string
		opts   map[string]string
		writes []string // written with a pause of pause between them
		pause  time.Duration
		want   []string // the lines the other peer sees, in order
	}{
		{name: "lines in one write", writes: []string{"a\nb\r\nc\n"}, want: []string{"x: a", "x: b", "x: c"}},
		{name: "no newline: a pause ends the line", writes: []string{"hello"}, want: []string{"x: hello"}},
		{name: "last line without newline", writes: []string{"a\nb"}, want: []string{"x: a", "x: b"}},
		{name: "one line in two writes", opts: map[string]string{"linewait": "2s"},
			writes: []string{"hel", "lo\n"}, pause: 50 * time.Millisecond, want: []string{"x: hello"}},
		{name: "linewait 0: a read ends the line", opts: map[string]string{"linewait": "0"},
			writes: []string{"hel", "lo"}, pause: 200 * time.Millisecond, want: []string{"x: hel", "x: lo"}},
		{name: "blank lines are ignored", writes: []string{"\n  \n\t\r\nend\n"}, want: []string{"x: end"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := start(t, tt.opts)
			x, y := named(t, in, "x"), named(t, in, "y")
			for i, w := range tt.writes {
				if i > 0 {
					time.Sleep(tt.pause) // the stimulus: a sender that pauses
				}
				if _, err := x.c.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			x.expect(tt.want[len(tt.want)-1])
			x.send("/who") // a marker: nothing the room sees comes after it
			x.expect("2 here")
			y.send("/who")
			var got []string
			for l := y.line(); !strings.Contains(l, "2 here"); l = y.line() {
				got = append(got, l)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("the room saw %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name string
		send string
		// wait, if set, is read by the sender before it sends its next line:
		// a line without a newline would otherwise swallow it.
		wait   string
		self   []string // what the sender gets before its next message
		others []string // what the room gets before the sender's next message
	}{
		{name: "line over the limit", send: long + "\n",
			self: []string{"*** your message was not sent: it is longer than 4096 bytes"}},
		{name: "line over the limit in pieces", send: long[:3000] + long[:3000] + "\n",
			self: []string{"*** your message was not sent: it is longer than 4096 bytes"}},
		{name: "line over the limit, no newline", send: long, wait: "longer than 4096",
			self: []string{"*** your message was not sent: it is longer than 4096 bytes"}},
		{name: "line at the limit", send: long[:4096] + "\r\n",
			self: []string{"x: " + long[:4096]}, others: []string{"x: " + long[:4096]}},
		{name: "invalid UTF-8", send: "ab\xff\xfecd\n",
			self: []string{"*** your message was not sent: it is not valid UTF-8"}},
		{name: "truncated UTF-8", send: "caf\xc3\n",
			self: []string{"*** your message was not sent: it is not valid UTF-8"}},
		{name: "ANSI escapes and BEL", send: "\x1b[31mred\x1b[0m \x07bell\x1b]0;title\x07\n",
			self: []string{"x: ^[[31mred^[[0m ^Gbell^[]0;title^G",
				"*** control characters in your message were made harmless (^[ is ESC, ^@ is NUL)"},
			others: []string{"x: ^[[31mred^[[0m ^Gbell^[]0;title^G"}},
		{name: "NUL bytes", send: "a\x00b\x00\n",
			self:   []string{"x: a^@b^@", "*** control characters in your message were made harmless (^[ is ESC, ^@ is NUL)"},
			others: []string{"x: a^@b^@"}},
		{name: "C1 CSI, DEL and bidi override", send: "a\u009b31mb\x7f \u202eevil\u2028\n",
			self:   []string{"x: a\uFFFD31mb^? \uFFFDevil\uFFFD", "*** control characters in your message were made harmless (^[ is ESC, ^@ is NUL)"},
			others: []string{"x: a\uFFFD31mb^? \uFFFDevil\uFFFD"}},
		{name: "carriage return inside a line", send: "over\rwrite\n",
			self:   []string{"x: over^Mwrite", "*** control characters in your message were made harmless (^[ is ESC, ^@ is NUL)"},
			others: []string{"x: over^Mwrite"}},
		{name: "nick taken", send: "/nick Y\n", self: []string{"*** nick Y is taken"}},
		{name: "nick invalid", send: "/nick 9lives\n",
			self: []string{`*** invalid nick "9lives": 1 to 16 letters, digits, - or _, starting with a letter`}},
		{name: "nick too long", send: "/nick abcdefghijklmnopq\n",
			self: []string{`*** invalid nick "abcdefghijklmnopq": 1 to 16 letters, digits, - or _, starting with a letter`}},
		{name: "nick with escape", send: "/nick a\x1b[2J\n",
			self: []string{`*** invalid nick "a^[[2J": 1 to 16 letters, digits, - or _, starting with a letter`}},
		{name: "nick reserved", send: "/nick guest7\n",
			self: []string{`*** invalid nick "guest7": guestN names are handed out by the server`}},
		{name: "nick missing", send: "/nick\n", self: []string{"*** usage: /nick NAME"}},
		{name: "unknown command", send: "/frob \x1b[1m\n", self: []string{`*** unknown command "/frob"; /help lists them`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := start(t, map[string]string{"linewait": "300ms"})
			x, y := named(t, in, "x"), named(t, in, "y")
			x.sync()
			if _, err := x.c.Write([]byte(tt.send)); err != nil {
				t.Fatal(err)
			}
			var self []string
			if tt.wait != "" {
				l, skipped := x.expect(tt.wait)
				self = append(skipped, l)
			}
			x.send("after")
			_, skipped := x.expect("x: after")
			self = append(self, skipped...)
			if strings.Join(self, "|") != strings.Join(tt.self, "|") {
				t.Errorf("the sender got %q, want %q", self, tt.self)
			}
			_, others := y.expect("x: after")
			if strings.Join(others, "|") != strings.Join(tt.others, "|") {
				t.Errorf("the room got %q, want %q", others, tt.others)
			}
		})
	}

	t.Run("disconnect mid-line", func(t *testing.T) {
		in := start(t, map[string]string{"linewait": "5s"})
		y := named(t, in, "y")
		z := named(t, in, "z")
		y.sync()
		if _, err := z.c.Write([]byte("one\ntwo, and go")); err != nil {
			t.Fatal(err)
		}
		z.c.Close()
		// The bytes sent before closing are a line: the tutorial's framing.
		for _, want := range []string{"z: one", "z: two, and go", "*** z left"} {
			if l := y.line(); l != want {
				t.Fatalf("got %q, want %q", l, want)
			}
		}
		y.send("still here")
		y.expect("y: still here")
	})
}

func TestCommands(t *testing.T) {
	in := start(t, map[string]string{"history": "2", "room": "den"})
	b := named(t, in, "b")
	a := join(t, in, 10*time.Second)
	b.expect("*** guest2 joined")

	steps := []struct {
		name    string
		who     *peer
		send    string
		self    []string // lines the sender reads next, in order
		others  []string // lines the other one reads next
		nothing bool     // the other one gets nothing
	}{
		{name: "first command brings the welcome", who: a, send: "/who",
			self: []string{"*** 2 here: b, guest2", "*** welcome to den, guest2: 2 here; /help lists the commands"}, nothing: true},
		{name: "nick", who: a, send: "/nick Alice",
			self: []string{"*** guest2 is now known as Alice"}, others: []string{"*** guest2 is now known as Alice"}},
		{name: "nick to the same", who: a, send: "/nick Alice", self: []string{"*** you are already Alice"}, nothing: true},
		{name: "nick case change", who: a, send: "/nick alice",
			self: []string{"*** Alice is now known as alice"}, others: []string{"*** Alice is now known as alice"}},
		{name: "nick taken, other case", who: b, send: "/NICK ALICE", self: []string{"*** nick ALICE is taken"}, nothing: true},
		{name: "who", who: b, send: "/who", self: []string{"*** 2 here: alice, b"}, nothing: true},
		{name: "slash escape", who: a, send: "//me waves", self: []string{"alice: /me waves"}, others: []string{"alice: /me waves"}},
		{name: "not a command", who: a, send: "/:) ", self: []string{"alice: /:) "}, others: []string{"alice: /:) "}},
		{name: "help", who: b, send: "/help", self: strings.Split("*** "+strings.ReplaceAll(help, "\n", "\n*** "), "\n"), nothing: true},
		{name: "say", who: b, send: "third", self: []string{"b: third"}, others: []string{"b: third"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			other := a
			if st.who == a {
				other = b
			}
			st.who.send(st.send)
			for _, want := range st.self {
				if got := st.who.line(); got != want {
					t.Fatalf("sender got %q, want %q", got, want)
				}
			}
			for _, want := range st.others {
				if got := other.line(); got != want {
					t.Fatalf("other got %q, want %q", got, want)
				}
			}
			if st.nothing {
				// A marker from the other side: it must be the next line.
				other.send("/who")
				if l := other.line(); !strings.Contains(l, "2 here") {
					t.Fatalf("other got %q, want nothing before its /who reply", l)
				}
			}
		})
	}

	t.Run("newcomer", func(t *testing.T) {
		c := join(t, in, 10*time.Second)
		for _, p := range []*peer{a, b} {
			p.expect("*** guest3 joined")
		}
		c.send("/who")
		for _, want := range []string{
			"*** 3 here: alice, b, guest3",
			"*** welcome to den, guest3: 3 here; /help lists the commands",
			"*** the last 2 messages before you came:",
			"alice: /:) ",
			"b: third",
			"*** end of history",
		} {
			if got := c.line(); got != want {
				t.Fatalf("newcomer got %q, want %q", got, want)
			}
		}
		c.send("/quit")
		lines, err := c.closed()
		if err != nil || strings.Join(lines, "|") != "*** bye" {
			t.Errorf("after /quit: %q, %v; want [*** bye] and EOF", lines, err)
		}
		a.expect("*** guest3 left")
	})
}

func TestDrain(t *testing.T) {
	in := start(t, nil)
	peers := []*peer{named(t, in, "a"), named(t, in, "b"), join(t, in, 10*time.Second)}
	peers[2].send("/who")
	peers[2].expect("welcome")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- in.Server.Shutdown(ctx) }()
	for i, p := range peers {
		lines, err := p.closed()
		// Leave notices from the others are not sent during a drain.
		if err != nil || len(lines) == 0 || lines[len(lines)-1] != "*** the server is shutting down" {
			t.Errorf("peer %d got %q, %v; want the shutdown notice, then EOF", i, lines, err)
		}
		for _, l := range lines {
			if strings.HasSuffix(l, " left") {
				t.Errorf("peer %d got a leave notice during the drain: %q", i, l)
			}
		}
	}
	if err := <-shutdown; err != nil || in.Server.Stats().Forced != 0 {
		t.Errorf("Shutdown: %v; it had to close %d connections, want 0", err, in.Server.Stats().Forced)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		opts map[string]string
		want string // part of the error; "" for none
	}{
		{opts: nil},
		{opts: map[string]string{"history": "100", "sendq": "16768", "linewait": "0", "stall": "50ms"}},
		{opts: map[string]string{"floodrate": "0", "floodburst": "1"}},
		{opts: map[string]string{"floodrate": "0.5", "floodburst": "5"}},
		{opts: map[string]string{"queue": "256"}, want: "queue"}, // the option sendq replaced
		{opts: map[string]string{"sendq": "1000"}, want: "chat.sendq"},
		{opts: map[string]string{"sendq": "1M"}, want: "chat.sendq"},
		{opts: map[string]string{"sendq": "65536", "maxline": "65536"}, want: "4 times chat.maxline"},
		{opts: map[string]string{"floodrate": "-1"}, want: "chat.floodrate"},
		{opts: map[string]string{"floodrate": "fast"}, want: "chat.floodrate"},
		{opts: map[string]string{"floodrate": "NaN"}, want: "chat.floodrate"},
		{opts: map[string]string{"floodrate": "Inf"}, want: "chat.floodrate"},
		{opts: map[string]string{"floodburst": "0"}, want: "chat.floodburst"},
		{opts: map[string]string{"maxline": "10"}, want: "chat.maxline"},
		{opts: map[string]string{"history": "-1"}, want: "chat.history"},
		{opts: map[string]string{"stall": "soon"}, want: "chat.stall"},
		{opts: map[string]string{"linewait": "10s"}, want: "chat.linewait"},
		{opts: map[string]string{"room": ""}, want: "chat.room"},
		{opts: map[string]string{"colour": "red"}, want: "colour"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.opts), func(t *testing.T) {
			err := sdktest.Configure(t, Plugin(), tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error = %v, want one naming %s", err, tt.want)
			}
		})
	}
}
