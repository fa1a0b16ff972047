package devloop

import "testing"

// The name and version come from the line --version prints, wherever it is:
// a plugin may print before sdk.Main (the README says it may).
func TestVersionLine(t *testing.T) {
	for _, tc := range []struct {
		out, name, version string
	}{
		{"sockplay-shout 0.1.0 (protocol 1, go1.26.8)", "shout", "0.1.0"},
		{"x\nhello from init\nsockplay-shout 0.2.0 (protocol 1, go1.26.8)", "shout", "0.2.0"},
		{"not a plugin", "", ""},
		{"prefix sockplay-shout 0.1.0 (protocol 1)", "", ""},
	} {
		m := versionRE.FindStringSubmatch(tc.out)
		name, version := "", ""
		if m != nil {
			name, version = m[1], m[2]
		}
		if name != tc.name || version != tc.version {
			t.Errorf("%q: %q %q, want %q %q", tc.out, name, version, tc.name, tc.version)
		}
	}
}
