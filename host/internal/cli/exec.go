package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/sdk/cmdline"
)

// pluginCommand reports whether args start with a plugin's name rather than
// one of sockplay's commands, and where that plugin's binary is, searching
// the default plugin directory, then $PATH (as git and kubectl find theirs).
func pluginCommand(root *cobra.Command, args []string) (string, bool) {
	if len(args) == 0 || len(args[0]) == 0 || args[0][0] == '-' {
		return "", false
	}
	if cmd, _, err := root.Find(args); err == nil && cmd != root {
		return "", false
	}
	if args[0] == "help" || args[0] == "completion" || args[0] == "__complete" {
		return "", false
	}
	e, err := catalog.Lookup(args[0], []string{defaultPluginDir()}, os.Getenv("PATH"))
	if err != nil {
		return "", false
	}
	return e.Path, true
}

// runPlugin runs a plugin binary by hand with args. With the process's own
// streams it replaces sockplay (exec), so that the plugin owns the terminal,
// its signals and its exit status; otherwise (a test) it runs it as a child.
func runPlugin(ctx context.Context, path string, args []string, s Streams) int {
	if s.In == os.Stdin && s.Out == os.Stdout && s.Err == os.Stderr {
		err := syscall.Exec(path, append([]string{path}, args...), os.Environ())
		fmt.Fprintf(s.Err, "sockplay: run %s: %v\n", path, err)
		return cmdline.ExitError
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.In, s.Out, s.Err
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return cmdline.ExitOK
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	}
	fmt.Fprintf(s.Err, "sockplay: run %s: %v\n", path, err)
	return cmdline.ExitError
}
