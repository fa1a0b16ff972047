"""The runtime as the host sees it: the plugin runs in its own process with
the environment the host gives it, and this test plays the host (go-plugin's
client side): it reads the handshake line, talks gRPC with mutual TLS over the
Unix socket, and hands descriptors over a SOCK_SEQPACKET pair. The Go host's
own view is in ../e2e_test.go."""

import base64
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from sockplay import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, fdpass
from sockplay._proto import control_pb2, control_pb2_grpc, grpc_controller_pb2, grpc_controller_pb2_grpc
from sockplay._proto import health_pb2, health_pb2_grpc
from sockplay._runtime import negotiate
from sockplay._tls import make_certificate

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
PROBE = os.path.join(SDK, "testplugins", "pyprobe.py")
PROBE_UDP = os.path.join(SDK, "testplugins", "pyprobeudp.py")
TIMEOUT = 10.0


class FakeHost:
    """Starts a plugin script as the sockplay host does."""

    def __init__(self, test, script, versions="1", mtls=True, pythonpath=()):
        self.test = test
        self.run_dir = tempfile.mkdtemp(prefix="sockplay-")
        test.addCleanup(shutil.rmtree, self.run_dir, True)
        self.sock_dir = tempfile.mkdtemp(prefix="probe-", dir=self.run_dir)
        self.host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.child_fd = child_end.fileno()
        test.addCleanup(self.host_end.close)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGIN_", "SOCKPLAY_"))}
        env.update({
            MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE,
            "PLUGIN_PROTOCOL_VERSIONS": versions,
            "PLUGIN_UNIX_SOCKET_DIR": self.sock_dir,
            "SOCKPLAY_HANDOFF_FD": str(child_end.fileno()),
            "SOCKPLAY_LOG_LEVEL": "debug",
            "PYTHONPATH": os.pathsep.join([*pythonpath, SDK]),
        })
        self.client_cert = self.client_key = None
        if mtls:
            self.client_cert, self.client_key, _ = make_certificate()
            env["PLUGIN_CLIENT_CERT"] = self.client_cert.decode()
        self.proc = subprocess.Popen([sys.executable, script], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, pass_fds=[child_end.fileno()], process_group=0)
        child_end.close()
        test.addCleanup(self.kill)
        self._stderr = b""

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(TIMEOUT)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()

    def handshake(self):
        """Reads the handshake line and returns its fields."""
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        self.test.assertTrue(ready, "no handshake line within the timeout")
        line = self.proc.stdout.readline().decode()
        self.test.assertTrue(line.endswith("\n"), f"handshake {line!r}; stderr: {self.stderr()}")
        return line.rstrip("\n").split("|")

    def connect(self):
        parts = self.handshake()
        self.parts = parts
        if self.client_cert:
            der = base64.b64decode(parts[5] + "=" * (-len(parts[5]) % 4))
            creds = grpc.ssl_channel_credentials(root_certificates=ssl.DER_cert_to_PEM_cert(der).encode(),
                                                 private_key=self.client_key, certificate_chain=self.client_cert)
            ch = grpc.secure_channel("unix:" + parts[3], creds, options=[("grpc.ssl_target_name_override", "localhost")])
        else:
            ch = grpc.insecure_channel("unix:" + parts[3])
        self.test.addCleanup(ch.close)
        self.control = control_pb2_grpc.ControlStub(ch)
        self.health = health_pb2_grpc.HealthStub(ch)
        self.controller = grpc_controller_pb2_grpc.GRPCControllerStub(ch)
        return parts

    def stderr(self):
        """What the plugin wrote to stderr so far (non-blocking)."""
        fd = self.proc.stderr.fileno()
        while select.select([fd], [], [], 0)[0]:
            b = os.read(fd, 65536)
            if not b:
                break
            self._stderr += b
        return self._stderr.decode()

    def log_records(self):
        return [json.loads(line) for line in self.stderr().splitlines() if line.startswith("{")]

    def wait_log(self, text):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for r in self.log_records():
                if text in r["@message"]:
                    return r
            select.select([self.proc.stderr], [], [], 0.05)
        self.test.fail(f"no log line with {text!r}; stderr:\n{self.stderr()}")

    def hand_conn(self, conn_id):
        """Makes a loopback TCP connection, hands the server end to the
        plugin as the host does, and returns the client end."""
        with socket.create_server(("127.0.0.1", 0)) as ln:
            client = socket.create_connection(ln.getsockname(), timeout=TIMEOUT)
            server, _ = ln.accept()
        fdpass.send(self.host_end, fdpass.CONN, [conn_id], [server.fileno()])
        server.close()
        self.test.addCleanup(client.close)
        return client


def ask(c, line):
    c.sendall(line.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        b = c.recv(1024)
        if not b:
            break
        buf += b
    return buf.decode()


class RuntimeTest(unittest.TestCase):
    def test_handshake_control_and_handoff(self):
        h = FakeHost(self, PROBE)
        core, version, network, addr, proto, cert = h.connect()
        self.assertEqual((core, version, network, proto), ("1", "1", "unix", "grpc"))
        self.assertEqual(os.path.dirname(addr), h.sock_dir)
        self.assertGreater(len(cert), 50)  # go-plugin ignores a shorter sixth field

        d = h.control.Describe(control_pb2.DescribeRequest(), timeout=TIMEOUT)
        self.assertEqual((d.name, d.version, d.transport, d.default_addr),
                         ("pyprobe", "0.3.0", control_pb2.TRANSPORT_TCP, "127.0.0.1:12398"))
        self.assertEqual([o.name for o in d.options], ["greeting", "mode"])
        self.assertEqual(list(d.features), ["events", "listener"])
        self.assertFalse(h.control.Health(control_pb2.HealthRequest(), timeout=TIMEOUT).serving)
        check = h.health.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=TIMEOUT)
        self.assertEqual(check.status, health_pb2.HealthCheckResponse.SERVING)

        # A connection handed over before Configure waits for it.
        early = h.hand_conn(1)
        with self.assertRaises(grpc.RpcError) as cm:
            h.control.Configure(control_pb2.ConfigureRequest(options={"nosuch": "1"}), timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(cm.exception.details(), 'pyprobe has no option "nosuch" (options: greeting, mode)')
        h.control.Configure(control_pb2.ConfigureRequest(options={"greeting": "hi "}, listen_addr="127.0.0.1:1"),
                            timeout=TIMEOUT)
        with self.assertRaises(grpc.RpcError) as cm:
            h.control.Configure(control_pb2.ConfigureRequest(), timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertTrue(h.control.Health(control_pb2.HealthRequest(), timeout=TIMEOUT).serving)
        with self.assertRaises(grpc.RpcError) as cm:
            h.control.SetRules(control_pb2.SetRulesRequest(), timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)  # feature "rules" is not listed

        self.assertEqual(ask(early, "early"), "hi early\n")
        c = h.hand_conn(2)
        self.assertEqual(ask(c, "one"), "hi one\n")

        # A malformed message is logged and costs nothing else.
        socket.send_fds(h.host_end, [b"C\x09\x00\x00"], [])
        h.wait_log("bad handoff message")
        self.assertEqual(ask(h.hand_conn(3), "after"), "hi after\n")

        stats = h.control.Stats(control_pb2.StatsRequest(), timeout=TIMEOUT)
        self.assertEqual(stats.conns_total, 3)

        c.sendall(b"wait\n")  # blocks its handler in recv
        early.close()
        drained = h.control.Drain(control_pb2.DrainRequest(timeout_ms=200), timeout=TIMEOUT)
        self.assertGreaterEqual(drained.forced, 1)
        health = h.control.Health(control_pb2.HealthRequest(), timeout=TIMEOUT)
        self.assertEqual((health.serving, health.draining), (False, True))

        h.controller.Shutdown(grpc_controller_pb2.Empty(), timeout=TIMEOUT)
        self.assertEqual(h.proc.wait(TIMEOUT), 0)
        self.assertFalse(os.path.exists(addr), "the gRPC socket is removed")
        self.assertEqual(h.proc.stdout.read(), b"", "nothing but the handshake line on stdout")
        for r in h.log_records():
            self.assertRegex(r["@timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")

    def test_events(self):
        """OPENED and CLOSED for a handed-over connection, with the host's id,
        the addresses, and the kernel's byte counts at close."""
        h = FakeHost(self, PROBE)
        h.connect()
        h.control.Configure(control_pb2.ConfigureRequest(options={"greeting": ""}), timeout=TIMEOUT)
        stream = h.control.Events(control_pb2.EventsRequest(), timeout=30)
        c = h.hand_conn(77)
        self.assertEqual(ask(c, "x" * 999), "x" * 999 + "\n")
        peer, local = "%s:%d" % c.getsockname(), "%s:%d" % c.getpeername()
        c.close()
        events = []
        for batch in stream:
            self.assertEqual(batch.dropped, 0)
            events.extend(batch.events)
            if any(e.kind == control_pb2.Event.CLOSED for e in events):
                break
        stream.cancel()
        opened, closed = events
        self.assertEqual((opened.kind, opened.conn, opened.peer, opened.local),
                         (control_pb2.Event.OPENED, 77, peer, local))
        self.assertEqual((closed.kind, closed.conn, closed.peer, closed.local, closed.reason),
                         (control_pb2.Event.CLOSED, 77, peer, local, "eof"))
        self.assertEqual((closed.bytes_in, closed.bytes_out), (1000, 1000))
        self.assertEqual(closed.time_unix_nano, opened.time_unix_nano)
        self.assertGreater(closed.duration_nanos, 0)

    def test_handoff_socket_is_close_on_exec(self):
        h = FakeHost(self, PROBE)
        h.connect()
        with open(f"/proc/{h.proc.pid}/fdinfo/{h.child_fd}") as f:
            flags = next(int(line.split()[1], 8) for line in f if line.startswith("flags:"))
        self.assertTrue(flags & os.O_CLOEXEC, oct(flags))

    def test_print_goes_to_the_log(self):
        h = FakeHost(self, PROBE)
        h.connect()
        h.control.Configure(control_pb2.ConfigureRequest(), timeout=TIMEOUT)
        c = h.hand_conn(1)
        ask(c, "print printed here")
        rec = h.wait_log("printed here")
        self.assertEqual((rec["@level"], rec["stream"]), ("info", "stdout"))

    def test_host_gone(self):
        """EOF on the handoff socket: the plugin removes its socket directory
        (and the run directory once empty) and kills its process group."""
        h = FakeHost(self, PROBE)
        h.connect()
        h.host_end.close()
        code = h.proc.wait(TIMEOUT)
        self.assertEqual(code, -signal.SIGKILL)
        self.assertFalse(os.path.exists(h.sock_dir))
        self.assertFalse(os.path.exists(h.run_dir))

    def test_listener_handoff(self):
        h = FakeHost(self, PROBE)
        h.connect()
        h.control.Configure(control_pb2.ConfigureRequest(), timeout=TIMEOUT)
        ln = socket.create_server(("127.0.0.1", 0))
        ln.setblocking(False)  # as the host's listener is: the plugin leaves it so
        fdpass.send(h.host_end, fdpass.LISTENER, [0], [ln.fileno()])
        for i in range(5):
            with socket.create_connection(ln.getsockname(), timeout=TIMEOUT) as c:
                self.assertEqual(ask(c, f"via listener {i}"), f"> via listener {i}\n")
        self.assertFalse(ln.getblocking())
        ln.close()

    def test_packet_handoff(self):
        h = FakeHost(self, PROBE_UDP)
        h.connect()
        h.control.Configure(control_pb2.ConfigureRequest(), timeout=TIMEOUT)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.setblocking(False)
        fdpass.send(h.host_end, fdpass.PACKET, [0], [u.fileno()])
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(TIMEOUT)
        c.connect(u.getsockname())
        stream = h.control.Events(control_pb2.EventsRequest(), timeout=30)
        for m in (b"x", b"yz"):
            c.send(m)
            self.assertEqual(c.recv(100), b"got " + m)
        counts = [0, 0, 0, 0]
        for batch in stream:
            for e in batch.events:
                self.assertEqual((e.kind, e.local), (control_pb2.Event.DATAGRAMS, "%s:%d" % u.getsockname()))
                counts = [a + b for a, b in zip(counts, (e.datagrams_in, e.datagrams_out, e.bytes_in, e.bytes_out))]
            if counts[1] >= 2:
                break
        stream.cancel()
        self.assertEqual(counts, [2, 2, 3, 11])
        # A connection to a UDP plugin is a kind it does not serve.
        h.hand_conn(9)
        h.wait_log("handoff of a kind this plugin does not serve")
        c.close()
        u.close()

    def test_insecure_without_automtls(self):
        h = FakeHost(self, PROBE, mtls=False)
        parts = h.connect()
        self.assertEqual(parts[5], "")
        self.assertEqual(h.control.Describe(control_pb2.DescribeRequest(), timeout=TIMEOUT).name, "pyprobe")

    def test_version_negotiation(self):
        self.assertEqual(negotiate("1"), 1)
        self.assertEqual(negotiate("1,2", supported=(1, 2)), 2)
        self.assertEqual(negotiate("3,x,1", supported=(1, 2)), 1)
        self.assertEqual(negotiate("7,8", supported=(1, 2)), 1)  # none in common: the host says so
        self.assertEqual(negotiate(""), 1)
        h = FakeHost(self, PROBE, versions="7,8")
        self.assertEqual(h.handshake()[1], "1")

    def test_missing_dependency_is_one_line(self):
        fake = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, fake)
        os.mkdir(os.path.join(fake, "grpc"))
        with open(os.path.join(fake, "grpc", "__init__.py"), "w") as f:
            f.write("raise ModuleNotFoundError(\"No module named 'grpc'\", name='grpc')\n")
        h = FakeHost(self, PROBE, pythonpath=[fake])
        self.assertEqual(h.proc.wait(TIMEOUT), 1)
        self.assertEqual(h.proc.stdout.read(), b"")
        lines = h.stderr().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(json.loads(lines[0])["@message"],
                         "missing Python module grpc: install the Debian package python3-grpcio "
                         "(apt-get install python3-grpcio)")


if __name__ == "__main__":
    unittest.main()
