//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/internal/testfs"
	"github.com/sockplay/sockplay/sdk"
)

// Write errors on the server's disk are the server's problem: the upload is
// answered with ERR (quota for a full disk, io otherwise), the connection
// stays in step, the partial file is removed, and the event is logged at
// WARN. On the client, a full local disk is reported as one.

// logBuffer collects a logger's output for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogged serves cfg.Root with hooks on a loopback port, logging into the
// returned buffer, and returns the address.
func startLogged(t *testing.T, cfg Config, hooks testHooks) (string, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Name: "filexfer", Output: io.MultiWriter(logs, testLog{t}), Level: hclog.Debug})
	d := DefaultConfig()
	d.Root, d.Writable, d.Quota = cfg.Root, true, cfg.Quota
	s, err := NewServer(d, log)
	if err != nil {
		t.Fatal(err)
	}
	s.hooks = hooks
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := sdk.NewServer(s, log)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		s.Close()
	})
	return ln.Addr().String(), logs
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// failingWriter writes to f until it has taken limit bytes, then fails every
// write with err.
type failingWriter struct {
	f     *os.File
	limit int64
	err   error
	n     int64
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.limit {
		k := int(w.limit - w.n)
		k, _ = w.f.Write(p[:k])
		w.n += int64(k)
		return k, &os.PathError{Op: "write", Path: w.f.Name(), Err: w.err}
	}
	k, err := w.f.Write(p)
	w.n += int64(k)
	return k, err
}

// TestUploadWriteError injects write and fsync errors into uploads, in both
// forms of PUT, and checks the answer, the cleanup, the log and that the
// connection is still usable.
func TestUploadWriteError(t *testing.T) {
	noLeaks(t)
	tests := []struct {
		name    string
		err     error
		at      int64 // bytes written before the error; -1: the fsync fails
		trailer bool
		want    string
	}{
		{"ENOSPC mid-upload", syscall.ENOSPC, 3 << 20, false, "ERR quota the server's disk is full"},
		{"ENOSPC, sum after the data", syscall.ENOSPC, 1<<20 + 5, true, "ERR quota the server's disk is full"},
		{"EDQUOT at the first byte", syscall.EDQUOT, 0, true, "ERR quota the server's disk is full"},
		{"EIO", syscall.EIO, 2 << 20, false, "ERR io "},
		{"fsync EIO", syscall.EIO, -1, true, "ERR io "},
		{"fsync ENOSPC", syscall.ENOSPC, -1, false, "ERR quota "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			hooks := testHooks{}
			if tt.at >= 0 {
				hooks.writer = func(f *os.File) io.Writer { return &failingWriter{f: f, limit: tt.at, err: tt.err} }
			} else {
				hooks.sync = func(*os.File) error { return &os.PathError{Op: "sync", Path: "x", Err: tt.err} }
			}
			addr, logs := startLogged(t, Config{Root: root}, hooks)
			data := randomBytes(t, 6<<20)
			r := dialRaw(t, addr)
			sum := sumOf(data)
			if tt.trailer {
				sum = SumAfter
			}
			if got := r.send(fmt.Sprintf("PUT %d %s big.bin\n", len(data), sum)); got != "OK 0" {
				t.Fatalf("PUT: %q", got)
			}
			// Send everything, as a client that does not look for an early
			// answer would; the server must read it all.
			if _, err := r.c.Write(data); err != nil {
				t.Fatal(err)
			}
			if tt.trailer {
				if _, err := io.WriteString(r.c, sumOf(data)+"\n"); err != nil {
					t.Fatal(err)
				}
			}
			if got := r.line(); !strings.HasPrefix(got, tt.want) || !strings.Contains(got, "nothing was stored") {
				t.Fatalf("upload answered %q, want %q... nothing was stored", got, tt.want)
			}
			mustNotExist(t, filepath.Join(root, "big.bin"))
			if st := stagedFiles(t, root); len(st) != 0 {
				t.Fatalf("the partial upload was kept: %v", st)
			}
			if l := logs.String(); !strings.Contains(l, "[WARN]  filexfer: upload failed on the server's disk; partial upload removed") ||
				!strings.Contains(l, "name=big.bin") {
				t.Fatalf("no WARN line for the failure in the log:\n%s", l)
			}
			// In step: the next request on the same connection works.
			if got := r.send("LIST .\n"); got != "OK 0" {
				t.Fatalf("LIST after the failed upload: %q", got)
			}
		})
	}
}

// TestClientPutDiskFull: the client reports a server's full disk as the
// server's refusal, whether the answer arrives while it is still sending (it
// then stops) or after.
func TestClientPutDiskFull(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	addr, _ := startLogged(t, Config{Root: root}, testHooks{
		writer: func(f *os.File) io.Writer { return &failingWriter{f: f, limit: 1 << 20, err: syscall.ENOSPC} },
	})
	src := filepath.Join(t.TempDir(), "src")
	makeFile(t, src, 64<<20)
	code, _, errs := run(t, "put", "-q", addr, src, "big.bin")
	if code != 1 || !strings.Contains(errs, "put big.bin: refused by the server: quota: the server's disk is full") {
		t.Fatalf("put: exit %d, %q", code, errs)
	}
	mustNotExist(t, filepath.Join(root, "big.bin"))
	if st := stagedFiles(t, root); len(st) != 0 {
		t.Fatalf("the partial upload was kept: %v", st)
	}
}

// TestClientGetLocalDiskFull: get into a file whose writes fail with ENOSPC
// (LOCAL.part is a symbolic link to /dev/full) says that the local disk is
// full, not that the connection broke, and leaves nothing behind.
func TestClientGetLocalDiskFull(t *testing.T) {
	noLeaks(t)
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here:", err)
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "f"), randomBytes(t, 3<<20))
	in := start(t, map[string]string{"root": root}, testHooks{})
	dst := filepath.Join(t.TempDir(), "f")
	if err := os.Symlink("/dev/full", dst+".part"); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "get", "-q", in.Addr, "f", dst)
	if code != 1 || !strings.Contains(errs, "get f: the local disk is full: write "+dst+".part") ||
		!strings.Contains(errs, "no space left on device") || strings.Contains(errs, "connection") {
		t.Fatalf("get: exit %d, %q", code, errs)
	}
	mustNotExist(t, dst)
	mustNotExist(t, dst+".part")
}

// TestDiskFullTmpfs runs uploads and a download on a real 2 MiB tmpfs: an
// upload that cannot fit is refused before any data moves; one that runs the
// disk full while it is sent is answered ERR quota with the connection in
// step; neither leaves a partial file; a later upload that fits succeeds; and
// a download onto the full disk says so.
func TestDiskFullTmpfs(t *testing.T) {
	noLeaks(t)
	small := testfs.Tmpfs(t, 2<<20, "TestUploadWriteError covers the same logic with injected errors")
	root := filepath.Join(small, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(small, "filler")
	var once sync.Once
	var fillNow = make(chan bool, 1)
	addr, logs := startLogged(t, Config{Root: root}, testHooks{
		received: func(string, int64) {
			select {
			case <-fillNow:
				once.Do(func() { testfs.Fill(t, filler, 64<<20) })
			default:
			}
		},
	})
	local := t.TempDir()

	// 3 MiB on a 2 MiB disk: refused up front.
	big := randomBytes(t, 3<<20)
	r := dialRaw(t, addr)
	if got := r.send(fmt.Sprintf("PUT %d %s big.bin\n", len(big), sumOf(big))); !strings.HasPrefix(got, "ERR quota the server's disk is full") {
		t.Fatalf("3 MiB onto 2 MiB: %q", got)
	}
	if st := stagedFiles(t, root); len(st) != 0 {
		t.Fatalf("staged: %v", st)
	}

	// 1.5 MiB fits when announced; another writer fills the disk once the
	// first MiB is in.
	mid := randomBytes(t, 3<<19)
	fillNow <- true
	if got := r.send(fmt.Sprintf("PUT %d - mid.bin\n", len(mid))); got != "OK 0" {
		t.Fatalf("PUT: %q", got)
	}
	if _, err := r.c.Write(append(mid, []byte(sumOf(mid)+"\n")...)); err != nil {
		t.Fatal(err)
	}
	if got := r.line(); !strings.HasPrefix(got, "ERR quota the server's disk is full (write at byte ") {
		t.Fatalf("upload that ran out of space: %q", got)
	}
	if st := stagedFiles(t, root); len(st) != 0 {
		t.Fatalf("the partial upload was kept: %v", st)
	}
	mustNotExist(t, filepath.Join(root, "mid.bin"))
	if !strings.Contains(logs.String(), "[WARN]  filexfer: upload failed on the server's disk; partial upload removed") {
		t.Fatalf("no WARN line:\n%s", logs.String())
	}
	if got := r.send("LIST .\n"); got != "OK 0" {
		t.Fatalf("LIST after the failure: %q", got)
	}

	// The client says the same, and once there is room an upload succeeds.
	src := filepath.Join(local, "mid.bin")
	writeFile(t, src, mid)
	code, _, errs := run(t, "put", "-q", addr, src)
	if code != 1 || !strings.Contains(errs, "refused by the server: quota: the server's disk is full") {
		t.Fatalf("put onto the full disk: exit %d, %q", code, errs)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "put", "-q", addr, src)
	if got := fileSum(t, filepath.Join(root, "mid.bin")); got != sumOf(mid) {
		t.Fatalf("stored %s, want %s", got, sumOf(mid))
	}

	// A download onto the full disk.
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "big.bin"), big)
	in := start(t, map[string]string{"root": other}, testHooks{})
	dst := filepath.Join(small, "big.bin")
	code, _, errs = run(t, "get", "-q", in.Addr, "big.bin", dst)
	if code != 1 || !strings.Contains(errs, "get big.bin: the local disk is full: write "+dst+".part") ||
		!strings.Contains(errs, dst+".part removed") {
		t.Fatalf("get onto the full disk: exit %d, %q", code, errs)
	}
	mustNotExist(t, dst)
	mustNotExist(t, dst+".part")
}
