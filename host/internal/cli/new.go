package cli

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/scaffold"
)

func init() { register(newCommand) }

func newCommand(s Streams) *cobra.Command {
	var dir, lang, sdk string
	var udp bool
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "write a new plugin, ready to test, build and serve",
		Long: `New writes a plugin named NAME in a directory of its own (--dir, by default
./NAME), ready to run:

  main.go        at most 30 lines: a TCP plugin that answers each line it
                 reads with "you said: ..." (--udp: each datagram)
  main_test.go   its unit test (sdk/sdktest: a real loopback socket, no host)
  README.md      what to do next
  go.mod/go.sum  module sockplay-NAME; a replace directive takes the SDK's
                 module from your sockplay checkout (its sdk/ directory),
                 and the SDK's go.sum covers the rest, so 'go test' needs
                 no network

--lang python writes plugin.py, test_plugin.py (unittest with
sockplay.testing) and README.md instead.

The checkout is found from the sockplay binary's directory upwards (bin/ of
a checkout), then from the working directory: the first go.mod of module
github.com/sockplay/sockplay. --sdk names it.

NAME is lower case letters, digits and dashes, starting with a letter. A bad
NAME or a --dir that exists is one error line, and nothing is written. Then
it prints the next commands: go test, and 'sockplay dev', which builds
sockplay-NAME into the host's plugin directory, serves it, and rebuilds and
reloads it on every save.`,
		Example: `  sockplay new shout && cd shout && go test ./... && sockplay dev .
  sockplay new ticker --udp --dir ~/src/ticker
  sockplay new pyshout --lang python`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("new: want one NAME, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := scaffold.CheckName(name); err != nil {
				return UsageError{err}
			}
			if lang != scaffold.Go && lang != scaffold.Python {
				return usagef("--lang %q: want go or python", lang)
			}
			if dir == "" {
				dir = name
			}
			root, err := findSDK(sdk)
			if err != nil {
				return err
			}
			files, err := scaffold.Write(scaffold.Options{Name: name, Dir: dir, UDP: udp, Lang: lang, SDK: root})
			if err != nil {
				return err
			}
			return printNext(s, name, dir, root, lang, udp, files)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&udp, "udp", false, "write a UDP plugin, which answers each datagram (default: TCP, each line)")
	fs.StringVar(&dir, "dir", "", "create the plugin in `DIR`, which must not exist (default: ./NAME)")
	fs.StringVar(&lang, "lang", scaffold.Go, "the plugin's language, `LANG`: go or python")
	fs.StringVar(&sdk, "sdk", "", "take the SDK from the sockplay checkout in `DIR` (default: the checkout above the sockplay binary, or above the working directory)")
	return cmd
}

// findSDK returns the checkout named by --sdk, or the one found.
func findSDK(flag string) (string, error) {
	if flag != "" {
		abs, err := filepath.Abs(flag)
		if err != nil {
			return "", err
		}
		return abs, scaffold.CheckSDK(abs)
	}
	wd, _ := os.Getwd()
	return scaffold.FindSDK(defaultPluginDir(), wd)
}

func printNext(s Streams, name, dir, sdk, lang string, udp bool, files []string) error {
	port := scaffold.Port(name)
	client := fmt.Sprintf("echo hello | nc -N 127.0.0.1 %d", port)
	if udp {
		client = fmt.Sprintf("echo hello | nc -u -w 1 127.0.0.1 %d", port)
	}
	test := [2]string{"go test ./...", "the handler on a loopback socket; no network needed"}
	if lang == scaffold.Python {
		test = [2]string{"/usr/bin/python3 -m unittest", "the handler on a loopback socket"}
	}
	steps := [][2]string{
		{"cd " + shellQuote(dir), ""},
		test,
		{sockplayCommand() + " dev .", "build sockplay-" + name + " into the host's plugin directory, serve it, rebuild and reload it on every save"},
		{client, "in another terminal"},
	}
	width := 0
	for _, st := range steps {
		width = max(width, len(st[0]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "created %s: %s\nthe SDK comes from %s\n\nnext:\n", dir, strings.Join(files, " "), sdk)
	for _, st := range steps {
		if st[1] == "" {
			fmt.Fprintf(&b, "  %s\n", st[0])
		} else {
			fmt.Fprintf(&b, "  %-*s   # %s\n", width, st[0], st[1])
		}
	}
	_, err := io.WriteString(s.Out, b.String())
	return err
}

// sockplayCommand is how the user runs this sockplay: its name if $PATH
// finds this very binary, else its path.
func sockplayCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "sockplay"
	}
	if found, err := exec.LookPath("sockplay"); err == nil {
		a, errA := filepath.EvalSymlinks(found)
		b, errB := filepath.EvalSymlinks(exe)
		if errA == nil && errB == nil && a == b {
			return "sockplay"
		}
	}
	return shellQuote(exe)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
