//go:build linux

package fdpass

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Pair makes a connected SOCK_SEQPACKET socket pair: the host's end as a
// *net.UnixConn and the child's end as an *os.File for exec.Cmd.ExtraFiles.
// The caller closes the child's file once the child has started.
func Pair() (*net.UnixConn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	hostFile := os.NewFile(uintptr(fds[0]), "sockplay-handoff-host")
	child := os.NewFile(uintptr(fds[1]), "sockplay-handoff-plugin")
	c, err := FileConn(hostFile)
	hostFile.Close()
	if err != nil {
		child.Close()
		return nil, nil, err
	}
	return c, child, nil
}

// FileConn turns an inherited end of the pair into a *net.UnixConn. The file
// may be closed afterwards; the connection holds its own descriptor.
func FileConn(f *os.File) (*net.UnixConn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("handoff socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("handoff socket: %T is not a Unix socket", c)
	}
	return uc, nil
}

// Sender writes batches of descriptors. It is not safe for concurrent use.
type Sender struct {
	c   *net.UnixConn
	buf []byte
}

// NewSender returns a Sender writing to c.
func NewSender(c *net.UnixConn) *Sender {
	return &Sender{c: c, buf: make([]byte, headerLen+8*MaxBatch)}
}

// Send sends fds with their ids in one message. It does not close the fds:
// after a successful Send the peer holds its own copies and the caller closes
// its; after a failed one nothing was delivered and the caller still owns them.
// An answer (Taken, Returned) carries ids only: fds must be empty.
func (s *Sender) Send(kind Kind, ids []uint64, fds []int) error {
	nfds := len(ids)
	if !kind.carriesFDs() {
		nfds = 0
	}
	if len(fds) != nfds || len(ids) == 0 || len(ids) > MaxBatch {
		return fmt.Errorf("fdpass: send %d ids with %d descriptors (1..%d)", len(ids), len(fds), MaxBatch)
	}
	b := s.buf[:headerLen+8*len(ids)]
	b[0] = byte(kind)
	b[1] = wireVersion
	binary.BigEndian.PutUint16(b[2:4], uint16(len(ids)))
	for i, id := range ids {
		binary.BigEndian.PutUint64(b[headerLen+8*i:], id)
	}
	var oob []byte
	if nfds > 0 {
		oob = syscall.UnixRights(fds...)
	}
	n, oobn, err := s.c.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return err
	}
	if n != len(b) || oobn != len(oob) {
		return fmt.Errorf("fdpass: short write (%d of %d bytes)", n, len(b))
	}
	return nil
}

// Close closes the sender's socket.
func (s *Sender) Close() error { return s.c.Close() }

// Receiver reads batches of descriptors. It is not safe for concurrent use.
type Receiver struct {
	c   *net.UnixConn
	buf []byte
	oob []byte
}

// NewReceiver returns a Receiver reading from c.
func NewReceiver(c *net.UnixConn) *Receiver {
	return &Receiver{
		c:   c,
		buf: make([]byte, headerLen+8*MaxBatch+1),
		oob: make([]byte, syscall.CmsgSpace(4*MaxBatch)),
	}
}

// Recv reads one message. It returns io.EOF when the peer has closed its end.
// The caller owns the returned files.
//
// When the kernel cut off descriptors (MSG_CTRUNC: this process is at its
// open-file limit) Recv returns the whole batch with an error wrapping
// ErrTruncated: each id with its descriptor if it arrived, a nil File if not.
// For any other malformed message it closes what arrived and returns only the
// error.
func (r *Receiver) Recv() ([]Handoff, error) {
	n, oobn, flags, _, err := r.c.ReadMsgUnix(r.buf, r.oob)
	if oobn == 0 {
		if errors.Is(err, io.EOF) || err == nil && n == 0 {
			return nil, io.EOF // the net package wraps it in a *net.OpError
		}
		if err != nil {
			return nil, err
		}
	}
	// With descriptors, err can only be the io.EOF the net package reports for
	// any zero-byte read: a message of no bytes that carries descriptors. That
	// is a short message, not the peer closing, and its descriptors must be
	// closed below.
	fds, perr := parseRights(r.oob[:oobn])
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), "handoff")
	}
	fail := func(err error) ([]Handoff, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	switch {
	case perr != nil:
		return fail(perr)
	case n < headerLen:
		return fail(ErrShortMessage)
	case r.buf[1] != wireVersion:
		return fail(fmt.Errorf("%w %d", ErrBadVersion, r.buf[1]))
	}
	kind := Kind(r.buf[0])
	count := int(binary.BigEndian.Uint16(r.buf[2:4]))
	wantFDs := count
	if !kind.carriesFDs() {
		wantFDs = 0
	}
	truncated := flags&syscall.MSG_CTRUNC != 0
	switch {
	case truncated && (count > MaxBatch || n != headerLen+8*count || len(files) >= wantFDs):
		// Not the open-file limit: a batch larger than the wire allows.
		return fail(ErrTruncated)
	case !truncated && (len(files) != wantFDs || n != headerLen+8*count):
		return fail(fmt.Errorf("%w: header says %d, got %d descriptors in %d bytes", ErrCountMismatch, count, len(files), n))
	case count == 0:
		return fail(fmt.Errorf("%w: a message of no ids", ErrCountMismatch))
	}
	out := make([]Handoff, count)
	for i := range out {
		out[i] = Handoff{Kind: kind, ID: binary.BigEndian.Uint64(r.buf[headerLen+8*i:])}
		if i < len(files) {
			out[i].File = files[i]
		}
	}
	if truncated {
		return out, fmt.Errorf("%w: %d of %d descriptors arrived (out of descriptors?)", ErrTruncated, len(files), count)
	}
	return out, nil
}

// Close closes the receiver's socket.
func (r *Receiver) Close() error { return r.c.Close() }

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("fdpass: control message: %w", err)
	}
	var fds []int
	var firstErr error
	for i := range msgs {
		got, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("fdpass: rights: %w", err)
			}
			continue
		}
		fds = append(fds, got...)
	}
	return fds, firstErr
}
