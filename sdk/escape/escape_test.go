package escape_test

import (
	"testing"

	"github.com/sockplay/sockplay/sdk/escape"
)

func TestString(t *testing.T) {
	cases := []struct{ in, field, lines string }{
		{"plain text", "plain text", "plain text"},
		{"成功连接到服务器 Crème", "成功连接到服务器 Crème", "成功连接到服务器 Crème"},
		{"a\nb\tc", `a\nb\tc`, "a\nb\tc"},
		{"a\r\nb", `a\r\nb`, "a\\r\nb"},
		{"over\rwrite", `over\rwrite`, `over\rwrite`},
		{"\x1b]0;pwned\x07title", `\x1b]0;pwned\x07title`, `\x1b]0;pwned\x07title`},
		{"\x1b[2J", `\x1b[2J`, `\x1b[2J`},
		{"c1 \u009b31m", `c1 \u009b31m`, `c1 \u009b31m`},
		{"bidi \u202eevil\u2066", `bidi \u202eevil\u2066`, `bidi \u202eevil\u2066`},
		{"marks \u200e\u200f\u061c", `marks \u200e\u200f\u061c`, `marks \u200e\u200f\u061c`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`, `bad \xff\xfe utf8`},
		{`back\slash`, `back\\slash`, `back\slash`},
		{"del\x7f", `del\x7f`, `del\x7f`},
		{"ls\u2028ps\u2029", `ls\u2028ps\u2029`, `ls\u2028ps\u2029`},
	}
	for _, c := range cases {
		if got := escape.String(c.in); got != c.field {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.field)
		}
		if got := escape.Lines(c.in); got != c.lines {
			t.Errorf("Lines(%q) = %q, want %q", c.in, got, c.lines)
		}
	}
}
