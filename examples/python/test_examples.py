"""The Python example plugins, each run with sockplay.testing on a loopback
socket and driven by the tutorial's own client programs
(testdata/tutorial/*.py), as the tutorial ran them. ../../sdk/python/e2e_test.go
and e2e_test.go here run the same clients through the real host."""

import os
import subprocess
import sys
import tempfile
import unittest

from sockplay import Stdio, testing

import chat
import echo
import filexfer
import hello
import login
import udpecho

TUTORIAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata", "tutorial")


def tutorial(script, addr, stdin="", *args):
    """Runs one of the tutorial's clients against addr; returns (exit, stdout)."""
    p = subprocess.run([sys.executable, os.path.join(TUTORIAL, script), addr[0], str(addr[1]), *args],
                       input=stdin.encode(), capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def run(plugin, *args, stdin=""):
    import io
    out, err = io.StringIO(), io.StringIO()
    code = plugin.run_client(list(args), Stdio(io.StringIO(stdin), out, err))
    return code, out.getvalue(), err.getvalue()


class HelloTest(testing.PluginTestCase):
    def test_tutorial_client(self):
        inst = self.start_plugin(hello.plugin)
        self.assertEqual(tutorial("hello_client.py", inst.addr)[:2], (0, "成功连接到服务器 socket message\n"))
        inst.wait_log("连接地址:")  # the tutorial's print(), in the log

    def test_greeting_option(self):
        inst = self.start_plugin(hello.plugin, {"greeting": "hi"})
        self.assertEqual(tutorial("hello_client.py", inst.addr)[1], "hi\n")

    def test_speak_first_client_gets_the_greeting(self):
        inst = self.start_plugin(hello.plugin)
        for _ in range(10):
            c = inst.dial()
            c.sendall(b"unexpected " * 1000)
            got = b""
            while data := c.recv(1024):
                got += data
            self.assertEqual(got.decode(), "成功连接到服务器 socket message")
            c.close()


class EchoTest(testing.PluginTestCase):
    def test_tutorial_client(self):
        inst = self.start_plugin(echo.plugin)
        code, out, _ = tutorial("echo_client.py", inst.addr, "hello\n你好\nexit\n")
        # On a loaded machine two echoes can arrive in one recv: compare the
        # bytes and their order, not how recv split them.
        self.assertEqual((code, out.replace("\n", "")), (0, "hello你好exit"))

    def test_quit_closes(self):
        inst = self.start_plugin(echo.plugin)
        c = inst.dial()
        c.sendall(b"ping")
        self.assertEqual(c.recv(16), b"ping")
        c.sendall(b"quit")
        self.assertEqual(c.recv(16), b"")

    def test_many_clients_at_once(self):
        inst = self.start_plugin(echo.plugin)
        conns = [inst.dial() for _ in range(50)]
        for i, c in enumerate(conns):
            c.sendall(b"n%d" % i)
        for i, c in enumerate(conns):
            self.assertEqual(c.recv(16), b"n%d" % i)
        self.assertEqual(inst.server.stats()["active"], 50)


class ChatTest(testing.PluginTestCase):
    def test_tutorial_client(self):
        inst = self.start_plugin(chat.plugin)
        code, out, _ = tutorial("chat_client.py", inst.addr, "hello\n你好\n\n")
        lines = out.splitlines()
        self.assertEqual(code, 0)
        self.assertEqual(len(lines), 2, out)
        for line in lines:
            self.assertTrue(line.startswith("服务器当前时间="), line)
        inst.wait_log("说: 你好")

    def test_quit(self):
        inst = self.start_plugin(chat.plugin)
        c = inst.dial()
        c.sendall(b"quit\n")
        self.assertEqual(c.recv(64), b"")


class UDPEchoTest(testing.PluginTestCase):
    def test_tutorial_client(self):
        inst = self.start_plugin(udpecho.plugin)
        self.assertEqual(tutorial("udp_client.py", inst.addr, "hi\n你好\nquit\n")[:2], (0, "hello hi\nhello 你好\n"))

    def test_plain_echo(self):
        inst = self.start_plugin(udpecho.plugin, {"prefix": ""})
        c = inst.dial_udp()
        c.send(b"\x00\xffbinary")
        self.assertEqual(c.recv(100), b"\x00\xffbinary")


class FileTest(testing.PluginTestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.file = os.path.join(self.dir.name, "pushed.bin")
        self.data = os.urandom(300000)
        with open(self.file, "wb") as f:
            f.write(self.data)

    def test_tutorial_client(self):
        inst = self.start_plugin(filexfer.plugin, {"push": self.file})
        out = os.path.join(self.dir.name, "got.bin")
        self.assertEqual(tutorial("file_client.py", inst.addr, "", out)[:2], (0, "received 300000 of 300000\n"))
        with open(out, "rb") as f:
            self.assertEqual(f.read(), self.data)

    def test_get_command(self):
        inst = self.start_plugin(filexfer.plugin, {"push": self.file})
        out = os.path.join(self.dir.name, "got.bin")
        self.assertEqual(run(filexfer.plugin, "get", "%s:%d" % inst.addr, out)[:2], (0, "received 300000 of 300000\n"))
        with open(out, "rb") as f:
            self.assertEqual(f.read(), self.data)
        self.assertEqual(run(filexfer.plugin, "get")[0], 2)

    def test_empty_file(self):
        open(self.file, "wb").close()
        inst = self.start_plugin(filexfer.plugin, {"push": self.file})
        out = os.path.join(self.dir.name, "got.bin")
        self.assertEqual(tutorial("file_client.py", inst.addr, "", out)[:2], (0, "received 0 of 0\n"))

    def test_bad_push(self):
        with self.assertRaisesRegex(testing.ConfigError, "not a readable file"):
            testing.configure(filexfer.plugin, {"push": os.path.join(self.dir.name, "missing")})
        with self.assertRaisesRegex(testing.ConfigError, "not a readable file"):
            testing.configure(filexfer.plugin, {"push": self.dir.name})

    def test_unset_push_closes(self):
        inst = self.start_plugin(filexfer.plugin)
        inst.wait_log("pyfilexfer.push is not set")
        self.assertEqual(inst.dial().recv(10), b"")


class LoginTest(testing.PluginTestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.accounts = os.path.join(self.dir.name, "accounts")

    def useradd(self, name, password):
        return run(login.plugin, "useradd", "--accounts", self.accounts, name, stdin=password + "\n")

    def test_tutorial_client(self):
        self.assertEqual(self.useradd("alice", "correct horse")[:2], (0, f"added alice to {self.accounts}\n"))
        self.assertEqual(self.useradd("bob", "battery staple")[0], 0)
        self.assertEqual(os.stat(self.accounts).st_mode & 0o777, 0o600)
        with open(self.accounts) as f:
            text = f.read()
        self.assertNotIn("correct horse", text)
        self.assertRegex(text, r"^alice:\$scrypt\$ln=14,r=8,p=5\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}\n")
        inst = self.start_plugin(login.plugin, {"accounts": self.accounts})
        stdin = "alice\nwrong\nnobody\ncorrect horse\nalice\ncorrect horse\n"
        self.assertEqual(tutorial("login_client.py", inst.addr, stdin)[:2],
                         (0, "user: password: fail\nuser: password: fail\nuser: password: success\n"))

    def test_lines_and_malformed(self):
        self.useradd("bob", "battery staple")
        inst = self.start_plugin(login.plugin, {"accounts": self.accounts})
        c = inst.dial()
        for send, want in [(b"bob|battery staple\n", b"success\n"), (b"bob battery staple", b"fail"),
                           (b"|", b"fail"), (b"bob|", b"fail"), (b"\xff|\xfe", b"fail")]:
            c.sendall(send)
            self.assertEqual(c.recv(64), want, send)

    def test_useradd_refuses(self):
        self.useradd("bob", "pw1")
        self.assertEqual(self.useradd("bob", "pw2")[0], 1)
        self.assertEqual(self.useradd("b:ob", "pw")[0], 2)
        self.assertEqual(self.useradd("carol", "")[0], 2)
        self.assertEqual(self.useradd("carol", "a|b")[0], 2)
        self.assertEqual(run(login.plugin, "useradd", "carol", stdin="pw\n")[0], 2)

    def test_plaintext_file_refused(self):
        with open(self.accounts, "w") as f:
            f.write("# the tutorial's file\nalice:secret\n")
        with self.assertRaisesRegex(testing.ConfigError, r"line 2 \(user alice\): not a hashed password") as cm:
            testing.configure(login.plugin, {"accounts": self.accounts})
        self.assertNotIn("secret", str(cm.exception))

    def test_no_accounts(self):
        inst = self.start_plugin(login.plugin)
        inst.wait_log("no accounts file")
        c = inst.dial()
        c.sendall(b"alice|anything")
        self.assertEqual(c.recv(64), b"fail")

    def test_missing_file(self):
        with self.assertRaisesRegex(testing.ConfigError, "No such file"):
            testing.configure(login.plugin, {"accounts": os.path.join(self.dir.name, "none")})


if __name__ == "__main__":
    unittest.main()


class ReadmeTest(unittest.TestCase):
    """The README's Python examples are this directory's echo.py and a test
    that passes."""

    def blocks(self):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        section = text[text.index("### In Python"):text.index("## How it works")]
        return [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]

    def test_plugin_is_echo_py(self):
        with open(echo.__file__, encoding="utf-8") as f:
            source = f.read()
        code = source[source.index("import sockplay"):]
        self.assertEqual(self.blocks()[0], code)

    def test_test_passes(self):
        ns = {}
        exec(compile(self.blocks()[1], "README.md", "exec"), ns)
        with open(os.devnull, "w") as null:
            result = unittest.TextTestRunner(stream=null).run(
                unittest.defaultTestLoader.loadTestsFromTestCase(ns["EchoTest"]))
        self.assertTrue(result.wasSuccessful() and result.testsRun == 1, result)
