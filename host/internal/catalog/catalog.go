// Package catalog finds plugin binaries: executables named sockplay-NAME in a
// directory, the way git and kubectl find theirs, each with the SHA-256 that
// the supervisor checks (Verify) before each start, so that the file launched
// is the file found.
package catalog

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// Prefix starts every plugin binary's name.
const Prefix = "sockplay-"

// Entry is one plugin binary.
type Entry struct {
	Name   string // NAME of sockplay-NAME
	Path   string // absolute path
	SHA256 []byte
}

// Hex returns the entry's SHA-256 in hexadecimal.
func (e Entry) Hex() string { return hex.EncodeToString(e.SHA256) }

// Skipped is a file that looked like a plugin but is not usable.
type Skipped struct {
	Path   string
	Reason string
}

// Scan lists the plugin binaries in dir, sorted by name, and the files named
// like one that it skipped, with why.
func Scan(dir string) ([]Entry, []Skipped, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin dir %s: %w", dir, err)
	}
	des, err := os.ReadDir(abs)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin dir: %w", err)
	}
	var entries []Entry
	var skipped []Skipped
	for _, de := range des {
		base := de.Name()
		if !strings.HasPrefix(base, Prefix) {
			continue
		}
		path := filepath.Join(abs, base)
		name := strings.TrimPrefix(base, Prefix)
		if !protocol.ValidName(name) {
			skipped = append(skipped, Skipped{path, "name is not sockplay-NAME with NAME of lower case letters, digits and dashes"})
			continue
		}
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			skipped = append(skipped, Skipped{path, err.Error()})
			continue
		case !fi.Mode().IsRegular():
			skipped = append(skipped, Skipped{path, "not a regular file"})
			continue
		case fi.Mode().Perm()&0o111 == 0:
			skipped = append(skipped, Skipped{path, "not executable"})
			continue
		}
		sum, err := fileSHA256(path)
		if err != nil {
			skipped = append(skipped, Skipped{path, err.Error()})
			continue
		}
		entries = append(entries, Entry{Name: name, Path: path, SHA256: sum})
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries, skipped, nil
}

// Find returns the entry called name, or an error that lists what there is.
func Find(entries []Entry, name string) (Entry, error) {
	for _, e := range entries {
		if e.Name == name {
			return e, nil
		}
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	have := strings.Join(names, ", ")
	if have == "" {
		have = "none"
	}
	return Entry{}, fmt.Errorf("unknown plugin %q (found: %s)", name, have)
}

// Reread returns e as its file is now: hashed afresh (the file is read again
// only if it changed, see sumOf), so that a binary rebuilt in place since it
// was found is started, and checked by Verify, as the file it has become.
func Reread(e Entry) (Entry, error) {
	fi, err := os.Stat(e.Path)
	switch {
	case err != nil:
		return Entry{}, err
	case !fi.Mode().IsRegular():
		return Entry{}, fmt.Errorf("%s: not a regular file", e.Path)
	case fi.Mode().Perm()&0o111 == 0:
		return Entry{}, fmt.Errorf("%s: not executable", e.Path)
	}
	sum, err := fileSHA256(e.Path)
	if err != nil {
		return Entry{}, err
	}
	e.SHA256 = sum
	return e, nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return sumOf(path, f)
}

// Lookup finds the binary of plugin name: in dirs in order, then in the
// directories of pathEnv (a $PATH value), as git and kubectl find theirs.
func Lookup(name string, dirs []string, pathEnv string) (Entry, error) {
	if !protocol.ValidName(name) {
		return Entry{}, fmt.Errorf("%q is not a plugin name (lower case letters, digits and dashes)", name)
	}
	for _, dir := range append(dirs, filepath.SplitList(pathEnv)...) {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, Prefix+name)
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			continue
		}
		sum, err := fileSHA256(abs)
		if err != nil {
			return Entry{}, err
		}
		return Entry{Name: name, Path: abs, SHA256: sum}, nil
	}
	return Entry{}, fmt.Errorf("no %s%s in %s or $PATH", Prefix, name, strings.Join(dirs, ", "))
}

// ScanPath lists the plugins in the directories of pathEnv (a $PATH value)
// that are not already among have (found earlier, in the plugin directory,
// or in an earlier $PATH directory): what `sockplay plugins` shows after the
// plugin directory's.
func ScanPath(pathEnv string, have []Entry) ([]Entry, []Skipped) {
	seen := map[string]bool{}
	for _, e := range have {
		seen[e.Name] = true
	}
	var entries []Entry
	var skipped []Skipped
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		es, sk, err := Scan(dir)
		if err != nil {
			continue // a $PATH entry that does not exist is common and harmless
		}
		skipped = append(skipped, sk...)
		for _, e := range es {
			if !seen[e.Name] {
				seen[e.Name] = true
				entries = append(entries, e)
			}
		}
	}
	return entries, skipped
}
