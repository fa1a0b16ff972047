package scaffold

import (
	"bytes"
	"context"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

func checkout(t *testing.T) string {
	t.Helper()
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs name args in dir, 5 minutes at most, with the module proxy off:
// everything must come from the checkout and the module cache.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out)
	}
	return string(out)
}

// A new Go plugin, TCP and UDP: at most 30 lines of main.go, gofmt-clean, and
// `go vet` and `go test` pass at once with GOPROXY=off; go build names the
// binary sockplay-NAME.
func TestWriteGo(t *testing.T) {
	sdk := checkout(t)
	for _, udp := range []bool{false, true} {
		name := map[bool]string{false: "shout", true: "shout-udp"}[udp]
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			files, err := Write(Options{Name: name, Dir: dir, UDP: udp, Lang: Go, SDK: sdk})
			if err != nil {
				t.Fatal(err)
			}
			if want := "main.go main_test.go README.md go.mod go.sum"; strings.Join(files, " ") != want {
				t.Errorf("files %v, want %s", files, want)
			}
			for _, f := range []string{"main.go", "main_test.go"} {
				src, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if formatted, err := format.Source(src); err != nil || !bytes.Equal(formatted, src) {
					t.Errorf("%s is not gofmt-clean (%v):\n%s", f, err, src)
				}
				if f == "main.go" {
					if n := bytes.Count(src, []byte("\n")); n > 30 {
						t.Errorf("main.go has %d lines, want at most 30", n)
					}
					if !bytes.Contains(src, []byte(`Name: "`+name+`"`)) {
						t.Errorf("main.go does not name the plugin %s:\n%s", name, src)
					}
				}
			}
			mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
			if !bytes.Contains(mod, []byte("module sockplay-"+name+"\n")) || !bytes.Contains(mod, []byte("replace "+SDKModule+" => "+filepath.Join(sdk, SDKDir)+"\n")) {
				t.Errorf("go.mod:\n%s", mod)
			}
			// The SDK's own module: none of the host's requirements.
			for _, host := range []string{"hashicorp/hcl", "chromedp", "prometheus", "fsnotify"} {
				if bytes.Contains(mod, []byte(host)) {
					t.Errorf("go.mod requires the host's %s:\n%s", host, mod)
				}
			}
			run(t, dir, "go", "vet", "./...")
			out := run(t, dir, "go", "test", "-count=1", "./...")
			if !strings.Contains(out, "ok  \tsockplay-"+name) {
				t.Errorf("go test: %s", out)
			}
			bin := t.TempDir()
			run(t, dir, "go", "build", "-o", bin+"/", ".")
			if _, err := os.Stat(filepath.Join(bin, "sockplay-"+name)); err != nil {
				t.Errorf("go build -o DIR/ did not write sockplay-%s: %v", name, err)
			}
		})
	}
}

// A new Python plugin, TCP and UDP: its unittest passes with the checkout's
// SDK.
func TestWritePython(t *testing.T) {
	sdk := checkout(t)
	for _, udp := range []bool{false, true} {
		name := map[bool]string{false: "pyshout", true: "pyshout-udp"}[udp]
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			files, err := Write(Options{Name: name, Dir: dir, UDP: udp, Lang: Python, SDK: sdk})
			if err != nil {
				t.Fatal(err)
			}
			if want := "plugin.py test_plugin.py README.md"; strings.Join(files, " ") != want {
				t.Errorf("files %v, want %s", files, want)
			}
			src, _ := os.ReadFile(filepath.Join(dir, "plugin.py"))
			if n := bytes.Count(src, []byte("\n")); n > 30 {
				t.Errorf("plugin.py has %d lines, want at most 30", n)
			}
			out := run(t, dir, "/usr/bin/python3", "-m", "unittest", "-v")
			if !strings.Contains(out, "test_answer") || !strings.Contains(out, "\nOK") {
				t.Errorf("unittest: %s", out)
			}
		})
	}
}

// Bad input is one error and nothing written.
func TestWriteRefuses(t *testing.T) {
	sdk := checkout(t)
	parent := t.TempDir()
	existing := filepath.Join(parent, "taken")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"upper case", Options{Name: "Shout", Lang: Go, SDK: sdk}, `plugin name "Shout"`},
		{"space", Options{Name: "my plugin", Lang: Go, SDK: sdk}, `plugin name "my plugin"`},
		{"digit first", Options{Name: "1st", Lang: Go, SDK: sdk}, `plugin name "1st"`},
		{"too long", Options{Name: strings.Repeat("a", 33), Lang: Go, SDK: sdk}, "32 at most"},
		{"path", Options{Name: "../evil", Lang: Go, SDK: sdk}, `plugin name "../evil"`},
		{"existing directory", Options{Name: "taken", Dir: existing, Lang: Go, SDK: sdk}, existing + " already exists"},
		{"no parent", Options{Name: "x", Dir: filepath.Join(parent, "no", "x"), Lang: Go, SDK: sdk}, "is not a directory"},
		{"bad language", Options{Name: "x", Lang: "rust", SDK: sdk}, `language "rust"`},
		{"not a checkout", Options{Name: "x", Lang: Go, SDK: parent}, "not a sockplay checkout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.o.Dir == "" {
				tc.o.Dir = filepath.Join(parent, "new")
			}
			_, err := Write(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one line with %q", err, tc.want)
			}
			ents, _ := os.ReadDir(parent)
			if len(ents) != 1 || ents[0].Name() != "taken" {
				t.Fatalf("written: %v", ents)
			}
			if ents, _ := os.ReadDir(existing); len(ents) != 0 {
				t.Fatalf("written into the existing directory: %v", ents)
			}
		})
	}
}

func TestFindSDK(t *testing.T) {
	sdk := checkout(t)
	for _, start := range []string{sdk, filepath.Join(sdk, "bin"), filepath.Join(sdk, "host", "internal", "scaffold"), filepath.Join(sdk, SDKDir, "client")} {
		if got, err := FindSDK(start); err != nil || got != sdk {
			t.Errorf("FindSDK(%s) = %q, %v; want %s", start, got, err, sdk)
		}
	}
	// A module of another path is not the checkout.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FindSDK(other); err == nil || !strings.Contains(err.Error(), "--sdk DIR") {
		t.Errorf("FindSDK in another module: %v", err)
	}
	if err := CheckSDK(other); err == nil || !strings.Contains(err.Error(), "example.com/other") {
		t.Errorf("CheckSDK of another module: %v", err)
	}
	// A checkout from before the SDK had its own module.
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, "go.mod"), []byte("module "+Module+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckSDK(old); err == nil || !strings.Contains(err.Error(), filepath.Join(old, SDKDir)) {
		t.Errorf("CheckSDK of a checkout without %s/go.mod: %v", SDKDir, err)
	}
}

func TestPort(t *testing.T) {
	seen := map[int]string{}
	for _, n := range []string{"a", "b", "shout", "chat2", "upper", "my-plugin"} {
		p := Port(n)
		if p < 20000 || p > 29999 || Port(n) != p {
			t.Errorf("Port(%s) = %d", n, p)
		}
		if other, ok := seen[p]; ok {
			t.Errorf("Port(%s) = Port(%s) = %d", n, other, p)
		}
		seen[p] = n
	}
}
