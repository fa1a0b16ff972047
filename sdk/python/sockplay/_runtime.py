"""The plugin side of the contract, when the host started the process: the
go-plugin handshake with AutoMTLS, the control service over gRPC on a Unix
socket, and the connections handed over on the handoff socket. See
sdk/protocol/SPEC.md; this follows sdk/runtime.go and sdk/handoff_linux.go
step by step.

Importing this module imports grpc and protobuf: Plugin.main imports it only
when serving, and turns an ImportError into the one line
missing_module_message makes."""

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from concurrent import futures

import grpc

from . import _events, fdpass
from ._log import capture_std_streams
from ._plugin import PROTOCOL_VERSIONS, TCP, ConfigError
from ._proto import (control_pb2, control_pb2_grpc, grpc_controller_pb2, grpc_controller_pb2_grpc, grpc_stdio_pb2_grpc,
                     health_pb2, health_pb2_grpc)
from ._server import Conn, PacketServer, Server

# Environment the host and go-plugin set.
ENV_HANDOFF_FD = "SOCKPLAY_HANDOFF_FD"
ENV_LOG_LEVEL = "SOCKPLAY_LOG_LEVEL"
ENV_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"
ENV_CLIENT_CERT = "PLUGIN_CLIENT_CERT"
ENV_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
ENV_MULTIPLEX = "PLUGIN_MULTIPLEX_GRPC"
#: go-plugin's core protocol version, the handshake line's first field.
CORE_PROTOCOL_VERSION = 1
#: The optional parts of the contract this SDK implements (SPEC.md,
#: "Features"), by transport.
FEATURES = {"tcp": ["events", "listener"], "udp": ["events"]}


def negotiate(env_value, supported=PROTOCOL_VERSIONS):
    """Picks the protocol version as go-plugin's server does: the highest
    version both sides list; with none in common, the lowest this side
    speaks, so that the host reports the mismatch naming both."""
    offered = set()
    for s in (env_value or "").split(","):
        try:
            offered.add(int(s))
        except ValueError:
            pass
    common = offered.intersection(supported)
    return max(common) if common else min(supported)


def serve(plugin, log):
    """Serves the host until it stops the plugin or goes away; returns the
    exit status."""
    plugin.log = log
    # Nothing may reach stdout before the handshake line; after it, the host
    # reads stdout no more. Whatever the plugin prints goes to the log.
    capture_std_streams(log)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # go-plugin plugins ignore interrupts
    _route_python_logging(log)

    rt = Runtime(plugin, log)
    fd_env = os.environ.get(ENV_HANDOFF_FD, "")
    if fd_env:
        try:
            sock = socket.socket(fileno=int(fd_env))
        except (ValueError, OSError) as e:
            log.error("bad handoff descriptor", env=ENV_HANDOFF_FD, value=fd_env, error=str(e))
            return 1
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
            log.error("handoff socket: not a SOCK_SEQPACKET Unix socket", fd=fd_env)
            return 1
        sock.setblocking(True)
        # Close-on-exec: a program a handler starts must not hold the
        # plugin's end open, or the host would not see the plugin die.
        sock.set_inheritable(False)
        threading.Thread(target=rt.receive, args=(sock,), name="sockplay-handoff", daemon=True).start()
    # The fallback for a plugin whose handoff socket is gone, as the Go SDK.
    threading.Thread(target=_watch_parent, name="sockplay-watch-parent", daemon=True).start()

    try:
        server, path, line = _start_grpc(rt, log)
    except ImportError:
        raise  # a missing dependency: Plugin.main says which package
    except Exception as e:  # noqa: BLE001 - any failure here is a failed start, said in one line
        log.error("plugin init error", error=f"{type(e).__name__}: {e}")
        return 1
    os.write(1, (line + "\n").encode())
    rt.stopped.wait()
    # The host's GRPCController.Shutdown: stop at once, as go-plugin does.
    server.stop(grace=0.5).wait(2)
    try:
        os.unlink(path)
    except OSError:
        pass
    _flush_and_exit(0)


def _start_grpc(rt, log):
    version = negotiate(os.environ.get(ENV_VERSIONS))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="sockplay-grpc"))
    control_pb2_grpc.add_ControlServicer_to_server(rt, server)
    health_pb2_grpc.add_HealthServicer_to_server(_Health(), server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(_Controller(rt), server)
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(_Stdio(), server)

    sock_dir = os.environ.get(ENV_SOCKET_DIR) or None
    path = tempfile.mktemp(prefix="plugin", dir=sock_dir)  # go-plugin names it the same way
    cert_field = ""
    client_cert = os.environ.get(ENV_CLIENT_CERT, "")
    if client_cert:
        from ._tls import make_certificate  # imports cryptography
        cert_pem, key_pem, cert_field = make_certificate()
        creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert.encode(),
                                            require_client_auth=True)
        port = server.add_secure_port("unix:" + path, creds)
    else:
        port = server.add_insecure_port("unix:" + path)
    if not port:
        raise OSError(f"cannot listen on unix:{path}")
    server.start()
    line = f"{CORE_PROTOCOL_VERSION}|{version}|unix|{path}|grpc|{cert_field}"
    if os.environ.get(ENV_MULTIPLEX):
        line += "|false"  # the gRPC broker is not served, multiplexed or not
    log.debug("plugin address", network="unix", address=path)
    return server, path, line


class Runtime(control_pb2_grpc.ControlServicer):
    """The control service (sockplay.protocol.v1.Control) and the handoff
    receiver. The optional RPCs it does not implement answer UNIMPLEMENTED,
    and Description.features lists only those it does."""

    def __init__(self, plugin, log):
        self._pb = control_pb2
        self.p = plugin
        self.log = log
        self._lock = threading.Lock()
        self.srv = None
        self.psrv = None
        self.draining = False
        self._pending = []  # handed over before Configure
        self.handoff_batches = 0  # handoff messages taken off the socket (Stats)
        self.stopped = threading.Event()
        self.events = _events.Sink()
        self._dgram_last = (0, 0, 0, 0)

    # The control service.

    def Describe(self, request, context):
        pb, p = self._pb, self.p
        return pb.Description(
            name=p.name, version=p.version, summary=p.summary,
            transport=pb.TRANSPORT_TCP if p.transport == TCP else pb.TRANSPORT_UDP,
            default_addr=p.default_addr, features=FEATURES[p.transport],
            options=[pb.Option(name=o.name, default=o.default, help=o.help) for o in p.options])

    def Configure(self, request, context):
        with self._lock:
            if self.srv is not None or self.psrv is not None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "already configured")
            try:
                self.p.configure(dict(request.options))
            except ConfigError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            if self.p.transport == TCP:
                self.srv = Server(self.p.handler, self.log, self.p.stopping, self.events)
            else:
                self.psrv = PacketServer(self.p.handler, self.log, self.p.stopping)
            pending, self._pending = self._pending, []
        self.log.debug("configured", listen=request.listen_addr)
        for h in pending:
            self._accept(h)
        return self._pb.ConfigureResponse()

    def Health(self, request, context):
        with self._lock:
            configured = self.srv is not None or self.psrv is not None
            return self._pb.HealthResponse(serving=configured and not self.draining, draining=self.draining)

    def Stats(self, request, context):
        with self._lock:
            srv, psrv, batches = self.srv, self.psrv, self.handoff_batches
        if psrv is not None:
            return self._pb.StatsResponse(panics=psrv.stats()["panics"], handoff_batches=batches)
        if srv is None:
            return self._pb.StatsResponse(handoff_batches=batches)
        st = srv.stats()
        return self._pb.StatsResponse(conns_active=max(st["active"], 0), conns_total=st["total"], panics=st["panics"],
                                      handoff_batches=batches)

    def Drain(self, request, context):
        """Stops taking new connections and datagrams first, and only then
        says draining in Health: a host that replaces this process waits for
        that before it reports the replace done (SPEC.md, Health)."""
        with self._lock:
            srv, psrv = self.srv, self.psrv
        if srv is not None:
            srv.stop_accepting()
        if psrv is not None:
            psrv.stop_reading()
        with self._lock:
            self.draining = True
        start = time.monotonic()
        timeout = request.timeout_ms / 1000
        forced = 0
        if srv is not None:
            forced += srv.shutdown(timeout)
        if psrv is not None:
            forced += psrv.shutdown(timeout)
        self.log.info("drained", forced=forced, took=f"{round((time.monotonic() - start) * 1000)}ms")
        return self._pb.DrainResponse(forced=forced)

    def Events(self, request, context):
        """Streams batches of events, at most one per BATCH_INTERVAL while
        there are any, until the host cancels or opens another stream."""
        sink = self.events
        token = sink.attach()
        # A first batch at once, empty or not: it tells the host the stream
        # is open (control.proto; until then its status says "starting").
        events, dropped = sink.take()
        yield self._pb.EventBatch(events=[self._event(e) for e in events], dropped=dropped)
        last_sent, last_dropped = time.monotonic(), dropped
        while context.is_active() and sink.current(token):
            sink.wait(_events.BATCH_INTERVAL)
            wait = last_sent + _events.BATCH_INTERVAL - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            events, dropped = sink.take()
            dg = self._datagrams()
            if dg is not None:
                events.append(dg)
            if not events and dropped == last_dropped:
                continue
            last_sent, last_dropped = time.monotonic(), dropped
            yield self._pb.EventBatch(events=[self._event(e) for e in events], dropped=dropped)

    def _event(self, e):
        kind, conn, t, peer, local, duration, bin_, bout, reason, dgin, dgout = e
        return self._pb.Event(kind=kind, conn=conn, time_unix_nano=t, peer=peer, local=local,
                              duration_nanos=duration, bytes_in=bin_, bytes_out=bout, reason=reason,
                              datagrams_in=dgin, datagrams_out=dgout)

    def _datagrams(self):
        """A DATAGRAMS event with the UDP counts since the previous one, or
        None when there were none."""
        psrv = self.psrv
        if psrv is None:
            return None
        st = psrv.stats()
        now = (st["datagrams"], st["replies"], st["bytes_in"], st["bytes_out"])
        prev, self._dgram_last = self._dgram_last, now
        d = [a - b for a, b in zip(now, prev)]
        if not any(d):
            return None
        return (_events.DATAGRAMS, 0, _events.now_ns(), "", psrv.local, 0, d[2], d[3], "", d[0], d[1])

    # The handoff socket.

    def receive(self, sock):
        """Serves what the host hands over until the host closes its end,
        which means it is gone: then the plugin exits with everything it
        started."""
        while True:
            try:
                batch = fdpass.recv(sock)
            except fdpass.WireError as e:
                self.log.error("bad handoff message", error=str(e))
                self._count_batch()
                continue
            except InterruptedError:
                continue
            except OSError:
                batch = None
            if batch is None:
                host_gone()
            with self._lock:
                if self.srv is None and self.psrv is None:
                    self._pending.extend(batch)
                    self.handoff_batches += 1
                    continue
            for h in batch:
                self._accept(h)
            self._count_batch()

    def _count_batch(self):
        """Counts a handoff message taken off the socket (Stats'
        handoff_batches): before it drains a process it replaces, the host
        waits until the process has taken every message it was sent."""
        with self._lock:
            self.handoff_batches += 1

    def _accept(self, h):
        srv, psrv = self.srv, self.psrv
        try:
            if h.kind == fdpass.PACKET and psrv is not None:
                psrv.serve(socket.socket(fileno=h.fd))
            elif h.kind == fdpass.LISTENER and srv is not None:
                # The host shares its listening socket: this process accepts.
                ln = socket.socket(fileno=h.fd)
                threading.Thread(target=self._serve_listener, args=(srv, ln), name="sockplay-accept",
                                 daemon=True).start()
            elif h.kind == fdpass.CONN and srv is not None:
                conn = Conn(fileno=h.fd)
                conn.setblocking(True)
                try:
                    peer = conn.getpeername()
                except OSError:
                    peer = None  # the client is gone already; the handler sees EOF
                srv.serve_conn(conn, peer, h.id)
            else:
                self.log.error("handoff of a kind this plugin does not serve", kind=h.kind, conn=h.id)
                os.close(h.fd)
        except OSError as e:
            self.log.error("handed-over descriptor", kind=h.kind, conn=h.id, error=str(e))
            fdpass.close_all([h.fd])

    def _serve_listener(self, srv, ln):
        try:
            srv.serve(ln)
        except OSError as e:
            self.log.error("accept on the shared listener", error=str(e))


class _Health(health_pb2_grpc.HealthServicer):
    """grpc.health.v1.Health: go-plugin's client pings the service "plugin".
    Watch is not served (UNIMPLEMENTED): go-plugin never calls it."""

    def Check(self, request, context):
        if request.service not in ("", "plugin"):
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


class _Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    """plugin.GRPCController: Shutdown is how go-plugin's Kill asks the plugin
    to exit (it kills it 2 s later if it has not)."""

    def __init__(self, rt):
        self._rt = rt

    def Shutdown(self, request, context):
        self._rt.stopped.set()
        return grpc_controller_pb2.Empty()


class _Stdio(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    """plugin.GRPCStdio: go-plugin's client opens it once at start. The stream
    ends at once: this SDK sends what the plugin prints to the log instead
    (the host discards the stdio stream)."""

    def StreamStdio(self, request, context):
        return iter(())


def host_gone():
    """Ends the plugin and everything it started: the host starts each plugin
    as the leader of its own process group. Nothing is logged: the host that
    read stderr is gone."""
    _remove_socket_dir()
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


def _remove_socket_dir():
    """Removes the directory the host made for this process's gRPC socket,
    and the host's run directory once empty: a host killed with SIGKILL
    cannot."""
    d = os.environ.get(ENV_SOCKET_DIR, "")
    if not d or not os.path.basename(os.path.dirname(d.rstrip("/"))).startswith("sockplay-"):
        return
    shutil.rmtree(d, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(d.rstrip("/")))
    except OSError:
        pass  # other plugins' directories are still there


def _watch_parent():
    """A re-parented plugin knows its host died, handoff socket or not."""
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            host_gone()


def _flush_and_exit(code):
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


_PY_LEVELS = ((logging.ERROR, "error"), (logging.WARNING, "warn"), (logging.INFO, "info"), (logging.DEBUG, "debug"))


def _route_python_logging(log):
    """Sends the standard logging module's records to the host's log, and
    uncaught exceptions of any thread with their tracebacks."""

    class Bridge(logging.Handler):
        def emit(self, record):
            level = next((name for n, name in _PY_LEVELS if record.levelno >= n), "trace")
            fields = {"logger": record.name}
            if record.exc_info:
                fields["traceback"] = "".join(traceback.format_exception(*record.exc_info))
            log.log(level, record.getMessage(), **fields)

    root = logging.getLogger()
    root.handlers[:] = [Bridge()]
    root.setLevel(logging.DEBUG if log.enabled("debug") else logging.INFO)

    def thread_hook(args):
        if args.exc_type is SystemExit:
            return
        log.error("uncaught exception in a thread", thread=getattr(args.thread, "name", ""),
                  error=f"{args.exc_type.__name__}: {args.exc_value}",
                  traceback="".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))
    threading.excepthook = thread_hook


