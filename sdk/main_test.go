package sdk_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/sdk/client"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestUsage compares the help texts with testdata/*.golden; go test -update
// rewrites them.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"usage.golden", []string{"--help"}},
		{"usage-connect.golden", []string{"connect", "--help"}},
	} {
		p := demo()
		var out, errOut bytes.Buffer
		if code := client.Run(context.Background(), p.Client(), tc.args, client.Stdio{Out: &out, Err: &errOut}); code != 0 {
			t.Fatalf("%v: exit %d", tc.args, code)
		}
		golden := filepath.Join("testdata", tc.golden)
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
			t.Errorf("%v:\n%s\nwant (%s):\n%s", tc.args, out.String(), golden, want)
		}
		if errOut.Len() != 0 {
			t.Errorf("%v wrote to stderr: %q", tc.args, errOut.String())
		}
	}
	// With no command, the same usage goes to stderr, and the exit is 2.
	p := demo()
	var stdout, stderr bytes.Buffer
	if code := client.Run(context.Background(), p.Client(), nil, client.Stdio{Out: &stdout, Err: &stderr}); code != 2 {
		t.Fatalf("no arguments: exit %d, want 2", code)
	}
	want, _ := os.ReadFile(filepath.Join("testdata", "usage.golden"))
	if !strings.HasPrefix(stderr.String(), string(want)) || stdout.Len() != 0 {
		t.Errorf("no arguments: stdout %q, stderr:\n%s\nwant the --help text on stderr only", stdout.String(), stderr.String())
	}
}
