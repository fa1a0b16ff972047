package serve

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/internal/testfs"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// A status file on a full disk: the write fails with ENOSPC, the previous
// file stays whole, no temporary file is left, and the failure is one WARN
// line however often the host retries, then one INFO line once a write works
// again. The disk is a 64 KiB tmpfs inside the test's temp directory.
func TestStatusFileDiskFull(t *testing.T) {
	dir := testfs.Tmpfs(t, 64<<10, "")
	path := filepath.Join(dir, "status.json")
	old := []byte(`{"host_pid": 1}` + "\n")
	if err := writeFileAtomic(path, old); err != nil {
		t.Fatal(err)
	}
	testfs.Fill(t, filepath.Join(dir, "filler"), 1<<20)

	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	var lim plog.Limiter
	failing := false
	big := bytes.Repeat([]byte("x"), 16<<10)
	for i := 0; i < 5; i++ { // five rewrites, as five seconds of a busy host
		err := writeFileAtomic(path, big)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write %d on a full disk: %v, want ENOSPC", i, err)
		}
		failing = statusWriteLog(log, &lim, failing, path, err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("the previous status file: %q, %v; want %q kept whole", got, err, old)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".status-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "[WARN]") || !strings.Contains(lines[0], "no space left on device") {
		t.Fatalf("log after five failed writes:\n%s\nwant one WARN line naming the error", buf.String())
	}

	// Room again: the next write works and says so once.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	err := writeFileAtomic(path, big)
	if err != nil {
		t.Fatalf("write with room: %v", err)
	}
	if statusWriteLog(log, &lim, failing, path, err) {
		t.Fatal("a write that worked is reported as failing")
	}
	if !strings.Contains(buf.String(), "[INFO]") || !strings.Contains(buf.String(), "status file written again") {
		t.Fatalf("log after recovery: %q", buf.String())
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, big) {
		t.Fatal("the status file was not replaced once there was room")
	}
}
