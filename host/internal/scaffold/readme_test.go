package scaffold

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The README's "Writing a plugin" shows what `sockplay new shout` writes,
// word for word, and that code compiles and its test passes: its Go blocks
// are extracted into a module of their own, which go vet and go test build.
func TestReadmeShowsWhatNewWrites(t *testing.T) {
	sdk := checkout(t)
	b, err := os.ReadFile(filepath.Join(sdk, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n## Writing a plugin\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Writing a plugin"`)
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 2 {
		t.Fatalf("%d Go blocks in the section, want 2: main.go and main_test.go", len(blocks))
	}

	dir := filepath.Join(t.TempDir(), "shout")
	if _, err := Write(Options{Name: "shout", Dir: dir, Lang: Go, SDK: sdk}); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"main.go", "main_test.go"} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if blocks[i][1] != string(want) {
			t.Errorf("README's Go block %d is not the %s that sockplay new shout writes:\n%s\nwant:\n%s", i+1, name, blocks[i][1], want)
		}
		// What is built is the README's text, not the template's.
		if err := os.WriteFile(filepath.Join(dir, name), []byte(blocks[i][1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, "go", "vet", "./...")
	run(t, dir, "go", "test", "-count=1", "./...")

	// The address the README's nc uses is the one the plugin gets.
	if port := strconv.Itoa(Port("shout")); !strings.Contains(section, "nc -N 127.0.0.1 "+port+"\n") {
		t.Errorf("the README's nc line does not use shout's port %s", port)
	}
}
