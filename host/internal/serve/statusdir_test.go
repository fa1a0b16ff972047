package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nobody is the uid that plays another user (root only).
const nobody = 65534

// A status directory is used only when it is the user's own and no one else
// can write in it or above it; no file in it is opened through a link
// (issue 27, kind 3; the shared case 12-status-dir-symlink-clobber). Each
// case checks that the host refuses the directory, names why, and leaves
// the file a link points to untouched.
func TestStatusDirRefused(t *testing.T) {
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name      string
		needsRoot bool
		// setup makes the trap under base and returns the status file.
		setup func(t *testing.T, base, victim string) string
		want  string
	}{
		{"made by another user", true, func(t *testing.T, base, victim string) string {
			dir := filepath.Join(base, "sockplay-0")
			mkdir(t, dir, 0o777)
			link(t, victim, filepath.Join(dir, "status.json.lock"))
			chown(t, dir, nobody)
			chown(t, filepath.Join(dir, "status.json.lock"), nobody)
			return filepath.Join(dir, "status.json")
		}, "is owned by uid 65534, not by this user"},
		{"writable by others", false, func(t *testing.T, base, victim string) string {
			dir := filepath.Join(base, "shared")
			mkdir(t, dir, 0o777)
			return filepath.Join(dir, "status.json")
		}, "is writable by its group or others (mode 777)"},
		{"writable by its group", false, func(t *testing.T, base, victim string) string {
			dir := filepath.Join(base, "group")
			mkdir(t, dir, 0o770)
			return filepath.Join(dir, "status.json")
		}, "is writable by its group or others (mode 770)"},
		{"a link as the lock file", false, func(t *testing.T, base, victim string) string {
			dir := filepath.Join(base, "mine")
			mkdir(t, dir, 0o700)
			link(t, victim, filepath.Join(dir, "status.json.lock"))
			return filepath.Join(dir, "status.json")
		}, "status.json.lock is a symbolic link"},
		{"a parent others can write, not sticky", false, func(t *testing.T, base, victim string) string {
			parent := filepath.Join(base, "open")
			mkdir(t, parent, 0o777)
			dir := filepath.Join(parent, "mine")
			mkdir(t, dir, 0o700)
			return filepath.Join(dir, "status.json")
		}, "is writable by its group or others (mode 777) and not sticky"},
		{"another user's link on the way", true, func(t *testing.T, base, victim string) string {
			dir := filepath.Join(base, "real")
			mkdir(t, dir, 0o700)
			l := filepath.Join(base, "via")
			link(t, dir, l)
			chown(t, l, nobody)
			return filepath.Join(l, "status.json")
		}, "is a symbolic link owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsRoot && !root {
				t.Skip("needs root, to act as another user")
			}
			base := t.TempDir()
			if err := os.Chmod(base, 0o755); err != nil { // as /tmp would be, less the sticky bit's role
				t.Fatal(err)
			}
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			path := tc.setup(t, base, victim)
			lock, err := lockStatus(path)
			if err == nil {
				lock.Close()
				t.Fatalf("lockStatus(%s) took it", path)
			}
			if !errors.Is(err, errUnsafeDir) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one that says %q", err, tc.want)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
				t.Errorf("the file the link points to now reads %q", b)
			}
			if _, err := os.Lstat(path); err == nil {
				t.Errorf("%s was written", path)
			}
			// The readers (sockplay status, reload, dev) find nothing to trust.
			if st, err := ReadStatus(path); err == nil {
				t.Errorf("ReadStatus read %+v", st)
			}
		})
	}
}

// A missing status directory is made mode 0700; one of the user's own, with
// no write for others, is used as it is (a default directory made 0755 by
// an older version, for one).
func TestStatusDirMade(t *testing.T) {
	base := t.TempDir()
	for _, tc := range []struct {
		dir  string
		pre  os.FileMode // 0: missing
		want os.FileMode
	}{{"new", 0, 0o700}, {"old", 0o755, 0o755}} {
		dir := filepath.Join(base, tc.dir)
		if tc.pre != 0 {
			mkdir(t, dir, tc.pre)
		}
		lock, err := lockStatus(filepath.Join(dir, "status.json"))
		if err != nil {
			t.Fatalf("%s: %v", tc.dir, err)
		}
		lock.Close()
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != tc.want {
			t.Errorf("%s: mode %v, %v; want %o", tc.dir, fi.Mode(), err, tc.want)
		}
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func link(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, name string, uid int) {
	t.Helper()
	if err := os.Lchown(name, uid, -1); err != nil {
		t.Fatal(err)
	}
}

// `sockplay reload` talks to the control socket a status file names only
// when the socket's directory is as safe as a status directory.
func TestRequestReloadChecksControl(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	mkdir(t, open, 0o777)
	sock := filepath.Join(open, "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	statusFile := filepath.Join(t.TempDir(), "status.json")
	b, _ := json.Marshal(StatusReport{HostPid: os.Getpid(), Control: sock})
	if err := writeFileAtomic(statusFile, b); err != nil {
		t.Fatal(err)
	}
	_, err = RequestReload(context.Background(), statusFile, ReloadRequest{})
	if !errors.Is(err, errUnsafeDir) || !strings.Contains(err.Error(), "is writable by its group or others") {
		t.Fatalf("RequestReload through a socket in a directory others can write: %v", err)
	}
}
