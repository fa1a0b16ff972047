"""sockplay.testing runs a plugin's handler on a real loopback socket with no
host, for the standard library's unittest (the Python sdk/sdktest):

    import unittest
    from sockplay import testing
    from echo import plugin

    class EchoTest(testing.PluginTestCase):
        def test_echo(self):
            p = self.start_plugin(plugin, {"prefix": ""})
            c = p.dial()
            c.sendall(b"hi")
            self.assertEqual(c.recv(1024), b"hi")

The handler runs under the same Server (or PacketServer) the runtime uses
under the host, a thread per connection, so exceptions, the lingering close
and draining behave as they do there; the only difference is that the
connections come from a listener of the harness instead of the host's
descriptors. The plugin's log lines, and what it prints, are kept
(Instance.records) and can be waited for (Instance.wait_log). Everything a test starts is stopped by its
cleanup. A plugin is one object with one configuration: run one Instance of
it at a time.
"""

import json
import os
import socket
import sys
import threading
import time
import unittest

from . import _events
from ._log import LineLogger, Logger
from ._plugin import TCP, ConfigError
from ._server import PacketServer, Server

#: The deadline of the sockets Instance.dial returns, and of wait_log: a test
#: that waits for what never comes fails instead of hanging.
TIMEOUT = 5.0

__all__ = ["Instance", "PluginTestCase", "start", "configure", "ConfigError", "TIMEOUT"]


class Instance:
    """A plugin served in-process on 127.0.0.1, on an ephemeral port."""

    def __init__(self, plugin, options=None):
        problem = plugin.validate()
        if problem:
            raise ValueError(problem)
        self.plugin = plugin
        #: The plugin's log lines, as the dicts the host would parse.
        self.records = []
        self._cond = threading.Condition()
        self._echo = bool(os.environ.get("SOCKPLAY_TEST_LOG"))
        plugin.log = Logger(write=self._write, level="trace")
        plugin.stopping = threading.Event()
        plugin.configure(dict(options or {}))
        # print() in a handler goes to the log, as under the host.
        self._stdout, sys.stdout = sys.stdout, LineLogger(plugin.log, "info", "stdout")
        self._clients = []
        self._thread = None
        #: The events the plugin would stream to the host (feature "events"):
        #: take() returns them as tuples (see sockplay._events).
        self.events = _events.Sink()
        if plugin.transport == TCP:
            ln = socket.create_server(("127.0.0.1", 0))
            #: The address the plugin listens on, as (host, port).
            self.addr = ln.getsockname()
            self.server = Server(plugin.handler, plugin.log, plugin.stopping, self.events)
            self._thread = threading.Thread(target=self.server.serve, args=(ln,), name="sockplay-test-accept",
                                            daemon=True)
            self._thread.start()
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            self.addr = sock.getsockname()
            self.server = PacketServer(plugin.handler, plugin.log, plugin.stopping)
            self.server.serve(sock)

    def _write(self, line):
        rec = json.loads(line)
        with self._cond:
            self.records.append(rec)
            self._cond.notify_all()
        if self._echo:
            sys.stderr.write(line)

    def dial(self, timeout=TIMEOUT):
        """Connects to a TCP plugin; the socket has a timeout of timeout
        seconds and is closed when the instance stops."""
        c = socket.create_connection(self.addr, timeout=timeout)
        self._clients.append(c)
        return c

    def dial_udp(self, timeout=TIMEOUT):
        """Returns a UDP socket connected to a UDP plugin, with a timeout."""
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(timeout)
        c.connect(self.addr)
        self._clients.append(c)
        return c

    def messages(self, level=None):
        """The @message of every log line so far (of one level, if given)."""
        with self._cond:
            return [r["@message"] for r in self.records if level is None or r["@level"] == level]

    def wait_log(self, text, timeout=TIMEOUT):
        """Waits until a log line's message contains text and returns the
        line's record; raises AssertionError after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.records:
                    if text in r["@message"]:
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line with {text!r} within {timeout} s; lines: {self.messages()}")
                self._cond.wait(left)

    def stop(self, timeout=2.0):
        """Closes the clients dialed, drains the server as the host's Drain
        does (waiting up to timeout seconds) and returns how many connections
        (or UDP handlers) it had to cut. Safe to call more than once."""
        for c in self._clients:
            c.close()
        self._clients.clear()
        forced = self.server.shutdown(timeout)
        if self._thread is not None:
            self._thread.join(TIMEOUT)
        if isinstance(sys.stdout, LineLogger):
            sys.stdout.flush()
            sys.stdout = self._stdout
        return forced

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(plugin, options=None):
    """Validates and configures plugin with options (defaults for the rest)
    as the host would, and serves it on 127.0.0.1; stop() the Instance when
    done. A refused configuration raises ConfigError with the host's
    message."""
    return Instance(plugin, options)


def configure(plugin, options=None):
    """Builds plugin's configuration from options the way the host would,
    serving nothing, and raises ConfigError as the host would see it: how a
    test checks that bad options are refused."""
    problem = plugin.validate()
    if problem:
        raise ValueError(problem)
    return plugin.configure(dict(options or {}))


class PluginTestCase(unittest.TestCase):
    """A TestCase with start_plugin, whose instance is stopped by the test's
    cleanup."""

    def start_plugin(self, plugin, options=None):
        inst = Instance(plugin, options)
        self.addCleanup(inst.stop)
        return inst
