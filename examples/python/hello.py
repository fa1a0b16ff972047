"""pyhello: the tutorial's first server, a TCP hello, as a sockplay plugin.
Each client gets one greeting, then the connection closes."""
import sockplay

plugin = sockplay.Plugin("pyhello", "1.0.0", "one greeting, then close (the tutorial's TCP hello)",
                         transport="tcp", default_addr="127.0.0.1:12355",
                         options=[sockplay.Option("greeting", "成功连接到服务器 socket message", "what each client gets")])


@plugin.tcp
def hello(conn, addr):
    # The tutorial's loop body: accept() and close() are the host's and the SDK's now.
    print("连接地址:", addr)  # print() reaches the host's log
    conn.send(plugin.config["greeting"].encode("utf-8"))


if __name__ == "__main__":
    plugin.main()
