package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

func TestConfigFile(t *testing.T) {
	dir := e2e.PluginDir(t, "echo", "chat")
	file := filepath.Join(t.TempDir(), "sockplay.hcl")
	// The shape issue 17 names, on free ports (echo declares no option, so
	// the set goes to chat, whose linger it is).
	text := `admin = "127.0.0.1:12380"
plugin "echo" {
  listen         = "127.0.0.1:0"
  allow          = ["127.0.0.0/8"]
  deny           = ["127.0.0.3/32"]
  max_per_source = 2
}
plugin "chat" {
  listen = "127.0.0.1:0"
  set    = { linger = "10ms" }
}
`
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := e2e.Run(t, "serve", "--plugin-dir", dir, "--config", file, "--check")
	if code != 0 || out != file+": ok\n" || stderr != "" {
		t.Fatalf("--check: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	// The file's rules hold; a flag overrides the file's limit.
	h := e2e.Start(t, e2e.Config{PluginDir: dir, KeepPorts: true, Args: []string{
		"--config", file, "--max-per-source", "echo=1", "--status-file", filepath.Join(t.TempDir(), "s.json")}})
	h.WaitLog(`rules="allow=127.0.0.0/8 deny=127.0.0.3/32 max-per-source=1"`, 10*time.Second)
	addr := h.Addr("echo")
	if echoes(dialFrom(t, "127.0.0.3", addr), "x\n") {
		t.Fatal("the file's deny does not hold")
	}
	if !echoes(dialFrom(t, "127.0.0.2", addr), "y\n") || echoes(dialFrom(t, "127.0.0.2", addr), "z\n") {
		t.Fatal("--max-per-source echo=1 does not override the file's 2")
	}
	h.Stop(20 * time.Second)

	// A typo: one line naming the file, the line and the key.
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	os.WriteFile(bad, []byte(strings.Replace(text, "max_per_source", "max_per_sourse", 1)), 0o644)
	for _, args := range [][]string{{"--check"}, {}} {
		_, stderr, code = e2e.Run(t, append([]string{"serve", "--plugin-dir", dir, "--config", bad, "--status-file", ""}, args...)...)
		want := "sockplay: " + bad + `:6,3: Unsupported argument: An argument named "max_per_sourse" is not expected here. Did you mean "max_per_source"?` + "\n"
		if code != 1 || stderr != want {
			t.Fatalf("%v: exit %d, stderr %q; want %q", args, code, stderr, want)
		}
	}
	// An option the plugin lacks is caught by --check, at its line.
	opt := filepath.Join(t.TempDir(), "opt.hcl")
	os.WriteFile(opt, []byte("plugin \"echo\" {\n  set = { linger = \"10ms\" }\n}\n"), 0o644)
	_, stderr, code = e2e.Run(t, "serve", "--plugin-dir", dir, "--config", opt, "--check")
	if want := opt + `:2: plugin "echo": set: echo has no option "linger" (options: none)`; code != 1 || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q; want one line containing %q", code, stderr, want)
	}
	if _, stderr, code = e2e.Run(t, "serve", "--check"); code != 2 || !strings.Contains(stderr, "--check checks a --config FILE") {
		t.Fatalf("--check without --config: exit %d, %q", code, stderr)
	}
}

// The README's config file example (section "A config file") checks as it
// stands, with a UDP plugin served too: the "*" block's max_conns is for
// the TCP plugins.
func TestReadmeConfigExample(t *testing.T) {
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "### A config file")
	if i < 0 {
		t.Fatal(`README.md has no "### A config file"`)
	}
	start := strings.Index(s[i:], "```hcl\n")
	if start < 0 {
		t.Fatal("README.md's config file section has no hcl block")
	}
	block := s[i+start+len("```hcl\n"):]
	block = block[:strings.Index(block, "```")]
	file := filepath.Join(t.TempDir(), "sockplay.hcl")
	if err := os.WriteFile(file, []byte(block), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := e2e.PluginDir(t, "echo", "chat", "udpecho")
	out, stderr, code := e2e.Run(t, "serve", "--plugin-dir", dir, "--config", file, "--check")
	if code != 0 || out != file+": ok\n" || stderr != "" {
		t.Fatalf("the README's config file: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
