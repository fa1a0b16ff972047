"""pyprobe: the SDK's own end-to-end test plugin (sdk/python/e2e_test.go).

Each line received is answered; some lines ask for misbehaviour:
  boom      raise an exception in the handler (loses this connection)
  print X   print X (reaches the host's log)
  eprint X  print X to sys.stderr
  log X     plugin.log.warn X, with a field
  wait      block in recv until the connection is cut (for drain tests)
  stats     answer with the plugin's pid
anything else is echoed with the greeting option as a prefix.
"""
import os
import sys

import sockplay

plugin = sockplay.Plugin("pyprobe", "0.3.0", "the Python SDK's test plugin", transport="tcp",
                         default_addr="127.0.0.1:12398",
                         options=[sockplay.Option("greeting", "> ", "put before each echoed line"),
                                  sockplay.Option("mode", "normal", "normal; any other value refuses Configure (for tests)")])


@plugin.setup
def setup(config):
    if config["mode"] != "normal":
        raise sockplay.ConfigError(f"option pyprobe.mode={config['mode']!r}: want normal")


@plugin.tcp
def probe(conn, addr):
    f = conn.makefile("rwb", buffering=0)
    for raw in f:
        line = raw.decode("utf-8", "surrogateescape").rstrip("\n")
        if line == "boom":
            raise RuntimeError("pyprobe: asked to fail")
        elif line.startswith("print "):
            print(line[6:])
        elif line.startswith("eprint "):
            print(line[7:], file=sys.stderr)
        elif line.startswith("log "):
            plugin.log.warn(line[4:], peer=addr, field="value")
        elif line == "wait":
            conn.recv(1)
            return
        elif line == "pid":
            conn.sendall(f"{os.getpid()}\n".encode())
            continue
        conn.sendall((plugin.config["greeting"] + line + "\n").encode())


if __name__ == "__main__":
    plugin.main()
