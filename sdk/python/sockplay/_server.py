"""The servers that run a plugin's handlers: Server (TCP, a thread per
connection) and PacketServer (UDP, a thread per socket). The runtime feeds
them what the host hands over; sockplay.testing feeds them from a loopback
socket of its own."""

import errno
import os
import select
import socket
import threading
import time
import traceback

from ._log import format_addr

#: Accept errors after which the accept loop waits a little, as Go's
#: net/http does, instead of spinning.
_ACCEPT_BACKOFF = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


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


class Server:
    """Runs a TCP handler, handler(conn, addr), on a new thread for each
    connection: conn is a connected, blocking socket.socket and addr the
    peer's address as accept() returns it. The server closes conn when the
    handler returns. An exception in the handler is logged with its traceback
    and loses only that connection."""

    def __init__(self, handler, log, stopping=None):
        self._handler = handler
        self._log = log
        #: Set when the server drains; long-running handlers may watch it.
        self.stopping = stopping if stopping is not None else threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._conns = {}
        self._closed = False
        self._next_id = 0
        self._waker = _Waker()
        self._accepting = 0
        self.active = 0
        self.total = 0
        self.panics = 0

    def serve_conn(self, conn, addr=None):
        """Serves conn on a new thread and returns at once. After shutdown it
        closes conn instead."""
        with self._lock:
            if self._closed:
                conn.close()
                return
            self._next_id += 1
            cid = self._next_id
            self._conns[cid] = conn
            self.active += 1
            self.total += 1
        t = threading.Thread(target=self._run, args=(cid, conn, addr), name=f"sockplay-conn-{cid}", daemon=True)
        try:
            t.start()
        except RuntimeError as e:  # can't start new thread: lose this one connection
            self._log.error("cannot start a thread for the connection; closing it", conn=cid, error=str(e))
            self._done(cid, conn)

    def _run(self, cid, conn, addr):
        try:
            self._handler(conn, addr)
        except BaseException as e:  # noqa: B036 - a handler's SystemExit loses its connection too
            with self._lock:
                self.panics += 1
            self._log.error("handler exception; closing its connection", conn=cid, peer=format_addr(addr),
                            error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        finally:
            self._done(cid, conn)

    def _done(self, cid, conn):
        with self._lock:
            # Out of the table before it is closed: shutdown() never touches
            # a descriptor that may have been reused.
            del self._conns[cid]
        try:
            conn.close()
        except OSError:
            pass
        with self._lock:
            self.active -= 1
            self._idle.notify_all()

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
            while not self._closed:
                ready = {fd for fd, _ in poll.poll()}
                if self._waker.r in ready or self._closed:
                    break
                for _ in range(64):
                    try:
                        conn, addr = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except ConnectionAbortedError:
                        continue
                    except OSError as e:
                        if e.errno not in _ACCEPT_BACKOFF:
                            raise
                        self._log.warn("accept", error=str(e))
                        time.sleep(0.01)
                        break
                    conn.setblocking(True)
                    self.serve_conn(conn, addr)
        finally:
            listener.close()
            with self._lock:
                self._accepting -= 1

    def shutdown(self, timeout):
        """Drains: it sets stopping, refuses new connections, stops accepting,
        waits up to timeout seconds for the handlers to return, then shuts down
        the connections still open (which ends a handler blocked in recv) and
        waits a little more for their handlers. It returns how many
        connections it had to cut."""
        with self._lock:
            self._closed = True
        self.stopping.set()
        self._waker.wake()
        with self._lock:
            if self._idle.wait_for(lambda: self.active == 0, timeout=max(timeout, 0)):
                return 0
            forced = len(self._conns)
            for conn in self._conns.values():
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._idle.wait_for(lambda: self.active == 0, timeout=1.0)
        return forced

    def stats(self):
        with self._lock:
            return {"active": self.active, "total": self.total, "panics": self.panics}


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
        self.panics = 0
        self.datagrams = 0

    def serve(self, sock):
        """Serves sock on a new thread and returns at once. The socket may be
        shared with the host, which keeps its own copy: it is only ever put in
        non-blocking mode, which it already is there."""
        with self._lock:
            if self._closed:
                sock.close()
                return
            self._socks.append(sock)
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
                    data, addr = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # ICMP feedback from an earlier reply, and the like
                    continue
                reply = self._call(data, addr)
                if reply is not None:
                    try:
                        sock.sendto(reply.encode() if isinstance(reply, str) else reply, addr)
                    except OSError:
                        pass  # UDP: a full buffer or an unreachable sender loses the reply
                if self.stopping.is_set():
                    return

    def _call(self, data, addr):
        with self._lock:
            self.datagrams += 1
        try:
            return self._handler(data, addr)
        except Exception as e:
            with self._lock:
                self.panics += 1
            self._log.error("datagram handler exception; datagram dropped", peer=format_addr(addr),
                            error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            return None

    def shutdown(self, timeout):
        """Stops reading, waits up to timeout seconds for handlers in progress,
        and closes the sockets (the host's copy stays open). It returns how
        many handlers were still running at the deadline."""
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
            return {"panics": self.panics, "datagrams": self.datagrams}
