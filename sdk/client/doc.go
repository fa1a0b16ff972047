// Package client is the command-line kit of a plugin binary run by hand:
// `sockplay-NAME COMMAND [flags] [ARGS]` is the protocol's client, as
// `sockplay-chat connect` is chat's. A plugin lists its Commands in
// sdk.Plugin; sdk.Main runs them through Run when no host started the binary.
//
// Run gives every program the same shape: --help (also -h, -help and help)
// on the program and on each command, --version (also -version and
// version), flags anywhere on the line (spf13/pflag, through cobra), one
// error line on stderr, and the exit statuses of package sdk/cmdline: 0, 1
// for an error, 2 for a usage error (a Command's Run returns ErrUsage for
// one). Dial connects to the server with a bounded wait, closed when the
// context is cancelled (Ctrl-C).
//
// Print what a server sent through package sdk/escape, so that a hostile
// server cannot drive the terminal.
//
// The package does not import package sdk, which imports it: a Program is
// what Run needs of a plugin, and sdk.Plugin's Client method makes one.
package client
