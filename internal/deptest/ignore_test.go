package deptest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuiltBinariesIgnored: `go build` run in a main package's directory
// writes the binary there, named after the directory; git must ignore it,
// so that no compiled binary is committed by accident.
func TestBuiltBinariesIgnored(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	top := strings.TrimSpace(string(root))
	out, err := exec.Command("go", "list", "-f", `{{if eq .Name "main"}}{{.Dir}}{{end}}`, "github.com/sockplay/sockplay/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dirs := strings.Fields(string(out))
	if len(dirs) < 6 {
		t.Fatalf("go list found %d main packages, want the six plugins at least", len(dirs))
	}
	for _, dir := range dirs {
		rel, err := filepath.Rel(top, filepath.Join(dir, filepath.Base(dir)))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("git", "check-ignore", "-q", "--no-index", rel)
		cmd.Dir = top
		if err := cmd.Run(); err != nil {
			t.Errorf("%s is not ignored by .gitignore: a `go build` in %s would leave it to be committed", rel, filepath.Dir(rel))
		}
	}
}
