"""The servers that run handlers, through sockplay.testing (real loopback
sockets, no host). Every wait is bounded; nothing asserts on time."""

import io
import socket
import threading
import unittest

import sockplay
from sockplay import testing


def tcp_plugin(handler, **kw):
    p = sockplay.Plugin("t", "1.0.0", "test", transport="tcp", default_addr="127.0.0.1:1", **kw)
    p.tcp(handler)
    return p


def wait_until(cond, timeout=testing.TIMEOUT):
    import time
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.001)


def recv_all(c, limit=1 << 20):
    out = b""
    while len(out) < limit:
        b = c.recv(65536)
        if not b:
            return out
        out += b
    return out


class TCPTest(testing.PluginTestCase):
    def test_echo_with_option(self):
        p = tcp_plugin(None, options=[sockplay.Option("prefix", "", "")])

        @p.tcp
        def echo(conn, addr):
            self.assertEqual(addr, conn.getpeername())
            while data := conn.recv(1024):
                conn.sendall(p.config["prefix"].encode() + data)

        inst = self.start_plugin(p, {"prefix": "> "})
        c = inst.dial()
        c.sendall(b"hi")
        self.assertEqual(c.recv(1024), b"> hi")

    def test_a_thread_per_connection(self):
        """Two connections are served at once: the second is answered while
        the first handler is still blocked in recv."""
        p = tcp_plugin(lambda conn, addr: conn.sendall(conn.recv(10)))
        inst = self.start_plugin(p)
        first, second = inst.dial(), inst.dial()
        second.sendall(b"2")
        self.assertEqual(second.recv(10), b"2")
        first.sendall(b"1")
        self.assertEqual(first.recv(10), b"1")
        self.assertEqual(inst.server.stats()["total"], 2)

    def test_threads_are_reused_never_shared(self):
        """Each connection has a thread of its own while it lives; a thread
        whose connection is done serves a later one."""
        def handler(conn, addr):
            conn.sendall(str(threading.get_ident()).encode())
            conn.recv(1)

        inst = self.start_plugin(tcp_plugin(handler))
        first = inst.dial()
        a = first.recv(64)
        second = inst.dial()
        b = second.recv(64)
        self.assertNotEqual(b, a, "two open connections share a thread")
        first.close()
        second.close()
        seen = set()
        for _ in range(20):  # a thread done with its connection takes the next
            wait_until(lambda: inst.server.stats()["active"] == 0 and inst.server._idle_threads > 0)
            c = inst.dial()
            seen.add(c.recv(64))
            c.close()
        self.assertLessEqual(seen, {a, b}, "the two waiting threads serve the next connections")

    def test_exception_loses_only_its_connection(self):
        def handler(conn, addr):
            while data := conn.recv(1024):
                if data == b"boom":
                    raise ValueError("asked to fail")
                conn.sendall(data)

        inst = self.start_plugin(tcp_plugin(handler))
        good, bad = inst.dial(), inst.dial()
        good.sendall(b"a")
        self.assertEqual(good.recv(10), b"a")
        bad.sendall(b"boom")
        self.assertEqual(bad.recv(10), b"", "the failing connection is closed")
        good.sendall(b"b")
        self.assertEqual(good.recv(10), b"b")
        rec = inst.wait_log("handler exception; closing its connection")
        self.assertEqual(rec["@level"], "error")
        self.assertEqual(rec["error"], "ValueError: asked to fail")
        self.assertIn("Traceback (most recent call last)", rec["traceback"])
        self.assertIn('raise ValueError("asked to fail")', rec["traceback"])
        self.assertEqual(rec["peer"], "%s:%d" % bad.getsockname())
        self.assertEqual(inst.server.stats()["panics"], 1)

    def test_lingering_close_keeps_the_last_reply(self):
        """A handler that answers and returns without reading what the client
        sent: the reply arrives whole, then end of file, not a reset."""
        reply = b"x" * 100000
        inst = self.start_plugin(tcp_plugin(lambda conn, addr: conn.sendall(reply)))
        for _ in range(20):
            c = inst.dial()
            c.sendall(b"unread bytes " * 100)
            self.assertEqual(recv_all(c), reply)
            c.close()

    def test_drain_cuts_blocked_handlers(self):
        entered = threading.Semaphore(0)

        def handler(conn, addr):
            entered.release()
            conn.recv(1)  # blocks until the drain cuts the connection

        p = tcp_plugin(handler)
        inst = testing.start(p)
        conns = [inst.dial() for _ in range(3)]
        for _ in conns:
            self.assertTrue(entered.acquire(timeout=testing.TIMEOUT))
        self.assertEqual(inst.server.shutdown(0.05), 3)
        self.assertTrue(p.stopping.is_set())
        for c in conns:
            self.assertEqual(c.recv(1), b"")
        self.assertEqual(inst.server.stats()["active"], 0)
        inst.stop()  # joins the accept loop, which closed the listener
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(inst.addr, timeout=testing.TIMEOUT)

    def test_drain_waits_for_handlers_that_finish(self):
        release = threading.Event()

        def handler(conn, addr):
            conn.sendall(b"in")
            release.wait(testing.TIMEOUT)
            conn.sendall(b"done")

        inst = testing.start(tcp_plugin(handler))
        c = inst.dial()
        self.assertEqual(c.recv(2), b"in")
        release.set()
        self.assertEqual(inst.server.shutdown(testing.TIMEOUT), 0)
        self.assertEqual(recv_all(c), b"done")
        inst.stop()

    def test_connect_command(self):
        p = tcp_plugin(None)

        @p.tcp
        def upper(conn, addr):
            conn.sendall(b"hello\n")
            f = conn.makefile("rwb", buffering=0)
            for line in f:
                conn.sendall(line.upper())

        inst = self.start_plugin(p)
        out = io.StringIO()
        code = p.run_client(["connect", "%s:%d" % inst.addr], sockplay.Stdio(io.StringIO("one\ntwo\n"), out, io.StringIO()))
        self.assertEqual((code, out.getvalue()), (0, "hello\nONE\nTWO\n"))


class EventsTest(testing.PluginTestCase):
    """The OPENED and CLOSED events a TCP plugin would stream: reasons and the
    kernel's byte counts."""

    def closed(self, inst, n):
        from sockplay import _events
        inst.stop()  # every handler has returned and been counted
        events, dropped = inst.events.take()
        self.assertEqual(dropped, 0)
        closed = [e for e in events if e[0] == _events.CLOSED]
        self.assertEqual(len(closed), n, events)
        self.assertEqual(len([e for e in events if e[0] == _events.OPENED]), n)
        return {e[8]: e for e in closed}

    def test_reasons(self):
        def handler(conn, addr):
            data = conn.recv(1024)
            if data == b"boom":
                raise RuntimeError("boom")
            if data == b"return":
                conn.sendall(b"bye")
                return
            if data == b"wait":
                conn.sendall(b"waiting")
                conn.recv(1)  # until the drain cuts it
                return
            while data:
                data = conn.recv(1024)  # until the client closes: eof

        inst = testing.start(tcp_plugin(handler))
        eof = inst.dial()
        eof.sendall(b"hello")
        boom, ret, wait = inst.dial(), inst.dial(), inst.dial()
        boom.sendall(b"boom")
        self.assertEqual(boom.recv(10), b"")
        ret.sendall(b"return")
        self.assertEqual(recv_all(ret), b"bye")
        wait.sendall(b"wait")
        self.assertEqual(wait.recv(7), b"waiting")
        eof.close()
        self.assertEqual(inst.server.shutdown(0.2), 1)
        by_reason = self.closed(inst, 4)
        self.assertEqual(sorted(by_reason), ["drained", "eof", "panic", "returned"])
        self.assertEqual(by_reason["eof"][6:8], (5, 0))  # bytes in, out
        self.assertEqual(by_reason["returned"][6:8], (6, 3))
        self.assertGreaterEqual(by_reason["eof"][1], 1 << 62, "ids of connections the plugin accepted itself")

    def test_handler_that_closes_is_counted(self):
        """The tutorial's handlers close the connection themselves."""
        def hello(conn, addr):
            conn.sendall(b"x" * 5000)
            conn.recv(1024)
            conn.close()

        inst = testing.start(tcp_plugin(hello))
        c = inst.dial()
        peer, local = "%s:%d" % c.getsockname(), "%s:%d" % c.getpeername()
        self.assertEqual(len(c.recv(5000, socket.MSG_WAITALL)), 5000)
        c.sendall(b"ack")
        self.assertEqual(recv_all(c), b"")
        c.close()
        ev = self.closed(inst, 1)["returned"]
        self.assertEqual(ev[3:5], (peer, local))
        self.assertEqual(ev[6:8], (3, 5000))

    def test_payload_bytes_take_off_the_fins(self):
        from sockplay import _events
        cases = [  # state, reset: (in, out) of a connection that got 10 bytes and sent 20
            ((1, 10, 20), False, (10, 20)),  # ESTABLISHED: no FIN either way
            ((8, 11, 20), False, (10, 20)),  # CLOSE_WAIT: the client's FIN
            ((9, 11, 20), False, (10, 20)),  # LAST_ACK: ours not acknowledged yet
            ((5, 10, 21), False, (10, 20)),  # FIN_WAIT2: ours acknowledged
            ((6, 11, 21), False, (10, 20)),  # TIME_WAIT: both
            ((7, 11, 21), False, (10, 20)),  # CLOSE after LAST_ACK: both
            ((7, 10, 20), True, (10, 20)),  # CLOSE after a reset: neither
        ]
        for info, reset, want in cases:
            self.assertEqual(_events.payload_bytes(info, reset), want, info)
        self.assertEqual(_events.payload_bytes(None), (0, 0))

    def test_reset(self):
        import struct
        entered = threading.Event()

        def handler(conn, addr):
            entered.set()
            try:
                conn.recv(1024)
            except ConnectionResetError:
                pass

        inst = testing.start(tcp_plugin(handler))
        c = inst.dial()
        self.assertTrue(entered.wait(testing.TIMEOUT))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # an RST
        self.assertEqual(list(self.closed(inst, 1)), ["reset"])

    def test_full_queue_drops_and_counts(self):
        from sockplay import _events
        sink = _events.Sink(max_queued=3)
        for i in range(5):
            sink.opened(i, 0, "", "")
        events, dropped = sink.take()
        self.assertEqual(([e[1] for e in events], dropped), ([0, 1, 2], 2))
        sink.opened(9, 0, "", "")
        self.assertEqual(sink.take()[1], 2, "dropped is a running total")


class UDPTest(testing.PluginTestCase):
    def plugin(self, handler):
        p = sockplay.Plugin("u", "1.0.0", "test", transport="udp", default_addr="127.0.0.1:1")
        p.udp(handler)
        return p

    def test_reply_and_exception(self):
        def handler(data, addr):
            if data == b"boom":
                raise KeyError("no")
            if data == b"none":
                return None
            return "str: " + data.decode() if data == b"s" else b"hello " + data

        inst = self.start_plugin(self.plugin(handler))
        c = inst.dial_udp()
        for send, want in [(b"a", b"hello a"), (b"boom", None), (b"none", None), (b"s", b"str: s"), (b"b", b"hello b")]:
            c.send(send)
            if want is not None:
                self.assertEqual(c.recv(2048), want)
        rec = inst.wait_log("datagram handler exception; datagram dropped")
        self.assertIn("KeyError", rec["traceback"])
        inst.stop()  # the counters are final once the handler thread is done
        self.assertEqual(inst.server.stats(), {"panics": 1, "datagrams": 5, "bytes_in": 11, "replies": 3, "bytes_out": 20})

    def test_large_datagram(self):
        inst = self.start_plugin(self.plugin(lambda data, addr: data))
        c = inst.dial_udp()
        c.send(b"z" * 65000)
        self.assertEqual(len(c.recv(65535)), 65000)

    def test_connect_command(self):
        p = self.plugin(lambda data, addr: b"hello " + data)
        inst = self.start_plugin(p)
        out = io.StringIO()
        code = p.run_client(["connect", "%s:%d" % inst.addr],
                            sockplay.Stdio(io.StringIO("one\ntwo\nquit\nthree\n"), out, io.StringIO()))
        self.assertEqual((code, out.getvalue()), (0, "hello one\nhello two\n"))


if __name__ == "__main__":
    unittest.main()
