// Package cmdline holds the conventions every sockplay command line shares,
// the host's (`sockplay`) and each plugin binary's run by hand
// (`sockplay-NAME`, package sdk/client): the exit statuses, and the
// single-dash spellings of --help and --version. It imports nothing of the
// SDK, so the host uses it too.
package cmdline

// Exit statuses: 0 for success, 1 for an error, 2 for a usage error (a
// command line written wrong), as the BSD and GNU tools have it.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// NormalizeArgs returns a copy of args in which every argument that is
// exactly -help or -version, the single-dash spellings Go's flag package
// taught people, is --help or --version. The others are unchanged.
func NormalizeArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch a {
		case "-help":
			a = "--help"
		case "-version":
			a = "--version"
		}
		out[i] = a
	}
	return out
}
