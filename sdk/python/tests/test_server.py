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
        self.assertEqual(inst.server.stats(), {"panics": 1, "datagrams": 5})

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
