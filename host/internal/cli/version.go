package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// Version is the host's own version.
const Version = "0.2.0"

func init() { register(versionCommand) }

func versionCommand(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version, the VCS revision and the Go version",
		Long: `Version prints the host's version and the plugin protocol version it
speaks, then what the Go toolchain recorded when the binary was built
(debug.ReadBuildInfo): the VCS revision, its commit time and whether the
tree had uncommitted changes, and the Go version and platform.`,
		Example: "  sockplay version\n  sockplay --version",
		Args:    noArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprint(s.Out, versionString())
		},
	}
}

// versionString is what `sockplay version` and `--version` print.
func versionString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sockplay %s (plugin protocol %d)\n", Version, protocol.Version)
	rev, at, modified := "unknown", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	fmt.Fprintf(&b, "revision %s", rev)
	if at != "" {
		fmt.Fprintf(&b, ", committed %s", at)
	}
	if modified {
		b.WriteString(", with uncommitted changes")
	}
	fmt.Fprintf(&b, "\n%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}
