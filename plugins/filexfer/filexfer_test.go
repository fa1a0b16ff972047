//go:build unix

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk/sdktest"
)

// tutorialClient behaves exactly as the tutorial's file client: read the size
// with one recv(1024), send "Ready to recv file", then recv(1024) until it has
// that many bytes.
func tutorialClient(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	size, err := strconv.Atoi(string(buf[:n]))
	if err != nil {
		t.Fatalf("size message %q: %v", buf[:n], err)
	}
	if _, err := c.Write([]byte("Ready to recv file")); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < size {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", len(got), size, err)
		}
	}
	return got
}

func TestTutorialClient(t *testing.T) {
	noLeaks(t)
	for _, size := range []int{300 * 1000, 0, 1} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "tutorial.bin")
			want := randomBytes(t, size)
			writeFile(t, file, want)
			in := start(t, map[string]string{"push": file}, testHooks{})
			for i := range 2 { // every client gets the whole file
				if got := tutorialClient(t, in.Addr); !bytes.Equal(got, want) {
					t.Fatalf("client %d: got %d bytes, want the %d sent, byte for byte", i, len(got), len(want))
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFile(t, file, []byte("x"))
	tests := []struct {
		name string
		opts map[string]string
		want string // in the error; "" for none
	}{
		{"root", map[string]string{"root": dir}, ""},
		{"push", map[string]string{"push": file}, ""},
		{"neither", nil, ""},
		{"both", map[string]string{"root": dir, "push": file}, "not both"},
		{"root missing", map[string]string{"root": filepath.Join(dir, "nope")}, "no such file"},
		{"root is a file", map[string]string{"root": file}, "not a directory"},
		{"push is a directory", map[string]string{"push": dir}, "not a regular file"},
		{"bad maxfile", map[string]string{"root": dir, "maxfile": "lots"}, "maxfile"},
		{"bad quota", map[string]string{"root": dir, "quota": "-1"}, "quota"},
		{"zero transfers", map[string]string{"root": dir, "maxtransfers": "0"}, "maxtransfers"},
		{"direct off", map[string]string{"root": dir, "direct": "false"}, ""},
		{"bad direct", map[string]string{"root": dir, "direct": "maybe"}, "direct"},
		{"unknown option", map[string]string{"rooot": dir}, "no option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sdktest.Configure(t, Plugin(), tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if v, err := parseBytes("512M"); err != nil || v != 512<<20 {
		t.Fatalf("parseBytes(512M) = %d, %v", v, err)
	}
}

func TestUnconfigured(t *testing.T) {
	in := start(t, nil, testHooks{})
	code, _, errs := run(t, "ls", in.Addr)
	if code != 1 || !strings.Contains(errs, "filexfer.root=DIR") {
		t.Fatalf("exit %d, stderr %q: want a refusal that says what to set", code, errs)
	}
}

// TestRoundTrip uploads and downloads files with the client and checks sizes
// and SHA-256 on both sides.
func TestRoundTrip(t *testing.T) {
	noLeaks(t)
	sizes := []int64{0, 1, 300 * 1000, 5<<20 + 17}
	if !raceEnabled && !testing.Short() {
		sizes = append(sizes, 1<<30)
	}
	root := t.TempDir()
	local := t.TempDir()
	in := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{})
	for _, size := range sizes {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			src := filepath.Join(local, fmt.Sprintf("src-%d", size))
			makeFile(t, src, size)
			want := fileSum(t, src)
			name := fmt.Sprintf("file-%d.bin", size)
			mustRun(t, "put", "-q", in.Addr, src, name)
			if got := fileSum(t, filepath.Join(root, name)); got != want {
				t.Fatalf("stored file's SHA-256 %s, want %s", got, want)
			}
			if out := mustRun(t, "sum", in.Addr, name); out != want+"  "+name+"\n" {
				t.Fatalf("sum printed %q", out)
			}
			dst := filepath.Join(local, fmt.Sprintf("dst-%d", size))
			mustRun(t, "get", "-q", in.Addr, name, dst)
			if got := fileSum(t, dst); got != want {
				t.Fatalf("downloaded file's SHA-256 %s, want %s", got, want)
			}
			if st, err := os.Stat(dst); err != nil || st.Size() != size {
				t.Fatalf("downloaded file: %v, %v", st, err)
			}
			mustNotExist(t, dst+".part")
			os.Remove(src)
			os.Remove(dst)
			os.Remove(filepath.Join(root, name))
		})
	}
	if len(stagedFiles(t, root)) != 0 {
		t.Fatalf("staging directory not empty: %v", stagedFiles(t, root))
	}
}

// makeFile writes a file of size bytes: random for small sizes; for large ones
// sparse, with random blocks scattered through it so that the checksum notices
// any misplaced block.
func makeFile(t testing.TB, name string, size int64) {
	t.Helper()
	if size <= 8<<20 {
		writeFile(t, name, randomBytes(t, int(size)))
		return
	}
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += size / 16 {
		if _, err := f.WriteAt(randomBytes(t, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
}

func TestList(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a b.txt"), []byte("hello"))
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "sub", "inner"), []byte("x"))
	if err := os.Symlink("sub/inner", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	in := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{})
	out := mustRun(t, "ls", in.Addr)
	for _, want := range []string{"a b.txt", "sub/", "link@", "f            5"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, stagingDir) {
		t.Errorf("ls shows the staging directory:\n%s", out)
	}
	if out := mustRun(t, "ls", in.Addr, "sub"); !strings.Contains(out, "inner") {
		t.Errorf("ls sub: %s", out)
	}
	r := dialRaw(t, in.Addr)
	if got := r.send("LIST a%20b.txt\n"); !strings.HasPrefix(got, "ERR not-a-directory ") {
		t.Errorf("LIST of a file: %q", got)
	}
	if got := r.send("GET 0 sub\n"); !strings.HasPrefix(got, "ERR not-a-file ") {
		t.Errorf("GET of a directory: %q", got)
	}
	if got := r.send("GET 6 a%20b.txt\n"); !strings.HasPrefix(got, "ERR bad-request ") {
		t.Errorf("GET beyond the end: %q", got)
	}
	if got := r.send("GET 2 a%20b.txt\n"); got != "OK 5 "+sumOf([]byte("hello")) {
		t.Errorf("GET from 2: %q", got)
	}
	tail := make([]byte, 3)
	if _, err := io.ReadFull(r.br, tail); err != nil || string(tail) != "llo" {
		t.Errorf("GET from 2 sent %q, %v", tail, err)
	}
	if got := r.send("HELLO\n"); !strings.HasPrefix(got, "ERR bad-request ") {
		t.Errorf("unknown verb: %q", got)
	}
	if got := r.send("SUM link\n"); got != "OK 1 "+sumOf([]byte("x")) {
		t.Errorf("SUM through an inside symlink: %q", got)
	}
}

// TestTraversal tries every way out of the root: each is refused with a clear
// error, and nothing outside the root is read or written.
func TestTraversal(t *testing.T) {
	noLeaks(t)
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(outside, "secret"), []byte("secret"))
	for link, target := range map[string]string{
		"out":     "../outside/secret",
		"outdir":  "../outside",
		"abs":     "/etc/passwd",
		"null":    "/dev/null",
		"sub/up2": "../../outside/secret",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	haveDev := syscall.Mknod(filepath.Join(root, "dev"), syscall.S_IFCHR|0o644, 1<<8|3) == nil // /dev/null's numbers
	in := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{})

	tests := []struct {
		path string
		code Code
		msg  string
	}{
		{"../outside/secret", CodeForbidden, `".." is not allowed`},
		{"sub/../../outside/secret", CodeForbidden, `".." is not allowed`},
		{"/etc/passwd", CodeForbidden, "absolute path"},
		{"out", CodeForbidden, "leads outside the served root"},
		{"outdir/secret", CodeForbidden, "leads outside the served root"},
		{"sub/up2", CodeForbidden, "leads outside the served root"},
		{"abs", CodeForbidden, "leads outside the served root"},
		{"null", CodeForbidden, "leads outside the served root"},
		{"fifo", CodeForbidden, "FIFO"},
		{"dev", CodeForbidden, "character device"},
		{stagingDir + "/x", CodeForbidden, "staging directory"},
	}
	for _, tt := range tests {
		if tt.path == "dev" && !haveDev {
			t.Log("skipping the device file: mknod not permitted here")
			continue
		}
		t.Run(strings.ReplaceAll(tt.path, "/", "_"), func(t *testing.T) {
			r := dialRaw(t, in.Addr)
			for _, req := range []string{"GET 0 ", "SUM ", "LIST "} {
				got := r.send(req + EncodePath(tt.path) + "\n")
				if tt.code == CodeForbidden && strings.HasSuffix(tt.msg, "FIFO") && req == "LIST " {
					continue // a FIFO is refused by kind for LIST too, tested by GET
				}
				if !strings.HasPrefix(got, "ERR "+string(tt.code)+" ") {
					t.Errorf("%s%s: got %q, want ERR %s", req, tt.path, got, tt.code)
				}
			}
			got := r.send(fmt.Sprintf("PUT 3 %s %s\n", sumOf([]byte("bad")), EncodePath(tt.path)))
			if !strings.HasPrefix(got, "ERR ") {
				t.Fatalf("PUT %s: got %q, want a refusal", tt.path, got)
			}
			// And the client says so plainly.
			code, _, errs := run(t, "get", "-q", in.Addr, "./"+strings.TrimPrefix(tt.path, "/"), filepath.Join(t.TempDir(), "x"))
			if tt.path[0] == '/' {
				code, _, errs = run(t, "sum", in.Addr, tt.path)
			}
			if code != 1 || !strings.Contains(errs, "refused by the server") || !strings.Contains(errs, tt.msg) {
				t.Errorf("client: exit %d, stderr %q; want a refusal mentioning %q", code, errs, tt.msg)
			}
		})
	}
	// Nothing outside the root changed.
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Fatalf("outside the root now holds %d entries", len(ents))
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "secret" {
		t.Fatalf("the outside file changed: %q", b)
	}
	if len(stagedFiles(t, root)) != 0 {
		t.Fatalf("staged files left: %v", stagedFiles(t, root))
	}
}

func TestCorruptedUpload(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	in := start(t, map[string]string{"root": root, "writable": "true"}, testHooks{})
	data := randomBytes(t, 100000)
	wrong := sumOf(append([]byte("not"), data...))
	r := dialRaw(t, in.Addr)
	if got := r.send(fmt.Sprintf("PUT %d %s f.bin\n", len(data), wrong)); got != "OK 0" {
		t.Fatalf("PUT: %q", got)
	}
	if _, err := r.c.Write(data); err != nil {
		t.Fatal(err)
	}
	if got := r.line(); !strings.HasPrefix(got, "ERR checksum ") || !strings.Contains(got, "nothing was stored") {
		t.Fatalf("corrupted upload answered %q", got)
	}
	mustNotExist(t, filepath.Join(root, "f.bin"))
	if len(stagedFiles(t, root)) != 0 {
		t.Fatalf("staged files left: %v", stagedFiles(t, root))
	}
	// The connection is still in step: the next request works.
	if got := r.send("LIST .\n"); got != "OK 0" {
		t.Fatalf("LIST after the refusal: %q", got)
	}
}

func TestReadOnly(t *testing.T) {
	root := t.TempDir()
	in := start(t, map[string]string{"root": root}, testHooks{})
	src := filepath.Join(t.TempDir(), "f")
	writeFile(t, src, []byte("data"))
	code, _, errs := run(t, "put", in.Addr, src, "f")
	if code != 1 || !strings.Contains(errs, "read-only") {
		t.Fatalf("put to a read-only root: exit %d, %q", code, errs)
	}
	mustNotExist(t, filepath.Join(root, "f"))
	mustNotExist(t, filepath.Join(root, stagingDir))
}

// TestLimits checks that size limits and the quota refuse an upload before any
// data moves.
func TestLimits(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "existing"), make([]byte, 6000))
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	in := start(t, map[string]string{"root": root, "writable": "true", "maxfile": "5000", "quota": "10000"}, testHooks{})
	sum := sumOf(nil)
	tests := []struct {
		name, req string
		want      string
	}{
		{"too large", "PUT 5001 " + sum + " big\n", "ERR too-large "},
		{"over quota", "PUT 4001 " + sum + " q\n", "ERR quota "},
		{"replacing counts until replaced", "PUT 4001 " + sum + " existing\n", "ERR quota "},
		{"onto a directory", "PUT 1 " + sum + " dir\n", "ERR not-a-file "},
		{"missing directory", "PUT 1 " + sum + " nodir/f\n", "ERR not-found "},
		{"the root", "PUT 1 " + sum + " .\n", "ERR not-a-file "},
		{"fits", "PUT 4000 " + sum + " q\n", "OK 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, in.Addr)
			if got := r.send(tt.req); !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	for _, n := range []string{"big", "q"} {
		mustNotExist(t, filepath.Join(root, n))
	}
	// The client reports a refusal clearly.
	src := filepath.Join(t.TempDir(), "big")
	writeFile(t, src, make([]byte, 5001))
	code, _, errs := run(t, "put", in.Addr, src)
	if code != 1 || !strings.Contains(errs, "too-large") || !strings.Contains(errs, "up to 5000 bytes") {
		t.Fatalf("client: exit %d, %q", code, errs)
	}
}

// TestQuotaCountsUploadsInFlight: two uploads that fit one at a time but not
// together: the second is refused while the first is in flight.
func TestQuotaCountsUploadsInFlight(t *testing.T) {
	root := t.TempDir()
	in := start(t, map[string]string{"root": root, "writable": "true", "quota": "3000"}, testHooks{})
	a := randomBytes(t, 2000)
	r := dialRaw(t, in.Addr)
	if got := r.send(fmt.Sprintf("PUT 2000 %s a\n", sumOf(a))); got != "OK 0" {
		t.Fatal(got)
	}
	// The first upload is in flight (announced, no data yet).
	r2 := dialRaw(t, in.Addr)
	if got := r2.send(fmt.Sprintf("PUT 2000 %s b\n", sumOf(a))); !strings.HasPrefix(got, "ERR quota ") {
		t.Fatalf("second upload: %q", got)
	}
	if _, err := r.c.Write(a); err != nil {
		t.Fatal(err)
	}
	if got := r.line(); got != "OK" {
		t.Fatalf("first upload: %q", got)
	}
	// Once it has landed the space is taken by the file itself.
	if got := r2.send(fmt.Sprintf("PUT 1001 %s b\n", sumOf(a))); !strings.HasPrefix(got, "ERR quota ") {
		t.Fatalf("third upload: %q", got)
	}
}

// TestSameNameUploads: two uploads to one name never interleave: the second
// waits for the first, or is refused as busy when it waits too long.
func TestSameNameUploads(t *testing.T) {
	noLeaks(t)
	root := t.TempDir()
	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	in := start(t, map[string]string{"root": root, "writable": "true", "lockwait": "300ms"}, testHooks{
		received: func(string, int64) {
			once.Do(func() {
				close(hold)
				select {
				case <-release:
				case <-time.After(20 * time.Second):
				}
			})
		},
	})
	a, b := randomBytes(t, 3<<20), randomBytes(t, 2<<20)
	srcA, srcB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeFile(t, srcA, a)
	writeFile(t, srcB, b)
	errA := make(chan error, 1)
	go func() {
		code, _, errs := run(t, "put", "-q", in.Addr, srcA, "same")
		if code != 0 {
			errA <- errors.New(errs)
			return
		}
		errA <- nil
	}()
	<-hold
	code, _, errs := run(t, "put", "-q", in.Addr, srcB, "same")
	if code != 1 || !strings.Contains(errs, "busy") || !strings.Contains(errs, "another upload to same") {
		t.Fatalf("second upload while the first runs: exit %d, %q", code, errs)
	}
	// A second upload that is waiting when the first ends goes next.
	errB := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	go func() {
		code, _, errs := run(t, "put", "-q", in.Addr, srcB, "same")
		if code != 0 {
			errB <- errors.New(errs)
			return
		}
		errB <- nil
	}()
	for _, ch := range []chan error{errA, errB} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(filepath.Join(root, "same"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
		t.Fatal("the file is neither upload whole")
	}
}

func TestMaxTransfers(t *testing.T) {
	noLeaks(t)
	defer func(c int64) { sendChunk = c }(sendChunk)
	sendChunk = 64 << 10
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "f"), randomBytes(t, 1<<20))
	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	in := start(t, map[string]string{"root": root, "maxtransfers": "1"}, testHooks{
		sent: func(string, int64) {
			once.Do(func() {
				close(hold)
				select {
				case <-release:
				case <-time.After(20 * time.Second):
				}
			})
		},
	})
	r := dialRaw(t, in.Addr)
	if got := r.send("GET 0 f\n"); !strings.HasPrefix(got, "OK ") {
		t.Fatal(got)
	}
	<-hold
	code, _, errs := run(t, "get", in.Addr, "f", filepath.Join(t.TempDir(), "f"))
	close(release)
	if code != 1 || !strings.Contains(errs, "busy") || !strings.Contains(errs, "maximum of 1 transfers") {
		t.Fatalf("second transfer: exit %d, %q", code, errs)
	}
	if _, err := io.CopyN(io.Discard, r.br, 1<<20); err != nil {
		t.Fatal(err)
	}
}

func TestClientUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"frob"}, 2, "unknown command"},
		{[]string{"get"}, 2, "get: want [ADDR] REMOTE [LOCAL]"},
		{[]string{"get", "127.0.0.1:1"}, 2, "get: want [ADDR] REMOTE [LOCAL]"},
		{[]string{"put", "a", "b", "c"}, 2, "put: want [ADDR] LOCAL [REMOTE]"},
		{[]string{"get", "--nope", "x"}, 2, "unknown flag: --nope"},
		{[]string{"get", "x", "--help"}, 0, ""},
		{[]string{"sum", "127.0.0.1:1", "x"}, 1, "connect to 127.0.0.1:1"},
		{[]string{"put", "127.0.0.1:1", "/nonexistent/file"}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errs := run(t, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tt.code, tt.msg)
			}
		})
	}
	for s, want := range map[string]bool{"127.0.0.1:12347": true, "[::1]:80": true, "localhost:9": true,
		"a.txt": false, "dir/a:1": false, "x:y": false, "notes:2024": true} {
		if isAddr(s) != want {
			t.Errorf("isAddr(%q) = %v", s, !want)
		}
	}
}

func TestGetMissingLeavesNothing(t *testing.T) {
	in := start(t, map[string]string{"root": t.TempDir()}, testHooks{})
	dst := filepath.Join(t.TempDir(), "x")
	code, _, errs := run(t, "get", in.Addr, "nothing-here", dst)
	if code != 1 || !strings.Contains(errs, "get nothing-here: refused by the server: not-found: nothing-here does not exist") {
		t.Fatalf("exit %d, %q", code, errs)
	}
	mustNotExist(t, dst)
	mustNotExist(t, dst+".part")
}

// TestProgressBar: on a terminal the client draws the library's bar; the
// tests have no terminal, so this drives the bar directly.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	o := &clientOpts{progress: true, stdio: sdkStdio(&buf)}
	bar := o.bar(1<<20, "get x")
	_ = bar.Add(1 << 20)
	_ = bar.Finish()
	if !strings.Contains(buf.String(), "get x") || !strings.Contains(buf.String(), "100%") {
		t.Fatalf("bar drew %q", buf.String())
	}
	buf.Reset()
	o.progress = false
	bar = o.bar(10, "quiet")
	_ = bar.Add(10)
	if buf.Len() != 0 {
		t.Fatalf("a quiet bar drew %q", buf.String())
	}
	if isTerminal(&buf) {
		t.Fatal("a buffer is not a terminal")
	}
}

// TestPutToOlderServer: a server from before "PUT SIZE - PATH" refuses the
// "-"; the client then hashes first and uploads the old way.
func TestPutToOlderServer(t *testing.T) {
	noLeaks(t)
	data := randomBytes(t, 300000)
	src := filepath.Join(t.TempDir(), "f")
	writeFile(t, src, data)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	go func() {
		defer close(got)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		for _, answer := range []string{`ERR bad-request sha256 "-": want 64 lower-case hex digits` + "\n", "OK 0\n"} {
			line, _ := br.ReadString('\n')
			got <- strings.TrimSuffix(line, "\n")
			io.WriteString(c, answer)
		}
		b := make([]byte, len(data))
		if _, err := io.ReadFull(br, b); err != nil || !bytes.Equal(b, data) {
			got <- fmt.Sprintf("data: %v", err)
			return
		}
		io.WriteString(c, "OK\n")
	}()
	defer ln.Close()
	mustRun(t, "put", "-q", ln.Addr().String(), src, "f")
	want := []string{"PUT 300000 - f", "PUT 300000 " + sumOf(data) + " f"}
	for i := 0; ; i++ {
		line, ok := <-got
		if !ok {
			if i != len(want) {
				t.Fatalf("the server saw %d requests, want %d", i, len(want))
			}
			break
		}
		if i >= len(want) || line != want[i] {
			t.Fatalf("request %d: %q", i, line)
		}
	}
}
