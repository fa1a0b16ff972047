package main

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAccounts(t *testing.T) {
	a := testHash(t, "correct horse").String()
	cases := []struct {
		name, data string
		users      []string
		err        string // in the error; "" means none
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", fileHeader + "\n  \n# x:y\nalice:" + a + "\r\n", []string{"alice"}, ""},
		{"two", "alice:" + a + "\nbob:" + a + "\n", []string{"alice", "bob"}, ""},
		{"no newline at end", "alice:" + a, []string{"alice"}, ""},
		{"plaintext", "alice:opensesame\n", nil, "import-plaintext"},
		{"plaintext after hashes", "alice:" + a + "\nbob:hunter22\n", nil, `line 2: user "bob" has a plaintext password`},
		{"no colon", "alice\n", nil, "want NAME:HASH"},
		{"bad name", "al ice:" + a + "\n", nil, "line 1"},
		{"twice", "alice:" + a + "\nalice:" + a + "\n", nil, "appears twice"},
		{"torn hash", "alice:" + a[:50] + "\n", nil, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseAccounts("F", []byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "opensesame") || strings.Contains(err.Error(), "hunter22") {
					t.Fatalf("error %q shows a password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range l.accounts {
				got = append(got, a.name)
			}
			if strings.Join(got, ",") != strings.Join(tc.users, ",") {
				t.Fatalf("users %v, want %v", got, tc.users)
			}
			back, err := parseAccounts("F", l.format())
			if err != nil || len(back.accounts) != len(l.accounts) {
				t.Fatalf("format does not parse back: %v", err)
			}
		})
	}
	_, err := parseAccounts("F", []byte("alice:pw\n"))
	if !errors.Is(err, errPlaintext) {
		t.Fatalf("plaintext error %v does not wrap errPlaintext", err)
	}
}
