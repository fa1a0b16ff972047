package serve

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The status directory holds the status file, its lock and the control
// socket. Whoever can write in it can make `sockplay status` show anything,
// point `sockplay reload` at a socket of their own, or, with a symbolic link
// as the lock file, have the host overwrite a file of their choosing (case
// 12: root's host truncated the target of another user's link;
// imapsync#399, rofi-pass#45, Debian #809252). The default directory,
// $TMPDIR/sockplay-UID without XDG_RUNTIME_DIR, is a name anyone can
// predict and make first. So, as tmux refuses a /tmp/tmux-UID it does not
// own and OpenSSH's StrictModes checks the path to a key:
//
//   - the host makes a missing status directory mode 0700;
//   - it refuses a directory that is not its user's own, or that the
//     directory's group or others can write;
//   - every directory above it must be root's or the user's, and writable by
//     no one else unless it is sticky (/tmp: others cannot rename or remove
//     what is the user's there);
//   - a symbolic link on the way must be root's or the user's;
//   - the lock file is opened relative to the directory checked (openat)
//     with O_NOFOLLOW, and must be a regular file of the user's; the status
//     file is replaced by a rename of a file made with O_EXCL, which follows
//     no link.
//
// `sockplay status`, `reload` and `dev`, which read the status file and trust
// the control socket it names, check the same way, and also accept what
// root owns.

// errUnsafeDir wraps every refusal of a status directory.
var errUnsafeDir = errors.New("unsafe status directory")

// statusDirFor makes the status directory of the status file path if it is
// missing, checks it, and returns it open (O_DIRECTORY, O_NOFOLLOW), checked
// again through the descriptor, for opening files in it.
func statusDirFor(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("status file %s: %w", path, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("status file %s: %w", path, err)
	}
	if err := checkDirPath(dir, false); err != nil {
		return nil, fmt.Errorf("status file %s: %w", path, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("status file %s: %s: %w", path, dir, err)
	}
	d := os.NewFile(uintptr(fd), dir)
	fi, err := d.Stat()
	if err == nil {
		err = checkOwnDir(dir, fi, false)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("status file %s: %w", path, err)
	}
	return d, nil
}

// openInDir opens name in directory d with flags, never following a link
// (O_NOFOLLOW, relative to d: openat(2)), and checks that it is a regular
// file of this user's.
func openInDir(d *os.File, name string, flags int, perm uint32) (*os.File, error) {
	fd, err := unix.Openat(int(d.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%w: %s is a symbolic link: the host follows none in its status directory",
			errUnsafeDir, filepath.Join(d.Name(), name))
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.Name(), name))
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := checkOwnFile(f.Name(), fi, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkDirPath checks the directory dir (absolute) and the path to it: see
// the comment at the top of this file. A reader also accepts root's.
func checkDirPath(dir string, reader bool) error {
	p := string(filepath.Separator)
	for _, c := range strings.Split(filepath.Clean(dir), string(filepath.Separator)) {
		if c == "" {
			continue
		}
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 && !trustedOwner(fi) {
			return fmt.Errorf("%w: %s is a symbolic link owned by uid %d, neither root nor this user (uid %d)",
				errUnsafeDir, p, owner(fi), os.Geteuid())
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for a := filepath.Dir(real); ; a = filepath.Dir(a) {
		fi, err := os.Stat(a)
		if err != nil {
			return err
		}
		switch {
		case !trustedOwner(fi):
			return fmt.Errorf("%w: %s, above %s, is owned by uid %d, neither root nor this user (uid %d)",
				errUnsafeDir, a, dir, owner(fi), os.Geteuid())
		case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
			return fmt.Errorf("%w: %s, above %s, is writable by its group or others (mode %o) and not sticky",
				errUnsafeDir, a, dir, fi.Mode().Perm())
		}
		if a == filepath.Dir(a) {
			break
		}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	return checkOwnDir(dir, fi, reader)
}

// checkOwnDir checks the status directory itself.
func checkOwnDir(dir string, fi fs.FileInfo, reader bool) error {
	uid := os.Geteuid()
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory", errUnsafeDir, dir)
	case owner(fi) != uid && !(reader && owner(fi) == 0):
		return fmt.Errorf("%w: %s is owned by uid %d, not by this user (uid %d): another user may have made it to take over the status file and the control socket; remove it, or give --status-file a directory of your own",
			errUnsafeDir, dir, owner(fi), uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%w: %s is writable by its group or others (mode %o): chmod go-w it, or give --status-file a directory of your own",
			errUnsafeDir, dir, fi.Mode().Perm())
	}
	return nil
}

// checkOwnFile checks a file in the status directory: a regular file (or,
// for the control socket, a socket) of this user's, or of root's for a
// reader.
func checkOwnFile(name string, fi fs.FileInfo, reader bool) error {
	uid := os.Geteuid()
	switch {
	case !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSocket == 0:
		return fmt.Errorf("%w: %s is not a regular file (mode %s)", errUnsafeDir, name, fi.Mode())
	case owner(fi) != uid && !(reader && owner(fi) == 0):
		return fmt.Errorf("%w: %s is owned by uid %d, not by this user (uid %d)", errUnsafeDir, name, owner(fi), uid)
	}
	return nil
}

func trustedOwner(fi fs.FileInfo) bool {
	o := owner(fi)
	return o == 0 || o == os.Geteuid()
}

func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// readStatusFile reads the status file at path for `sockplay status`,
// `reload` and `dev`, after checking its directory and the file as the
// comment at the top of this file says.
func readStatusFile(path string) ([]byte, error) {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	if err := checkDirPath(dir, true); err != nil {
		return nil, fmt.Errorf("status file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("status file %s: %w: it is a symbolic link", path, errUnsafeDir)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkOwnFile(path, fi, true); err != nil {
		return nil, fmt.Errorf("status file %s: %w", path, err)
	}
	return io.ReadAll(io.LimitReader(f, maxStatusBytes))
}

// maxStatusBytes bounds what a status file read takes: one is a few KiB per
// plugin.
const maxStatusBytes = 64 << 20

// checkControl checks the control socket that a status file names before
// `sockplay reload` talks to it: its directory as the status directory, the
// socket root's or this user's.
func checkControl(path string) error {
	if err := checkDirPath(filepath.Dir(path), true); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: %w: not a socket (mode %s)", path, errUnsafeDir, fi.Mode())
	}
	return checkOwnFile(path, fi, true)
}
