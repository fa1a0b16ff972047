package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// store holds the accounts the server checks against and re-reads the
// accounts file when it changes. There is no watcher goroutine: a request
// looks at the file's identity (device, inode, size, modification time) at
// most once per interval, and re-reads it when that changed. A file that no
// longer parses is logged and the previous accounts stay in force.
type store struct {
	path     string
	interval time.Duration
	log      hclog.Logger

	snap atomic.Pointer[snapshot]

	mu      sync.Mutex // serialises checks and reloads; requests never wait on it
	checked time.Time
	stamp   fileStamp
	dummies map[string]passwordHash // by params
}

// snapshot is one version of the accounts, never modified once published.
type snapshot struct {
	byName map[string]passwordHash
	// dummy is what an unknown user's password is checked against: a hash of
	// a random password with the params most accounts have.
	dummy passwordHash
}

// openStore loads the accounts file at path. With no path there are no
// accounts and every login fails, still after a full-cost check.
func openStore(path string, interval time.Duration, log hclog.Logger) (*store, error) {
	s := &store{path: path, interval: interval, log: log, dummies: map[string]passwordHash{}}
	if path == "" {
		l := &accountList{}
		snap, err := s.build(l)
		if err != nil {
			return nil, err
		}
		s.snap.Store(snap)
		return s, nil
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads and parses the file and publishes it. The identity is taken from
// the open descriptor, so it is the identity of the bytes read even if the
// file is replaced meanwhile.
func (s *store) load() error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("accounts file: %w (create it with `sockplay-login useradd --accounts %s NAME`)", err, s.path)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("accounts file: %w", err)
	}
	st := stampOf(fi)
	s.stamp = st
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return fmt.Errorf("accounts file %s: %w", s.path, err)
	}
	l, err := parseAccounts(s.path, data)
	if err != nil {
		return err
	}
	snap, err := s.build(l)
	if err != nil {
		return err
	}
	s.snap.Store(snap)
	if fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("accounts file is readable or writable by others; chmod 600 it", "path", s.path, "mode", fi.Mode().Perm().String())
	}
	weak := 0
	for _, a := range l.accounts {
		if a.hash.weak() {
			weak++
		}
	}
	var raw []string
	for _, a := range l.accounts {
		if _, err := normalizeName(a.name); err != nil {
			raw = append(raw, a.name)
		}
	}
	if len(raw) > 0 {
		s.log.Warn("user names that RFC 8265 UsernameCasePreserved refuses match only typed byte for byte; "+
			"rename them (userdel, useradd)", "path", s.path, "users", raw)
	}
	if weak > 0 {
		s.log.Warn("accounts hashed below OWASP's recommended cost; reset them with sockplay-login passwd", "path", s.path, "count", weak)
	}
	s.log.Info("accounts loaded", "path", s.path, "accounts", len(l.accounts))
	return nil
}

func (s *store) build(l *accountList) (*snapshot, error) {
	snap := &snapshot{byName: make(map[string]passwordHash, len(l.accounts))}
	for _, a := range l.accounts {
		snap.byName[a.name] = a.hash
	}
	model := l.commonHash()
	if model == nil {
		model = &argon2Hash{memory: argonMemory, time: argonTime, threads: argonThreads,
			salt: make([]byte, argonSaltLen), key: make([]byte, argonKeyLen)}
	}
	if d, ok := s.dummies[model.params()]; ok {
		snap.dummy = d
		return snap, nil
	}
	d, err := dummyHash(model)
	if err != nil {
		return nil, err
	}
	s.dummies[model.params()] = d
	snap.dummy = d
	return snap, nil
}

// refresh re-reads the file if it changed and interval has passed since the
// last look. A request that finds another one refreshing goes on with the
// accounts it has.
func (s *store) refresh() {
	if s.path == "" || !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.checked) < s.interval {
		return
	}
	s.checked = now
	fi, err := os.Stat(s.path)
	if err != nil {
		if s.stamp != (fileStamp{}) {
			s.log.Error("accounts file is gone; keeping the accounts loaded before", "path", s.path, "error", err)
			s.stamp = fileStamp{}
		}
		return
	}
	if stampOf(fi) == s.stamp {
		return
	}
	if err := s.load(); err != nil {
		// s.stamp is the new file's: the error is logged once per change.
		s.log.Error("accounts file not reloaded; keeping the accounts loaded before", "error", err)
	}
}

// verify reports whether password is name's. The name is looked up in its
// normalized form, and each of passwordForms(password) is checked in turn
// until one matches. An unknown name is checked against the dummy hash, with
// the same forms, so that it costs what a wrong password costs.
func (s *store) verify(name, password string) bool {
	s.refresh()
	snap := s.snap.Load()
	h, known := snap.byName[lookupName(name)]
	if !known {
		h = snap.dummy
	}
	ok := false
	for _, p := range passwordForms(password) {
		if ok = h.verify(p); ok {
			break
		}
	}
	return known && ok
}

// size returns how many accounts are loaded.
func (s *store) size() int { return len(s.snap.Load().byName) }
