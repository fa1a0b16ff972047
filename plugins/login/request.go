package main

import (
	"bytes"
	"errors"
	"unicode"
	"unicode/utf8"
)

// Limits on the two fields of a request. They hold for the accounts file and
// the tools too, so that every account can log in over the wire.
const (
	maxNameLen     = 64
	maxPasswordLen = 1024
)

// Why a request is malformed. The reasons are logged; none of them carries
// the request's bytes, which may hold a password.
var (
	errNoSeparator     = errors.New("no | separator")
	errManySeparators  = errors.New("more than one | separator")
	errEmptyName       = errors.New("empty user name")
	errEmptyPassword   = errors.New("empty password")
	errNameTooLong     = errors.New("user name longer than 64 bytes")
	errPasswordTooLong = errors.New("password longer than 1024 bytes")
	errNameUTF8        = errors.New("user name is not valid UTF-8")
	errPasswordUTF8    = errors.New("password is not valid UTF-8")
	errNameChars       = errors.New("user name has a space, control character, ':' or '|'")
	errPasswordChars   = errors.New("password has a control character or '|'")
)

// parseRequest splits the tutorial's request, user|password, into its two
// fields, with the line end (if any) already removed. It accepts exactly one
// '|', a valid name (validName) and a valid password (validPassword).
func parseRequest(req []byte) (name, password string, err error) {
	i := bytes.IndexByte(req, '|')
	if i < 0 {
		return "", "", errNoSeparator
	}
	if bytes.IndexByte(req[i+1:], '|') >= 0 {
		return "", "", errManySeparators
	}
	n, p := string(req[:i]), string(req[i+1:])
	if err := validName(n); err != nil {
		return "", "", err
	}
	if err := validPassword(p); err != nil {
		return "", "", err
	}
	return n, p, nil
}

// validName reports whether name can be an account's name: 1 to 64 bytes of
// UTF-8, printable, without spaces, ':' (the accounts file's separator) or
// '|' (the request's).
func validName(name string) error {
	switch {
	case name == "":
		return errEmptyName
	case len(name) > maxNameLen:
		return errNameTooLong
	case !utf8.ValidString(name):
		return errNameUTF8
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == ':' || r == '|' {
			return errNameChars
		}
	}
	return nil
}

// validPassword reports whether password can be sent in a request: 1 to 1024
// bytes of UTF-8 without control characters (NUL, CR and LF among them) or
// '|'. Spaces are allowed.
func validPassword(password string) error {
	switch {
	case password == "":
		return errEmptyPassword
	case len(password) > maxPasswordLen:
		return errPasswordTooLong
	case !utf8.ValidString(password):
		return errPasswordUTF8
	}
	for _, r := range password {
		if unicode.IsControl(r) || r == '|' {
			return errPasswordChars
		}
	}
	return nil
}
