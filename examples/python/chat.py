"""pychat: the tutorial's TCP chat server ("TCP聊天室") as a sockplay plugin:
each message is answered with the server's time; an empty read or quit ends
the connection. Unlike the tutorial's, many clients are served at once, each
on its own thread."""
import time

import sockplay

plugin = sockplay.Plugin("pychat", "1.0.0", "answers each message with the server's time (the tutorial's chat)",
                         transport="tcp", default_addr="127.0.0.1:12356")


@plugin.tcp
def chat(conn, addr):
    while True:
        data = conn.recv(1024)
        if not data or data.strip() == b"quit":
            break
        print(addr, "说:", data.decode("utf-8", "replace").strip())
        conn.send(("服务器当前时间=" + time.ctime()).encode("utf-8"))


if __name__ == "__main__":
    plugin.main()
