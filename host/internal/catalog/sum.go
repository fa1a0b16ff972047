package catalog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrChanged is Verify's error for a binary whose content is no longer the
// one found.
var ErrChanged = errors.New("binary changed since it was found (SHA-256 mismatch)")

// Verify checks that the file at e.Path still has the SHA-256 it had when e
// was found, as go-plugin's SecureConfig does before each start; unlike
// SecureConfig it reads the file only when it may have changed (see sumOf),
// so that a restart does not hash 20 MB again.
func Verify(e Entry) error {
	sum, err := fileSHA256(e.Path)
	if err != nil {
		return err
	}
	if !bytes.Equal(sum, e.SHA256) {
		return ErrChanged
	}
	return nil
}

// sums remembers the SHA-256 of the last version of each file hashed, with
// that version's identity, so that hashing the same version again costs an
// fstat(2). A file cannot be written, truncated or renamed over without its
// identity changing: the inode (a rename puts another file there), the size,
// or the change time, which the kernel sets on every write and which no
// system call sets to a chosen value. This is how git's index and rsync's
// quick check tell a file unchanged (without rsync's trust in mtime alone).
var sums = struct {
	sync.Mutex
	m map[string]summed
}{m: map[string]summed{}}

type summed struct {
	id  fileID
	sum []byte
}

// racyWindow (a variable for tests): a version whose change time is this close to when it was
// hashed is not remembered. File systems keep coarse times (a kernel tick,
// or seconds), so a write in the same tick as the one before the hash could
// leave the change time as it was; git calls such an entry racily clean and
// checks the content again.
var racyWindow = 2 * time.Second

// hashes counts the files read to hash them (for tests).
var hashes atomic.Int64

// sumOf returns the SHA-256 of f, opened from path.
func sumOf(path string, f *os.File) ([]byte, error) {
	before, err := statID(f)
	if err != nil {
		return nil, err
	}
	sums.Lock()
	c, ok := sums.m[path]
	sums.Unlock()
	if ok && c.id == before {
		return c.sum, nil
	}
	start := time.Now()
	hashes.Add(1)
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("checksum %s: %w", path, err)
	}
	sum := h.Sum(nil)
	if after, err := statID(f); err == nil && after == before && start.Sub(before.ctime()) > racyWindow {
		sums.Lock()
		sums.m[path] = summed{id: before, sum: sum}
		sums.Unlock()
	}
	return sum, nil
}
