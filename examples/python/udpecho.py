"""pyudpecho: the tutorial's UDP server as a sockplay plugin: each datagram
is answered with "hello " and its payload, to its sender."""
import sockplay

plugin = sockplay.Plugin("pyudpecho", "1.0.0", "answers each datagram with hello <payload> (the tutorial's UDP server)",
                         transport="udp", default_addr="127.0.0.1:12355",
                         options=[sockplay.Option("prefix", "hello ", "put before each reply; empty: a plain echo (RFC 862)")])


@plugin.udp
def udpecho(data, addr):
    return plugin.config["prefix"].encode("utf-8") + data


if __name__ == "__main__":
    plugin.main()
