"""pyfilexfer: the tutorial's file server as a sockplay plugin (push mode):
on accept it sends the file's size in ASCII digits, waits for the client's
acknowledgement, then sends the file. Set the file with
sockplay serve --set pyfilexfer.push=FILE. Run by hand,
sockplay-pyfilexfer get [ADDR] OUT is the tutorial's client."""
import os

import sockplay

plugin = sockplay.Plugin("pyfilexfer", "1.0.0", "sends one file: size, ack, bytes (the tutorial's file server)",
                         transport="tcp", default_addr="127.0.0.1:12357",
                         options=[sockplay.Option("push", "", "the file every client gets")])


@plugin.setup
def setup(config):
    if not config["push"]:
        plugin.log.warn("pyfilexfer.push is not set: every client is closed at once")
    elif not os.access(config["push"], os.R_OK) or not os.path.isfile(config["push"]):
        raise sockplay.ConfigError(f"pyfilexfer.push={config['push']}: not a readable file")


@plugin.tcp
def push(conn, addr):
    if not plugin.config["push"]:
        return
    with open(plugin.config["push"], "rb") as f:
        size = os.fstat(f.fileno()).st_size
        conn.send(str(size).encode("utf-8"))
        conn.recv(1024)  # 'Ready to recv file'
        conn.sendfile(f, 0, size)


@plugin.command("get", "[ADDR] OUT", "fetch the file into OUT (the tutorial's client)")
def get(plugin, args, stdio):
    if len(args) not in (1, 2):
        raise sockplay.UsageError("get takes [ADDR] OUT")
    with sockplay.dial(plugin, args[0] if len(args) == 2 else "") as s, open(args[-1], "wb") as f:
        size = int(s.recv(1024).decode("utf-8"))
        s.send("Ready to recv file".encode("utf-8"))
        received = 0
        while received < size and (data := s.recv(65536)):
            f.write(data)
            received += len(data)
    print("received", received, "of", size, file=stdio.out)
    return 0 if received == size else 1


if __name__ == "__main__":
    plugin.main()
