package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// The costs the tools hash new passwords with: OWASP's Password Storage Cheat
// Sheet recommends argon2id with 19 MiB of memory, 2 iterations and 1 degree
// of parallelism, or bcrypt with a work factor of at least 10.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32

	bcryptCost = 10
)

// Bounds on the parameters read from an accounts file, so that a hand-edited
// line cannot make one check take a gigabyte or a minute.
const (
	maxArgonMemory  = 256 * 1024 // KiB
	maxArgonTime    = 16
	maxArgonThreads = 16
	maxBcryptCost   = 16
)

// passwordHash is a stored password: one of argon2id (PHC string format) or
// bcrypt (modular crypt format).
type passwordHash interface {
	// verify reports whether password matches, in time that does not depend
	// on where the two differ.
	verify(password string) bool
	// params names the algorithm and its cost, such as
	// "argon2id m=19456,t=2,p=1": two hashes with the same params take the
	// same time to check.
	params() string
	// weak reports whether the cost is below OWASP's recommendation.
	weak() bool
	// String is the encoded hash, as stored in the accounts file.
	String() string
}

var (
	_ passwordHash = (*argon2Hash)(nil)
	_ passwordHash = (*bcryptHash)(nil)
)

// algorithm is how the tools hash a new password.
type algorithm string

const (
	algArgon2id algorithm = "argon2id"
	algBcrypt   algorithm = "bcrypt"
)

func parseAlgorithm(s string) (algorithm, error) {
	switch algorithm(s) {
	case algArgon2id, algBcrypt:
		return algorithm(s), nil
	}
	return "", fmt.Errorf("hash %q: want argon2id or bcrypt", s)
}

// hashPassword hashes password with alg at OWASP's recommended cost and a new
// random salt.
func hashPassword(alg algorithm, password string) (passwordHash, error) {
	switch alg {
	case algBcrypt:
		if len(password) > 72 {
			return nil, errors.New("bcrypt takes passwords of at most 72 bytes; use argon2id")
		}
		enc, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
		if err != nil {
			return nil, fmt.Errorf("bcrypt: %w", err)
		}
		return &bcryptHash{enc: string(enc), cost: bcryptCost}, nil
	default:
		return newArgon2Hash(password, argonMemory, argonTime, argonThreads)
	}
}

// dummyHash returns a hash of a random password with the same params as like,
// so that checking an unknown user costs what checking a real one does.
func dummyHash(like passwordHash) (passwordHash, error) {
	var pw [24]byte
	rand.Read(pw[:])
	password := base64.RawStdEncoding.EncodeToString(pw[:])
	switch h := like.(type) {
	case *bcryptHash:
		enc, err := bcrypt.GenerateFromPassword([]byte(password), h.cost)
		if err != nil {
			return nil, fmt.Errorf("bcrypt: %w", err)
		}
		return &bcryptHash{enc: string(enc), cost: h.cost}, nil
	case *argon2Hash:
		d, err := newArgon2Hash(password, h.memory, h.time, h.threads)
		if err != nil {
			return nil, err
		}
		// Same salt and key lengths too: the key length is part of the work.
		if len(h.key) != len(d.key) || len(h.salt) != len(d.salt) {
			d.salt = make([]byte, len(h.salt))
			rand.Read(d.salt)
			d.key = argon2.IDKey([]byte(password), d.salt, d.time, d.memory, d.threads, uint32(len(h.key)))
		}
		return d, nil
	}
	return nil, fmt.Errorf("dummy hash: unknown hash type %T", like)
}

// parseHash decodes a hash from the accounts file.
func parseHash(s string) (passwordHash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2Hash(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil || len(s) != 60 {
			return nil, errors.New("malformed bcrypt hash")
		}
		if cost > maxBcryptCost {
			return nil, fmt.Errorf("bcrypt cost %d is above %d", cost, maxBcryptCost)
		}
		return &bcryptHash{enc: s, cost: cost}, nil
	}
	return nil, errors.New("unrecognised hash: want $argon2id$... or bcrypt $2b$...")
}

// argon2Hash is an argon2id hash, stored in the PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$SALT$KEY with SALT and KEY in unpadded
// standard base64.
type argon2Hash struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func newArgon2Hash(password string, memory, time uint32, threads uint8) (*argon2Hash, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, time, memory, threads, argonKeyLen)
	return &argon2Hash{memory: memory, time: time, threads: threads, salt: salt, key: key}, nil
}

func parseArgon2Hash(s string) (*argon2Hash, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return nil, errors.New("malformed argon2id hash: want $argon2id$v=19$m=M,t=T,p=P$SALT$KEY")
	}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return nil, fmt.Errorf("argon2id version %q: want v=%d", parts[2], argon2.Version)
	}
	var h argon2Hash
	var m, t, p uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); n != 3 || err != nil ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", m, t, p) {
		return nil, errors.New("malformed argon2id parameters: want m=M,t=T,p=P")
	}
	switch {
	case p < 1 || p > maxArgonThreads:
		return nil, fmt.Errorf("argon2id p=%d: want 1 to %d", p, maxArgonThreads)
	case t < 1 || t > maxArgonTime:
		return nil, fmt.Errorf("argon2id t=%d: want 1 to %d", t, maxArgonTime)
	case m < 8*p || m > maxArgonMemory:
		return nil, fmt.Errorf("argon2id m=%d: want %d to %d KiB", m, 8*p, maxArgonMemory)
	}
	h.memory, h.time, h.threads = m, t, uint8(p)
	var err error
	if h.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return nil, errors.New("malformed argon2id salt: want 8 to 64 bytes in unpadded base64")
	}
	if h.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return nil, errors.New("malformed argon2id key: want 16 to 64 bytes in unpadded base64")
	}
	return &h, nil
}

func (h *argon2Hash) verify(password string) bool {
	key := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

func (h *argon2Hash) params() string {
	return fmt.Sprintf("argon2id m=%d,t=%d,p=%d salt=%d key=%d", h.memory, h.time, h.threads, len(h.salt), len(h.key))
}

func (h *argon2Hash) weak() bool {
	// OWASP lists equivalent trade-offs (more iterations for less memory);
	// anything cheaper than m=19456,t=2 or its m*t product is weak.
	return h.memory < 7*1024 || uint64(h.memory)*uint64(h.time) < argonMemory*argonTime
}

func (h *argon2Hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.memory, h.time, h.threads,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

// bcryptHash is a bcrypt hash in its usual $2b$10$... form.
type bcryptHash struct {
	enc  string
	cost int
}

func (h *bcryptHash) verify(password string) bool {
	// CompareHashAndPassword compares in constant time; it refuses passwords
	// over 72 bytes before hashing, which only fails faster for a request
	// that could not match anyway.
	return bcrypt.CompareHashAndPassword([]byte(h.enc), []byte(password)) == nil
}

func (h *bcryptHash) params() string { return fmt.Sprintf("bcrypt cost=%d", h.cost) }
func (h *bcryptHash) weak() bool     { return h.cost < bcryptCost }
func (h *bcryptHash) String() string { return h.enc }
