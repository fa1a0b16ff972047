"""The descriptor wire between the sockplay host and a plugin (the Python side
of sdk/protocol's fdpass): file descriptors sent with SCM_RIGHTS over a
SOCK_SEQPACKET Unix socket, fd SOCKPLAY_HANDOFF_FD (3) in the plugin.

A message is a 4-byte header and n connection ids,

    byte 0     kind: 'C' accepted TCP connections, 'L' a listening TCP
               socket (the plugin accepts), 'P' a bound UDP socket
    byte 1     wire version, 1
    bytes 2-3  n, big endian, 1 to 64
    then       n ids, uint64 big endian

and its SCM_RIGHTS control data holds the n descriptors in the same order.
SOCK_SEQPACKET keeps message boundaries, so a header and its descriptors
arrive together. The plugin never writes on the socket. End of file means the
host is gone.
"""

import array
import socket
import struct

_INT = array.array("i")

CONN, PACKET, LISTENER = "C", "P", "L"
WIRE_VERSION = 1
HEADER_LEN = 4
#: The most descriptors one message carries.
MAX_BATCH = 64
#: One byte more than the longest valid message, so that a longer one is seen.
RECV_SIZE = HEADER_LEN + 8 * MAX_BATCH + 1


class WireError(Exception):
    """A malformed message. Its descriptors have been closed."""


class Handoff:
    """One received descriptor: its kind, the host's id for it, and the fd,
    which the receiver owns."""

    __slots__ = ("kind", "id", "fd")

    def __init__(self, kind, id, fd):
        self.kind, self.id, self.fd = kind, id, fd

    def __repr__(self):
        return f"Handoff({self.kind!r}, {self.id}, fd={self.fd})"


def parse(msg, fds, flags=0):
    """Checks one message against the wire format and returns its handoffs.
    On error it closes fds and raises WireError."""
    try:
        if flags & socket.MSG_CTRUNC:
            raise WireError("fdpass: control data truncated")
        if len(msg) < HEADER_LEN:
            raise WireError("fdpass: short message")
        kind, version, count = struct.unpack_from(">cBH", msg)
        if version != WIRE_VERSION:
            raise WireError(f"fdpass: unknown wire version {version}")
        if count != len(fds) or len(msg) != HEADER_LEN + 8 * count:
            raise WireError(f"fdpass: descriptor count does not match header: header says {count}, "
                            f"got {len(fds)} descriptors in {len(msg)} bytes")
    except WireError:
        close_all(fds)
        raise
    ids = struct.unpack_from(f">{count}Q", msg, HEADER_LEN)
    k = kind.decode("latin-1")
    return [Handoff(k, i, fd) for i, fd in zip(ids, fds)]


def recv(sock):
    """Reads one message from the handoff socket. It returns None when the host
    has closed its end, and raises WireError for a malformed message (whose
    descriptors it closes). The received descriptors are close-on-exec.

    This is socket.recv_fds with MSG_CMSG_CLOEXEC: Python 3.11's recv_fds
    takes a flags argument but does not pass it to recvmsg, so the
    descriptors it returns would be inherited by whatever a handler execs."""
    msg, ancdata, flags, _ = sock.recvmsg(RECV_SIZE, socket.CMSG_SPACE(MAX_BATCH * _INT.itemsize),
                                          socket.MSG_CMSG_CLOEXEC)
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    if not msg and not fds:
        return None
    return parse(msg, list(fds), flags)


def send(sock, kind, ids, fds):
    """Sends one message, as the host does (the SDK's tests play the host with
    it). It does not close fds."""
    if not (0 < len(fds) <= MAX_BATCH) or len(ids) != len(fds):
        raise ValueError(f"fdpass: send {len(ids)} ids with {len(fds)} descriptors (1..{MAX_BATCH})")
    msg = struct.pack(f">cBH{len(ids)}Q", kind.encode("latin-1"), WIRE_VERSION, len(ids), *ids)
    socket.send_fds(sock, [msg], list(fds))


def close_all(fds):
    for fd in fds:
        try:
            socket.close(fd)
        except OSError:
            pass


