package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRequest(t *testing.T) {
	cases := []struct {
		name, req      string
		user, password string
		err            error
	}{
		{"plain", "alice|secret", "alice", "secret", nil},
		{"spaces in password", "alice|correct horse battery", "alice", "correct horse battery", nil},
		{"unicode", "李雷|密码很长的", "李雷", "密码很长的", nil},
		{"email name", "a.b-c_d@example.org|x", "a.b-c_d@example.org", "x", nil},
		{"no separator", "alice", "", "", errNoSeparator},
		{"empty", "", "", "", errNoSeparator},
		{"two separators", "a|b|c", "", "", errManySeparators},
		{"trailing separator", "a|b|", "", "", errManySeparators},
		{"empty name", "|pw", "", "", errEmptyName},
		{"empty password", "alice|", "", "", errEmptyPassword},
		{"name too long", strings.Repeat("n", 65) + "|pw", "", "", errNameTooLong},
		{"name at limit", strings.Repeat("n", 64) + "|pw", strings.Repeat("n", 64), "pw", nil},
		{"password too long", "a|" + strings.Repeat("p", 1025), "", "", errPasswordTooLong},
		{"password at limit", "a|" + strings.Repeat("p", 1024), "a", strings.Repeat("p", 1024), nil},
		{"bad utf-8 name", "\xff|pw", "", "", errNameUTF8},
		{"bad utf-8 password", "a|\xc3(", "", "", errPasswordUTF8},
		{"nul name", "a\x00|pw", "", "", errNameChars},
		{"nul password", "a|p\x00w", "", "", errPasswordChars},
		{"cr password", "a|pw\r", "", "", errPasswordChars},
		{"colon name", "a:b|pw", "", "", errNameChars},
		{"space name", "a b|pw", "", "", errNameChars},
		{"tab password", "a|p\tw", "", "", errPasswordChars},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user, password, err := parseRequest([]byte(tc.req))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if user != tc.user || password != tc.password {
				t.Fatalf("got %q, %q; want %q, %q", user, password, tc.user, tc.password)
			}
		})
	}
}

// FuzzParseRequest checks the parser's contract on any bytes: it never
// panics, and what it accepts is exactly name|password with one '|', both
// fields valid UTF-8 without control characters, within their limits, and
// the error it gives never holds the request's bytes.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"alice|secret", "a|b|c", "|", "alice|", "|pw", "", "\x00|\x00", "\xff\xfe|x",
		"李雷|密码", "a\r|b", "a|b\n", strings.Repeat("x", 70) + "|y",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		user, password, err := parseRequest(req)
		if err != nil {
			if user != "" || password != "" {
				t.Fatalf("fields %q %q with error %v", user, password, err)
			}
			if len(req) > 0 && strings.Contains(err.Error(), string(req)) && len(req) > 3 {
				t.Fatalf("error %q holds the request", err)
			}
			return
		}
		if bytes.Count(req, []byte("|")) != 1 {
			t.Fatalf("accepted %q with %d separators", req, bytes.Count(req, []byte("|")))
		}
		if user+"|"+password != string(req) {
			t.Fatalf("%q split into %q and %q", req, user, password)
		}
		if user == "" || password == "" || len(user) > maxNameLen || len(password) > maxPasswordLen {
			t.Fatalf("accepted lengths %d, %d", len(user), len(password))
		}
		if !utf8.ValidString(user) || !utf8.ValidString(password) {
			t.Fatalf("accepted invalid UTF-8 %q", req)
		}
		if strings.ContainsAny(user, ": \x00\r\n") || strings.ContainsAny(password, "\x00\r\n") {
			t.Fatalf("accepted %q", req)
		}
	})
}
