"""The plugin's side of the optional Events stream (feature "events"): what
happens to its connections, which the host no longer sees once it has handed
them over. Handlers never wait on it: events go into a bounded queue, and when
the host reads too slowly the newest are dropped and counted."""

import collections
import socket
import struct
import threading
import time

# Event kinds, as control.proto numbers them.
OPENED, CLOSED, REFUSED, TRACE, DATAGRAMS = 1, 2, 3, 4, 5

#: The most events waiting for the stream; past it they are dropped.
MAX_QUEUED = 8192
#: A batch goes out at most this often while there are events (control.proto:
#: every 100 ms, so that each reaches the host within 250 ms).
BATCH_INTERVAL = 0.1

# struct tcp_info (linux/tcp.h): tcpi_state is byte 0; tcpi_bytes_acked and
# tcpi_bytes_received are the u64s at offsets 120 and 128 (Linux 4.1 and
# later; older kernels return a shorter struct and the counts read as 0).
_TCP_INFO_LEN = 136
_TCP_FIN_WAIT2, _TCP_TIME_WAIT, _TCP_CLOSE, _TCP_CLOSE_WAIT, _TCP_LAST_ACK, _TCP_CLOSING = 5, 6, 7, 8, 9, 11


def tcp_info(sock):
    """Returns (state, bytes received from the client, bytes the client
    acknowledged) from the kernel, or None when the socket cannot say."""
    try:
        b = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return None
    if len(b) < _TCP_INFO_LEN:
        return (b[0], 0, 0) if b else None
    acked, received = struct.unpack_from("=QQ", b, 120)
    return b[0], received, acked


def payload_bytes(info, reset=False):
    """Returns (bytes in, bytes out) of the application's data from a
    tcp_info() result. The kernel counts a FIN as one byte in both
    tcpi_bytes_received (the client's, once received) and tcpi_bytes_acked
    (ours, once acknowledged); the state says whether each happened, and
    one byte is taken off for each. A socket in TCP_CLOSE got there by a
    clean close (both FINs) unless the connection was reset."""
    if info is None:
        return 0, 0
    state, received, acked = info
    clean = state == _TCP_CLOSE and not reset
    fin_in = clean or state in (_TCP_CLOSE_WAIT, _TCP_LAST_ACK, _TCP_CLOSING, _TCP_TIME_WAIT)
    fin_out = clean or state in (_TCP_FIN_WAIT2, _TCP_TIME_WAIT)
    return max(received - fin_in, 0), max(acked - fin_out, 0)


def was_reset(info):
    """Whether a tcp_info() result taken when the handler returned shows a
    connection already reset (TCP_CLOSE before the server closed)."""
    return info is not None and info[0] == _TCP_CLOSE


def close_reason(info, failed, cut):
    """The CLOSED event's reason: "panic" (the handler raised), "drained"
    (the drain cut it), "eof" (the client closed first), "reset", "returned"
    (the handler returned with the connection open), "error" (unknown)."""
    if failed:
        return "panic"
    if cut:
        return "drained"
    if info is None:
        return "error"
    if info[0] == _TCP_CLOSE_WAIT:
        return "eof"
    if info[0] == _TCP_CLOSE:
        return "reset"
    return "returned"


class Sink:
    """The queue between handlers and the Events stream. Events are tuples
    (kind, conn, time_unix_nano, peer, local, duration_nanos, bytes_in,
    bytes_out, reason, datagrams_in, datagrams_out), made into protobuf
    messages only by the stream."""

    def __init__(self, max_queued=MAX_QUEUED):
        self._cond = threading.Condition()
        self._q = collections.deque()
        self._max = max_queued
        self.dropped = 0
        self._stream = 0

    def add(self, event):
        with self._cond:
            if len(self._q) >= self._max:
                self.dropped += 1
                return
            self._q.append(event)
            if len(self._q) == 1:
                self._cond.notify_all()

    def opened(self, conn_id, t_ns, peer, local):
        self.add((OPENED, conn_id, t_ns, peer, local, 0, 0, 0, "", 0, 0))

    def closed(self, conn_id, t_ns, peer, local, duration_ns, bytes_in, bytes_out, reason):
        self.add((CLOSED, conn_id, t_ns, peer, local, duration_ns, bytes_in, bytes_out, reason, 0, 0))

    def attach(self):
        """Starts a stream and returns its token; a stream started earlier
        ends (the host opens one at a time)."""
        with self._cond:
            self._stream += 1
            self._cond.notify_all()
            return self._stream

    def current(self, token):
        return token == self._stream

    def wait(self, timeout):
        """Waits up to timeout seconds for an event."""
        with self._cond:
            if not self._q:
                self._cond.wait(timeout)

    def take(self):
        """Returns the events queued and the running count of drops."""
        with self._cond:
            q, self._q = self._q, collections.deque()
            return list(q), self.dropped


def now_ns():
    return time.time_ns()
