package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/sockplay/sockplay/sdk"
)

const (
	// stagingDir, directly under the root, holds uploads in progress. It is
	// inside the root so that landing an upload is a rename within one
	// filesystem; requests may not name it and listings skip it.
	stagingDir = ".filexfer-staging"
	// staleAfter is the age at which NewServer removes a staged partial upload
	// that nobody resumed.
	staleAfter = 7 * 24 * time.Hour
	// maxEntries is the most entries a LIST returns.
	maxEntries = 100000
	// bufSize is the upload and hashing buffer: large, so that a 1 GiB upload
	// takes a thousand reads, not a hundred thousand.
	bufSize = 1 << 20
)

// sendChunk is how many bytes one sendfile call moves before the write
// deadline is pushed forward; tests make it small to stop mid-download.
var sendChunk int64 = 64 << 20

// Server serves a directory with the filexfer protocol. It is safe for
// concurrent use; one Server serves all of a plugin's connections, so that
// its limits and locks hold across them.
type Server struct {
	cfg  Config
	root *os.Root
	log  hclog.Logger

	slots chan struct{} // one per transfer in progress
	locks nameLocks
	sums  sumCache

	mu       sync.Mutex       // serializes the quota check
	inflight map[string]int64 // staging name → announced size of uploads in progress

	hooks testHooks
}

// testHooks let tests stop a transfer in the middle or fail its writes; nil
// in production.
type testHooks struct {
	received func(name string, n int64) // after each chunk of an upload is written
	sent     func(name string, n int64) // after each sendfile chunk of a download
	writer   func(f *os.File) io.Writer // what an upload writes to instead of f
	sync     func(f *os.File) error     // runs before an upload's fsync; an error fails it
}

var _ sdk.Handler = (*Server)(nil)

// NewServer opens c.Root and returns a Server for it. For a writable root it
// creates the staging directory and removes stale partial uploads.
func NewServer(c Config, log hclog.Logger) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	root, err := os.OpenRoot(c.Root)
	if err != nil {
		return nil, fmt.Errorf("filexfer.root: %w", err)
	}
	s := &Server{cfg: c, root: root, log: log, slots: make(chan struct{}, c.MaxTransfers),
		inflight: map[string]int64{}, locks: nameLocks{held: map[string]chan struct{}{}}}
	if c.Writable {
		if err := root.Mkdir(stagingDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			root.Close()
			return nil, fmt.Errorf("filexfer.root: create staging directory: %w", err)
		}
		if st, err := root.Lstat(stagingDir); err != nil || !st.IsDir() {
			root.Close()
			return nil, fmt.Errorf("filexfer.root: %s/%s is not a directory", c.Root, stagingDir)
		}
		s.removeStale(time.Now().Add(-staleAfter))
	}
	return s, nil
}

// Close releases the root directory.
func (s *Server) Close() error { return s.root.Close() }

func (s *Server) removeStale(before time.Time) {
	ents, err := fs.ReadDir(s.root.FS(), stagingDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.ModTime().Before(before) {
			if err := s.root.Remove(stagingDir + "/" + e.Name()); err == nil {
				s.log.Info("removed stale partial upload", "name", e.Name())
			}
		}
	}
}

// ServeConn serves requests on c until the client closes it, an error leaves
// the stream out of step, or ctx is cancelled between requests. A transfer in
// progress when ctx is cancelled runs on until the drain closes c.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	log := sdk.Logger(ctx).With("peer", c.RemoteAddr().String())
	var idle atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		if idle.Load() {
			_ = c.SetReadDeadline(time.Now())
		}
	})
	defer stop()
	br := bufio.NewReaderSize(c, MaxLine)
	for {
		idle.Store(true)
		_ = c.SetDeadline(time.Now().Add(s.cfg.Idle))
		if ctx.Err() != nil {
			return
		}
		line, err := br.ReadSlice('\n')
		idle.Store(false)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				s.reply(c, badRequest("request line longer than %d bytes", MaxLine-1))
			} else if len(line) > 0 && !errors.Is(err, io.EOF) {
				log.Debug("read request", "error", err)
			}
			return
		}
		req, err := ParseRequest(string(line[:len(line)-1]))
		if err != nil {
			s.reply(c, err)
			continue
		}
		log.Debug("request", "verb", string(req.Verb), "path", req.Path)
		if err := s.serve(log, c, br, req); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				log.Debug("connection ends", "verb", string(req.Verb), "path", req.Path, "error", err)
				return
			}
			log.Debug("refused", "verb", string(req.Verb), "path", req.Path, "error", err)
			if s.reply(c, e) != nil {
				return
			}
		}
	}
}

// serve runs one request. An *Error it returns is a refusal that leaves the
// stream in step (sent as ERR, and the next request is read); any other error
// ends the connection.
func (s *Server) serve(log hclog.Logger, c net.Conn, br *bufio.Reader, req Request) error {
	name, err := CleanPath(req.Path)
	if err != nil {
		return err
	}
	switch req.Verb {
	case VerbList:
		return s.list(c, name)
	case VerbSum:
		return s.sum(c, name)
	case VerbGet:
		return s.get(c, name, req.Offset)
	case VerbPut:
		return s.put(log, c, br, name, req.Size, req.Sum)
	}
	return badRequest("unknown request")
}

func (s *Server) reply(c net.Conn, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeIO, Msg: err.Error()}
	}
	return s.status(c, e.statusLine())
}

// status writes a status line (with its newline) and what follows it. The
// write deadline is set here because the work before it (hashing a large
// file, landing an upload) may have outlasted the one set with the request.
func (s *Server) status(c net.Conn, line string) error {
	_ = c.SetWriteDeadline(time.Now().Add(s.cfg.Idle))
	_, err := io.WriteString(c, line)
	return err
}

func (s *Server) list(c net.Conn, name string) error {
	f, _, err := s.open(name, false)
	if err != nil {
		return err
	}
	defer f.Close()
	ents, err := f.ReadDir(maxEntries + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return s.fsError(name, err)
	}
	if len(ents) > maxEntries {
		return &Error{Code: CodeTooLarge, Msg: fmt.Sprintf("%s has more than %d entries", quoteName(name), maxEntries)}
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var b strings.Builder
	var n int
	for _, d := range ents {
		if name == "." && d.Name() == stagingDir {
			continue
		}
		info, err := d.Info()
		if err != nil {
			continue // removed since ReadDir
		}
		e := Entry{Type: 'o', MTime: info.ModTime().Unix(), Name: d.Name()}
		switch {
		case info.Mode().IsRegular():
			e.Type, e.Size = 'f', info.Size()
		case info.IsDir():
			e.Type = 'd'
		case info.Mode()&fs.ModeSymlink != 0:
			e.Type = 'l'
		}
		b.WriteString(e.String())
		b.WriteByte('\n')
		n++
	}
	return s.status(c, fmt.Sprintf("OK %d\n%s", n, b.String()))
}

func (s *Server) sum(c net.Conn, name string) error {
	f, st, err := s.open(name, true)
	if err != nil {
		return err
	}
	defer f.Close()
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	sum, err := s.sums.get(f, st)
	if err != nil {
		return s.fsError(name, err)
	}
	return s.status(c, fmt.Sprintf("OK %d %s\n", st.Size(), sum))
}

func (s *Server) get(c net.Conn, name string, off int64) error {
	f, st, err := s.open(name, true)
	if err != nil {
		return err
	}
	defer f.Close()
	if off > st.Size() {
		return &Error{Code: CodeBadRequest, Msg: fmt.Sprintf("offset %d is beyond the end of %s (%d bytes)", off, quoteName(name), st.Size())}
	}
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	sum, err := s.sums.get(f, st)
	if err != nil {
		return s.fsError(name, err)
	}
	if err := s.status(c, fmt.Sprintf("OK %d %s\n", st.Size(), sum)); err != nil {
		return err
	}
	var hook func(int64)
	if h := s.hooks.sent; h != nil {
		hook = func(n int64) { h(name, n) }
	}
	return sendRange(c, f, off, st.Size()-off, s.cfg.Idle, sendChunk, hook, nil)
}

// put receives an upload into the staging directory and lands it: see
// PROTOCOL.md, "PUT". want is the announced SHA-256, or "-" when the client
// sends it after the data.
func (s *Server) put(log hclog.Logger, c net.Conn, br *bufio.Reader, name string, size int64, want string) error {
	q := quoteName(name)
	switch {
	case !s.cfg.Writable:
		return &Error{Code: CodeReadOnly, Msg: "this server is read-only (start it with --set filexfer.writable=true to accept uploads)"}
	case name == ".":
		return &Error{Code: CodeNotFile, Msg: "the root is a directory; name a file to upload to"}
	case s.cfg.MaxFile > 0 && size > s.cfg.MaxFile:
		return &Error{Code: CodeTooLarge, Msg: fmt.Sprintf("%s is %d bytes; this server takes files up to %d bytes", q, size, s.cfg.MaxFile)}
	}
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	unlock, ok := s.locks.lock(name, s.cfg.LockWait)
	if !ok {
		return &Error{Code: CodeBusy, Msg: fmt.Sprintf("another upload to %s is in progress; try again when it ends", q)}
	}
	defer unlock()

	if st, err := s.root.Lstat(name); err == nil && !st.Mode().IsRegular() {
		return &Error{Code: CodeNotFile, Msg: fmt.Sprintf("%s exists and is not a regular file (%s); it is not replaced", q, kind(st.Mode()))}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.fsError(name, err)
	}
	dir := path.Dir(name)
	if st, err := s.root.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &Error{Code: CodeNotFound, Msg: fmt.Sprintf("directory %s does not exist (uploads do not create directories)", quoteName(dir))}
		}
		return s.fsError(dir, err)
	} else if !st.IsDir() {
		return &Error{Code: CodeNotDir, Msg: fmt.Sprintf("%s is not a directory", quoteName(dir))}
	}

	stage := stagingDir + "/" + stageName(name, size, want)
	s.dropOtherPartials(name, stage)
	done, err := s.reserve(stage, size)
	if err != nil {
		return err
	}
	defer done()

	f, err := s.root.OpenFile(stage, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return s.fsError(name, err)
	}
	defer f.Close()
	// fail removes the partial upload, which cannot complete, and says why.
	fail := func(op string, at int64, err error) *Error {
		_ = f.Close()
		rerr := s.root.Remove(stage)
		log.Warn("upload failed on the server's disk; partial upload removed", "name", name, "op", op,
			"at", at, "size", size, "error", err, "remove_error", rerr)
		if diskFull(err) {
			return &Error{Code: CodeQuota, Msg: fmt.Sprintf("the server's disk is full (%s at byte %d of %s); nothing was stored", op, at, q)}
		}
		return &Error{Code: CodeIO, Msg: fmt.Sprintf("%s: server-side I/O error (%s at byte %d); nothing was stored", q, op, at)}
	}
	st, err := f.Stat()
	if err != nil {
		return fail("stat", 0, err)
	}
	off := st.Size()
	if off > size {
		off = 0
	}
	if err := f.Truncate(off); err != nil {
		return fail("truncate", off, err)
	}
	// Refuse at once what cannot fit rather than after sending it.
	if free, err := freeBytes(f); err == nil && size-off > free {
		_ = f.Close()
		_ = s.root.Remove(stage)
		log.Warn("upload refused: not enough free space on the server's disk", "name", name, "need", size-off, "free", free)
		return &Error{Code: CodeQuota, Msg: fmt.Sprintf("the server's disk is full: %d bytes free, %s needs %d more; nothing was stored", free, q, size-off)}
	}
	h := sha256.New()
	buf := make([]byte, min(bufSize, max(off, 1)))
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, off), buf); err != nil {
		return fail("read", 0, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fail("seek", off, err)
	}
	if err := s.status(c, fmt.Sprintf("OK %d\n", off)); err != nil {
		return err
	}

	wb := &writeback{f: f, base: off}
	dw := newDirectWriter(f, off, s.cfg.Direct)
	defer dw.restore()
	rc := receiver{w: dw, h: h, base: off, deadline: func() { _ = c.SetReadDeadline(time.Now().Add(s.cfg.Idle)) },
		written: func(n int64) {
			wb.advance(n)
			if s.hooks.received != nil {
				s.hooks.received(name, off+n)
			}
		}}
	if s.hooks.writer != nil {
		rc.w = s.hooks.writer(f)
	}
	read, written, err := receive(br, size-off, rc)
	if se := (*storageError)(nil); errors.As(err, &se) {
		// Answer now, then take the rest of the announced bytes (and the
		// sum after them) so that the connection stays in step.
		if err := s.reply(c, fail(se.op, off+written, se.err)); err != nil {
			return err
		}
		if err := s.discard(c, br, size-off-read, want == SumAfter); err != nil {
			return fmt.Errorf("upload of %s: after the storage failure: %w", name, err)
		}
		return nil
	}
	if err != nil {
		// The client went away: the staged bytes stay for a resume.
		return fmt.Errorf("upload of %s cut at %d of %d bytes: %w", name, off+read, size, err)
	}
	if want == SumAfter {
		if want, err = s.trailer(c, br); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				return fmt.Errorf("upload of %s: reading the SHA-256 after the data: %w", name, err)
			}
			_ = f.Close()
			_ = s.root.Remove(stage)
			return e
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		_ = f.Close()
		_ = s.root.Remove(stage)
		return &Error{Code: CodeChecksum, Msg: fmt.Sprintf("%s: the data's SHA-256 is %s, not the announced %s; nothing was stored", q, got, want)}
	}
	if s.hooks.sync != nil {
		if err := s.hooks.sync(f); err != nil {
			return fail("fsync", size, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", size, err)
	}
	if err := s.root.Rename(stage, name); err != nil {
		return fail("rename", size, err)
	}
	if d, err := s.root.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			log.Warn("upload landed but its directory could not be synced", "name", name, "error", err)
			return &Error{Code: CodeIO, Msg: fmt.Sprintf("%s is in place but the server could not make it durable (server-side I/O error)", q)}
		}
	}
	if st, err := f.Stat(); err == nil {
		s.sums.put(st, want)
	}
	return s.status(c, "OK\n")
}

// discard reads and drops the n bytes left of an upload that failed, and the
// SHA-256 line after them when the client sends one, so that the next request
// is read from the right place.
func (s *Server) discard(c net.Conn, br *bufio.Reader, n int64, trailer bool) error {
	buf := make([]byte, min(bufSize, max(n, 1)))
	for n > 0 {
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.Idle))
		k, err := io.ReadFull(br, buf[:min(int64(len(buf)), n)])
		n -= int64(k)
		if err != nil {
			return err
		}
	}
	if trailer {
		_, err := s.trailer(c, br)
		var e *Error
		if errors.As(err, &e) {
			return nil // a malformed line, read whole: still in step
		}
		return err
	}
	return nil
}

// trailer reads the line that follows the data of a PUT announced with "-":
// the SHA-256 of the whole file.
func (s *Server) trailer(c net.Conn, br *bufio.Reader) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.Idle))
	line, err := br.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	sum := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	if !isSum(sum) {
		return "", badRequest("the line after the data must be the file's SHA-256 (64 lower-case hex digits), got %+q; nothing was stored", clip(sum))
	}
	return sum, nil
}

// stageName names the staging file of an upload of (name, size, sum): the
// same upload resumes into the same file, and the first half, which depends on
// name only, finds a superseded partial of the same name.
func stageName(name string, size int64, sum string) string {
	a := sha256.Sum256([]byte(name))
	b := sha256.Sum256([]byte(name + "\x00" + strconv.FormatInt(size, 10) + "\x00" + sum))
	return hex.EncodeToString(a[:12]) + "-" + hex.EncodeToString(b[:12]) + ".part"
}

// dropOtherPartials removes partial uploads to name other than keep: an upload
// with another size or checksum supersedes them. The caller holds name's lock.
func (s *Server) dropOtherPartials(name, keep string) {
	prefix := stageName(name, 0, "")[:25]
	ents, err := fs.ReadDir(s.root.FS(), stagingDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if p := stagingDir + "/" + e.Name(); strings.HasPrefix(e.Name(), prefix) && p != keep {
			_ = s.root.Remove(p)
		}
	}
}

// reserve checks the quota for an upload of size bytes into stage and holds
// that much until done is called. Everything under the root counts, other
// uploads in progress at their full announced size, and a file being replaced
// until it is replaced: the root never holds more than the quota.
func (s *Server) reserve(stage string, size int64) (done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight[stage] = size
	done = func() {
		s.mu.Lock()
		delete(s.inflight, stage)
		s.mu.Unlock()
	}
	if s.cfg.Quota == 0 {
		return done, nil
	}
	used, err := s.usage()
	if err != nil {
		delete(s.inflight, stage)
		return nil, s.fsError(".", err)
	}
	for _, n := range s.inflight {
		used += n
	}
	if used > s.cfg.Quota {
		delete(s.inflight, stage)
		return nil, &Error{Code: CodeQuota, Msg: fmt.Sprintf("%d more bytes would exceed the quota: %d of %d bytes in use", size, used-size, s.cfg.Quota)}
	}
	return done, nil
}

// usage sums the sizes of the regular files under the root, except the staged
// files of uploads in progress, which count by their announced size. The
// caller holds s.mu.
func (s *Server) usage() (int64, error) {
	var used int64
	err := fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if _, ok := s.inflight[p]; ok {
			return nil
		}
		if info, err := d.Info(); err == nil {
			used += info.Size()
		}
		return nil
	})
	return used, err
}

// acquire takes a transfer slot, or refuses at once when all are taken.
func (s *Server) acquire() (release func(), err error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
		return nil, &Error{Code: CodeBusy, Msg: fmt.Sprintf("the server is running its maximum of %d transfers; try again shortly", cap(s.slots))}
	}
}

// open opens name for reading and checks its kind: a regular file when file
// is set, else a directory. It opens with O_NONBLOCK so that a FIFO cannot
// block it, and checks the kind on the open descriptor, so that nothing can be
// swapped in between the check and the use.
func (s *Server) open(name string, file bool) (*os.File, os.FileInfo, error) {
	f, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, s.fsError(name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, s.fsError(name, err)
	}
	switch m := st.Mode(); {
	case file && m.IsRegular(), !file && m.IsDir():
		return f, st, nil
	case file && m.IsDir():
		f.Close()
		return nil, nil, &Error{Code: CodeNotFile, Msg: fmt.Sprintf("%s is a directory", quoteName(name))}
	case !file && m.IsRegular():
		f.Close()
		return nil, nil, &Error{Code: CodeNotDir, Msg: fmt.Sprintf("%s is a file, not a directory", quoteName(name))}
	default:
		f.Close()
		return nil, nil, &Error{Code: CodeForbidden, Msg: fmt.Sprintf("%s is a %s; only regular files and directories are served", quoteName(name), kind(m))}
	}
}

// fsError turns a file system error into a refusal that names name and says
// what went wrong, without the server's own paths.
func (s *Server) fsError(name string, err error) error {
	var e *Error
	q := quoteName(name)
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, fs.ErrNotExist):
		return &Error{Code: CodeNotFound, Msg: fmt.Sprintf("%s does not exist", q)}
	case strings.Contains(err.Error(), "path escapes from parent"), errors.Is(err, syscall.ELOOP):
		return &Error{Code: CodeForbidden, Msg: fmt.Sprintf("%s leads outside the served root (through a symbolic link)", q)}
	case errors.Is(err, syscall.ENOTDIR):
		return &Error{Code: CodeNotFound, Msg: fmt.Sprintf("%s does not exist (a parent is not a directory)", q)}
	case errors.Is(err, fs.ErrPermission):
		return &Error{Code: CodeForbidden, Msg: fmt.Sprintf("%s: permission denied", q)}
	case diskFull(err):
		s.log.Warn("the server's disk is full", "name", name, "error", err)
		return &Error{Code: CodeQuota, Msg: "the server's disk is full"}
	}
	s.log.Error("file system error", "name", name, "error", err)
	return &Error{Code: CodeIO, Msg: fmt.Sprintf("%s: server-side I/O error", q)}
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// nameLocks makes uploads to the same name take turns.
type nameLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed on unlock
}

// lock takes name's lock, waiting up to wait for it.
func (l *nameLocks) lock(name string, wait time.Duration) (unlock func(), ok bool) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ch, busy := l.held[name]
		if !busy {
			ch = make(chan struct{})
			l.held[name] = ch
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.held, name)
				l.mu.Unlock()
				close(ch)
			}, true
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return nil, false
		}
	}
}

// sumCache remembers the SHA-256 of files by inode, size and times, so that a
// GET of a file already hashed (or just uploaded) starts at once. It keeps
// maxSums, the least recently used forgotten first (clients make files).
type sumCache struct {
	mu sync.Mutex
	m  *simplelru.LRU[sumKey, string] // made on first use
}

type sumKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

const maxSums = 4096

// get returns the SHA-256 of the open file f, whose stat is st.
func (c *sumCache) get(f *os.File, st fs.FileInfo) (string, error) {
	k, ok := keyOf(st)
	if ok {
		c.mu.Lock()
		var sum string
		hit := false
		if c.m != nil {
			sum, hit = c.m.Get(k)
		}
		c.mu.Unlock()
		if hit {
			return sum, nil
		}
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, st.Size()), make([]byte, bufSize)); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if ok {
		c.put(st, sum)
	}
	return sum, nil
}

func (c *sumCache) put(st fs.FileInfo, sum string) {
	k, ok := keyOf(st)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m, _ = simplelru.NewLRU[sumKey, string](maxSums, nil)
	}
	c.m.Add(k, sum)
}
