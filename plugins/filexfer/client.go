package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/escape"
)

// clientTimeout bounds how long the client waits for the server to answer a
// request, or to move any byte during a transfer.
const clientTimeout = 2 * time.Minute

// clientChunk is how much a put sends per sendfile call between progress
// updates.
const clientChunk = 8 << 20

// commands are the command line run by hand: ls, get, put and sum. ADDR is
// optional everywhere and recognised by its form (isAddr).
func commands() []client.Command {
	var quiet, verbose, restart bool
	progress := func(fs *pflag.FlagSet) {
		fs.BoolVarP(&quiet, "quiet", "q", false, "draw no progress bar")
		fs.BoolVarP(&verbose, "verbose", "v", false, "say when a transfer resumes")
	}
	opts := func(args []string, stdio client.Stdio) (*clientOpts, []string) {
		addr := Plugin().DefaultAddr
		if len(args) > 0 && isAddr(args[0]) {
			addr, args = args[0], args[1:]
		}
		o := &clientOpts{addr: addr, stdio: stdio, verbose: verbose}
		o.progress = !quiet && isTerminal(stdio.Err)
		return o, args
	}
	const addrHelp = "ADDR (HOST:PORT, default 127.0.0.1:12347) is optional and recognised by its form; write a path that looks like one as ./notes:2024."
	return []client.Command{
		{
			Name: "ls", Args: "[ADDR] [PATH]", MaxArgs: 2,
			Summary: "list a directory",
			Help:    addrHelp,
			Example: "sockplay-filexfer ls\nsockplay-filexfer ls 127.0.0.1:12347 photos",
			Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
				o, pos := opts(args, stdio)
				switch len(pos) {
				case 0:
					return o.list(ctx, ".")
				case 1:
					return o.list(ctx, pos[0])
				}
				return fmt.Errorf("%w: ls: unexpected argument %q", client.ErrUsage, pos[1])
			},
		},
		{
			Name: "get", Args: "[ADDR] REMOTE [LOCAL]", MinArgs: 1, MaxArgs: 3,
			Summary: "download via LOCAL.part, verify, rename; resumes a partial file",
			Help: `LOCAL defaults to the remote base name in the current directory; a
directory means "into it". Bytes go to LOCAL.part first; only a file whose
SHA-256 matches the server's is renamed to LOCAL. A LOCAL.part left by a
broken transfer is resumed from its length. ` + addrHelp,
			Example: "sockplay-filexfer get photos/cat.jpg\nsockplay-filexfer get 127.0.0.1:12347 photos/cat.jpg /tmp/ --restart",
			Flags: func(fs *pflag.FlagSet) {
				progress(fs)
				fs.BoolVar(&restart, "restart", false, "ignore a partial local file and start over")
			},
			Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
				o, pos := opts(args, stdio)
				if len(pos) < 1 || len(pos) > 2 {
					return fmt.Errorf("%w: get: want [ADDR] REMOTE [LOCAL]", client.ErrUsage)
				}
				local := path.Base(pos[0])
				if len(pos) == 2 {
					local = pos[1]
				}
				if st, err := os.Stat(local); err == nil && st.IsDir() {
					local = filepath.Join(local, path.Base(pos[0]))
				}
				return o.get(ctx, pos[0], local, restart)
			},
		},
		{
			Name: "put", Args: "[ADDR] LOCAL [REMOTE]", MinArgs: 1, MaxArgs: 3,
			Summary: "upload, verified and atomic; resumes what the server kept",
			Help:    "REMOTE defaults to LOCAL's base name. " + addrHelp,
			Example: "sockplay-filexfer put cat.jpg photos/cat.jpg",
			Flags:   progress,
			Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
				o, pos := opts(args, stdio)
				if len(pos) < 1 || len(pos) > 2 {
					return fmt.Errorf("%w: put: want [ADDR] LOCAL [REMOTE]", client.ErrUsage)
				}
				remote := filepath.Base(pos[0])
				if len(pos) == 2 {
					remote = pos[1]
				}
				return o.put(ctx, pos[0], remote)
			},
		},
		{
			Name: "sum", Args: "[ADDR] PATH", MinArgs: 1, MaxArgs: 2,
			Summary: "print a remote file's SHA-256, as sha256sum does",
			Help:    addrHelp,
			Example: "sockplay-filexfer sum photos/cat.jpg",
			Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
				o, pos := opts(args, stdio)
				if len(pos) != 1 {
					return fmt.Errorf("%w: sum: want [ADDR] PATH", client.ErrUsage)
				}
				return o.sum(ctx, pos[0])
			},
		},
	}
}

// isAddr reports whether s has the form HOST:PORT with a numeric port.
func isAddr(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || strings.ContainsAny(host, "/\\") {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

type clientOpts struct {
	addr     string
	stdio    client.Stdio
	progress bool
	verbose  bool
}

// bar returns a progress bar on stderr, or one that draws nothing when stderr
// is not a terminal.
func (o *clientOpts) bar(size int64, desc string) *progressbar.ProgressBar {
	if !o.progress {
		return progressbar.DefaultBytesSilent(size, desc)
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(o.stdio.Err),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(o.stdio.Err) }),
		progressbar.OptionSpinnerType(14),
	)
}

func (o *clientOpts) note(format string, args ...any) {
	if o.verbose {
		fmt.Fprintf(o.stdio.Err, format+"\n", args...)
	}
}

// conn is a client connection: requests go out whole, replies are read
// through br.
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func (o *clientOpts) dial(ctx context.Context) (*conn, error) {
	c, err := client.Dial(ctx, "tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", o.addr, err)
	}
	return &conn{c: c, br: bufio.NewReaderSize(c, MaxLine)}, nil
}

func (c *conn) Close() error { return c.c.Close() }

// do sends req and reads its status line: the fields after OK, or the
// server's *Error.
func (c *conn) do(req Request) ([]string, error) {
	_ = c.c.SetDeadline(time.Now().Add(clientTimeout))
	if _, err := io.WriteString(c.c, req.String()+"\n"); err != nil {
		return nil, err
	}
	return c.status()
}

func (c *conn) status() ([]string, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(clientTimeout))
	return c.readStatus()
}

// readStatus reads a status line under the read deadline already set. The
// text of a refusal is made printable here, since it is the server's and
// will be shown.
func (c *conn) readStatus() ([]string, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the server closed the connection without an answer")
		}
		return nil, err
	}
	f, err := ParseStatus(string(line[:len(line)-1]))
	var e *Error
	if errors.As(err, &e) {
		e.Code, e.Msg = Code(escape.String(string(e.Code))), escape.String(e.Msg)
	}
	return f, err
}

// refused wraps a server's refusal so that it reads as one: "get a.txt:
// refused by the server: not-found: a.txt does not exist".
func refused(op, p string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return fmt.Errorf("%s %s: refused by the server: %w", op, p, err)
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

func (o *clientOpts) list(ctx context.Context, p string) error {
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := c.do(Request{Verb: VerbList, Path: p})
	if err != nil {
		return refused("ls", p, err)
	}
	n, err := fieldInt(f, 0, 1)
	if err != nil {
		return fmt.Errorf("ls %s: %w", p, err)
	}
	w := bufio.NewWriter(o.stdio.Out)
	for i := int64(0); i < n; i++ {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("ls %s: listing cut short: %w", p, err)
		}
		e, err := ParseEntry(strings.TrimSuffix(line, "\n"))
		if err != nil {
			return fmt.Errorf("ls %s: %w", p, err)
		}
		size, suffix := strconv.FormatInt(e.Size, 10), ""
		switch e.Type {
		case 'd':
			size, suffix = "-", "/"
		case 'l':
			size, suffix = "-", "@"
		case 'o':
			size = "-"
		}
		fmt.Fprintf(w, "%c %12s  %s  %s%s\n", e.Type, size, time.Unix(e.MTime, 0).Format("2006-01-02 15:04"), escape.String(e.Name), suffix)
	}
	return w.Flush()
}

func (o *clientOpts) sum(ctx context.Context, p string) error {
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := c.do(Request{Verb: VerbSum, Path: p})
	if err != nil {
		return refused("sum", p, err)
	}
	if _, err := fieldInt(f, 0, 2); err != nil || !isSum(f[1]) {
		return fmt.Errorf("sum %s: malformed answer %q", p, strings.Join(f, " "))
	}
	_, err = fmt.Fprintf(o.stdio.Out, "%s  %s\n", f[1], p)
	return err
}

// get downloads remote into local. The bytes go to local+".part", which a
// later get resumes from; only a file whose SHA-256 matches the server's is
// renamed to local.
func (o *clientOpts) get(ctx context.Context, remote, local string, restart bool) error {
	part := local + ".part"
	if restart {
		if err := os.Remove(part); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return localError("get", remote, "create "+part, err, "")
	}
	defer f.Close()
	for attempt := 0; ; attempt++ {
		err := o.getOnce(c, f, remote)
		var e *Error
		if attempt == 0 && errors.As(err, &e) && e.Code == errResume {
			// The partial file did not fit the remote one (it changed, or
			// the partial was damaged): start again once from zero.
			o.note("%s: %s; starting again from 0", part, e.Msg)
			if err := f.Truncate(0); err != nil {
				return localError("get", remote, "truncate "+part, err, "")
			}
			continue
		}
		if se := (*storageError)(nil); errors.As(err, &se) {
			// This side's disk failed: the partial file cannot complete.
			f.Close()
			os.Remove(part)
			return localError("get", remote, se.op+" "+part, se.err, part+" removed")
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("get %s: interrupted; %s is kept and the next get resumes it", remote, part)
			}
			if st, serr := f.Stat(); serr == nil && st.Size() == 0 {
				f.Close()
				os.Remove(part)
			}
			return err
		}
		break
	}
	if err := f.Close(); err != nil {
		return localError("get", remote, "close "+part, err, "")
	}
	if err := os.Rename(part, local); err != nil {
		return localError("get", remote, "rename "+part, err, "")
	}
	if err := syncDir(filepath.Dir(local)); err != nil {
		return localError("get", remote, "sync the directory of "+local, err, "")
	}
	return nil
}

// localError reports a failure of this machine's file system, saying so, so
// that a full disk does not read as a network problem.
func localError(op, name, what string, err error, after string) error {
	msg := "local file system error"
	if diskFull(err) {
		msg = "the local disk is full"
	}
	if after != "" {
		return fmt.Errorf("%s %s: %s: %s: %w; %s", op, name, msg, what, err, after)
	}
	return fmt.Errorf("%s %s: %s: %s: %w", op, name, msg, what, err)
}

// errResume marks a failure that a fresh start may cure.
const errResume Code = "resume"

func (o *clientOpts) getOnce(c *conn, f *os.File, remote string) error {
	st, err := f.Stat()
	if err != nil {
		return &storageError{op: "stat", err: err}
	}
	off := st.Size()
	fields, err := c.do(Request{Verb: VerbGet, Path: remote, Offset: off})
	var e *Error
	if errors.As(err, &e) && e.Code == CodeBadRequest && off > 0 {
		return &Error{Code: errResume, Msg: "longer than the remote file"}
	}
	if err != nil {
		return refused("get", remote, err)
	}
	size, err := fieldInt(fields, 0, 2)
	if err != nil || !isSum(fields[1]) {
		return fmt.Errorf("get %s: malformed answer %+q", remote, strings.Join(fields, " "))
	}
	want := fields[1]
	if off > 0 {
		o.note("%s: resuming at %d of %d bytes", remote, off, size)
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, off), make([]byte, min(bufSize, max(off, 1)))); err != nil {
		return &storageError{op: "read", err: err}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return &storageError{op: "seek", err: err}
	}
	bar := o.bar(size, "get "+path.Base(remote))
	_ = bar.Set64(off)
	// The file is made durable before it is renamed, and written back to
	// disk as it arrives, so that the fsync at the end has little left to
	// do: on the machine measured (README.md) that was faster than leaving
	// a gigabyte of dirty pages to the kernel, and no slower elsewhere.
	wb := &writeback{f: f, base: off}
	dw := newDirectWriter(f, off, true)
	defer dw.restore()
	rc := receiver{w: dw, h: h, base: off,
		deadline: func() { _ = c.c.SetReadDeadline(time.Now().Add(clientTimeout)) },
		written: func(n int64) {
			_ = bar.Set64(off + n)
			wb.advance(n)
		}}
	if _, written, err := receive(c.br, size-off, rc); err != nil {
		var se *storageError
		if errors.As(err, &se) {
			return err
		}
		return fmt.Errorf("get %s: connection lost at %d of %d bytes (run get again to resume): %w", remote, off+written, size, err)
	}
	_ = bar.Finish()
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		if off > 0 {
			return &Error{Code: errResume, Msg: "the resumed file's SHA-256 does not match"}
		}
		_ = f.Truncate(0)
		return fmt.Errorf("get %s: the received data's SHA-256 is %s, the server announced %s; nothing was kept", remote, got, want)
	}
	if err := f.Sync(); err != nil {
		return &storageError{op: "fsync", err: err}
	}
	return nil
}

// put uploads local as remote. The server keeps what it received of an
// interrupted upload; the same put later continues from there.
func (o *clientOpts) put(ctx context.Context, local, remote string) error {
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("put %s: %w", local, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("put %s: %w", local, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("put %s: not a regular file", local)
	}
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for attempt := 0; ; attempt++ {
		off, err := o.putOnce(c, f, remote, st.Size())
		var e *Error
		if attempt == 0 && off > 0 && errors.As(err, &e) && e.Code == CodeChecksum {
			// What the server had kept did not verify; it has dropped it.
			o.note("%s: the resumed upload did not verify; sending it again from 0", remote)
			continue
		}
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("put %s: interrupted; the server keeps what it received and the next put resumes it", remote)
		}
		return err
	}
}

// putOnce runs one PUT with the SHA-256 after the data ("PUT SIZE - PATH"),
// so that the file is hashed while it is sent rather than in a pass before.
// It returns the offset the server resumed at.
func (o *clientOpts) putOnce(c *conn, f *os.File, remote string, size int64) (int64, error) {
	fields, err := c.do(Request{Verb: VerbPut, Path: remote, Size: size, Sum: SumAfter})
	if e := (*Error)(nil); errors.As(err, &e) && e.Code == CodeBadRequest && strings.HasPrefix(e.Msg, "sha256 ") {
		return o.putSumFirst(c, f, remote, size) // a server older than the "-" form
	}
	if err != nil {
		return 0, refused("put", remote, err)
	}
	off, err := fieldInt(fields, 0, 1)
	if err != nil || off > size {
		return 0, fmt.Errorf("put %s: malformed answer %+q", remote, strings.Join(fields, " "))
	}
	if off > 0 {
		o.note("%s: resuming at %d of %d bytes", remote, off, size)
	}
	bar := o.bar(size, "put "+path.Base(remote))
	_ = bar.Set64(off)

	// The answer is read while the data goes out: a server that cannot
	// store the file (its disk is full) says so at once, and the client
	// stops sending instead of finishing first.
	type answer struct {
		fields []string
		err    error
	}
	var sending atomic.Bool
	sending.Store(true)
	answered := make(chan answer, 1)
	_ = c.c.SetReadDeadline(time.Now().Add(clientTimeout))
	go func() {
		f, err := c.readStatus()
		if sending.Load() {
			_ = c.c.SetWriteDeadline(time.Now()) // cut the send short
		}
		answered <- answer{f, err}
	}()
	sum, err := sendHashed(c.c, f, off, size, clientTimeout, func(sent int64) {
		_ = bar.Set64(off + sent)
		_ = c.c.SetReadDeadline(time.Now().Add(clientTimeout))
	}, func() bool { return len(answered) > 0 })
	if err == nil {
		_ = c.c.SetWriteDeadline(time.Now().Add(clientTimeout))
		_, err = io.WriteString(c.c, sum+"\n")
	}
	sending.Store(false)
	if err != nil {
		var a answer
		select {
		case a = <-answered:
		case <-time.After(100 * time.Millisecond):
			// No early answer: stop waiting for one.
			_ = c.c.SetReadDeadline(time.Now())
			a = <-answered
		}
		if e := (*Error)(nil); errors.As(a.err, &e) {
			return off, refused("put", remote, a.err)
		}
		if se := (*storageError)(nil); errors.As(err, &se) {
			return off, localError("put", remote, se.op+" "+f.Name(), se.err, "")
		}
		return off, fmt.Errorf("put %s: connection lost (run put again to resume): %w", remote, err)
	}
	_ = c.c.SetReadDeadline(time.Now().Add(clientTimeout))
	a := <-answered
	if a.err != nil {
		return off, refused("put", remote, a.err)
	}
	_ = bar.Finish()
	return off, nil
}

// putSumFirst is the PUT of servers that want the SHA-256 before the data:
// the file is hashed in a pass of its own, then sent.
func (o *clientOpts) putSumFirst(c *conn, f *os.File, remote string, size int64) (int64, error) {
	h := sha256.New()
	bar := o.bar(size, "hash "+filepath.Base(f.Name()))
	if _, err := io.CopyBuffer(io.MultiWriter(h, bar), io.NewSectionReader(f, 0, size), make([]byte, bufSize)); err != nil {
		return 0, localError("put", remote, "read "+f.Name(), err, "")
	}
	_ = bar.Finish()
	fields, err := c.do(Request{Verb: VerbPut, Path: remote, Size: size, Sum: hex.EncodeToString(h.Sum(nil))})
	if err != nil {
		return 0, refused("put", remote, err)
	}
	off, err := fieldInt(fields, 0, 1)
	if err != nil || off > size {
		return 0, fmt.Errorf("put %s: malformed answer %+q", remote, strings.Join(fields, " "))
	}
	if off > 0 {
		o.note("%s: resuming at %d of %d bytes", remote, off, size)
	}
	bar = o.bar(size, "put "+path.Base(remote))
	_ = bar.Set64(off)
	if err := sendRange(c.c, f, off, size-off, clientTimeout, clientChunk, func(sent int64) { _ = bar.Set64(off + sent) }, nil); err != nil {
		return off, fmt.Errorf("put %s: connection lost (run put again to resume): %w", remote, err)
	}
	_ = bar.Finish()
	if _, err := c.status(); err != nil {
		return off, refused("put", remote, err)
	}
	return off, nil
}

// fieldInt checks that f has n fields and parses field i as a size.
func fieldInt(f []string, i, n int) (int64, error) {
	if len(f) != n {
		return 0, fmt.Errorf("malformed answer %q from the server", strings.Join(f, " "))
	}
	return parseSize(f[i], "number")
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
