package protocol

import "regexp"

// NamePattern is the rule for a plugin's name (SPEC.md §4.1, Describe), as
// an unanchored regular expression: a lower-case letter, then lower-case
// letters, digits and dashes, 32 characters at most. The binary of plugin
// NAME is sockplay-NAME. The Go SDK holds its options' and commands' names to
// the same rule.
const NamePattern = `[a-z][a-z0-9-]{0,31}`

// VersionPattern is the rule for a plugin's version (SPEC.md §4.1), as an
// unanchored regular expression: a semantic version, MAJOR.MINOR.PATCH with
// an optional pre-release and build metadata (semver.org 2.0.0, §2, §9 and
// §10; leading zeros are not refused).
const VersionPattern = `\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?`

var (
	nameRE    = regexp.MustCompile(`^` + NamePattern + `$`)
	versionRE = regexp.MustCompile(`^` + VersionPattern + `$`)
)

// ValidName reports whether s follows NamePattern.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ValidVersion reports whether s follows VersionPattern.
func ValidVersion(s string) bool { return versionRE.MatchString(s) }
