package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/devloop"
	"github.com/sockplay/sockplay/host/internal/scaffold"
)

func init() { register(devCommand) }

func devCommand(s Streams) *cobra.Command {
	cfg := config.Default()
	var listenAddr, sdk, level string
	cmd := &cobra.Command{
		Use:   "dev NAME|DIR",
		Short: "build a plugin, serve it, and rebuild and reload it on every save",
		Long: `Dev is the plugin author's loop in one command. It builds the plugin whose
source is in DIR (or ./NAME, ./plugins/NAME, ./examples/NAME: what 'sockplay
new NAME' made) into a plugin directory as sockplay-NAME, has a host serve
it, and then watches the source (Go files and go.mod, or Python files; not
tests): on every save it rebuilds, and if the build works the host replaces
the running process by the new one without refusing a client, while
connections already open finish on the old version. If the build fails it
prints the compiler's messages and the old version serves on.

If a host runs for --status-file, dev builds into that host's plugin
directory and has it reload the plugin (as 'sockplay reload NAME' does; a
plugin it did not serve is started). Otherwise dev runs a host itself, as
'sockplay serve --plugin-dir DIR --enable NAME', on the plugin's default
address or --listen, and SIGINT or SIGTERM stops it (open connections get
--drain-timeout); a second one stops at once. A Python plugin is built with
the checkout's sdk/python/build_plugin.py (--sdk, found as 'sockplay new'
finds it).`,
		Example: `  sockplay new shout && sockplay dev shout
  sockplay dev .                                   # in the plugin's directory
  sockplay dev ~/src/shout --plugin-dir ~/plugins --listen 127.0.0.1:9000`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("dev: want one NAME or DIR, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := sourceDir(args[0])
			if err != nil {
				return err
			}
			src, err := devloop.Detect(dir)
			if err != nil {
				return err
			}
			if cfg.PluginDir == "" {
				cfg.PluginDir = defaultPluginDir()
			}
			if cfg.PluginDir, err = filepath.Abs(cfg.PluginDir); err != nil {
				return err
			}
			// As serve's: a stalled reader costs lines, never the loop or
			// its host.
			out, errOut := newNonBlocking(s.Out), newNonBlocking(s.Err)
			defer out.Close(logFlushTimeout)
			defer errOut.Close(logFlushTimeout)
			log, err := newLogger(level, "text", true, errOut)
			if err != nil {
				return err
			}
			errOut.onDropped(func(n uint64) {
				log.Warn("the log output was blocked (nobody read it); lines dropped meanwhile", "dropped", n)
			})
			out.onDropped(func(n uint64) {
				log.Warn("the output was blocked (nobody read it); lines dropped meanwhile", "dropped", n)
			})
			defer captureStdLogs(log)()
			cfg.LogLevel = log.GetLevel()
			if err := cfg.Validate(); err != nil {
				return err
			}
			dc := devloop.Config{Source: src, Serve: cfg, Listen: listenAddr, Out: out, Log: log}
			if src.Lang == devloop.Python {
				wd, _ := os.Getwd()
				root := ""
				if sdk != "" {
					root, err = findSDK(sdk)
				} else {
					root, err = scaffold.FindSDK(defaultPluginDir(), wd, src.Dir)
				}
				if err != nil {
					return err
				}
				dc.PythonSDK = filepath.Join(root, "sdk", "python")
			}
			stop, now, release := stopContexts(cmd.Context())
			defer release()
			return devloop.Run(stop, dc, now)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&cfg.PluginDir, "plugin-dir", "", "build into and serve from `DIR` when no host runs (default: the sockplay binary's own directory)")
	fs.StringVar(&listenAddr, "listen", "", "serve the plugin on `HOST:PORT` when no host runs (default: the plugin's own address; port 0 picks a free one)")
	fs.StringVar(&cfg.StatusFile, "status-file", config.DefaultStatusFile(), "use the host that writes `FILE` if it runs; else run one that does")
	fs.StringVar(&cfg.Admin, "admin", cfg.Admin, "when no host runs, serve the admin endpoint (page, /metrics) of the one this command runs on `HOST:PORT` (loopback only; port 0 picks a free one); off disables it")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "give a replaced process's open connections, and on Ctrl-C every connection, up to `D` to finish")
	fs.StringVar(&sdk, "sdk", "", "build a Python plugin with the SDK of the sockplay checkout in `DIR` (default: found as 'sockplay new' finds it)")
	fs.StringVar(&level, "log-level", "info", "the host's log `LEVEL`: trace, debug, info, warn or error")
	return cmd
}

// sourceDir resolves dev's argument: a directory, or the NAME of one in the
// working directory, in plugins/ or in examples/.
func sourceDir(arg string) (string, error) {
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		return arg, nil
	}
	if scaffold.CheckName(arg) == nil {
		for _, d := range []string{arg, filepath.Join("plugins", arg), filepath.Join("examples", arg)} {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("dev %s: no such directory, nor ./%s, ./plugins/%s or ./examples/%s (want a plugin's source directory, as 'sockplay new' makes it)", arg, arg, arg, arg)
}
