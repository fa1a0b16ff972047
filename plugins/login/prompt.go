package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/sockplay/sockplay/sdk/client"
)

// prompter reads a user name and passwords for the tools: from the terminal,
// with prompts on stderr and no echo for passwords, when stdin is one; else
// one line of stdin per answer, without prompts, so that scripts and tests
// can pipe them in.
type prompter struct {
	in  *bufio.Reader
	out io.Writer
	fd  int
	tty bool
}

func newPrompter(stdio client.Stdio) *prompter {
	p := &prompter{in: bufio.NewReader(stdio.In), out: stdio.Err, fd: -1}
	if f, ok := stdio.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty, p.fd = true, int(f.Fd())
	}
	return p
}

// line reads one line, without its line end.
func (p *prompter) line(prompt string) (string, error) {
	if p.tty {
		fmt.Fprint(p.out, prompt)
	}
	s, err := p.in.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || s == "") {
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("no %s on stdin", strings.ToLower(strings.TrimSuffix(prompt, ": ")))
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// password reads a password, without echo on a terminal. If ctx ends while
// the terminal is waiting, its echo is restored before returning.
func (p *prompter) password(ctx context.Context, prompt string) (string, error) {
	if !p.tty {
		return p.line(prompt)
	}
	fmt.Fprint(p.out, prompt)
	state, err := term.GetState(p.fd)
	if err != nil {
		return "", err
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	// This goroutine outlives a cancelled read, blocked on the terminal until
	// the process exits, which it is about to do.
	go func() {
		b, err := term.ReadPassword(p.fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(p.out)
		return string(r.b), r.err
	case <-ctx.Done():
		_ = term.Restore(p.fd, state)
		fmt.Fprintln(p.out)
		return "", ctx.Err()
	}
}

// newPassword reads a password to store: twice on a terminal, and checked
// for what the wire can carry and for length. It returns it normalized
// (normalizePassword), the form that is hashed.
func (p *prompter) newPassword(ctx context.Context) (string, error) {
	pw, err := p.password(ctx, "Password: ")
	if err != nil {
		return "", err
	}
	if p.tty {
		again, err := p.password(ctx, "Retype password: ")
		if err != nil {
			return "", err
		}
		if a, err := normalizePassword(again); err != nil || a != mustNormal(pw) {
			return "", errors.New("the passwords differ")
		}
	}
	if err := validPassword(pw); err != nil {
		return "", err
	}
	pw, err = normalizePassword(pw)
	if err != nil {
		return "", err
	}
	if n := len([]rune(pw)); n < minPasswordLen {
		return "", fmt.Errorf("password has %d characters: want at least %d", n, minPasswordLen)
	}
	return pw, nil
}

// minPasswordLen is NIST SP 800-63B's minimum for a password the user
// chooses. The tutorial's own passwords, brought in by import-plaintext, are
// only warned about.
const minPasswordLen = 8

// mustNormal is password normalized, or password itself when the profile
// refuses it (newPassword then fails on it anyway).
func mustNormal(password string) string {
	if p, err := normalizePassword(password); err == nil {
		return p
	}
	return password
}
