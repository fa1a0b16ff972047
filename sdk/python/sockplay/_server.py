"""The servers that run a plugin's handlers: Server (TCP, a thread per
connection) and PacketServer (UDP, a thread per socket). The runtime feeds
them what the host hands over; sockplay.testing feeds them from a loopback
socket of its own."""

import collections
import errno
import os
import select
import socket
import threading
import time
import traceback

from . import _events
from ._log import format_addr

#: Accept errors that end only this attempt: accept(2) says to retry the
#: network errors; the resource ones get net/http's back-off, 5 ms doubling
#: to 1 s, logged at most once a second.
_ACCEPT_RETRY = {errno.ECONNABORTED, errno.EPROTO, errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.ENONET,
                 errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH, errno.ENETDOWN, errno.EPERM}
_ACCEPT_BACKOFF = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

#: The bounds of the lingering close that ends every connection, as the Go
#: SDK's (sdk.LingerTimeout, sdk.LingerBytes): after the handler returns the
#: server half-closes (FIN), reads and discards what the client still sends
#: until it closes, LINGER_TIMEOUT passes or LINGER_BYTES were read, and only
#: then closes, so that bytes the handler did not read do not turn the close
#: into a reset that destroys its last reply (Apache httpd's lingering close).
LINGER_TIMEOUT = 1.0
LINGER_BYTES = 4 << 20

#: How long a connection's thread waits, once its connection is done, to be
#: given the next one before it exits. Every connection has a thread of its
#: own for its whole life; reusing a thread that is done saves starting one
#: (100-180 us each, the largest part of a connection's cost here).
THREAD_IDLE = 5.0


class _Waker:
    """A pipe that makes every poll() on it return once woken."""

    def __init__(self):
        self.r, self.w = os.pipe()
        os.set_blocking(self.w, False)

    def wake(self):
        try:
            os.write(self.w, b"x")
        except BlockingIOError:
            pass  # already readable

    def close(self):
        os.close(self.r)
        os.close(self.w)


#: Ids of connections the plugin accepts itself (shared listener, tests) start
#: here, far above the host's (which count from 1).
OWN_IDS = 1 << 62


class Conn(socket.socket):
    """The socket a handler gets: a socket.socket in every way, whose close()
    first reads the kernel's TCP_INFO, so that a connection the handler
    closes itself, as the tutorial's servers do, is still counted."""

    info = None

    def close(self):
        if self.info is None and self.fileno() >= 0:
            self.info = _events.tcp_info(self)
        super().close()


class _Entry:
    __slots__ = ("conn", "lingering", "cut", "id", "peer", "local", "t_ns")

    def __init__(self, conn, conn_id, peer):
        self.conn, self.id, self.peer = conn, conn_id, peer
        self.lingering = self.cut = False
        self.local = self.t_ns = None


class Server:
    """Runs a TCP handler, handler(conn, addr), on a new thread for each
    connection: conn is a connected, blocking socket.socket and addr the
    peer's address as accept() returns it. The server closes conn when the
    handler returns. An exception in the handler is logged with its traceback
    and loses only that connection."""

    def __init__(self, handler, log, stopping=None, events=None):
        self._handler = handler
        self._log = log
        self._events = events  # an _events.Sink, or None
        #: Set when the server drains; long-running handlers may watch it.
        self.stopping = stopping if stopping is not None else threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._conns = {}
        self._closed = False
        self._next_id = 0
        self._waker = _Waker()
        self._accepting = 0
        # Held around each accept(2): once stop_accepting has taken it, no
        # accept is in progress and none starts.
        self._accept_lock = threading.Lock()
        self._no_accept = False
        self._work = collections.deque()  # connections for idle threads
        self._work_ready = threading.Condition(self._lock)
        self._idle_threads = 0
        self.linger_timeout = LINGER_TIMEOUT
        self.accept_errors = 0
        self.active = 0
        self.total = 0
        self.panics = 0

    def serve_conn(self, conn, addr=None, conn_id=None):
        """Serves conn (best a Conn, for the byte counts of the events) on a
        new thread and returns at once; conn_id is the host's id for it, if
        the host handed it over. After shutdown it closes conn instead."""
        with self._lock:
            if self._closed:
                conn.close()
                return
            self._next_id += 1
            cid = self._next_id
            entry = self._conns[cid] = _Entry(conn, conn_id if conn_id is not None else OWN_IDS + cid, addr)
            self.active += 1
            self.total += 1
        if self._events is not None:
            entry.t_ns = _events.now_ns()
            try:
                entry.local = format_addr(conn.getsockname())
            except OSError:
                entry.local = ""
            self._events.opened(entry.id, entry.t_ns, format_addr(addr), entry.local)
        job = (cid, conn, addr)
        with self._lock:
            if self._idle_threads > 0:
                self._idle_threads -= 1
                self._work.append(job)
                self._work_ready.notify()
                return
        t = threading.Thread(target=self._thread, args=(job,), name="sockplay-conn", daemon=True)
        try:
            t.start()
        except RuntimeError as e:  # can't start new thread: lose this one connection
            self._log.error("cannot start a thread for the connection; closing it", conn=cid, error=str(e))
            self._done(cid, conn)

    def _thread(self, job):
        """A connection's thread: it serves job, then waits up to THREAD_IDLE
        to be given another (serve_conn counts it idle and hands it one)."""
        while job is not None:
            self._run(*job)
            job = None
            with self._lock:
                if self._closed:
                    return
                self._idle_threads += 1
                if self._work_ready.wait_for(lambda: self._work or self._closed, timeout=THREAD_IDLE) and self._work:
                    job = self._work.popleft()
                else:
                    self._idle_threads -= 1

    def _run(self, cid, conn, addr):
        failed = False
        try:
            self._handler(conn, addr)
        except BaseException as e:  # noqa: B036 - a handler's SystemExit loses its connection too
            failed = True
            with self._lock:
                self.panics += 1
            self._log.error("handler exception; closing its connection", conn=cid, peer=format_addr(addr),
                            error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        finally:
            self._done(cid, conn, failed)

    def _done(self, cid, conn, failed=False):
        entry = self._conns[cid]
        reason, pre = None, None
        try:
            if self._events is not None:
                # Who closed first shows in the state the handler left.
                pre = getattr(conn, "info", None) or _events.tcp_info(conn)
                reason = _events.close_reason(pre, failed, entry.cut)
            self._linger(cid, conn)
        finally:
            with self._lock:
                # Out of the table before it is closed: shutdown() never
                # touches a descriptor that may have been reused.
                del self._conns[cid]
                cut = entry.cut
            if self._events is not None:
                # The counts after the linger: by then the client has
                # acknowledged the last reply.
                info = getattr(conn, "info", None) or _events.tcp_info(conn)
                bytes_in, bytes_out = _events.payload_bytes(info, reset=_events.was_reset(pre))
                self._events.closed(entry.id, entry.t_ns, format_addr(entry.peer), entry.local,
                                    _events.now_ns() - entry.t_ns, bytes_in, bytes_out,
                                    "drained" if cut and reason != "panic" else reason or "error")
            try:
                conn.close()
            except OSError:
                pass
            with self._lock:
                self.active -= 1
                self._idle.notify_all()

    def _linger(self, cid, conn):
        """The lingering close (see LINGER_TIMEOUT), unless the server drains:
        then the connection closes at once, and shutdown() cuts short the
        ones lingering."""
        if self.linger_timeout <= 0:
            return
        try:
            conn.shutdown(socket.SHUT_WR)  # fails when the handler closed conn, or the client reset it
        except OSError:
            return
        with self._lock:
            if self._closed:
                return
            self._conns[cid].lingering = True
        deadline = time.monotonic() + self.linger_timeout
        left = LINGER_BYTES
        try:
            while left > 0 and not self._closed:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return
                conn.settimeout(wait)
                data = conn.recv(min(left, 65536))
                if not data:
                    return
                left -= len(data)
        except OSError:
            pass

    def serve(self, listener):
        """Accepts connections on listener and serves each until shutdown;
        then it closes listener. The listener may be shared with other
        processes (the host's, in --handoff listener mode): it is only ever
        put in non-blocking mode, which it already is there."""
        with self._lock:
            if self._closed:
                listener.close()
                return
            self._accepting += 1
        try:
            listener.setblocking(False)
            poll = select.poll()
            poll.register(listener.fileno(), select.POLLIN)
            poll.register(self._waker.r, select.POLLIN)
            delay, last_log, suppressed = 0.0, 0.0, 0
            while not self._closed:
                ready = {fd for fd, _ in poll.poll(delay * 1000 if delay else None)}
                if self._waker.r in ready or self._closed:
                    break
                for _ in range(64):
                    try:
                        with self._accept_lock:
                            if self._no_accept:
                                break
                            fd, addr = listener._accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as e:
                        if e.errno not in _ACCEPT_RETRY and e.errno not in _ACCEPT_BACKOFF:
                            raise
                        with self._lock:
                            self.accept_errors += 1
                        if time.monotonic() - last_log >= 1:
                            self._log.warn("accept failed; retrying", error=str(e), suppressed=suppressed)
                            last_log, suppressed = time.monotonic(), 0
                        else:
                            suppressed += 1
                        if e.errno in _ACCEPT_BACKOFF:
                            delay = min(max(delay * 2, 0.005), 1.0)
                            break
                        continue
                    delay = 0.0
                    conn = Conn(listener.family, listener.type, listener.proto, fileno=fd)
                    conn.setblocking(True)
                    self.serve_conn(conn, addr)
        finally:
            listener.close()
            with self._lock:
                self._accepting -= 1

    def stop_accepting(self):
        """Stops the accept loops: once it returns, no accept is in progress
        and none starts (the loops then close their listeners)."""
        with self._accept_lock:
            self._no_accept = True
        self._waker.wake()

    def shutdown(self, timeout):
        """Drains: it sets stopping, refuses new connections, stops accepting,
        waits up to timeout seconds for the handlers to return, then shuts down
        the connections still open (which ends a handler blocked in recv) and
        waits a little more for their handlers. It returns how many
        connections it had to cut."""
        self.stop_accepting()
        with self._lock:
            self._closed = True
            self._work_ready.notify_all()  # idle threads exit
            for e in self._conns.values():
                if e.lingering:
                    _cut(e.conn)
        self.stopping.set()
        self._waker.wake()
        with self._lock:
            if self._idle.wait_for(lambda: self.active == 0, timeout=max(timeout, 0)):
                return 0
            forced = len(self._conns)
            for e in self._conns.values():
                if not e.lingering:
                    e.cut = True
                _cut(e.conn)
            self._idle.wait_for(lambda: self.active == 0, timeout=1.0)
        return forced

    def stats(self):
        """The counters: active counts the connections whose handler runs or
        that linger before closing."""
        with self._lock:
            return {"active": self.active, "total": self.total, "panics": self.panics,
                    "accept_errors": self.accept_errors}


def _cut(conn):
    """Ends a connection another thread may be blocked on: shutdown wakes a
    blocked recv (close would not)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class PacketServer:
    """Runs a UDP handler, handler(data, addr) -> reply, on one thread per
    socket: it reads each datagram (up to 65,535 bytes), calls the handler,
    and sends the reply (bytes, or str as UTF-8) to the sender, or nothing
    when the handler returns None. An exception in the handler is logged with
    its traceback and loses only that datagram."""

    def __init__(self, handler, log, stopping=None):
        self._handler = handler
        self._log = log
        self.stopping = stopping if stopping is not None else threading.Event()
        self._lock = threading.Lock()
        self._socks = []
        self._threads = []
        self._closed = False
        self._waker = _Waker()
        # Held around each recvfrom: once stop_reading has taken it, no read
        # is in progress and none starts.
        self._read_lock = threading.Lock()
        self._no_read = False
        self.panics = 0
        self.datagrams = 0
        self.bytes_in = 0
        self.replies = 0
        self.bytes_out = 0
        #: The local address of the first socket served ("IP:port").
        self.local = ""

    def serve(self, sock):
        """Serves sock on a new thread and returns at once. The socket may be
        shared with the host, which keeps its own copy: it is only ever put in
        non-blocking mode, which it already is there."""
        with self._lock:
            if self._closed:
                sock.close()
                return
            self._socks.append(sock)
            if not self.local:
                try:
                    self.local = format_addr(sock.getsockname())
                except OSError:
                    pass
            t = threading.Thread(target=self._loop, args=(sock,), name="sockplay-udp", daemon=True)
            self._threads.append(t)
        t.start()

    def _loop(self, sock):
        sock.setblocking(False)
        poll = select.poll()
        poll.register(sock.fileno(), select.POLLIN)
        poll.register(self._waker.r, select.POLLIN)
        while not self.stopping.is_set():
            ready = {fd for fd, _ in poll.poll()}
            if self._waker.r in ready:
                return
            for _ in range(256):
                try:
                    with self._read_lock:
                        if self._no_read:
                            return
                        data, addr = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # ICMP feedback from an earlier reply, and the like
                    continue
                reply = self._call(data, addr)
                if reply is not None:
                    try:
                        n = sock.sendto(reply.encode() if isinstance(reply, str) else reply, addr)
                    except OSError:
                        continue  # UDP: a full buffer or an unreachable sender loses the reply
                    with self._lock:
                        self.replies += 1
                        self.bytes_out += n
                if self.stopping.is_set():
                    return

    def _call(self, data, addr):
        with self._lock:
            self.datagrams += 1
            self.bytes_in += len(data)
        try:
            return self._handler(data, addr)
        except Exception as e:
            with self._lock:
                self.panics += 1
            self._log.error("datagram handler exception; datagram dropped", peer=format_addr(addr),
                            error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            return None

    def stop_reading(self):
        """Stops the read loops: once it returns, no read is in progress and
        none starts."""
        with self._read_lock:
            self._no_read = True
        self.stopping.set()
        self._waker.wake()

    def shutdown(self, timeout):
        """Stops reading, waits up to timeout seconds for handlers in progress,
        and closes the sockets (the host's copy stays open). It returns how
        many handlers were still running at the deadline."""
        self.stop_reading()
        with self._lock:
            self._closed = True
            threads, socks = list(self._threads), list(self._socks)
        self.stopping.set()
        self._waker.wake()
        deadline = time.monotonic() + max(timeout, 0)
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))
        forced = sum(t.is_alive() for t in threads)
        for s in socks:
            s.close()
        return forced

    def stats(self):
        with self._lock:
            return {"panics": self.panics, "datagrams": self.datagrams, "bytes_in": self.bytes_in,
                    "replies": self.replies, "bytes_out": self.bytes_out}
