package sdk_test

import (
	"bytes"
	"testing"

	"github.com/sockplay/sockplay/sdk"
)

func TestEscape(t *testing.T) {
	cases := []struct{ in, field, lines string }{
		{"plain text", "plain text", "plain text"},
		{"成功连接到服务器 Crème", "成功连接到服务器 Crème", "成功连接到服务器 Crème"},
		{"a\nb\tc", `a\nb\tc`, "a\nb\tc"},
		{"over\rwrite", `over\rwrite`, `over\rwrite`},
		{"\x1b]0;pwned\x07title", `\x1b]0;pwned\x07title`, `\x1b]0;pwned\x07title`},
		{"\x1b[2J", `\x1b[2J`, `\x1b[2J`},
		{"c1 \u009b31m", `c1 \u009b31m`, `c1 \u009b31m`},
		{"bidi \u202eevil\u2066", `bidi \u202eevil\u2066`, `bidi \u202eevil\u2066`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`, `bad \xff\xfe utf8`},
		{`back\slash`, `back\\slash`, `back\slash`},
		{"del\x7f", `del\x7f`, `del\x7f`},
		{"ls\u2028ps\u2029", `ls\u2028ps\u2029`, `ls\u2028ps\u2029`},
	}
	for _, c := range cases {
		if got := sdk.Escape(c.in); got != c.field {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.field)
		}
		if got := sdk.EscapeLines(c.in); got != c.lines {
			t.Errorf("EscapeLines(%q) = %q, want %q", c.in, got, c.lines)
		}
	}
}

// A multi-byte character cut between writes comes out whole; an escape
// sequence cut between writes is still escaped.
func TestTerminalWriter(t *testing.T) {
	var out bytes.Buffer
	w := sdk.NewTerminalWriter(&out)
	in := []byte("你好\x1b[31m red\n\xe4\xbd")
	for i := range in { // one byte at a time: the worst split
		if n, err := w.Write(in[i : i+1]); n != 1 || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "你好\\x1b[31m red\n\\xe4\\xbd"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}
