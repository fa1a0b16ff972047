// Package fdpass is the data-plane wire between the sockplay host and a plugin:
// file descriptors of accepted connections (or of a bound UDP socket) sent with
// SCM_RIGHTS over a SOCK_SEQPACKET Unix socket pair, with a small header.
//
// One message carries a batch of up to MaxBatch descriptors, so that under a
// burst of connections the host makes one sendmsg for many accepts. The header
// is
//
//	byte 0     kind ('C' accepted TCP connections, 'P' a bound UDP socket,
//	           'L' a listening TCP socket; 'T' and 'R' below)
//	byte 1     wire version (1)
//	bytes 2-3  count n, big endian
//	then n     connection ids, uint64 big endian
//
// and the message's SCM_RIGHTS control data holds the n descriptors in the same
// order. SOCK_SEQPACKET keeps message boundaries, so a header and its
// descriptors always arrive together. When the peer's end closes, Recv returns
// io.EOF: a plugin uses that to notice that its host is gone.
//
// # Descriptors a plugin cannot take
//
// A process at its open-file limit (RLIMIT_NOFILE) cannot receive
// descriptors: the kernel installs those of a message that fit, in order,
// drops the rest and sets MSG_CTRUNC (recvmsg(2), unix(7)). Recv then returns
// the whole batch with ErrTruncated: every id of the header, each with its
// descriptor if it arrived (always a prefix of the batch), a nil File if not.
// The header is never lost with the descriptors, so the plugin knows which
// connections it did not get.
//
// # Answers (feature "handoff-ack")
//
// A plugin that lists the feature "handoff-ack" in its Description
// (sdk/protocol.FeatureHandoffAck) answers every connection of a 'C' message
// on the same socket, with messages of the same header and no descriptors:
//
//	'T' taken     the ids of connections the plugin now holds a descriptor of;
//	              the host closes its own copies
//	'R' returned  the ids it could not take (cut off by MSG_CTRUNC, or its dup
//	              failed with EMFILE or ENFILE); the host still holds them
//
// Each id is answered once. A returned id is answered at once. Taken ids may
// wait and go many to a message (the Go SDK answers them 2 ms after the
// first, or at once when 64 wait), since the host needs them only to close
// its copies: one answer per connection would cost both processes a system
// call and a wakeup each. A plugin answers every taken id waiting before it
// answers a returned one, and within 10 ms.
//
// The host keeps its copy of each connection it sent until it is answered,
// so a connection the kernel accepted is never closed unanswered:
//   - a returned connection goes back to the front of the listener's queue,
//     and the host waits before sending that plugin more, 5 ms doubling to 1 s
//     while returns go on, reset when a connection is taken; meanwhile new
//     clients wait in the kernel's accept backlog;
//   - of the connections still unanswered when the plugin exits, those
//     nobody read from or wrote to (TCP_INFO, SIOCINQ, SIOCOUTQ: still
//     established, nothing sent, every byte the client sent unread) go to
//     the process that replaces it, as if just accepted; those it had begun
//     to serve end with it, as a crash's connections do;
//   - the host stops sending to a plugin with 256 connections unanswered
//     (one that is alive but not reading: stopped or deadlocked), so new
//     clients wait in the backlog until it answers or is replaced; one that
//     answers none of them for 10 s is replaced.
//
// A plugin without the feature never writes on the socket; the host closes
// its copies as soon as sendmsg succeeds, holds back while the plugin leaves
// more than 32 KiB of messages unread (SIOCOUTQ, about 40 messages), and
// replaces it when that lasts 10 s.
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
	// Taken is a plugin's answer (feature "handoff-ack"): it holds these
	// connections now. It carries ids and no descriptors.
	Taken Kind = 'T'
	// Returned is a plugin's answer (feature "handoff-ack"): it could not
	// take these connections; the host still holds them. It carries ids and
	// no descriptors.
	Returned Kind = 'R'
)

// carriesFDs reports whether messages of kind k carry one descriptor per id.
func (k Kind) carriesFDs() bool { return k != Taken && k != Returned }

const (
	wireVersion = 1
	headerLen   = 4
	// MaxBatch is the most descriptors one message carries (the kernel allows
	// 253 per SCM_RIGHTS message), and the most ids an answer carries.
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

// Handoff is one received descriptor, or one id of an answer.
type Handoff struct {
	Kind Kind
	ID   uint64
	// File is the descriptor; nil in an answer ('T', 'R') and for an id
	// whose descriptor did not arrive (ErrTruncated).
	File *os.File
}
