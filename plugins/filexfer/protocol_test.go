package main

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		line string
		want Request
		err  string // in the error; "" for none
	}{
		{"LIST .", Request{Verb: VerbList, Path: "."}, ""},
		{"LIST a%20b/c%25d", Request{Verb: VerbList, Path: "a b/c%d"}, ""},
		{"SUM x\r", Request{Verb: VerbSum, Path: "x"}, ""},
		{"GET 0 f", Request{Verb: VerbGet, Path: "f"}, ""},
		{"GET 9223372036854775807 f", Request{Verb: VerbGet, Path: "f", Offset: 1<<63 - 1}, ""},
		{"PUT 10 " + sum + " d/f", Request{Verb: VerbPut, Path: "d/f", Size: 10, Sum: sum}, ""},
		{"PUT 0 " + sum + " %E2%9C%93", Request{Verb: VerbPut, Path: "✓", Sum: sum}, ""},
		{"PUT 5 - f", Request{Verb: VerbPut, Path: "f", Size: 5, Sum: SumAfter}, ""},
		{"PUT 5 -- f", Request{}, "or - to send it after"},
		{"", Request{}, "unknown request"},
		{"get 0 f", Request{}, "unknown request"},
		{"LIST", Request{}, "takes 1 fields"},
		{"LIST a b", Request{}, "takes 1 fields"},
		{"LIST  a", Request{}, "takes 1 fields"},
		{"GET -1 f", Request{}, "decimal number"},
		{"GET 01 f", Request{}, "decimal number"},
		{"GET +1 f", Request{}, "decimal number"},
		{"GET 9223372036854775808 f", Request{}, "out of range"},
		{"GET 99999999999999999999 f", Request{}, "decimal number"},
		{"PUT 1 " + strings.ToUpper(sum) + " f", Request{}, "lower-case hex"},
		{"PUT 1 abc f", Request{}, "lower-case hex"},
		{"LIST a%2", Request{}, "truncated"},
		{"LIST a%zz", Request{}, "bad %-escape"},
		{"LIST a%00", Request{}, "NUL"},
		{"LIST a\tb", Request{}, "must be %-encoded"},
		{"LIST " + strings.Repeat("a", MaxPath+1), Request{}, "path longer"},
		{"LIST " + strings.Repeat("%41", 3000), Request{}, "line longer"},
	}
	for _, tt := range tests {
		t.Run(clip(tt.line), func(t *testing.T) {
			got, err := ParseRequest(tt.line)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, &Error{Code: CodeBadRequest}) {
					t.Fatalf("error %v, want a bad-request containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
			if back, err := ParseRequest(got.String()); err != nil || back != got {
				t.Fatalf("String() = %q reads back as %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{".", ".", ""},
		{"", ".", ""},
		{"a//b/./c/", "a/b/c", ""},
		{"./x", "x", ""},
		{"/etc/passwd", "", "absolute"},
		{"..", "", `".."`},
		{"a/../b", "", `".."`},
		{"a/..", "", `".."`},
		{stagingDir, "", "staging"},
		{"./" + stagingDir + "/x", "", "staging"},
		{"a/" + stagingDir, "a/" + stagingDir, ""},
	}
	for _, tt := range tests {
		got, err := CleanPath(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("CleanPath(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	if f, err := ParseStatus("OK 1 2"); err != nil || len(f) != 2 {
		t.Fatalf("%v %v", f, err)
	}
	_, err := ParseStatus("ERR quota too much data")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeQuota || e.Msg != "too much data" {
		t.Fatalf("%#v", err)
	}
	if _, err := ParseStatus("300000"); err == nil || !strings.Contains(err.Error(), "malformed status") {
		t.Fatalf("%v", err)
	}
	ent := Entry{Type: 'f', Size: 3, MTime: 1700000000, Name: "a b"}
	if back, err := ParseEntry(ent.String()); err != nil || back != ent {
		t.Fatalf("%+v %v", back, err)
	}
}

// FuzzParseRequest: the parser never panics, accepts only what it can print
// back, and every path it accepts is either refused by CleanPath or clean.
// The seed corpus is in testdata/fuzz/FuzzParseRequest.
func FuzzParseRequest(f *testing.F) {
	f.Add("GET 0 a/b")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRequest(line)
		if err != nil {
			if !errors.Is(err, &Error{Code: CodeBadRequest}) {
				t.Fatalf("error %v is not a bad-request", err)
			}
			return
		}
		s := r.String()
		if strings.ContainsAny(s, "\n\r\x00") || len(s) >= MaxLine*3 {
			t.Fatalf("String() = %q", s)
		}
		back, err := ParseRequest(s)
		if err != nil || back != r {
			t.Fatalf("%q parsed to %+v, printed as %q, read back as %+v, %v", line, r, s, back, err)
		}
		name, err := CleanPath(r.Path)
		if err != nil {
			return
		}
		if strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") ||
			strings.Contains(name, "/../") || strings.HasSuffix(name, "/..") || strings.Contains(name, "//") {
			t.Fatalf("CleanPath(%q) = %q escapes", r.Path, name)
		}
		if strings.HasPrefix(name, stagingDir+"/") || name == stagingDir {
			t.Fatalf("CleanPath(%q) = %q names the staging directory", r.Path, name)
		}
	})
}
