//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// The end-to-end tests run the real host (sockplay serve) with the real
// plugin binary; the clients are the tutorial's Python client and the built
// sockplay-filexfer.

func TestE2ETutorialClient(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tutorial.bin")
	want := randomBytes(t, 300*1000)
	writeFile(t, file, want)
	h := e2e.Start(t, e2e.Config{Enable: []string{"filexfer"}, Args: []string{"--set", "filexfer.push=" + file}})
	out := filepath.Join(t.TempDir(), "received.bin")
	stdout, stderr, code := e2e.Tutorial(t, "file_client.py", nil, append(e2e.HostPort(h.Addr("filexfer")), out)...)
	if code != 0 || stdout != "received 300000 of 300000\n" {
		t.Fatalf("file_client.py: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the tutorial client's file differs from the one pushed (%d bytes, %v)", len(got), err)
	}
	h.Stop(15 * time.Second)
}

func TestE2EGetPut(t *testing.T) {
	root := t.TempDir()
	h := e2e.Start(t, e2e.Config{Enable: []string{"filexfer"}, Args: []string{
		"--set", "filexfer.root=" + root, "--set", "filexfer.writable=true"}})
	addr := h.Addr("filexfer")
	local := t.TempDir()
	src := filepath.Join(local, "up.bin")
	data := randomBytes(t, 3<<20+5)
	writeFile(t, src, data)
	bin := func(args ...string) string {
		t.Helper()
		out, errs, code := e2e.RunBinary(t, "sockplay-filexfer", nil, args...)
		if code != 0 {
			t.Fatalf("sockplay-filexfer %v: exit %d: %s", args, code, errs)
		}
		return out
	}
	bin("put", addr, src, "remote.bin")
	if out := bin("sum", addr, "remote.bin"); out != sumOf(data)+"  remote.bin\n" {
		t.Fatalf("sum: %q", out)
	}
	if out := bin("ls", addr); !strings.Contains(out, "remote.bin") || strings.Contains(out, stagingDir) {
		t.Fatalf("ls: %q", out)
	}
	dst := filepath.Join(local, "down.bin")
	bin("get", addr, "remote.bin", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("the downloaded file differs")
	}
	if _, errs, code := e2e.RunBinary(t, "sockplay-filexfer", nil, "get", addr, "../etc/passwd", dst); code != 1 || !strings.Contains(errs, "forbidden") {
		t.Fatalf("traversal through the host: exit %d, %q", code, errs)
	}
	h.Stop(15 * time.Second)
}

// TestE2EKillPluginMidUpload kills the plugin process with SIGKILL while an
// upload is in flight: nothing appears under the final name, the host starts
// the plugin again, and the same put resumes and lands the file whole.
func TestE2EKillPluginMidUpload(t *testing.T) {
	root := t.TempDir()
	h := e2e.Start(t, e2e.Config{Enable: []string{"filexfer"}, Args: []string{
		"--set", "filexfer.root=" + root, "--set", "filexfer.writable=true"}})
	addr := h.Addr("filexfer")
	pids := h.PluginPids("filexfer")
	if len(pids) != 1 {
		t.Fatalf("plugin pids %v", pids)
	}
	src := filepath.Join(t.TempDir(), "big.bin")
	makeFile(t, src, 512<<20)
	want := fileSum(t, src)

	put := exec.Command(filepath.Join(e2e.Bin(t), "sockplay-filexfer"), "put", "-q", addr, src, "big.bin")
	var putErr bytes.Buffer
	put.Stderr = &putErr
	if err := put.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the upload to start", func() bool {
		for _, n := range stagedFiles(t, root) {
			if n >= 1<<20 {
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := put.Wait(); err == nil {
		t.Fatal("the put succeeded although the plugin was killed under it")
	}
	t.Logf("client after the kill: %s", strings.TrimSpace(putErr.String()))
	mustNotExist(t, filepath.Join(root, "big.bin"))
	var kept int64
	for _, n := range stagedFiles(t, root) {
		kept = n
	}
	if kept <= 0 || kept >= 512<<20 {
		t.Fatalf("the staging directory holds %d bytes", kept)
	}

	waitFor(t, "the host to restart the plugin", func() bool {
		p := h.PluginPids("filexfer")
		return len(p) == 1 && !slices.Contains(pids, p[0])
	})
	var out, errs string
	var code int
	for i := 0; i < 50; i++ { // the new process may still be configuring
		out, errs, code = e2e.RunBinary(t, "sockplay-filexfer", nil, "put", "-q", "-v", addr, src, "big.bin")
		if code == 0 || !strings.Contains(errs, "connect") && !strings.Contains(errs, "without an answer") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 0 || !strings.Contains(errs, "resuming at ") {
		t.Fatalf("put after the restart: exit %d, %s %s", code, out, errs)
	}
	if got := fileSum(t, filepath.Join(root, "big.bin")); got != want {
		t.Fatalf("the landed file's SHA-256 is %s, want %s", got, want)
	}
	if st := stagedFiles(t, root); len(st) != 0 {
		t.Fatalf("staged files left: %v", st)
	}
	h.Stop(15 * time.Second)
}
