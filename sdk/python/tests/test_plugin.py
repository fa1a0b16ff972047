"""Plugin declarations, options and the command line run by hand."""

import io
import unittest

import sockplay
from sockplay import testing


def make(**kw):
    args = dict(name="demo", version="1.2.3", summary="a demo", transport="tcp", default_addr="127.0.0.1:9",
                options=[sockplay.Option("prefix", "> ", "put before"), ("count", "3", "how many")])
    args.update(kw)
    p = sockplay.Plugin(**args)
    if p.transport == "udp":
        p.udp(lambda data, addr: data)
    else:
        p.tcp(lambda conn, addr: None)
    return p


class ValidateTest(unittest.TestCase):
    def test_declarations(self):
        cases = [
            ({}, None),
            ({"name": "Demo"}, 'plugin name "Demo": want lower case letters'),
            ({"name": "1x"}, "plugin name"),
            ({"version": "1.2"}, 'version "1.2" is not a semantic version'),
            ({"version": "1.2.3-rc.1+b5"}, None),
            ({"transport": "sctp"}, 'transport "sctp": want tcp or udp'),
            ({"default_addr": "127.0.0.1"}, "default address"),
            ({"default_addr": "127.0.0.1:70000"}, "default address"),
            ({"default_addr": "[::1]:80"}, None),
            ({"options": [("a", ""), ("a", "")]}, 'option name "a" is invalid or repeated'),
            ({"options": [("A", "")]}, 'option name "A"'),
        ]
        for kw, want in cases:
            with self.subTest(kw=kw):
                p = make(**kw)
                if kw.get("transport") == "sctp":
                    p.transport = "sctp"
                got = p.validate()
                if want is None:
                    self.assertIsNone(got)
                else:
                    self.assertIn(want, got or "")

    def test_no_handler(self):
        p = sockplay.Plugin("demo", "1.0.0", "x", default_addr="127.0.0.1:1")
        self.assertIn("no handler", p.validate())


class ConfigTest(unittest.TestCase):
    def test_defaults_and_values(self):
        p = make()
        cfg = testing.configure(p, {"count": "7"})
        self.assertEqual(dict(cfg), {"prefix": "> ", "count": "7"})
        self.assertEqual(cfg.int("count"), 7)
        self.assertIs(p.config, cfg)

    def test_unknown_option_names_the_options(self):
        with self.assertRaises(sockplay.ConfigError) as cm:
            testing.configure(make(), {"nosuch": "1", "zzz": "2"})
        self.assertEqual(str(cm.exception), 'demo has no option "nosuch" (options: prefix, count)')
        p = make(options=[])
        with self.assertRaisesRegex(sockplay.ConfigError, r"\(options: none\)"):
            testing.configure(p, {"x": "1"})

    def test_typed_values(self):
        cfg = testing.configure(make(options=[("n", "x"), ("b", "maybe"), ("f", "1.5"), ("t", " yes ")]))
        with self.assertRaisesRegex(sockplay.ConfigError, r'option demo.n="x": want an integer'):
            cfg.int("n")
        with self.assertRaisesRegex(sockplay.ConfigError, r'option demo.b="maybe": want true or false'):
            cfg.bool("b")
        self.assertEqual(cfg.float("f"), 1.5)
        self.assertIs(cfg.bool("t"), True)
        with self.assertRaises(KeyError):
            cfg["undeclared"]

    def test_setup_refuses(self):
        p = make()

        @p.setup
        def setup(cfg):
            cfg.int("prefix")  # "> " is no integer

        with self.assertRaisesRegex(sockplay.ConfigError, r'option demo.prefix="> ": want an integer'):
            testing.configure(p)

        @p.setup
        def setup2(cfg):
            raise OSError("accounts file: No such file")

        with self.assertRaisesRegex(sockplay.ConfigError, "accounts file: No such file"):
            testing.configure(p)


class ClientTest(unittest.TestCase):
    def run_client(self, p, *args):
        out, err = io.StringIO(), io.StringIO()
        code = p.run_client(list(args), sockplay.Stdio(io.StringIO(""), out, err))
        return code, out.getvalue(), err.getvalue()

    def test_version_and_help(self):
        p = make()
        self.assertEqual(self.run_client(p, "--version"), (0, "sockplay-demo 1.2.3 (sockplay protocol 1)\n", ""))
        code, out, _ = self.run_client(p, "--help")
        self.assertEqual(code, 0)
        self.assertEqual(out, """sockplay-demo 1.2.3: a demo

Run by hand, sockplay-demo is the demo client.

Usage:
  sockplay-demo connect [ADDR]   send stdin lines, print what comes back
  sockplay-demo --help | --version

Served by the host (sockplay serve) on TCP 127.0.0.1:9 by default.
Options, set with sockplay serve --set demo.KEY=VALUE:
  prefix         put before (default "> ")
  count          how many (default "3")
""")
        code, out, _ = self.run_client(p, "connect", "--help")
        self.assertEqual(code, 0)
        self.assertIn("sockplay-demo connect [ADDR]", out)

    def test_usage_errors(self):
        p = make()

        @p.command("hello", "NAME", "say hello")
        def hello(plugin, args, stdio):
            if len(args) != 1:
                raise sockplay.UsageError("hello takes one NAME")
            print("hello", args[0], file=stdio.out)

        self.assertEqual(self.run_client(p, "hello", "you")[:2], (0, "hello you\n"))
        code, out, err = self.run_client(p, "hello")
        self.assertEqual(code, 2)
        self.assertTrue(err.startswith("sockplay-demo: hello takes one NAME\nsockplay-demo 1.2.3"), err)
        self.assertIn("sockplay-demo hello NAME       say hello", err)
        self.assertEqual(self.run_client(p)[0], 2)
        code, _, err = self.run_client(p, "bogus")
        self.assertEqual(code, 2)
        self.assertIn('unknown command "bogus"', err)
        code, _, err = self.run_client(p, "connect", "nohostport")
        self.assertEqual(code, 2)
        self.assertIn('address "nohostport": want HOST:PORT', err)

    def test_connect_refused_is_one_line(self):
        import socket
        s = socket.create_server(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        code, _, err = self.run_client(make(), "connect", f"127.0.0.1:{port}")
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("Connection refused", err)


if __name__ == "__main__":
    unittest.main()
