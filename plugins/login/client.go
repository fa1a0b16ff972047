package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/escape"
)

// commands are the plugin binary run by hand: the check client and the
// accounts tools.
func commands() []client.Command {
	timeout := time.Minute
	return []client.Command{
		{
			Name: "check", Args: "[ADDR]", MaxArgs: 1,
			Summary: "log in once: exit 0 on success, 1 on fail",
			Help: `Asks for a user name and a password (without echo on a terminal), sends
user|password the tutorial's way, prints the reply. ADDR defaults to
127.0.0.1:8001.`,
			Example: "sockplay-login check\nprintf 'alice\\nsecret\\n' | sockplay-login check 127.0.0.1:8001",
			Flags: func(fs *pflag.FlagSet) {
				fs.DurationVar(&timeout, "timeout", timeout, "wait up to `D` for the reply (a locked-out login is held)")
			},
			Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
				return check(ctx, args, timeout, stdio)
			},
		},
		accountsCommand("useradd", "NAME", "add an account; FILE is created (mode 0600) if missing",
			"Reads the new password from the terminal (twice, without echo) or from stdin.", true, useradd),
		accountsCommand("passwd", "NAME", "set an account's password",
			"Reads the new password from the terminal (twice, without echo) or from stdin.", true, passwd),
		accountsCommand("userdel", "NAME", "remove an account", "", false, userdel),
		accountsCommand("import-plaintext", "PLAINFILE", "hash the tutorial's user:password file into FILE",
			`PLAINFILE is the tutorial's accounts file, one user:password per line. Every
account is hashed and added to FILE, all or nothing; then delete PLAINFILE.`, true, importPlaintext),
	}
}

// errLoginFailed is check's error when the server says fail.
var errLoginFailed = errors.New("login failed")

// check logs in once, as the tutorial's client does: user|password in one
// send, no newline, then one read of at most 1024 bytes.
func check(ctx context.Context, args []string, timeout time.Duration, stdio client.Stdio) error {
	addr := Plugin().DefaultAddr
	if len(args) == 1 {
		addr = args[0]
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
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.Dial(ctx, "tcp", addr)
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
	fmt.Fprintln(stdio.Out, escape.String(reply))
	if reply != "success" {
		return errLoginFailed
	}
	return nil
}

// accountsFlags are the tools' common flags.
type accountsFlags struct {
	cmd      string
	accounts string
	hash     string // "" for a tool without --hash
}

// accountsCommand is one accounts tool: `sockplay-login CMD --accounts FILE
// [--hash ALG] ARG`.
func accountsCommand(name, arg, summary, help string, withHash bool,
	run func(context.Context, accountsFlags, []string, client.Stdio) error) client.Command {
	f := accountsFlags{cmd: name}
	return client.Command{
		Name: name, Args: arg, MinArgs: 1, MaxArgs: 1, Summary: summary, Help: help,
		Example: fmt.Sprintf("sockplay-login %s --accounts accounts.txt %s", name, strings.ToLower(arg)),
		Flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&f.accounts, "accounts", "", "the accounts `FILE` (required)")
			if withHash {
				fs.StringVar(&f.hash, "hash", string(algArgon2id), "hash new passwords with `ALG`: argon2id or bcrypt")
			}
		},
		Run: func(ctx context.Context, args []string, stdio client.Stdio) error { return run(ctx, f, args, stdio) },
	}
}

// parse checks the flags and returns the one positional argument.
func (f accountsFlags) parse(args []string) (string, algorithm, error) {
	if f.accounts == "" {
		return "", "", fmt.Errorf("%w: %s needs --accounts FILE", client.ErrUsage, f.cmd)
	}
	alg := algArgon2id
	if f.hash != "" {
		var err error
		if alg, err = parseAlgorithm(f.hash); err != nil {
			return "", "", fmt.Errorf("%w: %v", client.ErrUsage, err)
		}
	}
	return args[0], alg, nil
}

func useradd(ctx context.Context, f accountsFlags, args []string, stdio client.Stdio) error {
	name, alg, err := f.parse(args)
	if err != nil {
		return err
	}
	path := f.accounts
	if err := validName(name); err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	typed := name
	if name, err = normalizeName(typed); err != nil {
		return fmt.Errorf("user %q: %w", typed, err)
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

func passwd(ctx context.Context, f accountsFlags, args []string, stdio client.Stdio) error {
	name, alg, err := f.parse(args)
	if err != nil {
		return err
	}
	name = lookupName(name)
	path := f.accounts
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

func userdel(_ context.Context, f accountsFlags, args []string, stdio client.Stdio) error {
	name, _, err := f.parse(args)
	if err != nil {
		return err
	}
	name = lookupName(name)
	path := f.accounts
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
func importPlaintext(_ context.Context, f accountsFlags, args []string, stdio client.Stdio) error {
	plain, alg, err := f.parse(args)
	if err != nil {
		return err
	}
	path := f.accounts
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
		if name, err = normalizeName(name); err != nil {
			return fmt.Errorf("%s: line %d: %w", plain, n, err)
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
		if pw, err = normalizePassword(pw); err != nil {
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
