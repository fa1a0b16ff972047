package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The data path of both ends: sendRange (sendfile) and sendHashed send a
// file, receive receives one. Every transfer is hashed on the way (SHA-256,
// PROTOCOL.md) in a goroutine of its own, so that on two or more cores the
// hash runs beside the copy instead of after it.

// sendRange sends n bytes of f from off. The copy is io.Copy from an
// *io.LimitedReader around the *os.File to the connection, which for a
// *net.TCPConn is sendfile(2): the bytes go from the page cache to the socket
// without passing through this process. It goes in chunks so that the write
// deadline follows progress rather than the whole transfer. A non-nil stop is
// asked before each chunk whether to give up.
func sendRange(c net.Conn, f *os.File, off, n int64, idle time.Duration, chunk int64, hook func(sent int64), stop func() bool) error {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	var sent int64
	for sent < n {
		if stop != nil && stop() {
			return errStopped
		}
		_ = c.SetWriteDeadline(time.Now().Add(idle))
		k, err := io.Copy(c, &io.LimitedReader{R: f, N: min(chunk, n-sent)})
		sent += k
		if err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("file shrank while being sent: %d of %d bytes", sent, n)
		}
		if hook != nil {
			hook(sent)
		}
	}
	return nil
}

// sendHashed sends bytes [off, size) of f with sendRange while a second
// goroutine reads the whole file, [0, size), and hashes it; it returns that
// SHA-256 once both are done. The file is read twice, but whichever reader is
// behind finds the pages the other brought into the page cache, so the disk
// is read once, and the hash costs no wall time on a second core. If f
// changes meanwhile the sum and the bytes sent disagree, and the receiver's
// check says so.
func sendHashed(c net.Conn, f *os.File, off, size int64, idle time.Duration, hook func(sent int64), stop func() bool) (sum string, err error) {
	adviseSequential(f)
	var quit atomic.Bool
	type result struct {
		sum string
		err error
	}
	hashed := make(chan result, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, min(bufSize, max(size, 1)))
		for done := int64(0); done < size; {
			if quit.Load() {
				hashed <- result{err: errStopped}
				return
			}
			k, err := f.ReadAt(buf[:min(int64(len(buf)), size-done)], done)
			h.Write(buf[:k])
			done += int64(k)
			if err != nil && done < size {
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("file shrank while being read: %d of %d bytes", done, size)
				}
				hashed <- result{err: err}
				return
			}
		}
		hashed <- result{sum: hex.EncodeToString(h.Sum(nil))}
	}()
	serr := sendRange(c, f, off, size-off, idle, clientChunk, hook, stop)
	if serr != nil {
		quit.Store(true)
	}
	r := <-hashed
	switch {
	case serr != nil:
		return "", serr
	case r.err != nil:
		return "", &storageError{op: "read", err: r.err}
	}
	return r.sum, nil
}

// errStopped is the error of a send given up on purpose.
var errStopped = errors.New("transfer stopped")

// storageError is a failure of this side's file system during a transfer: a
// full disk (ENOSPC), an exhausted disk quota (EDQUOT), an I/O error (EIO).
// It is nobody's fault on the other end of the connection, so a server
// answers it with an ERR line rather than dropping the connection, and a
// client reports it as a local problem, not a network one.
type storageError struct {
	op  string
	err error
}

func (e *storageError) Error() string { return e.op + ": " + e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

// diskFull reports whether err means that the file system has no room left:
// no space (ENOSPC) or the owner's disk quota is used up (EDQUOT).
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

const (
	// recvBufSize is one read from the connection and one write to the file.
	recvBufSize = 1 << 20
	// recvBufs buffers circulate between the reading, writing and hashing
	// goroutines of one transfer.
	recvBufs = 4
	// flushEvery is how many written bytes go by between two writeback
	// requests (see writeback).
	flushEvery = 8 << 20
)

// recvPool holds receive buffers; each is one more dioAlign than it needs,
// so that an aligned recvBufSize slice fits in it (see aligned).
var recvPool = sync.Pool{New: func() any { return new([recvBufSize + dioAlign]byte) }}

// aligned returns the recvBufSize bytes of p that start at a multiple of
// dioAlign.
func aligned(p *[recvBufSize + dioAlign]byte) []byte {
	off := 0
	if rem := int(uintptr(unsafe.Pointer(&p[0])) % dioAlign); rem != 0 {
		off = dioAlign - rem
	}
	return p[off : off+recvBufSize : off+recvBufSize]
}

// receiver says where receive puts the bytes it reads.
type receiver struct {
	w        io.Writer     // a *directWriter on the file; tests put a failing writer here
	h        hash.Hash     // gets the bytes written to w, in order
	deadline func()        // called before each read from the connection
	written  func(n int64) // called after each write with the total written so far
	// base is the file offset of the first byte. When it is not a multiple
	// of dioAlign the first read stops at the next multiple, so that every
	// later write is aligned for O_DIRECT.
	base int64
}

// receive reads n bytes from r and writes them to rc.w, and hashes what it
// wrote into rc.h. Three goroutines share the work, each on its own buffer:
// this one reads from the connection, one writes to the file, one hashes, so
// that a read, a write and a hash run at the same time on different cores.
// The bytes are copied once, from the socket into the buffer; the file is
// written from it with O_DIRECT where it can be (directWriter), so the disk
// takes them from there, and the hash reads the same buffer. splice(2) would
// need the file read back for the hash, and loses count of the bytes taken
// from the socket when a write fails.
//
// It returns how many bytes it read from r and how many reached rc.w. A
// failed write is a *storageError; receive then stops reading, so read may
// exceed written, and read is what a caller that keeps the connection in
// step must account for. Any other error is r's: the connection broke.
func receive(r io.Reader, n int64, rc receiver) (read, written int64, err error) {
	var failed atomic.Bool
	free := make(chan []byte, recvBufs)
	toWrite := make(chan []byte, recvBufs)
	toHash := make(chan []byte, recvBufs)
	wrote := make(chan error, 1)
	hashed := make(chan struct{})
	go func() {
		var werr error
		for b := range toWrite {
			if werr != nil {
				free <- b
				continue
			}
			k, err := rc.w.Write(b)
			written += int64(k)
			if err == nil && k < len(b) {
				err = io.ErrShortWrite
			}
			if err != nil {
				werr = err
				failed.Store(true)
				free <- b
				continue
			}
			if rc.written != nil {
				rc.written(written)
			}
			toHash <- b
		}
		close(toHash)
		wrote <- werr
	}()
	go func() {
		for b := range toHash {
			rc.h.Write(b)
			free <- b
		}
		close(hashed)
	}()

	size := int(min(recvBufSize, n))
	var pooled []*[recvBufSize + dioAlign]byte
	made := 0
	buffer := func() []byte {
		select {
		case b := <-free:
			return b
		default:
		}
		if made < recvBufs {
			made++
			if size < recvBufSize {
				return make([]byte, size)
			}
			p := recvPool.Get().(*[recvBufSize + dioAlign]byte)
			pooled = append(pooled, p)
			return aligned(p)
		}
		return <-free
	}
	for read < n && !failed.Load() {
		b := buffer()
		want := min(int64(cap(b)), n-read)
		if rem := (rc.base + read) % dioAlign; rem != 0 {
			want = min(want, dioAlign-rem)
		}
		b = b[:want]
		if rc.deadline != nil {
			rc.deadline()
		}
		k, rerr := io.ReadFull(r, b)
		read += int64(k)
		if k > 0 {
			toWrite <- b[:k]
		} else {
			free <- b
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			err = rerr
			break
		}
	}
	close(toWrite)
	werr := <-wrote
	<-hashed
	for _, p := range pooled {
		recvPool.Put(p)
	}
	if werr != nil {
		return read, written, &storageError{op: "write", err: werr}
	}
	return read, written, err
}

// dioAlign is the alignment O_DIRECT asks of a write's buffer address, file
// offset and length: 4096 covers the logical block sizes in use (512 and
// 4096 bytes).
const dioAlign = 4096

// directWriter writes a file sequentially from an offset, with O_DIRECT
// whenever a write is aligned (the disk reads the bytes straight from the
// buffer: no copy into the page cache and nothing left dirty for the fsync at
// the end), and through the page cache otherwise: the unaligned head of a
// resumed transfer, the tail of the file, a small file. A file system that
// refuses O_DIRECT (fcntl, or the first direct write, fails with EINVAL) is
// written through the page cache throughout. Call restore when done.
type directWriter struct {
	f       *os.File
	pos     int64
	flags   int  // the descriptor's status flags before O_DIRECT
	direct  bool // O_DIRECT is set now
	refused bool // the file system refused O_DIRECT: do not try again
	// setFlags and write are the system calls; tests replace them.
	setFlags func(flags int) error
	write    func(p []byte) (int, error)
	// directBytes counts what went with O_DIRECT, for tests.
	directBytes int64
}

func newDirectWriter(f *os.File, pos int64, enable bool) *directWriter {
	d := &directWriter{f: f, pos: pos, refused: true, write: f.Write}
	if enable {
		var err error
		d.flags, d.setFlags, err = statusFlags(f)
		d.refused = err != nil || oDirect == 0
	}
	return d
}

func (d *directWriter) Write(p []byte) (int, error) {
	aligned := len(p) > 0 && d.pos%dioAlign == 0 && len(p)%dioAlign == 0 &&
		uintptr(unsafe.Pointer(&p[0]))%dioAlign == 0
	d.use(aligned && !d.refused)
	n, err := d.write(p)
	if d.direct && n == 0 && errors.Is(err, syscall.EINVAL) {
		d.refused = true
		d.use(false)
		n, err = d.write(p)
	}
	if d.direct {
		d.directBytes += int64(n)
	}
	d.pos += int64(n)
	return n, err
}

// use sets or clears O_DIRECT; a refusal to set it is remembered.
func (d *directWriter) use(direct bool) {
	if direct == d.direct {
		return
	}
	flags := d.flags
	if direct {
		flags |= oDirect
	}
	if err := d.setFlags(flags); err != nil {
		d.refused = true
		if direct {
			return
		}
	}
	d.direct = direct
}

// restore clears O_DIRECT, for what the file is used for next.
func (d *directWriter) restore() { d.use(false) }

// writeback asks the kernel to start writing a file's dirty pages to disk as
// they accumulate (sync_file_range(2) with SYNC_FILE_RANGE_WRITE, which does
// not wait), so that the disk works while the network does and the fsync at
// the end has only the last few megabytes left to write. Only a hint: errors
// are ignored, and fsync still decides.
type writeback struct {
	f         *os.File
	base      int64 // file offset of the transfer's first byte
	requested int64 // bytes of the transfer already handed to writeback
}
