package escape_test

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sockplay/sockplay/sdk/escape"
)

// A field a server sent, such as a file name, printed on one line: an escape
// sequence in it shows as text instead of changing the terminal's title.
func ExampleString() {
	name := "report.txt\x1b]0;pwned\x07"
	fmt.Println("got", escape.String(name))
	// Output:
	// got report.txt\x1b]0;pwned\x07
}

// Text made of lines keeps its line feeds and tabs; a carriage return, which
// could overprint a line, does not.
func ExampleLines() {
	fmt.Println(escape.Lines("ok\tdone\nover\rwritten"))
	// Output:
	// ok	done
	// over\rwritten
}

// A client copies what the server sends straight to the terminal through a
// Writer; Close writes out what an unfinished UTF-8 sequence left.
func ExampleNewWriter() {
	w := escape.NewWriter(os.Stdout)
	_, _ = io.Copy(w, strings.NewReader("hello \u202eevil\n"))
	_ = w.Close()
	// Output:
	// hello \u202eevil
}
