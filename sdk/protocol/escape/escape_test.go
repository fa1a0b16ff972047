package escape_test

import (
	"testing"

	"github.com/sockplay/sockplay/sdk/protocol/escape"
)

func TestString(t *testing.T) {
	cases := []struct{ in, want, lines string }{
		{"hello", "hello", "hello"},
		{"a\r\nb\tc", `a\r\nb\tc`, "a\\r\nb\tc"},
		{"\x1b[31mred", `\x1b[31mred`, `\x1b[31mred`},
		{"back\\slash", `back\\slash`, `back\slash`},
		{"\xff\xfe", `\xff\xfe`, `\xff\xfe`},
		{"evil\u202ecod", `evil\u202ecod`, `evil\u202ecod`},
		{"成功", "成功", "成功"},
	}
	for _, c := range cases {
		if got := escape.String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := escape.Lines(c.in); got != c.lines {
			t.Errorf("Lines(%q) = %q, want %q", c.in, got, c.lines)
		}
	}
}
