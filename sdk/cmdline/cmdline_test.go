package cmdline_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sockplay/sockplay/sdk/cmdline"
)

func TestNormalizeArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, []string{}},
		{[]string{"-help"}, []string{"--help"}},
		{[]string{"-version"}, []string{"--version"}},
		{[]string{"serve", "-help", "--enable", "echo"}, []string{"serve", "--help", "--enable", "echo"}},
		{[]string{"-h", "--help", "-helpme", "help", "-v"}, []string{"-h", "--help", "-helpme", "help", "-v"}},
	} {
		in := slices.Clone(tc.in)
		if got := cmdline.NormalizeArgs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("NormalizeArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !slices.Equal(tc.in, in) {
			t.Errorf("NormalizeArgs changed its argument to %q", tc.in)
		}
	}
}

func ExampleNormalizeArgs() {
	fmt.Println(cmdline.NormalizeArgs([]string{"connect", "-help"}))
	// Output:
	// [connect --help]
}
