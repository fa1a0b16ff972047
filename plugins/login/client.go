package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sockplay/sockplay/sdk"
)

// client is the plugin binary run by hand: the accounts tools and the check
// client.
func client(ctx context.Context, args []string, stdio sdk.Stdio) error {
	switch args[0] {
	case "check":
		return check(ctx, args[1:], stdio)
	case "useradd":
		return useradd(ctx, args[1:], stdio)
	case "passwd":
		return passwd(ctx, args[1:], stdio)
	case "userdel":
		return userdel(args[1:], stdio)
	case "import-plaintext":
		return importPlaintext(args[1:], stdio)
	}
	return fmt.Errorf("%w: unknown command %q", sdk.ErrUsage, args[0])
}

// errLoginFailed is check's error when the server says fail.
var errLoginFailed = errors.New("login failed")

// check logs in once, as the tutorial's client does: user|password in one
// send, no newline, then one read of at most 1024 bytes.
func check(ctx context.Context, args []string, stdio sdk.Stdio) error {
	fs := newFlagSet("check")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the reply (a locked-out login is held)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: check takes at most one address", sdk.ErrUsage)
	}
	addr := Plugin().DefaultAddr
	if len(pos) == 1 {
		addr = pos[0]
	}
	p := newPrompter(stdio)
	name, err := p.line("User: ")
	if err != nil {
		return err
	}
	pw, err := p.password(ctx, "Password: ")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c, err := sdk.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte(name + "|" + pw)); err != nil {
		return err
	}
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if n == 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("no reply from %s: %w", addr, ctx.Err())
		}
		return fmt.Errorf("no reply from %s: %w", addr, err)
	}
	reply := string(bytes.TrimRight(buf[:n], "\r\n"))
	fmt.Fprintln(stdio.Out, reply)
	if reply != "success" {
		return errLoginFailed
	}
	return nil
}

// accountsFlags are the tools' common flags.
type accountsFlags struct {
	fs       *flag.FlagSet
	accounts *string
	hash     *string
}

func newAccountsFlags(cmd string, withHash bool) accountsFlags {
	f := accountsFlags{fs: newFlagSet(cmd)}
	f.accounts = f.fs.String("accounts", "", "the accounts file")
	if withHash {
		f.hash = f.fs.String("hash", string(algArgon2id), "argon2id or bcrypt")
	}
	return f
}

// parse parses args and returns the one positional argument.
func (f accountsFlags) parse(args []string, what string) (string, algorithm, error) {
	pos, err := parseArgs(f.fs, args)
	if err != nil {
		return "", "", err
	}
	if *f.accounts == "" {
		return "", "", fmt.Errorf("%w: %s needs --accounts FILE", sdk.ErrUsage, f.fs.Name())
	}
	if len(pos) != 1 {
		return "", "", fmt.Errorf("%w: %s takes one %s", sdk.ErrUsage, f.fs.Name(), what)
	}
	alg := algArgon2id
	if f.hash != nil {
		if alg, err = parseAlgorithm(*f.hash); err != nil {
			return "", "", fmt.Errorf("%w: %v", sdk.ErrUsage, err)
		}
	}
	return pos[0], alg, nil
}

func useradd(ctx context.Context, args []string, stdio sdk.Stdio) error {
	f := newAccountsFlags("useradd", true)
	name, alg, err := f.parse(args, "NAME")
	if err != nil {
		return err
	}
	path := *f.accounts
	if err := validName(name); err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	if exists, err := userExists(path, name); err != nil {
		return err
	} else if exists {
		return fmt.Errorf("user %q is already in %s (use passwd to change the password)", name, path)
	}
	pw, err := newPrompter(stdio).newPassword(ctx)
	if err != nil {
		return err
	}
	h, err := hashPassword(alg, pw)
	if err != nil {
		return err
	}
	err = updateAccounts(path, func(l *accountList) error {
		if l.index(name) >= 0 {
			return fmt.Errorf("user %q is already in %s (use passwd to change the password)", name, path)
		}
		l.accounts = append(l.accounts, account{name: name, hash: h})
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdio.Out, "added user %s to %s\n", name, path)
	return nil
}

func passwd(ctx context.Context, args []string, stdio sdk.Stdio) error {
	f := newAccountsFlags("passwd", true)
	name, alg, err := f.parse(args, "NAME")
	if err != nil {
		return err
	}
	path := *f.accounts
	if exists, err := userExists(path, name); err != nil {
		return err
	} else if !exists {
		return fmt.Errorf("no user %q in %s (use useradd)", name, path)
	}
	pw, err := newPrompter(stdio).newPassword(ctx)
	if err != nil {
		return err
	}
	h, err := hashPassword(alg, pw)
	if err != nil {
		return err
	}
	err = updateAccounts(path, func(l *accountList) error {
		i := l.index(name)
		if i < 0 {
			return fmt.Errorf("no user %q in %s (use useradd)", name, path)
		}
		l.accounts[i].hash = h
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdio.Out, "password of %s changed in %s\n", name, path)
	return nil
}

func userdel(args []string, stdio sdk.Stdio) error {
	f := newAccountsFlags("userdel", false)
	name, _, err := f.parse(args, "NAME")
	if err != nil {
		return err
	}
	path := *f.accounts
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("accounts file: %w", err)
	}
	err = updateAccounts(path, func(l *accountList) error {
		i := l.index(name)
		if i < 0 {
			return fmt.Errorf("no user %q in %s", name, path)
		}
		l.accounts = append(l.accounts[:i], l.accounts[i+1:]...)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdio.Out, "removed user %s from %s\n", name, path)
	return nil
}

// importPlaintext hashes every account of a file in the tutorial's format,
// user:password per line, into the accounts file, all or nothing. Like the
// tutorial's server, it strips the spaces around each line.
func importPlaintext(args []string, stdio sdk.Stdio) error {
	f := newAccountsFlags("import-plaintext", true)
	plain, alg, err := f.parse(args, "PLAINFILE")
	if err != nil {
		return err
	}
	path := *f.accounts
	data, err := os.ReadFile(plain)
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var add []account
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, pw, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("%s: line %d: want user:password", plain, n)
		}
		if err := validName(name); err != nil {
			return fmt.Errorf("%s: line %d: user %q: %w", plain, n, name, err)
		}
		if seen[name] {
			return fmt.Errorf("%s: line %d: user %q appears twice", plain, n, name)
		}
		seen[name] = true
		if _, err := parseHash(pw); err == nil {
			return fmt.Errorf("%s: line %d: user %q: the password is already a hash; this file needs no import", plain, n, name)
		}
		if err := validPassword(pw); err != nil {
			return fmt.Errorf("%s: line %d: user %q: %w", plain, n, name, err)
		}
		if len([]rune(pw)) < minPasswordLen {
			fmt.Fprintf(stdio.Err, "warning: user %s has a password shorter than %d characters; change it with passwd\n", name, minPasswordLen)
		}
		h, err := hashPassword(alg, pw)
		if err != nil {
			return fmt.Errorf("%s: line %d: user %q: %w", plain, n, name, err)
		}
		add = append(add, account{name: name, hash: h})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", plain, err)
	}
	err = updateAccounts(path, func(l *accountList) error {
		for _, a := range add {
			if l.index(a.name) >= 0 {
				return fmt.Errorf("user %q is already in %s; nothing imported", a.name, path)
			}
		}
		l.accounts = append(l.accounts, add...)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdio.Out, "imported %d accounts into %s; now delete %s, it holds plaintext passwords\n", len(add), path, plain)
	return nil
}

// userExists reads the accounts file without the lock, to fail early before
// asking for a password; the edit itself checks again under the lock.
func userExists(path, name string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("accounts file: %w", err)
	}
	l, err := parseAccounts(path, data)
	if err != nil {
		return false, err
	}
	return l.index(name) >= 0, nil
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseArgs parses flags wherever they are among the positional arguments,
// which it returns.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", sdk.ErrUsage, fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
