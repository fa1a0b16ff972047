package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// The accounts file holds one account per line, NAME:HASH, where HASH is an
// argon2id PHC string or a bcrypt hash. Blank lines and lines starting with
// '#' are ignored. Parsing is strict: one bad line refuses the whole file, so
// that a half-written or hand-mangled file never replaces a good one.

// fileHeader starts every accounts file the tools write.
const fileHeader = "# sockplay-login accounts: one NAME:HASH per line (argon2id or bcrypt).\n" +
	"# Edit with sockplay-login useradd, passwd and userdel; never store a plaintext password here.\n"

// account is one line of the accounts file.
type account struct {
	name string
	hash passwordHash
}

// accountList is an accounts file's content, in file order.
type accountList struct {
	accounts []account
}

// errPlaintext marks a file in the tutorial's user:password format.
var errPlaintext = errors.New("plaintext password")

// parseAccounts parses an accounts file's content. path is only used in
// error messages, which name the line and the user but never the password.
func parseAccounts(path string, data []byte) (*accountList, error) {
	var l accountList
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if t := strings.TrimLeft(line, " \t"); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, enc, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("accounts file %s: line %d: want NAME:HASH", path, n)
		}
		if err := validName(name); err != nil {
			return nil, fmt.Errorf("accounts file %s: line %d: %w", path, n, err)
		}
		// Names are kept and looked up normalized; a name the profile
		// refuses (from before normalization) stays as it is.
		if nn, err := normalizeName(name); err == nil {
			name = nn
		}
		if seen[name] {
			return nil, fmt.Errorf("accounts file %s: line %d: user %q appears twice (names are compared normalized, RFC 8265)", path, n, name)
		}
		seen[name] = true
		if !strings.HasPrefix(enc, "$") {
			return nil, fmt.Errorf("accounts file %s: line %d: user %q has a %w, in the tutorial's user:password format; "+
				"sockplay-login stores only hashed passwords. Convert the file with "+
				"`sockplay-login import-plaintext --accounts NEWFILE %s`, then set login.accounts=NEWFILE and delete %s",
				path, n, name, errPlaintext, path, path)
		}
		h, err := parseHash(enc)
		if err != nil {
			return nil, fmt.Errorf("accounts file %s: line %d: user %q: %w", path, n, name, err)
		}
		l.accounts = append(l.accounts, account{name: name, hash: h})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("accounts file %s: %w", path, err)
	}
	return &l, nil
}

// Format returns the file content for l.
func (l *accountList) format() []byte {
	var b bytes.Buffer
	b.WriteString(fileHeader)
	for _, a := range l.accounts {
		fmt.Fprintf(&b, "%s:%s\n", a.name, a.hash)
	}
	return b.Bytes()
}

func (l *accountList) index(name string) int {
	for i, a := range l.accounts {
		if a.name == name {
			return i
		}
	}
	return -1
}

// commonHash returns a hash with the params most accounts have, nil for an
// empty list: the model of the dummy hash unknown users are checked against.
func (l *accountList) commonHash() passwordHash {
	count := map[string]int{}
	var best passwordHash
	for _, a := range l.accounts {
		p := a.hash.params()
		count[p]++
		if best == nil || count[p] > count[best.params()] {
			best = a.hash
		}
	}
	return best
}
