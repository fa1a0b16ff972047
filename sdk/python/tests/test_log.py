"""hclog JSON lines as the host parses them."""

import io
import json
import re
import unittest

from sockplay._log import LineLogger, Logger, format_addr, level_rank, timestamp

# The layout go-plugin parses @timestamp with: 2006-01-02T15:04:05.000000Z07:00.
GO_LAYOUT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


class LoggerTest(unittest.TestCase):
    def lines(self, level="trace"):
        out = []
        return out, Logger(write=out.append, level=level)

    def test_line_format(self):
        out, log = self.lines()
        log.warn("connection closed", peer=("127.0.0.1", 5000), bytes=12, raw=b"\xff", v6=("::1", 80, 0, 0))
        self.assertEqual(len(out), 1)
        self.assertTrue(out[0].endswith("\n") and out[0].count("\n") == 1)
        rec = json.loads(out[0])
        self.assertEqual(rec["@level"], "warn")
        self.assertEqual(rec["@message"], "connection closed")
        self.assertRegex(rec["@timestamp"], GO_LAYOUT)
        self.assertEqual(rec["peer"], "127.0.0.1:5000")
        self.assertEqual(rec["v6"], "[::1]:80")
        self.assertEqual(rec["bytes"], 12)
        self.assertEqual(rec["raw"], "\\xff")

    def test_levels(self):
        out, log = self.lines("warn")
        for name in ("trace", "debug", "info", "warn", "error"):
            getattr(log, name)(name)
        self.assertEqual([json.loads(x)["@message"] for x in out], ["warn", "error"])
        self.assertEqual(level_rank(""), level_rank("info"))
        self.assertEqual(level_rank("bogus"), level_rank("info"))
        self.assertGreater(level_rank("off"), level_rank("error"))

    def test_multiline_message_is_one_line(self):
        out, log = self.lines()
        log.error("two\nlines", traceback="a\nb")
        self.assertEqual(len(out), 1)
        self.assertEqual(json.loads(out[0])["traceback"], "a\nb")

    def test_timestamp_utc(self):
        import datetime
        t = datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
        self.assertEqual(timestamp(t), "2026-01-02T03:04:05.000006Z")
        t = t.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
        self.assertEqual(timestamp(t), "2026-01-02T05:04:05.000006+02:00")

    def test_write_failure_is_quiet(self):
        def broken(_):
            raise BrokenPipeError()
        Logger(write=broken).error("host gone")  # must not raise

    def test_line_logger(self):
        out, log = self.lines()
        w = LineLogger(log, "info", "stdout")
        print("one", file=w)
        w.write("two\nthr")
        w.write("ee")
        self.assertEqual([json.loads(x)["@message"] for x in out], ["one", "two"])
        w.flush()
        self.assertEqual(json.loads(out[-1])["@message"], "three")
        self.assertEqual(json.loads(out[-1])["stream"], "stdout")
        self.assertIsInstance(w, io.TextIOBase)

    def test_format_addr(self):
        self.assertEqual(format_addr(None), "")
        self.assertEqual(format_addr(("10.0.0.1", 1)), "10.0.0.1:1")
        self.assertEqual(format_addr("/run/x.sock"), "/run/x.sock")


if __name__ == "__main__":
    unittest.main()
