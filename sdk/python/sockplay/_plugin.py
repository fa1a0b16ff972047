"""Plugin: what a plugin declares (name, version, transport, default address,
options), its handler, and its command line when run by hand."""

import json
import os
import re
import socket
import sys
import threading
from collections.abc import Mapping

from ._log import Logger

#: The sockplay protocol versions this SDK speaks (go-plugin's
#: VersionedPlugins keys; sdk/protocol.Version on the Go side).
PROTOCOL_VERSIONS = (1,)
#: go-plugin's magic cookie: set by the host, it means "serve, do not run the
#: client".
MAGIC_COOKIE_KEY = "SOCKPLAY_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d3b8a0f4-sockplay-plugin-c0ffee"

TCP, UDP = "tcp", "udp"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_SEMVER_RE = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


#: Which Debian package provides each module that serving imports.
DEBIAN_PACKAGES = {
    "grpc": "python3-grpcio",
    "google": "python3-protobuf",
    "google.protobuf": "python3-protobuf",
    "cryptography": "python3-cryptography",
}


def missing_module_message(e):
    """The one line a plugin that lacks a dependency exits with, naming the
    Debian package to install."""
    name = getattr(e, "name", None) or ""
    pkg = DEBIAN_PACKAGES.get(name) or DEBIAN_PACKAGES.get(name.split(".")[0])
    if isinstance(e, ModuleNotFoundError) and pkg:
        return f"missing Python module {name}: install the Debian package {pkg} (apt-get install {pkg})"
    return f"cannot import {name or 'a module'}: {e}"


class UsageError(Exception):
    """Raised by a command: the message (if any) and the usage are printed
    and the exit status is 2."""


class ConfigError(ValueError):
    """A configuration the plugin refuses; the host shows the message."""


class Option:
    """A setting the plugin takes, set on the host with
    sockplay serve --set NAME.KEY=VALUE."""

    __slots__ = ("name", "default", "help")

    def __init__(self, name, default="", help=""):
        self.name, self.default, self.help = name, str(default), help

    def __repr__(self):
        return f"Option({self.name!r}, {self.default!r}, {self.help!r})"


def _quote(s):
    """Quotes s as Go's %q does for the common cases, so that messages read
    the same as the Go SDK's."""
    return json.dumps(s, ensure_ascii=False)


class Config(Mapping):
    """A plugin's option values: every declared option with its default,
    overridden by what the host was given. config["name"] is the string;
    int(), float() and bool() parse it and raise ConfigError naming the
    option."""

    def __init__(self, plugin_name, values):
        self._plugin = plugin_name
        self._values = dict(values)

    def __getitem__(self, name):
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Config({self._values!r})"

    def _bad(self, name, want):
        return ConfigError(f"option {self._plugin}.{name}={_quote(self._values[name])}: want {want}")

    def int(self, name):
        try:
            return int(self._values[name].strip())
        except ValueError:
            raise self._bad(name, "an integer") from None

    def float(self, name):
        try:
            return float(self._values[name].strip())
        except ValueError:
            raise self._bad(name, "a number") from None

    def bool(self, name):
        v = self._values[name].strip().lower()
        if v in ("1", "t", "true", "yes", "on"):
            return True
        if v in ("0", "f", "false", "no", "off", ""):
            return False
        raise self._bad(name, "true or false")


class Plugin:
    """A sockplay protocol plugin.

        plugin = sockplay.Plugin("pyecho", "1.0.0", "echoes every message",
                                 transport="tcp", default_addr="127.0.0.1:12358")

        @plugin.tcp
        def echo(conn, addr):
            while data := conn.recv(1024):
                conn.sendall(data)

        if __name__ == "__main__":
            plugin.main()

    Started by the host, main() serves the handler; run by hand, it runs the
    plugin's client commands (connect, and those added with command())."""

    def __init__(self, name, version, summary, transport=TCP, default_addr="", options=()):
        self.name = name
        self.version = version
        self.summary = summary
        self.transport = transport
        self.default_addr = default_addr
        self.options = [o if isinstance(o, Option) else Option(*o) for o in options]
        self.handler = None
        self._setup = None
        self.commands = {}
        #: The option values, set when the host configures the plugin (and by
        #: sockplay.testing), before the first connection.
        self.config = Config(name, {o.name: o.default for o in self.options})
        #: Lines written with it reach the host's log, named after the plugin.
        self.log = Logger(level=os.environ.get("SOCKPLAY_LOG_LEVEL", "info"))
        #: Set when the host drains the plugin: a handler that loops for long
        #: may watch it. Blocked reads are ended by the drain's deadline.
        self.stopping = threading.Event()
        self.command("connect", "[ADDR]", "send stdin lines, print what comes back")(_connect)

    # Decorators.

    def tcp(self, handler):
        """Registers handler(conn, addr), run on its own thread for each
        connection."""
        self.transport, self.handler = TCP, handler
        return handler

    def udp(self, handler):
        """Registers handler(data, addr) -> reply for each datagram (the reply
        is bytes, str, or None for none)."""
        self.transport, self.handler = UDP, handler
        return handler

    def setup(self, fn):
        """Registers fn(config), called once when the host configures the
        plugin, before any connection. An exception refuses the
        configuration: the host shows its message and does not start."""
        self._setup = fn
        return fn

    def command(self, name, args="", help=""):
        """Registers fn(plugin, args, stdio) -> exit status as a subcommand of
        the binary run by hand (sockplay-NAME name ARGS...)."""
        def register(fn):
            self.commands[name] = (fn, f"{name} {args}".strip(), help)
            return fn
        return register

    # Checks.

    def validate(self):
        """Returns the first thing wrong with the declaration, or None."""
        if not _NAME_RE.match(self.name or ""):
            return f"plugin name {_quote(self.name)}: want lower case letters, digits and dashes"
        if not _SEMVER_RE.match(self.version or ""):
            return f"plugin {self.name}: version {_quote(self.version)} is not a semantic version (1.2.3)"
        if self.transport not in (TCP, UDP):
            return f"plugin {self.name}: transport {_quote(self.transport)}: want tcp or udp"
        if self.handler is None:
            return f"plugin {self.name}: no handler (decorate one with @plugin.{self.transport})"
        host, sep, port = self.default_addr.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            return f"plugin {self.name}: default address {_quote(self.default_addr)}: want HOST:PORT with a port from 0 to 65535"
        seen = set()
        for o in self.options:
            if not _NAME_RE.match(o.name) or o.name in seen:
                return f"plugin {self.name}: option name {_quote(o.name)} is invalid or repeated"
            seen.add(o.name)
        return None

    def configure(self, values):
        """Builds the configuration from the host's values as the host's
        Configure does: an option the plugin does not declare is an error
        naming the ones it does; then the setup function runs. It raises
        ConfigError with the message the host shows."""
        opts = {o.name: o.default for o in self.options}
        for k in sorted(values):
            if k not in opts:
                names = ", ".join(o.name for o in self.options) or "none"
                raise ConfigError(f"{self.name} has no option {_quote(k)} (options: {names})")
            opts[k] = values[k]
        self.config = Config(self.name, opts)
        if self._setup is not None:
            try:
                self._setup(self.config)
            except ConfigError:
                raise
            except Exception as e:
                raise ConfigError(str(e) or type(e).__name__) from e
        return self.config

    # Running.

    def main(self, argv=None):
        """Runs the plugin and exits: serves the host when the host started
        it, runs the client command line otherwise."""
        problem = self.validate()
        if problem:
            print(f"sockplay-{self.name}: {problem}", file=sys.stderr)
            sys.exit(2)
        if os.environ.get(MAGIC_COOKIE_KEY) == MAGIC_COOKIE_VALUE:
            log = Logger(level=os.environ.get("SOCKPLAY_LOG_LEVEL", "info"))
            try:
                from . import _runtime
                code = _runtime.serve(self, log)
            except ImportError as e:
                log.error(missing_module_message(e))
                code = 1
            sys.exit(code)
        try:
            code = self.run_client(sys.argv[1:] if argv is None else argv, Stdio())
        except KeyboardInterrupt:
            code = 130
        sys.exit(code)

    def run_client(self, args, stdio):
        """Runs the command line args and returns the exit status: --version
        and --help are answered here, the rest goes to the commands."""
        prog = f"sockplay-{self.name}"
        if args and args[0] in ("--version", "-version", "version"):
            print(f"{prog} {self.version} (sockplay protocol {max(PROTOCOL_VERSIONS)})", file=stdio.out)
            return 0
        if args and args[0] in ("--help", "-h", "-help", "help"):
            self.write_usage(stdio.out)
            return 0
        if not args or args[0] not in self.commands:
            if args:
                print(f"{prog}: unknown command {_quote(args[0])}", file=stdio.err)
            self.write_usage(stdio.err)
            return 2
        fn = self.commands[args[0]][0]
        if any(a in ("--help", "-h") for a in args[1:]):
            self.write_usage(stdio.out)
            return 0
        try:
            return fn(self, args[1:], stdio) or 0
        except UsageError as e:
            if str(e):
                print(f"{prog}: {e}", file=stdio.err)
            self.write_usage(stdio.err)
            return 2
        except (OSError, ValueError) as e:
            print(f"{prog}: {e}", file=stdio.err)
            return 1

    def write_usage(self, w):
        """Writes the --help text, laid out as the Go SDK's."""
        prog = f"sockplay-{self.name}"
        print(f"{prog} {self.version}: {self.summary}\n", file=w)
        print(f"Run by hand, {prog} is the {self.name} client.\n\nUsage:", file=w)
        width = max(len(u) for _, u, _ in self.commands.values())
        for _, usage, help in self.commands.values():
            print(f"  {prog} {usage.ljust(width)}   {help}".rstrip(), file=w)
        print(f"  {prog} --help | --version", file=w)
        print(f"\nServed by the host (sockplay serve) on {self.transport.upper()} {self.default_addr} by default.", file=w)
        if self.options:
            print(f"Options, set with sockplay serve --set {self.name}.KEY=VALUE:", file=w)
            for o in self.options:
                print(f"  {o.name:<14} {o.help} (default {_quote(o.default)})", file=w)


class Stdio:
    """Where a command reads and writes (the process's by default)."""

    def __init__(self, inp=None, out=None, err=None):
        self.inp = inp or sys.stdin
        self.out = out or sys.stdout
        self.err = err or sys.stderr


def split_addr(addr, default):
    """Parses HOST:PORT ([v6]:PORT too); an empty addr is default."""
    host, sep, port = (addr or default).rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"address {_quote(addr)}: want HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


#: How long a client waits to connect, and a UDP client for a reply.
CLIENT_TIMEOUT = 5.0


def dial(plugin, addr):
    """Connects a client command to addr (the plugin's default address when
    empty), giving up after CLIENT_TIMEOUT. A UDP socket is connected too."""
    host, port = split_addr(addr, plugin.default_addr)
    if plugin.transport == UDP:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((host, port))
        s.settimeout(CLIENT_TIMEOUT)
        return s
    s = socket.create_connection((host, port), timeout=CLIENT_TIMEOUT)
    s.settimeout(None)
    return s


def _connect(plugin, args, stdio):
    """connect [ADDR]: the generic client. TCP: what the server sends is
    printed as it comes, each stdin line is sent as one message (with its
    newline), and at the end of stdin the sending side is closed; it ends when
    the server closes. UDP: each stdin line is one datagram (without newline),
    and one reply is awaited and printed; an empty line or quit ends it."""
    if len(args) > 1:
        raise UsageError("connect takes at most one address")
    s = dial(plugin, args[0] if args else "")
    with s:
        if plugin.transport == UDP:
            for line in stdio.inp:
                msg = line.rstrip("\r\n")
                if not msg or msg == "quit":
                    break
                s.send(msg.encode())
                print(s.recv(65535).decode("utf-8", "replace"), file=stdio.out, flush=True)
            return 0

        def send():
            try:
                for line in stdio.inp:
                    s.sendall(line.encode())
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        threading.Thread(target=send, daemon=True).start()
        text = ""
        while data := s.recv(65536):
            text = data.decode("utf-8", "replace")
            stdio.out.write(text)
            stdio.out.flush()
        if text and not text.endswith("\n"):
            print(file=stdio.out)
    return 0
