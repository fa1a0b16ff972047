"""pyecho: the tutorial's multi-threaded echo server as a sockplay plugin.
Each client has a thread of its own (the SDK starts it, as the tutorial's
threading.Thread did); every message comes back unchanged; an empty read or
quit ends that client."""
import sockplay

plugin = sockplay.Plugin("pyecho", "1.0.0", "every message back; quit closes (the tutorial's threaded echo)",
                         transport="tcp", default_addr="127.0.0.1:12358")


@plugin.tcp
def echo(conn, addr):
    while True:
        data = conn.recv(1024)
        if not data or data == b"quit":
            break
        conn.sendall(data)


if __name__ == "__main__":
    plugin.main()
