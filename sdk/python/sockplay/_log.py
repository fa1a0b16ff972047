"""Logging as hclog JSON lines, the format the host parses from a plugin's
stderr (go-plugin's client reads @level, @message and @timestamp, and shows
every other key as a field), so that a plugin's lines reach the host's log
under the plugin's name at their own level."""

import datetime
import io
import json
import os
import sys
import threading

#: hclog's level names, lowest first.
LEVELS = ("trace", "debug", "info", "warn", "error")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_RANK["off"] = len(LEVELS)


def level_rank(name):
    """Returns the rank of an hclog level name (as SOCKPLAY_LOG_LEVEL carries
    it); an empty or unknown name is info, hclog's default."""
    return _RANK.get((name or "").strip().lower(), _RANK["info"])


def timestamp(now=None):
    """hclog's JSON timestamp, the layout go-plugin parses
    (2006-01-02T15:04:05.000000Z07:00): a line whose timestamp does not parse
    is shown raw at debug level instead of at its own."""
    now = now or datetime.datetime.now().astimezone()
    s = now.isoformat(timespec="microseconds")
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def _value(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, tuple) and len(v) >= 2 and isinstance(v[0], str) and isinstance(v[1], int):
        return format_addr(v)  # a socket address
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    return str(v)


def format_addr(addr):
    """Formats a socket address as Go does: 127.0.0.1:80, [::1]:80."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "" if addr is None else str(addr)


class Logger:
    """A logger with hclog's levels and key/value fields:

        log.info("connection closed", peer=addr, bytes=n)

    writes {"@level":"info","@message":"connection closed","@timestamp":...,
    "peer":"127.0.0.1:5000","bytes":12} as one line. It is safe for concurrent
    use; a line is written whole or, if the host is gone, not at all."""

    def __init__(self, write=None, level="info", name=""):
        self._write = write or fd_writer(2)
        self._min = level_rank(level) if isinstance(level, str) else level
        self.name = name

    def named(self, name):
        """Returns a logger whose lines carry @module, as hclog's Named does."""
        full = f"{self.name}.{name}" if self.name else name
        return Logger(self._write, self._min, full)

    def enabled(self, level):
        return _RANK[level] >= self._min

    def log(self, level, msg, **fields):
        if _RANK[level] < self._min:
            return
        rec = {"@level": level, "@message": str(msg), "@timestamp": timestamp()}
        if self.name:
            rec["@module"] = self.name
        for k, v in fields.items():
            rec[k] = _value(v)
        try:
            # ensure_ascii: every non-ASCII character as \uXXXX, so that
            # the line, read raw, holds nothing that acts on a terminal (C1
            # and bidi controls from a client's bytes); the host reads the
            # same record, and escapes what it logs.
            self._write(json.dumps(rec, ensure_ascii=True) + "\n")
        except (OSError, ValueError):
            pass  # the host is gone, or stderr closed: nothing to tell it

    def trace(self, msg, **fields):
        self.log("trace", msg, **fields)

    def debug(self, msg, **fields):
        self.log("debug", msg, **fields)

    def info(self, msg, **fields):
        self.log("info", msg, **fields)

    def warn(self, msg, **fields):
        self.log("warn", msg, **fields)

    def error(self, msg, **fields):
        self.log("error", msg, **fields)

    warning = warn


def fd_writer(fd):
    """Returns a write function for Logger that writes whole lines to fd."""
    lock = threading.Lock()

    def write(line):
        data = line.encode("utf-8", "backslashreplace")
        with lock:
            while data:
                data = data[os.write(fd, data):]
    return write


class LineLogger(io.TextIOBase):
    """A text stream that logs each line written to it: the plugin's
    sys.stdout and sys.stderr after the handshake, so that print() in a
    handler reaches the host's log instead of go-plugin's stdout pipe, which
    the host reads only for the handshake."""

    def __init__(self, log, level, stream):
        super().__init__()
        self._log, self._level, self._stream = log, level, stream
        self._buf = ""
        self._lock = threading.Lock()

    @property
    def encoding(self):
        return "utf-8"

    def writable(self):
        return True

    def write(self, s):
        with self._lock:
            self._buf += s
            *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._log.log(self._level, line, stream=self._stream)
        return len(s)

    def flush(self):
        with self._lock:
            line, self._buf = self._buf, ""
        if line:
            self._log.log(self._level, line, stream=self._stream)


def capture_std_streams(log):
    """Sends sys.stdout (info) and sys.stderr (warn) to log, line by line."""
    sys.stdout = LineLogger(log, "info", "stdout")
    sys.stderr = LineLogger(log, "warn", "stderr")
