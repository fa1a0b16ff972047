package deptest_test

import (
	"strings"
	"testing"

	"github.com/sockplay/sockplay/internal/deptest"
)

const mod = "github.com/sockplay/sockplay"

// The import rules of DESIGN.md ("Layout").
func TestImportRules(t *testing.T) {
	host := []deptest.Rule{
		{mod + "/sdk", "the host speaks to plugins through sdk/protocol only, never the Go SDK"},
		{mod + "/sdk/client", "the host never links a plugin's client kit (its shared conventions are in sdk/cmdline)"},
		{mod + "/sdk/sdktest", "test helpers for plugin authors"},
		{mod + "/plugins/...", "plugins are separate binaries"},
	}
	sdk := []deptest.Rule{
		{mod + "/host/...", "the SDK never imports the host"},
		{mod + "/internal/...", "a plugin outside this module could not import it"},
		{mod + "/plugins/...", "plugins are separate binaries"},
	}
	client := append(sdk,
		deptest.Rule{Prefix: mod + "/sdk", Why: "package sdk imports sdk/client (Plugin.Commands), not the other way"},
		deptest.Rule{Prefix: mod + "/sdk/sdktest", Why: "test helpers for plugin authors"})
	leaf := []deptest.Rule{{mod + "/...", "it imports nothing of sockplay, so that the host and every SDK package may use it"}}
	contract := append(sdk, deptest.Rule{Prefix: mod + "/sdk", Why: "the contract does not depend on the Go SDK"},
		deptest.Rule{Prefix: mod + "/sdk/client", Why: "the contract does not depend on the Go SDK"},
		deptest.Rule{Prefix: mod + "/sdk/sdktest", Why: "the contract does not depend on the Go SDK"})
	plugin := sdk // and the rule on plugins/... keeps each plugin apart from the others
	all := []string{"linux", "darwin", "windows"}
	cases := []struct {
		pkg   string
		goos  []string
		rules []deptest.Rule
	}{
		{mod + "/host/...", []string{"linux"}, host},
		{mod + "/sdk", all, sdk},
		{mod + "/sdk/sdktest", all, sdk},
		{mod + "/sdk/client", all, client},
		{mod + "/sdk/escape", all, leaf},
		{mod + "/sdk/cmdline", all, leaf},
		{mod + "/sdk/protocol/...", []string{"linux"}, contract},
	}
	for _, name := range []string{"chat", "echo", "filexfer", "hello", "login", "udpecho"} {
		cases = append(cases, struct {
			pkg   string
			goos  []string
			rules []deptest.Rule
		}{mod + "/plugins/" + name, []string{"linux"}, plugin})
	}
	for _, c := range cases {
		for _, goos := range c.goos {
			t.Run(strings.TrimPrefix(c.pkg, mod+"/")+"/"+goos, func(t *testing.T) {
				deptest.Check(t, c.pkg, goos, c.rules...)
			})
		}
	}
}

// A broken rule is reported: the check can fail.
func TestRuleMatches(t *testing.T) {
	deps, err := deptest.Deps(mod+"/sdk", "linux")
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
