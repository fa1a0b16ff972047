//go:build unix

package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/internal/e2e"
)

// The benchmarks move a 1 GiB file over loopback, through the filexfer
// protocol served by sdktest (the same sdk.Server the plugin runs under the
// host) and, in the same run, through a direct in-process server that does
// nothing but the io.Copy. b.SetBytes makes `go test` report MB/s.
//
//	go test -run '^$' -bench 'Download|Upload' -benchtime 3x -count 5 ./plugins/filexfer/
//
// FILEXFER_BENCH_DIR puts the files elsewhere than the test's temporary
// directory (say /dev/shm, to take the disk out of the comparison).
const benchSize = 1 << 30

var throughHost = flag.Bool("filexfer.host", false,
	"serve the sockplay side through the real host (sockplay serve, the plugin binary) instead of sdktest; "+
		"the CPU figures then count only this process, the client")

// sockplayAddr serves dir with the filexfer protocol, through sdktest or, with
// -filexfer.host, through the real host, and returns the address.
func sockplayAddr(b *testing.B, dir string, writable bool) string {
	b.Helper()
	if !*throughHost {
		return start(b, map[string]string{"root": dir, "writable": fmt.Sprint(writable)}, testHooks{}).Addr
	}
	h := e2e.Start(b, e2e.Config{Enable: []string{"filexfer"},
		Args: []string{"--set", "filexfer.root=" + dir, "--set", fmt.Sprintf("filexfer.writable=%v", writable)}})
	return h.Addr("filexfer")
}

// benchDir returns a directory holding a 1 GiB file of random bytes, "src".
func benchDir(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if base := os.Getenv("FILEXFER_BENCH_DIR"); base != "" {
		var err error
		if dir, err = os.MkdirTemp(base, "filexfer-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	f, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := 0; i < benchSize/len(buf); i++ {
		_, _ = rand.Read(buf[:4096]) // random enough to defeat any dedup, cheap to make
		copy(buf[4096:], buf[:len(buf)-4096])
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// discard reads exactly n bytes from r into one 1 MiB buffer: the receiving
// side of every download benchmark, direct or not.
func discard(r io.Reader, n int64) error {
	_, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, io.LimitReader(r, n), make([]byte, 1<<20))
	return err
}

// directServer accepts connections on a loopback port and runs serve on each.
func directServer(b *testing.B, serve func(c *net.TCPConn)) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c.(*net.TCPConn))
			c.Close()
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func dialBench(b *testing.B, addr string) *net.TCPConn {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	return c.(*net.TCPConn)
}

func BenchmarkDownload(b *testing.B) {
	dir := benchDir(b)
	src := filepath.Join(dir, "src")
	direct := directServer(b, func(c *net.TCPConn) {
		f, err := os.Open(src)
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(c, f) // sendfile
	})
	addr := sockplayAddr(b, dir, false)
	sum := protocolSum(b, addr, "src") // hashes the file once; GET then finds it cached
	var p pair
	for b.Loop() {
		measure(&p.direct, &p.directCPU, func() {
			c := dialBench(b, direct)
			defer c.Close()
			if err := discard(c, benchSize); err != nil {
				b.Fatal(err)
			}
		})
		measure(&p.sockplay, &p.sockplayCPU, func() {
			c := dialBench(b, addr)
			defer c.Close()
			br := bufio.NewReaderSize(c, MaxLine)
			if _, err := io.WriteString(c, "GET 0 src\n"); err != nil {
				b.Fatal(err)
			}
			if line, err := br.ReadString('\n'); err != nil || line != fmt.Sprintf("OK %d %s\n", benchSize, sum) {
				b.Fatalf("GET: %q, %v", line, err)
			}
			if err := discard(br, benchSize); err != nil {
				b.Fatal(err)
			}
		})
	}
	p.report(b)
}

// BenchmarkClientGet is the whole client: receive, write LOCAL.part, SHA-256,
// fsync, rename.
func BenchmarkClientGet(b *testing.B) {
	dir := benchDir(b)
	in := start(b, map[string]string{"root": dir}, testHooks{})
	protocolSum(b, in.Addr, "src")
	dst := filepath.Join(dir, "dst")
	b.SetBytes(benchSize)
	for b.Loop() {
		mustRun(b, "get", "-q", in.Addr, "src", dst)
	}
}

// pair accumulates the wall and CPU time of the direct and the sockplay
// transfers, done alternately so that load from elsewhere hits both alike.
// The CPU time is the whole process's (client and server, user and system),
// which does not depend on what else the machine runs.
type pair struct{ direct, sockplay, directCPU, sockplayCPU time.Duration }

func timed(f func()) time.Duration {
	t := time.Now()
	f()
	return time.Since(t)
}

// measure runs f and adds its wall and CPU time to *wall and *cpu.
func measure(wall, cpu *time.Duration, f func()) {
	c := cpuTime()
	*wall += timed(f)
	*cpu += cpuTime() - c
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (p pair) report(b *testing.B) {
	n := float64(b.N) * benchSize / 1e6
	gib := float64(b.N) * benchSize / (1 << 30)
	b.ReportMetric(n/p.direct.Seconds(), "direct-MB/s")
	b.ReportMetric(n/p.sockplay.Seconds(), "sockplay-MB/s")
	b.ReportMetric(p.direct.Seconds()/p.sockplay.Seconds(), "ratio")
	b.ReportMetric(p.directCPU.Seconds()/gib, "direct-cpu-s/GiB")
	b.ReportMetric(p.sockplayCPU.Seconds()/gib, "sockplay-cpu-s/GiB")
	b.ReportMetric(0, "ns/op")
}

// protocolSum asks the server for name's SHA-256.
func protocolSum(b *testing.B, addr, name string) string {
	c := dialBench(b, addr)
	defer c.Close()
	if _, err := io.WriteString(c, "SUM "+name+"\n"); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 || f[0] != "OK" {
		b.Fatalf("SUM: %q, %v", line, err)
	}
	return f[2]
}

func BenchmarkUpload(b *testing.B) {
	dir := benchDir(b)
	src := filepath.Join(dir, "src")
	// What a plain Go server does: io.Copy from the connection to a file
	// (splice), fsync as the protocol's upload does, then a one-byte answer.
	dst := filepath.Join(dir, "direct-dst")
	direct := directServer(b, func(c *net.TCPConn) {
		f, err := os.Create(dst)
		if err != nil {
			return
		}
		_, _ = io.Copy(f, io.LimitReader(c, benchSize))
		_ = f.Sync()
		f.Close()
		_, _ = c.Write([]byte{'k'})
	})
	addr := sockplayAddr(b, dir, true)
	sum := fileSum(b, src) // the client's hashing is not the transfer
	var p pair
	for b.Loop() {
		measure(&p.direct, &p.directCPU, func() {
			c := dialBench(b, direct)
			defer c.Close()
			sendFile(b, c, src)
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				b.Fatal(err)
			}
		})
		// The direct server truncates its file, so its writes reuse the
		// page cache the last iteration filled. An atomic upload keeps the
		// old version until the new one is renamed over it, so it needs a
		// second GiB of page cache; on this VM, memory the guest has never
		// touched costs about 2 CPU-s per GiB to fault in (see README), which
		// would be charged to sockplay alone. Removing the old version first
		// gives both servers recycled pages.
		_ = os.Remove(filepath.Join(dir, "up"))
		measure(&p.sockplay, &p.sockplayCPU, func() {
			c := dialBench(b, addr)
			defer c.Close()
			br := bufio.NewReaderSize(c, MaxLine)
			if _, err := fmt.Fprintf(c, "PUT %d %s up\n", benchSize, sum); err != nil {
				b.Fatal(err)
			}
			if line, err := br.ReadString('\n'); err != nil || line != "OK 0\n" {
				b.Fatalf("PUT: %q, %v", line, err)
			}
			sendFile(b, c, src)
			if line, err := br.ReadString('\n'); err != nil || line != "OK\n" {
				b.Fatalf("PUT end: %q, %v", line, err)
			}
		})
	}
	p.report(b)
}

// sendFile sends the file with io.Copy to the connection: sendfile(2).
func sendFile(b *testing.B, c *net.TCPConn, name string) {
	f, err := os.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(c, f); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSHA256 is the hashing cost an upload pays on the server (and a
// download on the client), for the README's accounting.
func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, 1<<20)
	h := sha256.New()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		h.Write(buf)
	}
}
