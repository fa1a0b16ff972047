package main

import (
	"fmt"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Text that people type comes in several forms: "é" is one code point from
// most keyboards (NFC) and two, "e" and a combining accent, from some input
// methods and macOS APIs (NFD); a space may be U+00A0 (macOS's Option-Space)
// or U+3000 (an ideographic space) instead of U+0020; a Latin letter may be
// full-width. The bytes differ, so the hashes differ, and a password typed
// on one keyboard would fail from another. Names and passwords are therefore
// normalized with the PRECIS profiles of RFC 8265 before they are stored,
// hashed or compared (see README.md, "Text forms"):
//
//   - user names with UsernameCasePreserved (RFC 8265 section 3.4): full-width
//     and half-width forms mapped to their usual ones, NFC, and the PRECIS
//     IdentifierClass (letters, digits and printable ASCII). Case is kept:
//     "Alice" and "alice" stay two accounts, as they were;
//   - passwords with OpaqueString (RFC 8265 section 4.2): every non-ASCII
//     space mapped to U+0020, NFC, and the PRECIS FreeformClass.

// normalizeName returns name in the form accounts are stored and looked up
// under, or an error saying why the profile refuses it.
func normalizeName(name string) (string, error) {
	n, err := precis.UsernameCasePreserved.String(name)
	if err != nil {
		return "", fmt.Errorf("user name refused by RFC 8265 UsernameCasePreserved: %w", err)
	}
	if err := validName(n); err != nil {
		return "", fmt.Errorf("user name, normalized: %w", err)
	}
	return n, nil
}

// lookupName is the key a name typed at login is looked up under: its
// normalized form, or the name itself when the profile refuses it (an
// account from before normalization, whose name then matches only as
// typed, byte for byte).
func lookupName(name string) string {
	if n, err := normalizeName(name); err == nil {
		return n
	}
	return name
}

// normalizePassword returns the form of password that is hashed and stored,
// or an error saying why the profile refuses it.
func normalizePassword(password string) (string, error) {
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("password refused by RFC 8265 OpaqueString: %w", err)
	}
	if err := validPassword(p); err != nil {
		return "", fmt.Errorf("password, normalized: %w", err)
	}
	return p, nil
}

// passwordForms returns the forms of a typed password to check against a
// stored hash, in order, without repeats: first the normalized form, which
// is all the tools store now; then, for hashes stored before normalization
// (from the bytes as they were typed then), the password as typed now, and
// its NFC and NFD forms. So an old hash still verifies when the password is
// typed in the form it was stored in, or in the other of the two usual
// forms. A password in plain ASCII has one form; one with accented letters
// two (NFC and NFD). The count depends only on what was typed, never on the
// account, so it tells nothing about whether a name exists.
func passwordForms(password string) []string {
	forms := make([]string, 0, 4)
	add := func(s string) {
		for _, f := range forms {
			if f == s {
				return
			}
		}
		forms = append(forms, s)
	}
	if p, err := normalizePassword(password); err == nil {
		add(p)
	}
	add(password)
	add(norm.NFC.String(password))
	add(norm.NFD.String(password))
	return forms
}
