package devloop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// The languages of a plugin's source.
const (
	Go     = "go"
	Python = "python"
)

// Source is a plugin's source directory.
type Source struct {
	Dir  string // absolute
	Lang string // Go or Python
	// Script is a Python plugin's main file (plugin.py, as `sockplay new`
	// writes it, or the one .py file that is not a test).
	Script string
}

// Detect says what dir holds: a Go plugin (a go.mod or .go files) or a
// Python one.
func Detect(dir string) (Source, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Source{}, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Source{}, err
	}
	if !fi.IsDir() {
		return Source{}, fmt.Errorf("%s is not a directory", dir)
	}
	goFiles, _ := filepath.Glob(filepath.Join(abs, "*.go"))
	if _, err := os.Stat(filepath.Join(abs, "go.mod")); err == nil || len(goFiles) > 0 {
		return Source{Dir: abs, Lang: Go}, nil
	}
	if _, err := os.Stat(filepath.Join(abs, "plugin.py")); err == nil {
		return Source{Dir: abs, Lang: Python, Script: filepath.Join(abs, "plugin.py")}, nil
	}
	pys, _ := filepath.Glob(filepath.Join(abs, "*.py"))
	pys = slices.DeleteFunc(pys, func(p string) bool { return strings.HasPrefix(filepath.Base(p), "test_") })
	if len(pys) == 1 {
		return Source{Dir: abs, Lang: Python, Script: pys[0]}, nil
	}
	return Source{}, fmt.Errorf("%s holds no plugin source: no go.mod or .go files, and no plugin.py", abs)
}

// relevant reports whether a change to path (a file of the source tree)
// changes the plugin: Go sources and go.mod/go.sum, or Python sources, but
// not tests, editors' temporary files or hidden files.
func (s Source) relevant(path string) bool {
	base := filepath.Base(path)
	if strings.HasPrefix(base, ".") || strings.HasPrefix(base, "#") || strings.HasSuffix(base, "~") {
		return false
	}
	if s.Lang == Go {
		return (strings.HasSuffix(base, ".go") && !strings.HasSuffix(base, "_test.go")) || base == "go.mod" || base == "go.sum"
	}
	return strings.HasSuffix(base, ".py") && !strings.HasPrefix(base, "test_")
}

// Builder builds a plugin's binary into the plugin directory.
type Builder struct {
	Src       Source
	PluginDir string
	// PythonSDK is the Python SDK's directory (sdk/python of a checkout),
	// whose build_plugin.py makes a Python plugin's executable.
	PythonSDK string
}

// Built is a successful build.
type Built struct {
	Name, Version string
	Path          string // PluginDir/sockplay-Name
	SHA256        string // hexadecimal
	Took          time.Duration
	// Unchanged: the binary is byte for byte the one already there.
	Unchanged bool
}

// BuildError is a build that failed; Output holds the compiler's (or the
// plugin's) own messages.
type BuildError struct {
	Output string
	Err    error
}

func (e *BuildError) Error() string { return e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// python is Debian's interpreter: the Python SDK's dependencies are Debian
// packages (see sdk/python/build_plugin.py).
const python = "/usr/bin/python3"

// versionRE finds the line that names the plugin in what --version prints;
// the plugin may print other lines first (a fmt.Println before sdk.Main).
var versionRE = regexp.MustCompile(`(?m)^sockplay-(` + protocol.NamePattern + `) (\S+) `)

// Build builds the plugin into a temporary file in the plugin directory,
// asks the result its name (sockplay-NAME --version), and renames it to
// PluginDir/sockplay-NAME: the host never sees a half-written binary.
func (b *Builder) Build(ctx context.Context) (Built, error) {
	start := time.Now()
	tmpDir, err := os.MkdirTemp(b.PluginDir, ".sockplay-dev-")
	if err != nil {
		return Built{}, fmt.Errorf("plugin directory: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	out := filepath.Join(tmpDir, "sockplay-build")
	switch b.Src.Lang {
	case Go:
		if msg, err := runIn(ctx, b.Src.Dir, "go", "build", "-o", out, "."); err != nil {
			return Built{}, &BuildError{Output: msg, Err: fmt.Errorf("go build: %w", err)}
		}
	case Python:
		if msg, err := runIn(ctx, b.Src.Dir, python, "-c", syntaxCheck, b.Src.Script); err != nil {
			return Built{}, &BuildError{Output: msg, Err: errors.New("syntax error")}
		}
		builder := filepath.Join(b.PythonSDK, "build_plugin.py")
		if msg, err := runIn(ctx, b.Src.Dir, python, builder, tmpDir, "build="+b.Src.Script); err != nil {
			return Built{}, &BuildError{Output: msg, Err: fmt.Errorf("%s: %w", builder, err)}
		}
	default:
		return Built{}, fmt.Errorf("language %q", b.Src.Lang)
	}
	msg, err := runIn(ctx, b.Src.Dir, out, "--version")
	m := versionRE.FindStringSubmatch(msg)
	switch {
	case err != nil:
		return Built{}, &BuildError{Output: msg, Err: fmt.Errorf("the built plugin does not start (sockplay-NAME --version: %v)", err)}
	case m == nil:
		return Built{}, &BuildError{Output: msg, Err: errors.New("the built plugin's --version printed no line 'sockplay-NAME VERSION ...': is it a sockplay plugin (sdk.Main)?")}
	}
	bd := Built{Name: m[1], Version: m[2], Path: filepath.Join(b.PluginDir, "sockplay-"+m[1])}
	if bd.SHA256, err = fileSHA256(out); err != nil {
		return Built{}, err
	}
	if old, err := fileSHA256(bd.Path); err == nil && old == bd.SHA256 {
		bd.Unchanged = true
	} else if err := os.Rename(out, bd.Path); err != nil {
		return Built{}, err
	}
	bd.Took = time.Since(start)
	return bd, nil
}

// syntaxCheck compiles a Python file without writing anything and prints a
// syntax error as file:line:column: message, the way compilers do.
const syntaxCheck = `import sys
p = sys.argv[1]
try:
    compile(open(p, encoding="utf-8").read(), p, "exec")
except SyntaxError as e:
    print(f"{e.filename}:{e.lineno}:{e.offset}: {e.msg}")
    sys.exit(1)
`

// buildTimeout bounds one build (a first go build compiles the SDK's
// dependencies).
const buildTimeout = 10 * time.Minute

// runIn runs a command in dir and returns its combined output.
func runIn(ctx context.Context, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return strings.TrimRight(out.String(), "\n"), err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
