package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"
)

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "alice", want: "alice"},
		{in: "Alice", want: "Alice"}, // case is kept: another account than alice
		{in: "Jos\u00e9", want: "Jos\u00e9"},
		{in: "Jose\u0301", want: "Jos\u00e9"},                 // NFD to NFC
		{in: "\uff41\uff4c\uff49\uff43\uff45", want: "alice"}, // full-width
		{in: "名前", want: "名前"},
		{in: "bob.smith-1_2", want: "bob.smith-1_2"},
		{in: "a b", err: "UsernameCasePreserved"},
		{in: "\u2603", err: "UsernameCasePreserved"},  // a symbol
		{in: "x\u0378", err: "UsernameCasePreserved"}, // unassigned
		{in: "a\uff1ab", err: "':'"},                  // a full-width colon becomes the file's separator
	} {
		got, err := normalizeName(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("normalizeName(%+q) = %+q, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("normalizeName(%+q) = %+q, %v; want %+q", tc.in, got, err, tc.want)
		}
	}
	if got := lookupName("\u2603"); got != "\u2603" {
		t.Errorf("lookupName of a refused name = %+q, want it unchanged", got)
	}
}

func TestNormalizePassword(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "correct horse", want: "correct horse"},
		{in: "Cr\u00e8me br\u00fbl\u00e9e 42", want: "Cr\u00e8me br\u00fbl\u00e9e 42"},
		{in: "Cre\u0300me bru\u0302le\u0301e 42", want: "Cr\u00e8me br\u00fbl\u00e9e 42"}, // NFD
		{in: "two\u00a0words", want: "two words"},                                         // macOS Option-Space
		{in: "two\u3000words", want: "two words"},                                         // ideographic space
		{in: "Pass\uff37ord", want: "Pass\uff37ord"},                                      // width kept: OpaqueString maps no width
		{in: "x\u0378yyyyyy", err: "OpaqueString"},                                        // unassigned
	} {
		got, err := normalizePassword(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("normalizePassword(%+q) = %+q, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("normalizePassword(%+q) = %+q, %v; want %+q", tc.in, got, err, tc.want)
		}
	}
}

func TestPasswordForms(t *testing.T) {
	nfc, nfd := "Cr\u00e8me 42", "Cre\u0300me 42"
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"plain ascii", []string{"plain ascii"}},
		{nfc, []string{nfc, nfd}},
		{nfd, []string{nfc, nfd}},
		{"a\u00a0\u00e9", []string{"a \u00e9", "a\u00a0\u00e9", "a\u00a0e\u0301"}},
		{"x\u0378", []string{"x\u0378"}}, // refused by the profile: as typed only
	} {
		if got := passwordForms(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("passwordForms(%+q) = %+q, want %+q", tc.in, got, tc.want)
		}
	}
}

// TestTextForms makes accounts with each tool, typing names and passwords in
// one form, and logs in over the wire in every form: NFC, NFD, full-width
// names, non-ASCII spaces in passwords. Every form of the right password
// logs in, and a wrong one still fails.
func TestTextForms(t *testing.T) {
	const (
		pwNFC = "Cr\u00e8me br\u00fbl\u00e9e 42"
		pwNFD = "Cre\u0300me bru\u0302le\u0301e 42"
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "accounts")
	plain := filepath.Join(dir, "users.txt")
	// import-plaintext: the name in NFD, the password with a no-break space.
	if err := os.WriteFile(plain, []byte("Zoe\u0308:"+strings.ReplaceAll(pwNFC, " ", "\u00a0")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		stdin string
		args  []string
	}{
		{pwNFC + "\n", []string{"useradd", "--accounts", path, "Jos\u00e9"}},              // typed NFC
		{pwNFD + "\n", []string{"useradd", "--accounts", path, "Rene\u0301e"}},            // typed NFD
		{"old password\n", []string{"useradd", "--accounts", path, "\uff4d\uff41\uff58"}}, // full-width "max"
		{pwNFD + "\n", []string{"passwd", "--accounts", path, "max"}},                     // passwd: NFD
		{"", []string{"import-plaintext", "--accounts", path, plain}},
	} {
		if code, out, errs := runTool(t, step.stdin, step.args...); code != 0 {
			t.Fatalf("%v: exit %d, %q %q", step.args, code, out, errs)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Jos\u00e9:", "Ren\u00e9e:", "max:", "Zo\u00eb:"} {
		if !strings.Contains(string(data), "\n"+name) {
			t.Errorf("the accounts file has no line for %+q (names are stored normalized):\n%s", name, data)
		}
	}

	in, _ := start(t, quick(path))
	c := dialFrom(t, in.Addr, "", 60*time.Second)
	spaced := strings.ReplaceAll(pwNFC, " ", "\u3000")
	for _, tc := range []struct{ user, pw, want string }{
		{"Jos\u00e9", pwNFC, "success"},
		{"Jos\u00e9", pwNFD, "success"},
		{"Jose\u0301", pwNFD, "success"},
		{"Jose\u0301", pwNFC, "success"},
		{"Jose\u0301", "Creme brulee 42", "fail"},
		{"jos\u00e9", pwNFC, "fail"}, // case is kept
		{"Ren\u00e9e", pwNFC, "success"},
		{"Rene\u0301e", pwNFD, "success"},
		{"\uff52\uff45\uff4e\uff45\u0301\uff45", pwNFC, "fail"}, // full-width lower case: another name
		{"max", pwNFC, "success"},
		{"\uff4d\uff41\uff58", pwNFD, "success"},
		{"max", "old password", "fail"},
		{"Zo\u00eb", pwNFC, "success"},
		{"Zoe\u0308", spaced, "success"},
		{"Zoe\u0308", strings.ReplaceAll(pwNFD, " ", "\u00a0"), "success"},
	} {
		if r := mustLogin(t, c, tc.user, tc.pw); r != tc.want {
			t.Errorf("%+q / %+q: %q, want %q", tc.user, tc.pw, r, tc.want)
		}
	}
}

// TestLegacyHashes: an accounts file written before normalization holds
// hashes of the bytes as they were typed, NFD or with a no-break space, and
// names the profile refuses. They still log in: typed as before, and (for
// NFC and NFD) typed in the other form; a refused name matches as typed.
func TestLegacyHashes(t *testing.T) {
	const (
		nfc = "Cr\u00e8me br\u00fbl\u00e9e 42"
		nfd = "Cre\u0300me bru\u0302le\u0301e 42"
	)
	nbsp := "no\u00a0break\u00a0space"
	if norm.NFD.String(nfc) != nfd {
		t.Fatal("test data: nfd is not the NFD form of nfc")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "accounts")
	// Written as the old tools did: the hash of the raw password; the name
	// as typed (NFD, or a symbol UsernameCasePreserved refuses).
	l := &accountList{accounts: []account{
		{name: "Rene\u0301e", hash: testHash(t, nfd)},
		{name: "nina", hash: testHash(t, nbsp)},
		{name: "snow\u2603", hash: testHash(t, "snowman pass")},
	}}
	if err := writeFileAtomic(path, l.format()); err != nil {
		t.Fatal(err)
	}
	in, logs := start(t, quick(path))
	c := dialFrom(t, in.Addr, "", 60*time.Second)
	for _, tc := range []struct{ user, pw, want string }{
		{"Rene\u0301e", nfd, "success"}, // as stored
		{"Ren\u00e9e", nfc, "success"},  // the other form of both
		{"Ren\u00e9e", "Creme brulee 42", "fail"},
		{"nina", nbsp, "success"},                 // as stored
		{"nina", "no break space", "fail"},        // the normalized form is not what was hashed
		{"snow\u2603", "snowman pass", "success"}, // refused name, byte for byte
		{"snow\u2603x", "snowman pass", "fail"},
	} {
		if r := mustLogin(t, c, tc.user, tc.pw); r != tc.want {
			t.Errorf("%+q / %+q: %q, want %q", tc.user, tc.pw, r, tc.want)
		}
	}
	if !strings.Contains(logs.String(), "UsernameCasePreserved refuses") {
		t.Error("no warning about the name the profile refuses")
	}
	// passwd re-stores a legacy account: the name and the hash are then of
	// the normalized forms.
	if code, out, errs := runTool(t, nfd+"\n", "passwd", "--accounts", path, "Ren\u00e9e"); code != 0 {
		t.Fatalf("passwd: exit %d, %q %q", code, out, errs)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseAccounts(path, data)
	if err != nil {
		t.Fatal(err)
	}
	i := after.index("Ren\u00e9e")
	if i < 0 || !strings.Contains(string(data), "\nRen\u00e9e:") {
		t.Fatalf("after passwd, no line for the NFC name:\n%s", data)
	}
	if h := after.accounts[i].hash; !h.verify(nfc) || h.verify(nfd) {
		t.Errorf("after passwd the hash is not of the normalized (NFC) password")
	}
}

func TestParseAccountsNormalizedDuplicates(t *testing.T) {
	h := testHash(t, "correct horse").String()
	data := "Jos\u00e9:" + h + "\nJose\u0301:" + h + "\n"
	if _, err := parseAccounts("f", []byte(data)); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Fatalf("NFC and NFD of one name: %v, want a duplicate error", err)
	}
}
