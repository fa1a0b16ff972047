"""The descriptor wire, over real SOCK_SEQPACKET socket pairs."""

import os
import socket
import struct
import unittest

from sockplay import fdpass


def pipes(n):
    fds = []
    for _ in range(n):
        r, w = os.pipe()
        os.close(w)
        fds.append(r)
    return fds


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


class WireTest(unittest.TestCase):
    def setUp(self):
        self.host, self.plugin = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(self.host.close)
        self.addCleanup(self.plugin.close)

    def test_round_trip(self):
        for kind, n in [(fdpass.CONN, 1), (fdpass.CONN, fdpass.MAX_BATCH), (fdpass.PACKET, 1), (fdpass.LISTENER, 1)]:
            with self.subTest(kind=kind, n=n):
                fds = pipes(n)
                ids = [2**63 + i for i in range(n)]
                fdpass.send(self.host, kind, ids, fds)
                fdpass.close_all(fds)
                got = fdpass.recv(self.plugin)
                self.assertEqual([(h.kind, h.id) for h in got], [(kind, i) for i in ids])
                for h in got:
                    self.assertTrue(is_open(h.fd))
                    self.assertTrue(os.get_inheritable(h.fd) is False, "received descriptors are close-on-exec")
                fdpass.close_all([h.fd for h in got])

    def test_header_layout(self):
        """The bytes are the ones SPEC.md gives: kind, version 1, count, ids."""
        fds = pipes(2)
        fdpass.send(self.host, fdpass.CONN, [1, 258], fds)
        fdpass.close_all(fds)
        msg, got, _, _ = socket.recv_fds(self.plugin, 100, 4)
        fdpass.close_all(got)
        self.assertEqual(msg, b"C\x01\x00\x02" + struct.pack(">QQ", 1, 258))

    def test_bad_messages_close_their_descriptors(self):
        cases = [
            ("short", b"C\x01", 1, "short message"),
            ("bad version", b"C\x02\x00\x01" + bytes(8), 1, "unknown wire version 2"),
            ("count above descriptors", b"C\x01\x00\x02" + bytes(16), 1, "does not match header"),
            ("count below descriptors", b"C\x01\x00\x01" + bytes(8), 2, "does not match header"),
            ("ids missing", b"C\x01\x00\x02" + bytes(8), 2, "does not match header"),
            ("no bytes, descriptors", b"", 1, "short message"),
        ]
        for name, msg, nfds, want in cases:
            with self.subTest(name):
                before = open_fds()
                fds = pipes(nfds)
                socket.send_fds(self.host, [msg], fds)
                fdpass.close_all(fds)
                with self.assertRaisesRegex(fdpass.WireError, want):
                    fdpass.recv(self.plugin)
                self.assertEqual(open_fds(), before, "the descriptors of a bad message are closed")
                # The socket goes on working.
                fds = pipes(1)
                fdpass.send(self.host, fdpass.CONN, [7], fds)
                fdpass.close_all(fds)
                ok = fdpass.recv(self.plugin)
                self.assertEqual([h.id for h in ok], [7])
                fdpass.close_all([h.fd for h in ok])

    def test_parse_closes_on_error(self):
        fds = pipes(2)
        with self.assertRaises(fdpass.WireError):
            fdpass.parse(b"C\x01\x00\x01" + bytes(8), fds)
        self.assertFalse(any(is_open(fd) for fd in fds))
        fds = pipes(1)
        with self.assertRaisesRegex(fdpass.WireError, "truncated"):
            fdpass.parse(b"C\x01\x00\x01" + bytes(8), fds, socket.MSG_CTRUNC)
        self.assertFalse(is_open(fds[0]))

    def test_more_than_a_batch_is_refused(self):
        fds = pipes(fdpass.MAX_BATCH + 1)
        self.addCleanup(fdpass.close_all, fds)
        with self.assertRaises(ValueError):
            fdpass.send(self.host, fdpass.CONN, list(range(len(fds))), fds)

    def test_eof_when_the_host_closes(self):
        self.host.close()
        self.assertIsNone(fdpass.recv(self.plugin))


if __name__ == "__main__":
    unittest.main()
