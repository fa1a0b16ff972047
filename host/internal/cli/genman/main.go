// Command genman writes the sockplay man pages (one per command, section 1)
// into a directory: `make man` runs it. The pages come from the same cobra
// command tree as --help, through cobra/doc.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra/doc"

	"github.com/sockplay/sockplay/host/internal/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genman DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "genman: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := cli.New(cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	root.DisableAutoGenTag = true // the same pages from the same source, whenever made
	header := &doc.GenManHeader{Title: "SOCKPLAY", Section: "1", Source: "sockplay " + cli.Version, Manual: "sockplay manual"}
	return doc.GenManTree(root, header, dir)
}
