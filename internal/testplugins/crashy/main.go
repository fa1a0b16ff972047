// Command sockplay-crashy is a test plugin that exits at once on start, with
// a message of its own on stderr.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "crashy: refusing to start: no configuration for the flux capacitor")
	os.Exit(3)
}
