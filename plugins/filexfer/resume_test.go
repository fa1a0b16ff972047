package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientProcess starts the client as its own process, to be killed.
func clientProcess(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := helper(t, helperEnv+"=client", helperArgsEnv+"="+strings.Join(args, "\x1f"))
	return cmd
}

// gate stops a transfer at its first chunk until released.
type gate struct {
	once             sync.Once
	reached, release chan struct{}
}

func newGate() *gate { return &gate{reached: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) hook(string, int64) {
	g.once.Do(func() {
		close(g.reached)
		select {
		case <-g.release:
		case <-time.After(20 * time.Second):
		}
	})
}

func (g *gate) wait(t *testing.T) {
	t.Helper()
	select {
	case <-g.reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the transfer never started")
	}
}

// TestKillClientMidUpload kills the client process with SIGKILL while the
// server holds part of an upload; nothing appears under the final name, and
// the next put resumes where the server stopped.
func TestKillClientMidUpload(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	g := newGate()
	in := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{received: g.hook})
	data := randomBytes(t, 24<<20)
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, data)

	cmd := clientProcess(t, "put", "-q", in.Addr, src, "big.bin")
	g.wait(t)
	kill9(t, cmd)
	close(g.release)
	waitFor(t, "the server to keep the partial upload", func() bool {
		st := stagedFiles(t, root)
		return len(st) == 1 && in.Server.Stats().Active == 0
	})
	mustNotExist(t, filepath.Join(root, "big.bin"))
	var kept int64
	for _, n := range stagedFiles(t, root) {
		kept = n
	}
	if kept <= 0 || kept >= int64(len(data)) {
		t.Fatalf("the server kept %d of %d bytes", kept, len(data))
	}

	_, _, errs := run(t, "put", "-q", "-v", in.Addr, src, "big.bin")
	if !strings.Contains(errs, "resuming at ") {
		t.Fatalf("the second put did not resume: %q", errs)
	}
	got, err := os.ReadFile(filepath.Join(root, "big.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the resume the file differs (%d bytes, %v)", len(got), err)
	}
	if len(stagedFiles(t, root)) != 0 {
		t.Fatalf("staged files left: %v", stagedFiles(t, root))
	}
}

// TestKillClientMidDownload kills the client process while a download is
// half done: LOCAL.part holds a prefix, LOCAL does not exist, and the next
// get resumes and verifies.
func TestKillClientMidDownload(t *testing.T) {
	noLeaks(t)
	defer func(c int64) { sendChunk = c }(sendChunk)
	sendChunk = 1 << 20
	root := t.TempDir()
	data := randomBytes(t, 16<<20)
	writeFile(t, filepath.Join(root, "big.bin"), data)
	g := newGate()
	in := start(t, map[string]string{"root": root}, testHooks{sent: g.hook})
	dst := filepath.Join(t.TempDir(), "big.bin")

	cmd := clientProcess(t, "get", "-q", in.Addr, "big.bin", dst)
	g.wait(t)
	waitFor(t, "the first chunk to reach the partial file", func() bool {
		st, err := os.Stat(dst + ".part")
		return err == nil && st.Size() == sendChunk
	})
	kill9(t, cmd)
	close(g.release)
	mustNotExist(t, dst)

	_, _, errs := run(t, "get", "-q", "-v", in.Addr, "big.bin", dst)
	if !strings.Contains(errs, "resuming at 1048576 ") {
		t.Fatalf("the second get did not resume: %q", errs)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the resume the file differs (%d bytes, %v)", len(got), err)
	}
	mustNotExist(t, dst+".part")
}

// TestResumeWithChangedRemote: a partial download of an older version of the
// file does not verify against the new one; the client starts again once and
// gets the new file whole.
func TestResumeWithChangedRemote(t *testing.T) {
	root := t.TempDir()
	data := randomBytes(t, 1<<20)
	writeFile(t, filepath.Join(root, "f"), data)
	in := start(t, map[string]string{"root": root}, testHooks{})
	dst := filepath.Join(t.TempDir(), "f")
	writeFile(t, dst+".part", []byte("stale prefix of another version"))
	_, _, errs := run(t, "get", "-q", "-v", in.Addr, "f", dst)
	if !strings.Contains(errs, "starting again from 0") {
		t.Fatalf("stderr %q", errs)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("the file differs")
	}
}

// TestKillServerMidUpload kills the serving process with SIGKILL in the
// middle of an upload; the final name never appears, and a new server on the
// same root resumes the upload.
func TestKillServerMidUpload(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	data := randomBytes(t, 24<<20)
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, data)

	srv, out := helper(t, helperEnv+"=server", helperRootEnv+"="+root, helperStopEnv+"=1048576")
	addr := readLine(t, out)
	done := make(chan int, 1)
	go func() {
		code, _, _ := run(t, "put", "-q", addr, src, "f.bin")
		done <- code
	}()
	if s := readLine(t, out); s != "stopped" {
		t.Fatalf("server said %q", s)
	}
	kill9(t, srv)
	select {
	case code := <-done:
		if code == 0 {
			t.Fatal("the put succeeded against a killed server")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the client did not notice the server's death")
	}
	mustNotExist(t, filepath.Join(root, "f.bin"))
	if st := stagedFiles(t, root); len(st) != 1 {
		t.Fatalf("staged: %v", st)
	}

	in := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{})
	_, _, errs := run(t, "put", "-q", "-v", in.Addr, src, "f.bin")
	if !strings.Contains(errs, "resuming at ") {
		t.Fatalf("the upload did not resume: %q", errs)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "f.bin")); !bytes.Equal(got, data) {
		t.Fatal("the file differs")
	}
}

// TestShutdownMidUpload drains the in-process server while an upload is
// stopped: the staged bytes survive and a new server resumes them.
func TestShutdownMidUpload(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	g := newGate()
	in := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{received: g.hook})
	data := randomBytes(t, 12<<20)
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, data)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(t, "put", "-q", in.Addr, src, "f.bin")
	}()
	g.wait(t)
	go func() { time.Sleep(50 * time.Millisecond); close(g.release) }()
	shutdownNow(in.Server)
	<-done
	mustNotExist(t, filepath.Join(root, "f.bin"))

	in2 := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{})
	mustRun(t, "put", "-q", in2.Addr, src, "f.bin")
	if got, _ := os.ReadFile(filepath.Join(root, "f.bin")); !bytes.Equal(got, data) {
		t.Fatal("the file differs")
	}
}
