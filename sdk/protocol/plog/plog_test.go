package plog_test

import (
	"bytes"
	"encoding/json"
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
