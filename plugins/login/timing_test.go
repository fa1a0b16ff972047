package main

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/bcrypt"
)

// recorder wraps a stored hash and records every check made against it:
// the hash's params (what the check costs) and the password's length.
type recorder struct {
	passwordHash
	mu    *sync.Mutex
	calls *[]string
}

func (r recorder) verify(password string) bool {
	r.mu.Lock()
	*r.calls = append(*r.calls, fmt.Sprintf("%s len=%d", r.params(), len(password)))
	r.mu.Unlock()
	return r.passwordHash.verify(password)
}

// TestUnknownUserSameWork: an unknown user's login does the same work as a
// known user's with a wrong password: as many checks, against hashes of the
// same algorithm and cost, with passwords of the same lengths, for every kind
// of password (one form, or several for accented text). It counts the work
// instead of timing it, so it holds on a machine however loaded;
// BenchmarkVerifyUnknownUser measures the times.
func TestUnknownUserSameWork(t *testing.T) {
	// Cheap costs: the test compares the work, it does not need it to be
	// expensive (the dummy hash takes whatever cost the file has).
	cheapBcrypt := func() (passwordHash, error) {
		enc, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
		return &bcryptHash{enc: string(enc), cost: bcrypt.MinCost}, err
	}
	cheapArgon := func() (passwordHash, error) { return newArgon2Hash("correct horse", 64, 1, 1) }
	for _, tc := range []struct {
		alg  string
		hash func() (passwordHash, error)
	}{{"argon2id", cheapArgon}, {"bcrypt", cheapBcrypt}} {
		t.Run(tc.alg, func(t *testing.T) {
			dir := t.TempDir()
			h, err := tc.hash()
			if err != nil {
				t.Fatal(err)
			}
			path := dir + "/accounts"
			if err := writeFileAtomic(path, (&accountList{accounts: []account{{name: "alice", hash: h}}}).format()); err != nil {
				t.Fatal(err)
			}
			s, err := openStore(path, 0, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var calls []string
			snap := s.snap.Load()
			s.snap.Store(&snapshot{
				byName: map[string]passwordHash{"alice": recorder{snap.byName["alice"], &mu, &calls}},
				dummy:  recorder{snap.dummy, &mu, &calls},
			})
			s.path = "" // no reload: the recorders stay
			for _, pw := range []string{"wrong password", "Cr\u00e8me br\u00fbl\u00e9e", "Cre\u0300me", "two\u00a0words \u00e9"} {
				calls = nil
				if s.verify("alice", pw) {
					t.Fatalf("alice / %q verified", pw)
				}
				known := slices.Clone(calls)
				calls = nil
				if s.verify("mallory", pw) {
					t.Fatalf("mallory verified")
				}
				if !slices.Equal(known, calls) || len(known) == 0 {
					t.Errorf("%+q: known user's checks %q, unknown user's %q; want the same work", pw, known, calls)
				}
			}
		})
	}
}

// BenchmarkVerifyUnknownUser times a wrong password for a known user and any
// password for an unknown one, in the same run: the two should be within a
// few percent.
//
//	go test -run '^$' -bench VerifyUnknownUser -count 6 ./plugins/login/
func BenchmarkVerifyUnknownUser(b *testing.B) {
	path := writeAccounts(b, b.TempDir(), "alice", "correct horse")
	s, err := openStore(path, 0, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	for _, user := range []string{"known", "unknown"} {
		b.Run(user, func(b *testing.B) {
			name := "alice"
			if user == "unknown" {
				name = "mallory"
			}
			for b.Loop() {
				if s.verify(name, "wrong password") {
					b.Fatal("verified")
				}
			}
		})
	}
}
