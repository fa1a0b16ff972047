// Package deptest fails a test when a package pulls in a package it must
// not, in the manner of tailscale's tstest/deptest: the import rules of
// DESIGN.md ("the host never links sdk", "sdk never imports host") are checked
// by `go list -deps`, so a stray import fails the build's tests rather than a
// review.
package deptest

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Rule forbids a package, or every package under a path prefix, as a
// dependency.
type Rule struct {
	// Prefix is an import path; it matches that package and, when it ends
	// in "/...", everything below it.
	Prefix string
	// Why is printed when the rule is broken.
	Why string
}

func (r Rule) match(path string) bool {
	if base, ok := strings.CutSuffix(r.Prefix, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == r.Prefix
}

// Check lists the non-test dependencies of pkg (a pattern such as ./sdk/...)
// built for goos and fails t for each one that a rule forbids. The packages
// the pattern names are not their own dependencies.
func Check(t *testing.T, pkg, goos string, rules ...Rule) {
	t.Helper()
	deps, err := list(pkg, goos, true)
	if err != nil {
		t.Fatalf("deptest: %v", err)
	}
	roots, err := list(pkg, goos, false)
	if err != nil {
		t.Fatalf("deptest: %v", err)
	}
	if len(roots) == 0 || len(deps) < len(roots) {
		t.Fatalf("deptest: go list found no packages %s for %s", pkg, goos)
	}
	for _, d := range deps {
		if slices.Contains(roots, d) {
			continue
		}
		for _, r := range rules {
			if r.match(d) {
				t.Errorf("%s (GOOS=%s) depends on %s: %s", pkg, goos, d, r.Why)
			}
		}
	}
}

// Deps returns the import paths pkg depends on, itself included, for goos.
func Deps(pkg, goos string) ([]string, error) { return list(pkg, goos, true) }

func list(pkg, goos string, withDeps bool) ([]string, error) {
	args := []string{"list", "-json=ImportPath", pkg}
	if withDeps {
		args = []string{"list", "-deps", "-json=ImportPath", pkg}
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New("go list " + pkg + ": " + err.Error() + ": " + stderr.String())
	}
	var deps []string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		deps = append(deps, p.ImportPath)
	}
	return deps, nil
}
