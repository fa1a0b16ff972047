package protocol_test

import (
	"fmt"
	"testing"

	"github.com/sockplay/sockplay/sdk/protocol"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"echo", true},
		{"a", true},
		{"udp-echo2", true},
		{"abcdefghijklmnopqrstuvwxyz012345", true}, // 32
		{"abcdefghijklmnopqrstuvwxyz0123456", false},
		{"", false},
		{"2echo", false},
		{"-echo", false},
		{"Echo", false},
		{"echo_1", false},
		{"echo.py", false},
		{"echo\n", false},
	} {
		if got := protocol.ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestValidVersion(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool
	}{
		{"1.2.3", true},
		{"0.0.1", true},
		{"1.0.0-rc.1", true},
		{"1.0.0+build.5", true},
		{"1.0.0-alpha+001", true},
		{"1.2", false},
		{"v1.2.3", false},
		{"1.2.3-", false},
		{"1.2.3 ", false},
		{"", false},
	} {
		if got := protocol.ValidVersion(tc.version); got != tc.ok {
			t.Errorf("ValidVersion(%q) = %v, want %v", tc.version, got, tc.ok)
		}
	}
}

// NamePattern is unanchored, to be embedded where a name is looked for in
// text, as `sockplay dev` finds it in what --version prints.
func ExampleNamePattern() {
	fmt.Println(protocol.ValidName("udpecho"), protocol.ValidName("UDP_echo"))
	fmt.Println(protocol.ValidVersion("1.2.0"), protocol.ValidVersion("v1.2"))
	// Output:
	// true false
	// true false
}
