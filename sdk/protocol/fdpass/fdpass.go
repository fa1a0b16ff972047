// Package fdpass is the data-plane wire between the sockplay host and a plugin:
// file descriptors of accepted connections (or of a bound UDP socket) sent with
// SCM_RIGHTS over a SOCK_SEQPACKET Unix socket pair, with a small header.
//
// One message carries a batch of up to MaxBatch descriptors, so that under a
// burst of connections the host makes one sendmsg for many accepts. The header
// is
//
//	byte 0     kind ('C' accepted TCP connections, 'P' a bound UDP socket,
//	           'L' a listening TCP socket)
//	byte 1     wire version (1)
//	bytes 2-3  count n, big endian
//	then n     connection ids, uint64 big endian
//
// and the message's SCM_RIGHTS control data holds the n descriptors in the same
// order. SOCK_SEQPACKET keeps message boundaries, so a header and its
// descriptors always arrive together. When the peer's end closes, Recv returns
// io.EOF: a plugin uses that to notice that its host is gone.
package fdpass

import (
	"errors"
	"os"
)

// Kind says what the descriptors of a message are.
type Kind byte

const (
	// Conn descriptors are accepted TCP connections.
	Conn Kind = 'C'
	// Packet descriptors are bound UDP sockets.
	Packet Kind = 'P'
	// Listener descriptors are listening TCP sockets: the plugin accepts.
	Listener Kind = 'L'
)

const (
	wireVersion = 1
	headerLen   = 4
	// MaxBatch is the most descriptors one message carries (the kernel allows
	// 253 per SCM_RIGHTS message).
	MaxBatch = 64
)

// Errors a Receiver returns for a malformed message. Descriptors that came with
// such a message are closed.
var (
	ErrShortMessage  = errors.New("fdpass: short message")
	ErrBadVersion    = errors.New("fdpass: unknown wire version")
	ErrTruncated     = errors.New("fdpass: control data truncated")
	ErrCountMismatch = errors.New("fdpass: descriptor count does not match header")
)

// Handoff is one received descriptor.
type Handoff struct {
	Kind Kind
	ID   uint64
	File *os.File
}
