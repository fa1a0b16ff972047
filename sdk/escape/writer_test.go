package escape_test

import (
	"bytes"
	"testing"

	"github.com/sockplay/sockplay/sdk/escape"
)

// A multi-byte character cut between writes comes out whole; an escape
// sequence cut between writes is still escaped.
func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := escape.NewWriter(&out)
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
