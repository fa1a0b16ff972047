package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The host's run directory holds one socket directory per plugin process, in
// which go-plugin binds the process's control socket:
//
//	RUN/sockplay-NNNNNNNNNN/NAME-NNNNNNNNNN/pluginNNNNNNNNNN
//
// (os.MkdirTemp and os.CreateTemp add up to 10 digits). A Unix socket's path
// is limited to MaxSocketPath bytes, so the run directory is made where that
// path fits.
const (
	// MaxSocketPath is the longest path a Unix socket can be bound to on
	// Linux: sun_path holds 108 bytes with the terminating NUL (unix(7)).
	MaxSocketPath = 107
	// maxNameInDir is how much of a plugin's name its socket directory's
	// name keeps.
	maxNameInDir = 16
	randomDigits = 10
	runDirPrefix = "sockplay-"
	// pluginSocket is go-plugin's socket name in its directory
	// (serverListener_unix: os.CreateTemp(dir, "plugin")).
	pluginSocket = "plugin"
)

// socketDirPrefix is the start of a socket directory's name: the plugin's
// name, cut to maxNameInDir bytes, and a dash.
func socketDirPrefix(name string) string {
	if len(name) > maxNameInDir {
		name = name[:maxNameInDir]
	}
	return name + "-"
}

// socketPathLen is the longest control socket path a process of any plugin
// gets under runDir.
func socketPathLen(runDir string) int {
	return len(runDir) + 1 + maxNameInDir + 1 + randomDigits + 1 + len(pluginSocket) + randomDigits
}

// makeSocketDir makes a process's socket directory in runDir.
func makeSocketDir(runDir, name string) (string, error) {
	if n := socketPathLen(runDir); n > MaxSocketPath {
		return "", fmt.Errorf("socket directory in %s: a control socket's path would be up to %d bytes, over the %d-byte limit of a Unix socket path (sun_path, unix(7))",
			runDir, n, MaxSocketPath)
	}
	dir, err := os.MkdirTemp(runDir, socketDirPrefix(name))
	if err != nil {
		return "", fmt.Errorf("socket directory: %w", err)
	}
	return dir, nil
}

// MakeRunDir makes the host's run directory in base (os.TempDir() when
// empty: $TMPDIR or /tmp). When a plugin's control socket path would not fit
// there (a long TMPDIR), it makes it in the first of $XDG_RUNTIME_DIR and /tmp
// where it fits, and says so in fallback. When none fits, the error names the
// limit.
func MakeRunDir(base string) (dir, fallback string, err error) {
	return makeRunDir(base, []string{os.Getenv("XDG_RUNTIME_DIR"), "/tmp"})
}

func makeRunDir(base string, others []string) (dir, fallback string, err error) {
	if base == "" {
		base = os.TempDir()
	}
	candidates := []string{base}
	for _, c := range others {
		if c != "" && filepath.IsAbs(c) && c != base {
			candidates = append(candidates, c)
		}
	}
	var tried []string
	for i, c := range candidates {
		n := socketPathLen(filepath.Join(c, runDirPrefix+strings.Repeat("0", randomDigits)))
		if n > MaxSocketPath {
			tried = append(tried, fmt.Sprintf("%d bytes under %s", n, c))
			continue
		}
		dir, err := os.MkdirTemp(c, runDirPrefix)
		if err != nil {
			return "", "", fmt.Errorf("run directory: %w", err)
		}
		if i > 0 {
			fallback = fmt.Sprintf("a plugin's control socket path under %s would pass the %d-byte limit of a Unix socket path; using %s",
				base, MaxSocketPath, c)
		}
		return dir, fallback, nil
	}
	return "", "", fmt.Errorf("run directory: a plugin's control socket path would be %s: over the %d-byte limit of a Unix socket path (sun_path, unix(7)); set TMPDIR to a shorter directory",
		strings.Join(tried, ", "), MaxSocketPath)
}
