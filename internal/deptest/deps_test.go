package deptest_test

import (
	"testing"

	"github.com/sockplay/sockplay/internal/deptest"
)

const mod = "github.com/sockplay/sockplay"

// The import rules of DESIGN.md ("Layout").
func TestImportRules(t *testing.T) {
	host := []deptest.Rule{
		{mod + "/sdk", "the host speaks to plugins through sdk/protocol only, never the Go SDK"},
		{mod + "/sdk/sdktest", "test helpers for plugin authors"},
		{mod + "/plugins/...", "plugins are separate binaries"},
	}
	sdk := []deptest.Rule{
		{mod + "/host/...", "the SDK never imports the host"},
		{mod + "/internal/...", "a plugin outside this module could not import it"},
		{mod + "/plugins/...", "plugins are separate binaries"},
	}
	plugin := sdk // and the rule on plugins/... keeps each plugin apart from the others
	cases := []struct {
		pkg   string
		goos  []string
		rules []deptest.Rule
	}{
		{"./host", []string{"linux"}, host},
		{"./sdk", []string{"linux", "darwin", "windows"}, sdk},
		{"./sdk/sdktest", []string{"linux", "darwin", "windows"}, sdk},
		{"./sdk/protocol/...", []string{"linux"}, append(sdk, deptest.Rule{Prefix: mod + "/sdk", Why: "the contract does not depend on the Go SDK"})},
	}
	for _, name := range []string{"chat", "echo", "filexfer", "hello", "login", "udpecho"} {
		cases = append(cases, struct {
			pkg   string
			goos  []string
			rules []deptest.Rule
		}{"./plugins/" + name, []string{"linux"}, plugin})
	}
	for _, c := range cases {
		for _, goos := range c.goos {
			t.Run(c.pkg+"/"+goos, func(t *testing.T) {
				deptest.Check(t, "../../"+c.pkg[2:], goos, c.rules...)
			})
		}
	}
}

// A broken rule is reported: the check can fail.
func TestRuleMatches(t *testing.T) {
	deps, err := deptest.Deps("../../sdk", "linux")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range deps {
		if d == mod+"/sdk/protocol" {
			found = true
		}
	}
	if !found {
		t.Fatalf("sdk's dependencies lack sdk/protocol: %v", deps)
	}
}
