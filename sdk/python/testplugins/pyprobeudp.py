"""pyprobeudp: the SDK's UDP test plugin: "boom" raises, anything else is
answered with the prefix option before it."""
import sockplay

plugin = sockplay.Plugin("pyprobeudp", "0.3.0", "the Python SDK's UDP test plugin", transport="udp",
                         default_addr="127.0.0.1:12398", options=[sockplay.Option("prefix", "got ", "before each reply")])


@plugin.udp
def probe(data, addr):
    if data == b"boom":
        raise RuntimeError("pyprobeudp: asked to fail")
    return plugin.config["prefix"].encode() + data


if __name__ == "__main__":
    plugin.main()
