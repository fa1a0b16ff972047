package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/sdk/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// demo is the command line of a plugin with two commands.
func demo() client.Program {
	return client.Program{
		Name:    "demo",
		Version: "1.2.3",
		Summary: "a plugin for the SDK's tests",
		Serving: "Served by the host (sockplay serve --enable demo) on TCP 127.0.0.1:12399 by default.",
		Commands: []client.Command{
			{Name: "connect", Args: "[ADDR]", MaxArgs: 1, Summary: "talk to the demo server"},
			{Name: "ping", Args: "ADDR", MinArgs: 1, MaxArgs: 1, Summary: "ping it"},
		},
	}
}

func TestRun(t *testing.T) {
	type call struct {
		cmd  string
		args []string
		ctx  bool
	}
	cases := []struct {
		name       string
		noCommands bool
		args       []string
		runErr     error
		wantCode   int
		wantOut    string // exact, or a prefix when it ends in "..."
		wantErr    string // likewise
		wantCall   *call
	}{
		{name: "--version", args: []string{"--version"}, wantOut: "sockplay-demo 1.2.3 (sockplay protocol 1)\n"},
		{name: "-version", args: []string{"-version"}, wantOut: "sockplay-demo 1.2.3 (sockplay protocol 1)\n"},
		{name: "version", args: []string{"version"}, wantOut: "sockplay-demo 1.2.3 (sockplay protocol 1)\n"},
		{name: "--help", args: []string{"--help"}, wantOut: usageHead + "..."},
		{name: "-help", args: []string{"-help"}, wantOut: usageHead + "..."},
		{name: "-h", args: []string{"-h"}, wantOut: usageHead + "..."},
		{name: "help", args: []string{"help"}, wantOut: usageHead + "..."},
		{name: "command --help", args: []string{"connect", "--help"}, wantOut: "talk to the demo server\n\nUsage:\n  sockplay-demo connect [ADDR] [flags]..."},
		{name: "help command", args: []string{"help", "ping"}, wantOut: "ping it\n\nUsage:\n  sockplay-demo ping ADDR [flags]..."},
		{name: "--help after arguments", args: []string{"connect", "127.0.0.1:1", "--help"}, wantOut: "talk to the demo server\n..."},
		{name: "help without commands", noCommands: true, args: []string{"--help"}, wantOut: usageHead + "\nsockplay-demo has no client commands..."},
		{name: "no arguments", args: nil, wantCode: 2, wantErr: usageHead + "..."},
		{name: "no commands", noCommands: true, args: nil, wantCode: 2,
			wantErr: "sockplay-demo: this plugin has no client commands; it is served by the host (sockplay serve --enable demo)\n"},
		{name: "unknown command", args: []string{"bogus"}, wantCode: 2, wantErr: "sockplay-demo: unknown command \"bogus\" for \"sockplay-demo\" (see 'sockplay-demo --help')\n"},
		{name: "success", args: []string{"connect", "127.0.0.1:1"}, wantCall: &call{"connect", []string{"127.0.0.1:1"}, true}, wantOut: "ran connect 127.0.0.1:1\n"},
		{name: "flag before the argument", args: []string{"connect", "--count", "2", "127.0.0.1:1"},
			wantCall: &call{"connect", []string{"127.0.0.1:1"}, true}, wantOut: "ran connect 127.0.0.1:1 count=2\n"},
		{name: "flag after the argument", args: []string{"connect", "127.0.0.1:1", "--count=5"},
			wantCall: &call{"connect", []string{"127.0.0.1:1"}, true}, wantOut: "ran connect 127.0.0.1:1 count=5\n"},
		{name: "unknown flag", args: []string{"connect", "--nosuch"}, wantCode: 2,
			wantErr: "sockplay-demo: unknown flag: --nosuch (see 'sockplay-demo connect --help')\n"},
		{name: "bad flag value", args: []string{"connect", "--count", "many"}, wantCode: 2,
			wantErr: "sockplay-demo: invalid argument \"many\" for \"--count\" flag: ..."},
		{name: "too few arguments", args: []string{"ping"}, wantCode: 2,
			wantErr: "sockplay-demo: ping: want ADDR (see 'sockplay-demo ping --help')\n"},
		{name: "too many arguments", args: []string{"connect", "a:1", "b:2"}, wantCode: 2,
			wantErr: "sockplay-demo: connect: unexpected argument \"b:2\" (want [ADDR]) (see 'sockplay-demo connect --help')\n"},
		{name: "error", args: []string{"connect"}, runErr: errors.New("dial tcp: connection refused"),
			wantCall: &call{"connect", []string{}, true}, wantCode: 1, wantOut: "ran connect\n", wantErr: "sockplay-demo: dial tcp: connection refused\n"},
		{name: "wrapped error", args: []string{"ping", "x:1"}, runErr: fmt.Errorf("connect: %w", context.Canceled),
			wantCall: &call{"ping", []string{"x:1"}, true}, wantCode: 1, wantOut: "ran ping x:1\n", wantErr: "sockplay-demo: connect: context canceled\n"},
		{name: "bare ErrUsage", args: []string{"ping", "x"}, runErr: client.ErrUsage,
			wantCall: &call{"ping", []string{"x"}, true}, wantCode: 2, wantOut: "ran ping x\n", wantErr: "sockplay-demo: usage error (see 'sockplay-demo ping --help')\n"},
		{name: "ErrUsage with a message", args: []string{"ping", "x"}, runErr: fmt.Errorf("%w: x is not HOST:PORT", client.ErrUsage),
			wantCall: &call{"ping", []string{"x"}, true}, wantCode: 2, wantOut: "ran ping x\n",
			wantErr: "sockplay-demo: x is not HOST:PORT (see 'sockplay-demo ping --help')\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := demo()
			var got *call
			for i := range p.Commands {
				name := p.Commands[i].Name
				count := 1
				p.Commands[i].Flags = func(fs *pflag.FlagSet) { fs.IntVar(&count, "count", 1, "send it `N` times") }
				p.Commands[i].Run = func(ctx context.Context, args []string, stdio client.Stdio) error {
					got = &call{cmd: name, args: args, ctx: ctx != nil}
					line := strings.TrimSpace("ran " + name + " " + strings.Join(args, " "))
					if count != 1 {
						line += fmt.Sprintf(" count=%d", count)
					}
					fmt.Fprintln(stdio.Out, line)
					return tc.runErr
				}
			}
			if tc.noCommands {
				p.Commands = nil
			}
			var out, errOut bytes.Buffer
			code := client.Run(context.Background(), p, tc.args, client.Stdio{In: strings.NewReader(""), Out: &out, Err: &errOut})
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			matchOutput(t, "stdout", out.String(), tc.wantOut)
			matchOutput(t, "stderr", errOut.String(), tc.wantErr)
			switch {
			case tc.wantCall != nil && got == nil:
				t.Error("Run was not called")
			case tc.wantCall == nil && got != nil:
				t.Errorf("Run was called: %+v", got)
			case got != nil && (got.cmd != tc.wantCall.cmd || !slices.Equal(got.args, tc.wantCall.args) || !got.ctx):
				t.Errorf("Run got %+v, want %+v", got, tc.wantCall)
			}
		})
	}
}

const usageHead = "sockplay-demo 1.2.3: a plugin for the SDK's tests\n"

func matchOutput(t *testing.T, stream, got, want string) {
	t.Helper()
	if prefix, ok := strings.CutSuffix(want, "..."); ok {
		if !strings.HasPrefix(got, prefix) {
			t.Errorf("%s:\n%s\nwant it to start with:\n%s", stream, got, prefix)
		}
		return
	}
	if got != want {
		t.Errorf("%s: %q, want %q", stream, got, want)
	}
}
