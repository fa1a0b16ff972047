package plog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

func TestDurationsAreStrings(t *testing.T) {
	for _, jsonFormat := range []bool{false, true} {
		var buf bytes.Buffer
		l := plog.New(&hclog.LoggerOptions{Output: &buf, JSONFormat: jsonFormat, Level: hclog.Trace})
		l.With("every", 2*time.Second).Named("x").Info("waited", "delay", 250*time.Millisecond, "n", 3)
		out := buf.String()
		for _, want := range []string{"250ms", "2s"} {
			if !strings.Contains(out, want) {
				t.Errorf("json=%v: %q lacks %q", jsonFormat, out, want)
			}
		}
		if strings.Contains(out, "250000000") {
			t.Errorf("json=%v: a duration in nanoseconds: %q", jsonFormat, out)
		}
	}
}

func TestParseLine(t *testing.T) {
	var buf bytes.Buffer
	l := plog.New(&hclog.LoggerOptions{Output: &buf, JSONFormat: true, TimeFormat: plog.TimeFormat})
	l.Warn("slow client", "peer", "127.0.0.1:5000", "wait", 250*time.Millisecond, "count", 7)
	var raw map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	ts, _ := raw["@timestamp"].(string)
	if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.Contains(ts, "T") {
		t.Errorf("@timestamp %q is not RFC 3339 with a date: %v", ts, err)
	}
	e, ok := plog.ParseLine(buf.Bytes())
	if !ok {
		t.Fatalf("ParseLine(%q) failed", buf.String())
	}
	if e.Level != hclog.Warn || e.Message != "slow client" || e.Time.IsZero() {
		t.Errorf("entry %+v", e)
	}
	want := []any{"count", int64(7), "peer", "127.0.0.1:5000", "wait", "250ms"}
	if len(e.Fields) != len(want) {
		t.Fatalf("fields %v, want %v", e.Fields, want)
	}
	for i := range want {
		if e.Fields[i] != want[i] {
			t.Errorf("field %d: %#v, want %#v", i, e.Fields[i], want[i])
		}
	}
	for _, bad := range []string{"", "plain text", "panic: boom", `{"msg":"not hclog"}`, "{broken"} {
		if _, ok := plog.ParseLine([]byte(bad)); ok {
			t.Errorf("ParseLine(%q) accepted it", bad)
		}
	}
}

// Escaped makes a record one line with nothing in it that acts on a
// terminal, keys, values, names and the standard logger's lines included;
// a Lines value keeps its lines, each after the record's in hclog's block.
func TestEscaped(t *testing.T) {
	const bad = "a\x1b[2J\rb\nc\u202ed\u009b"
	for _, jsonFormat := range []bool{false, true} {
		var buf bytes.Buffer
		l := plog.Escaped(plog.New(&hclog.LoggerOptions{Output: &buf, JSONFormat: jsonFormat, Level: hclog.Trace}))
		l.Named("n"+bad).With("w", bad).Warn("msg "+bad, "k"+bad, bad, "err", errors.New(bad), "n", 3,
			"stack", plog.Lines("line 1\nline 2\x1b"))
		l.StandardLogger(nil).Print("std " + bad)
		out := buf.String()
		for _, raw := range []string{"\x1b", "\r", "\u202e", "\u009b"} {
			if strings.Contains(out, raw) {
				t.Errorf("json=%v: %q raw in %q", jsonFormat, raw, out)
			}
		}
		if !jsonFormat {
			// hclog's block: "  stack=", a "  | " line for each line, "  ".
			want := []string{"", "  stack=", "  | line 1", `  | line 2\x1b`, "  ", ""}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != len(want) {
				t.Fatalf("text: %d lines, want a line a record but the block's:\n%s", len(lines), out)
			}
			for i, w := range want {
				if w != "" && lines[i] != w {
					t.Errorf("text: line %d %q, want %q", i, lines[i], w)
				}
			}
			if !strings.Contains(lines[0], `msg a\x1b[2J\rb\nc\u202ed\u009b`) || !strings.Contains(lines[5], `std a\x1b[2J\rb\nc`) {
				t.Errorf("text: escapes missing:\n%s", out)
			}
		}
	}
}

// JSONOutput writes the code points that act on a terminal as JSON
// escapes: the line is safe read raw, and reads back as the same record.
func TestJSONOutput(t *testing.T) {
	var buf bytes.Buffer
	l := plog.New(&hclog.LoggerOptions{Output: plog.JSONOutput(&buf), JSONFormat: true})
	l.Info("x\u202ey\u009bz 成功", "f", "\u2028")
	out := buf.String()
	if strings.ContainsAny(out, "\u202e\u009b\u2028\x1b") || !strings.Contains(out, `\u202e`) || !strings.Contains(out, "成功") {
		t.Fatalf("%q", out)
	}
	e, ok := plog.ParseLine(buf.Bytes())
	if !ok || e.Message != "x\u202ey\u009bz 成功" || e.Fields[1] != "\u2028" {
		t.Fatalf("read back: %+v, %v", e, ok)
	}
}
