package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/sdk"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunClient(t *testing.T) {
	type call struct {
		args []string
		ctx  bool
	}
	usageHead := "sockplay-demo 1.2.3: a plugin for the SDK's tests\n"
	cases := []struct {
		name       string
		noClient   bool
		args       []string
		clientErr  error
		wantCode   int
		wantOut    string // exact, or a prefix when it ends in "..."
		wantErr    string // likewise
		wantCalled bool
	}{
		{name: "--version", args: []string{"--version"}, wantOut: "sockplay-demo 1.2.3 (sockplay protocol 1)\n"},
		{name: "-version", args: []string{"-version"}, wantOut: "sockplay-demo 1.2.3 (sockplay protocol 1)\n"},
		{name: "version", args: []string{"version"}, wantOut: "sockplay-demo 1.2.3 (sockplay protocol 1)\n"},
		{name: "--help", args: []string{"--help"}, wantOut: usageHead + "..."},
		{name: "-h", args: []string{"-h", "ignored"}, wantOut: usageHead + "..."},
		{name: "help without a client", noClient: true, args: []string{"help"}, wantOut: usageHead + "..."},
		{name: "no arguments", args: nil, wantCode: 2, wantErr: usageHead + "..."},
		{name: "no client", noClient: true, args: []string{"connect"}, wantCode: 2, wantErr: usageHead + "..."},
		{name: "success", args: []string{"connect", "127.0.0.1:1"}, wantCalled: true, wantOut: "ran connect 127.0.0.1:1\n"},
		{name: "error", args: []string{"connect"}, clientErr: errors.New("dial tcp: connection refused"),
			wantCalled: true, wantCode: 1, wantOut: "ran connect\n", wantErr: "sockplay-demo: dial tcp: connection refused\n"},
		{name: "wrapped error", args: []string{"x"}, clientErr: fmt.Errorf("connect: %w", context.Canceled),
			wantCalled: true, wantCode: 1, wantOut: "ran x\n", wantErr: "sockplay-demo: connect: context canceled\n"},
		{name: "bare ErrUsage", args: []string{"bogus"}, clientErr: sdk.ErrUsage,
			wantCalled: true, wantCode: 2, wantOut: "ran bogus\n", wantErr: usageHead + "..."},
		{name: "ErrUsage with a message", args: []string{"ping"}, clientErr: fmt.Errorf("%w: ping needs ADDR", sdk.ErrUsage),
			wantCalled: true, wantCode: 2, wantOut: "ran ping\n", wantErr: "sockplay-demo: ping needs ADDR\n" + usageHead + "..."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := demo()
			var got *call
			if !tc.noClient {
				p.Client = func(ctx context.Context, args []string, stdio sdk.Stdio) error {
					got = &call{args: args, ctx: ctx != nil}
					fmt.Fprintf(stdio.Out, "ran %s\n", strings.Join(args, " "))
					return tc.clientErr
				}
			}
			var out, errOut bytes.Buffer
			code := sdk.RunClient(context.Background(), &p, tc.args, sdk.Stdio{In: strings.NewReader(""), Out: &out, Err: &errOut})
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			matchOutput(t, "stdout", out.String(), tc.wantOut)
			matchOutput(t, "stderr", errOut.String(), tc.wantErr)
			switch {
			case tc.wantCalled && got == nil:
				t.Error("Client was not called")
			case !tc.wantCalled && got != nil:
				t.Errorf("Client was called with %q", got.args)
			case got != nil && (!slices.Equal(got.args, tc.args) || !got.ctx):
				t.Errorf("Client got args %q (ctx set: %v), want %q", got.args, got.ctx, tc.args)
			}
		})
	}
}

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

// TestUsage compares --help with testdata/usage.golden; go test -update
// rewrites it.
func TestUsage(t *testing.T) {
	p := demo()
	var out, errOut bytes.Buffer
	if code := sdk.RunClient(context.Background(), &p, []string{"--help"}, sdk.Stdio{Out: &out, Err: &errOut}); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	golden := filepath.Join("testdata", "usage.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if out.String() != string(want) {
		t.Errorf("--help:\n%s\nwant (%s):\n%s", out.String(), golden, want)
	}
	if errOut.Len() != 0 {
		t.Errorf("--help wrote to stderr: %q", errOut.String())
	}
	// The usage printed on a usage error is the same text, on stderr.
	var stdout, stderr bytes.Buffer
	if code := sdk.RunClient(context.Background(), &p, nil, sdk.Stdio{Out: &stdout, Err: &stderr}); code != 2 {
		t.Fatalf("no arguments: exit %d, want 2", code)
	}
	if stderr.String() != string(want) || stdout.Len() != 0 {
		t.Errorf("no arguments: stdout %q, stderr:\n%s\nwant the --help text on stderr only", stdout.String(), stderr.String())
	}
}
