// Package scaffold writes a new plugin's source, what `sockplay new` makes:
// a directory of its own holding a main program of at most 30 lines that
// serves a working line protocol, a passing unit test (sdk/sdktest, or
// sockplay.testing in Python), a short README, and for Go a go.mod and go.sum
// that take the SDK from a sockplay checkout with no network.
//
// The SDK is a module of its own (CHECKOUT/sdk/go.mod), so the new module
// requires the SDK's requirements and none of the host's. go.mod uses a
// replace directive to CHECKOUT/sdk rather than a go.work file: go.mod is
// then the module's whole story, and every tool reads it (go build, go test,
// go vet, gopls, go mod tidy; tidy ignores go.work and would try to download
// the unpublished SDK). Its requirements are the SDK module's own, marked
// indirect, and go.sum is the SDK module's: the new module's build list is
// then the SDK's, every checksum it needs is there, and building the checkout
// has put every module it needs in the module cache, so `GOPROXY=off go test
// ./...` passes at once.
//
// The templates are in templates/ (text/template, embedded).
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"

	"golang.org/x/mod/modfile"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// Module is the checkout's module path: a checkout is a directory whose
// go.mod names it.
const Module = "github.com/sockplay/sockplay"

// SDKModule is the Go SDK's module path; its go.mod is the checkout's
// SDKDir/go.mod.
const (
	SDKModule = Module + "/sdk"
	SDKDir    = "sdk"
)

// replaced is the version a replaced module is required at, as go mod tidy
// writes it.
const replaced = "v0.0.0-00010101000000-000000000000"

//go:embed templates
var templates embed.FS

// The languages.
const (
	Go     = "go"
	Python = "python"
)

// Options say what to write.
type Options struct {
	// Name is the plugin's name: the binary is sockplay-Name.
	Name string
	// Dir is the directory to create; it must not exist.
	Dir string
	// UDP makes a UDP plugin; the default is TCP.
	UDP bool
	// Lang is Go or Python.
	Lang string
	// SDK is the sockplay checkout (see FindSDK).
	SDK string
}

// CheckName reports whether name can name a plugin (and its binary,
// sockplay-NAME), as the host and the SDKs require.
func CheckName(name string) error {
	if !protocol.ValidName(name) {
		return fmt.Errorf("plugin name %q: want a lower case letter, then lower case letters, digits and dashes, 32 at most", name)
	}
	return nil
}

// Validate reports the first thing wrong with o, without writing anything.
func (o *Options) Validate() error {
	if err := CheckName(o.Name); err != nil {
		return err
	}
	switch {
	case o.Lang != Go && o.Lang != Python:
		return fmt.Errorf("language %q: want %s or %s", o.Lang, Go, Python)
	case o.Dir == "":
		return errors.New("no directory given")
	}
	if _, err := os.Lstat(o.Dir); err == nil {
		return fmt.Errorf("%s already exists: choose another --dir, or remove it", o.Dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(o.Dir); parent != "" {
		if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s: its parent %s is not a directory", o.Dir, parent)
		}
	}
	if !filepath.IsAbs(o.SDK) {
		return fmt.Errorf("--sdk %s: want an absolute path", o.SDK)
	}
	return CheckSDK(o.SDK)
}

// Port is the default port of a new plugin named name: 20000 to 29999, from a
// hash of the name, so that plugins made one after another do not collide
// with each other, nor with the bundled ones (12345-12348, 8001).
func Port(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return 20000 + int(h.Sum32()%10000)
}

// data is what the templates see.
type data struct {
	Name      string
	Port      int
	UDP       bool
	PythonSDK string
}

// Write writes the plugin into o.Dir and returns the names of the files, in
// the order written. Everything is checked and rendered before the
// directory is made; if writing then fails, the directory is removed: on any
// error nothing is left.
func Write(o Options) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	files, err := render(o)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(o.Dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(o.Dir, f.name), f.body, 0o644); err != nil {
			os.RemoveAll(o.Dir)
			return nil, err
		}
		names = append(names, f.name)
	}
	return names, nil
}

type file struct {
	name string
	body []byte
}

// render produces the plugin's files in memory.
func render(o Options) ([]file, error) {
	d := data{Name: o.Name, Port: Port(o.Name), UDP: o.UDP, PythonSDK: filepath.Join(o.SDK, "sdk", "python")}
	type tmpl struct{ name, src string }
	var ts []tmpl
	switch {
	case o.Lang == Python && o.UDP:
		ts = []tmpl{{"plugin.py", "python/plugin_udp.py.tmpl"}, {"test_plugin.py", "python/test_plugin.py.tmpl"}, {"README.md", "python/README.md.tmpl"}}
	case o.Lang == Python:
		ts = []tmpl{{"plugin.py", "python/plugin.py.tmpl"}, {"test_plugin.py", "python/test_plugin.py.tmpl"}, {"README.md", "python/README.md.tmpl"}}
	case o.UDP:
		ts = []tmpl{{"main.go", "go/main_udp.go.tmpl"}, {"main_test.go", "go/main_udp_test.go.tmpl"}, {"README.md", "go/README.md.tmpl"}}
	default:
		ts = []tmpl{{"main.go", "go/main.go.tmpl"}, {"main_test.go", "go/main_test.go.tmpl"}, {"README.md", "go/README.md.tmpl"}}
	}
	var files []file
	for _, t := range ts {
		src, err := templates.ReadFile("templates/" + t.src)
		if err != nil {
			return nil, err
		}
		tp, err := template.New(t.src).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := tp.Execute(&b, d); err != nil {
			return nil, err
		}
		files = append(files, file{t.name, b.Bytes()})
	}
	if o.Lang == Go {
		mod, err := goMod(o)
		if err != nil {
			return nil, err
		}
		sum, err := os.ReadFile(filepath.Join(o.SDK, SDKDir, "go.sum"))
		if err != nil {
			return nil, fmt.Errorf("the SDK module's go.sum: %w", err)
		}
		files = append(files, file{"go.mod", mod}, file{"go.sum", sum})
	}
	return files, nil
}

// goMod writes the new module's go.mod: module sockplay-NAME (so that go
// build names the binary sockplay-NAME), the SDK module's go version, the SDK
// replaced by the checkout's SDKDir, and the SDK module's requirements.
func goMod(o Options) ([]byte, error) {
	path := filepath.Join(o.SDK, SDKDir, "go.mod")
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the SDK module's go.mod: %w", err)
	}
	sdk, err := modfile.Parse(path, src, nil)
	if err != nil {
		return nil, err
	}
	f := &modfile.File{}
	if err := f.AddModuleStmt("sockplay-" + o.Name); err != nil {
		return nil, err
	}
	if sdk.Go != nil {
		if err := f.AddGoStmt(sdk.Go.Version); err != nil {
			return nil, err
		}
	}
	if sdk.Toolchain != nil {
		if err := f.AddToolchainStmt(sdk.Toolchain.Name); err != nil {
			return nil, err
		}
	}
	f.AddNewRequire(SDKModule, replaced, false)
	for _, r := range sdk.Require {
		f.AddNewRequire(r.Mod.Path, r.Mod.Version, true)
	}
	f.SetRequireSeparateIndirect(f.Require)
	f.AddComment("// The SDK from your sockplay checkout (change the path if the checkout moves).\n" +
		"// The requirements above and go.sum are the SDK module's own, so that\n" +
		"// nothing needs downloading (`sockplay new` wrote this file).")
	if err := f.AddReplace(SDKModule, "", filepath.Join(o.SDK, SDKDir), ""); err != nil {
		return nil, err
	}
	f.Cleanup()
	return modfile.Format(f.Syntax), nil
}

// FindSDK returns the sockplay checkout: the first directory that holds a
// go.mod of module github.com/sockplay/sockplay, looking in each of starts
// and then up from it. The sockplay binary passes its own directory (bin/ of
// a checkout) and the working directory.
func FindSDK(starts ...string) (string, error) {
	for _, start := range starts {
		dir, err := filepath.Abs(start)
		if err != nil {
			continue
		}
		for {
			if p, err := modulePath(dir); err == nil && p == Module {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("no sockplay checkout (a go.mod of module %s) above %v: pass --sdk DIR", Module, starts)
}

// CheckSDK checks that dir is a sockplay checkout, with the SDK's module in
// SDKDir.
func CheckSDK(dir string) error {
	p, err := modulePath(dir)
	if err != nil {
		return err
	}
	if p != Module {
		return fmt.Errorf("%s: module %s, not %s", filepath.Join(dir, "go.mod"), p, Module)
	}
	p, err = modulePath(filepath.Join(dir, SDKDir))
	if err != nil {
		return err
	}
	if p != SDKModule {
		return fmt.Errorf("%s: module %s, not %s", filepath.Join(dir, SDKDir, "go.mod"), p, SDKModule)
	}
	return nil
}

func modulePath(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("--sdk %s: not a sockplay checkout: %w", dir, err)
	}
	p := modfile.ModulePath(b)
	if p == "" {
		return "", fmt.Errorf("--sdk %s: go.mod names no module", dir)
	}
	return p, nil
}
