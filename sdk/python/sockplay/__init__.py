"""sockplay: write a sockplay protocol plugin in Python.

A plugin is a script that declares itself, registers a handler and calls
main():

    import sockplay

    plugin = sockplay.Plugin("pyecho", "1.0.0", "every message back",
                             transport="tcp", default_addr="127.0.0.1:12358")

    @plugin.tcp
    def echo(conn, addr):          # the body of the tutorial's server loop
        while True:
            data = conn.recv(1024)
            if not data or data == b"quit":
                break
            conn.send(data)

    if __name__ == "__main__":
        plugin.main()

Installed as an executable named sockplay-pyecho next to the host, it is
served by `sockplay serve` like a Go plugin: the host owns the listener and
hands the plugin each connection by file descriptor; the handler runs on a
thread of its own, gets a connected socket.socket and the peer's address, and
its connection is closed when it returns. An exception in it is logged with
its traceback in the host's log and loses only that connection.

A UDP plugin registers handler(data, addr) -> reply with @plugin.udp. Options
are declared with Option(name, default, help), set on the host with
--set NAME.KEY=VALUE, and read from plugin.config. plugin.log writes to the
host's log (plugin.log.info("message", key=value)); so does print(). Run by
hand the script is the protocol's client: `connect [ADDR]`, plus the commands
added with @plugin.command, and --help.

Serving needs Debian's python3-grpcio, python3-protobuf and
python3-cryptography (the host's AutoMTLS); the client and sockplay.testing
need only the standard library. The contract the runtime keeps is written
down in sdk/protocol/SPEC.md.
"""

import os as _os

from ._log import Logger, format_addr
from ._plugin import (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, PROTOCOL_VERSIONS, TCP, UDP, Config, ConfigError,
                      Option, Plugin, Stdio, UsageError, dial)

__all__ = ["Plugin", "Option", "Config", "ConfigError", "UsageError", "Stdio", "Logger", "dial", "format_addr",
           "TCP", "UDP", "PROTOCOL_VERSIONS"]

if _os.environ.get(MAGIC_COOKIE_KEY) == MAGIC_COOKIE_VALUE:
    # Started by the host: stdout carries the handshake line and nothing
    # else, so a print() before main() goes to the log.
    from ._log import capture_std_streams as _capture
    _capture(Logger(level=_os.environ.get("SOCKPLAY_LOG_LEVEL", "info")))
