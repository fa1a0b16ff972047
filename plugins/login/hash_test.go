package main

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestArgon2Hash(t *testing.T) {
	h := testHash(t, "correct horse")
	enc := h.String()
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q: want OWASP's argon2id parameters", enc)
	}
	back, err := parseHash(enc)
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != enc || back.weak() {
		t.Fatalf("round trip: %q, weak %v", back, back.weak())
	}
	if !back.verify("correct horse") || back.verify("correct horse ") || back.verify("") {
		t.Fatal("verify is wrong")
	}
	d, err := dummyHash(back)
	if err != nil {
		t.Fatal(err)
	}
	if d.params() != back.params() || d.String() == enc {
		t.Fatalf("dummy %q, want the params of %q", d, enc)
	}
}

func TestBcryptHash(t *testing.T) {
	// The minimum cost keeps the test fast under -race; hashPassword's
	// cost is checked below without checking a password.
	enc, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHash(string(enc))
	if err != nil {
		t.Fatal(err)
	}
	if !h.verify("correct horse") || h.verify("wrong") || !h.weak() {
		t.Fatalf("verify or weak is wrong for %s", h.params())
	}
	d, err := dummyHash(h)
	if err != nil || d.params() != h.params() {
		t.Fatalf("dummy %v, %v", d, err)
	}
	if testing.Short() {
		return
	}
	full, err := hashPassword(algBcrypt, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost([]byte(full.String())); cost != 10 || full.weak() {
		t.Fatalf("bcrypt cost %d, want OWASP's 10", cost)
	}
	if _, err := hashPassword(algBcrypt, strings.Repeat("x", 73)); err == nil {
		t.Fatal("bcrypt took a password over 72 bytes")
	}
}

func TestParseHashErrors(t *testing.T) {
	good := "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43)
	if _, err := parseHash(good); err != nil {
		t.Fatalf("good hash: %v", err)
	}
	cases := map[string]string{
		"empty":          "",
		"plaintext":      "hunter2",
		"argon2i":        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43),
		"old version":    strings.Replace(good, "v=19", "v=16", 1),
		"torn":           good[:40],
		"huge memory":    strings.Replace(good, "m=19456", "m=4194304", 1),
		"zero time":      strings.Replace(good, "t=2", "t=0", 1),
		"zero threads":   strings.Replace(good, "p=1", "p=0", 1),
		"spaced params":  strings.Replace(good, "m=19456,t=2", "m=19456, t=2", 1),
		"padded salt":    strings.Replace(good, "c2FsdHNhbHRzYWx0c2FsdA", "c2FsdHNhbHRzYWx0c2FsdA==", 1),
		"short key":      strings.Replace(good, strings.Repeat("A", 43), "AAAA", 1),
		"bcrypt torn":    "$2b$10$abcdefghijklmnopqrstuv",
		"bcrypt costly":  "$2b$31$" + strings.Repeat("a", 53),
		"extra field":    good + "$x",
		"not base64 key": strings.Replace(good, strings.Repeat("A", 43), strings.Repeat("!", 43), 1),
	}
	for name, enc := range cases {
		t.Run(name, func(t *testing.T) {
			if h, err := parseHash(enc); err == nil {
				t.Fatalf("parsed %q as %s", enc, h.params())
			}
		})
	}
}
