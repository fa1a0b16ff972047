package rules

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk/protocol"
)

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "127.0.0.0/8", want: "127.0.0.0/8"},
		{in: " 10.0.0.0/8 ", want: "10.0.0.0/8"},
		{in: "127.0.0.2", want: "127.0.0.2/32"},
		{in: "::1", want: "::1/128"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "::ffff:127.0.0.0/104", want: "127.0.0.0/8"},
		{in: "127.0.0.1/33", err: `"127.0.0.1/33" is not a CIDR`},
		{in: "127.0.0.1/8", err: "did you mean 127.0.0.0/8"},
		{in: "localhost", err: `"localhost" is not a CIDR`},
		{in: "", err: "is not a CIDR"},
		{in: "fe80::1%eth0", err: "is not a CIDR"},
		{in: "::ffff:0:0/80", err: "IPv4-mapped prefix shorter than /96"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePrefix(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want error containing %q", tc.in, p, err, tc.err)
				}
				return
			}
			if err != nil || p.String() != tc.want {
				t.Fatalf("ParsePrefix(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
			}
		})
	}
}

func TestParsePrefixesOverlap(t *testing.T) {
	_, err := ParsePrefixes("allow", []string{"127.0.0.0/8", "10.0.0.0/8", "127.0.0.2/32"})
	if err == nil || err.Error() != "allow: 127.0.0.0/8 and 127.0.0.2/32 overlap" {
		t.Fatalf("err = %v", err)
	}
	if _, err := ParsePrefixes("deny", []string{"127.0.0.2", "127.0.0.3"}); err != nil {
		t.Fatal(err)
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in    string
		rate  float64
		burst uint32
		err   string
	}{
		{in: "10", rate: 10, burst: 10},
		{in: "10/s", rate: 10, burst: 10},
		{in: "10/s:20", rate: 10, burst: 20},
		{in: "30/m", rate: 0.5, burst: 1},
		{in: "0.5:3", rate: 0.5, burst: 3},
		{in: "2.5", rate: 2.5, burst: 3},
		{in: "", err: `"" is not a number`},
		{in: "fast", err: `"fast" is not a number`},
		{in: "10/h", err: `unit "h" is neither s nor m`},
		{in: "0", err: "must be positive"},
		{in: "-1", err: "must be positive"},
		{in: "NaN", err: "is not a number"},
		{in: "Inf", err: "is not a number"},
		{in: "10:0", err: `burst "0"`},
		{in: "10:x", err: `burst "x"`},
		{in: "1e12", err: "more than 10^9"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, b, err := ParseRate(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "want RATE") {
					t.Fatalf("ParseRate(%q) = %v, %v, %v; want error containing %q", tc.in, r, b, err, tc.err)
				}
				return
			}
			if err != nil || r != tc.rate || b != tc.burst {
				t.Fatalf("ParseRate(%q) = %v, %v, %v; want %v, %v", tc.in, r, b, err, tc.rate, tc.burst)
			}
		})
	}
}

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *protocol.Rules
		err  string
		zero bool
	}{
		{name: "nil", in: nil, zero: true},
		{name: "empty", in: &protocol.Rules{}, zero: true},
		{name: "allow", in: &protocol.Rules{Allow: []string{"127.0.0.0/8"}, Deny: []string{"127.0.0.3"}}},
		{name: "bad allow", in: &protocol.Rules{Allow: []string{"127.0.0.0/40"}}, err: "allow: "},
		{name: "overlapping deny", in: &protocol.Rules{Deny: []string{"::/0", "::1"}}, err: "deny: ::/0 and ::1/128 overlap"},
		{name: "bad proxy", in: &protocol.Rules{ProxyProtocol: []string{"x"}}, err: "proxy_protocol: "},
		{name: "negative rate", in: &protocol.Rules{RatePerSource: -1, RateBurst: 1}, err: "rate_per_source -1"},
		{name: "rate without burst", in: &protocol.Rules{RatePerSource: 1}, err: "rate_burst 0"},
		{name: "limits", in: &protocol.Rules{MaxConns: 3, MaxPerSource: 1, RatePerSource: 2, RateBurst: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Compile(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Compile = %v; want error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.IsZero() != tc.zero {
				t.Fatalf("IsZero = %v, want %v", r.IsZero(), tc.zero)
			}
			if !tc.zero {
				back, err := Compile(r.Proto())
				if err != nil || back.String() != r.String() {
					t.Fatalf("round trip: %v, %v; want %v", back, err, r)
				}
			}
		})
	}
}

func TestMerge(t *testing.T) {
	all := &protocol.Rules{Allow: []string{"127.0.0.0/8"}, MaxPerSource: 4, RatePerSource: 1, RateBurst: 1}
	own := &protocol.Rules{Allow: []string{"127.0.0.2"}, MaxConns: 9}
	got, err := Compile(Merge(all, own))
	if err != nil {
		t.Fatal(err)
	}
	if want := "allow=127.0.0.2/32 max-conns=9 max-per-source=4 rate-per-source=1/s:1"; got.String() != want {
		t.Fatalf("merged %q, want %q", got, want)
	}
	if Merge(nil, nil) != nil {
		t.Fatal("Merge(nil, nil) is not nil")
	}
}

func mustCompile(t testing.TB, p *protocol.Rules) *Rules {
	t.Helper()
	r, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGateOrderAndCounts(t *testing.T) {
	a2, a3, a4 := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("10.1.1.1")
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff:2")
	g := NewGate(mustCompile(t, &protocol.Rules{
		Allow: []string{"127.0.0.0/8", "2001:db8::/32"}, Deny: []string{"127.0.0.3"},
		MaxConns: 4, MaxPerSource: 2, RatePerSource: 1e-9, RateBurst: 3,
	}))
	now := time.Unix(1000, 0)
	steps := []struct {
		ip   netip.Addr
		want Reason
	}{
		{a3, Deny},         // deny wins over allow
		{a4, NotAllowed},   // outside every allow CIDR
		{a2, ""}, {a2, ""}, // two open from .2
		{a2, MaxPerSource},   // a third is over the per-source limit, and takes no token
		{v6a, ""}, {v6b, ""}, // the same /64: one source
		{v6a, MaxConns}, // four open in all
		{netip.MustParseAddr("::ffff:127.0.0.3"), Deny}, // an IPv4-mapped address is IPv4
	}
	for i, s := range steps {
		if got := g.Admit(s.ip, now); got != s.want {
			t.Fatalf("step %d: Admit(%s) = %q, want %q", i, s.ip, got, s.want)
		}
	}
	g.Release(v6b)
	if got := g.Admit(v6a, now); got != "" {
		t.Fatalf("after a release in the /64: %q", got)
	}
	if got := g.Admit(v6a, now); got != MaxConns {
		t.Fatalf("fifth connection: %q, want max-conns", got)
	}
	g.Release(a2)
	// .2 has used 2 of its 3 tokens; one more admission, then the rate refuses.
	if got := g.Admit(a2, now); got != "" {
		t.Fatalf("after a release: %q", got)
	}
	g.Release(a2)
	g.Release(a2)
	if got := g.Admit(a2, now); got != Rate {
		t.Fatalf("fourth connection from .2 with a burst of 3: %q, want rate", got)
	}
	all, src := g.Open(a2)
	if all != 2 || src != 0 {
		t.Fatalf("open = %d, %d from .2; want 2, 0", all, src)
	}
	// A release of something never counted changes nothing.
	g.Release(netip.MustParseAddr("127.0.0.9"))
	if all, _ := g.Open(a2); all != 2 {
		t.Fatalf("open after a stray release = %d", all)
	}
}

func TestGateSetRulesKeepsCounts(t *testing.T) {
	a := netip.MustParseAddr("127.0.0.2")
	now := time.Unix(1, 0)
	g := NewGate(mustCompile(t, &protocol.Rules{MaxPerSource: 3}))
	for range 3 {
		if r := g.Admit(a, now); r != "" {
			t.Fatal(r)
		}
	}
	g.SetRules(mustCompile(t, &protocol.Rules{MaxPerSource: 2}))
	if r := g.Admit(a, now); r != MaxPerSource {
		t.Fatalf("over the new limit: %q", r)
	}
	g.SetRules(nil)
	if g.Active() || g.Admit(a, now) != "" {
		t.Fatal("no rules still refuse")
	}
}

func TestGateDatagramsAndRefusals(t *testing.T) {
	a, b := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.4")
	g := NewGate(mustCompile(t, &protocol.Rules{Deny: []string{"127.0.0.4"}, RatePerSource: 10, RateBurst: 2}))
	now := time.Unix(5, 0)
	var reasons []Reason
	for range 4 {
		reasons = append(reasons, g.AdmitDatagram(a, now))
	}
	reasons = append(reasons, g.AdmitDatagram(b, now), g.AdmitDatagram(a, now.Add(100*time.Millisecond)))
	want := []Reason{"", "", Rate, Rate, Deny, ""}
	for i := range want {
		if reasons[i] != want[i] {
			t.Fatalf("datagram reasons %q, want %q", reasons, want)
		}
	}
	// One log line per source per second, every refusal counted.
	logs := 0
	for i := range 5 {
		if g.Refuse(Rate, a, now.Add(time.Duration(i)*300*time.Millisecond)) {
			logs++
		}
	}
	if logs != 2 { // at 0 s and 1.2 s
		t.Fatalf("%d log lines for 5 refusals over 1.2 s, want 2", logs)
	}
	if !g.Refuse(Deny, b, now) {
		t.Fatal("another source's first refusal is not logged")
	}
	if got := g.Refused(); got[Rate] != 5 || got[Deny] != 1 || len(got) != 2 {
		t.Fatalf("Refused() = %v", got)
	}
}

// The token buckets are bounded by MaxSources whatever the sources (issue
// 27, kind 6: spoofed UDP sources grew the table for ever): past it the one
// used least recently goes, in constant time. A source that keeps sending
// keeps its bucket however many others come; one silent for MaxSources
// newer sources starts again full.
func TestGateBoundsBuckets(t *testing.T) {
	g := NewGate(mustCompile(t, &protocol.Rules{RatePerSource: 1, RateBurst: 1}))
	now := time.Unix(1, 0) // one instant: no bucket refills
	a := netip.MustParseAddr("192.0.2.1")
	if g.AdmitDatagram(a, now) != "" || g.AdmitDatagram(a, now) != Rate {
		t.Fatal("a's first datagram refused, or its second admitted")
	}
	spoofed := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range MaxSources - 1 { // a is the oldest now, and still kept
		g.AdmitDatagram(spoofed(i), now)
	}
	if g.AdmitDatagram(a, now) != Rate { // used: the newest again
		t.Fatal("a lost its bucket within MaxSources sources")
	}
	for i := range 3 * MaxSources {
		g.AdmitDatagram(spoofed(MaxSources+i), now)
		if i%4096 == 0 && g.AdmitDatagram(a, now) != Rate { // a keeps sending: its bucket stays
			t.Fatalf("a, sending all along, lost its bucket after %d new sources", i)
		}
	}
	if n := g.Sources(); n != MaxSources {
		t.Fatalf("%d token buckets after %d sources, want MaxSources (%d)", n, 4*MaxSources, MaxSources)
	}
	for i := range MaxSources { // a is silent: it goes
		g.AdmitDatagram(spoofed(5*MaxSources+i), now)
	}
	if g.AdmitDatagram(a, now) != "" {
		t.Fatal("a, silent for MaxSources new sources, is still refused")
	}
}

// The sources of refusal lines are bounded too: past maxLogged sources
// within a second the rest are counted, not logged.
func TestGateBoundsLogged(t *testing.T) {
	g := NewGate(nil)
	now := time.Unix(1, 0)
	logged := 0
	for i := range 2 * maxLogged {
		if g.Refuse(Deny, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now) {
			logged++
		}
	}
	if logged != maxLogged || g.Refused()[Deny] != 2*maxLogged {
		t.Fatalf("%d of %d refusals within a second logged (counted %d), want %d", logged, 2*maxLogged, g.Refused()[Deny], maxLogged)
	}
	if !g.Refuse(Deny, netip.MustParseAddr("192.0.2.9"), now.Add(time.Second)) {
		t.Fatal("a new source's refusal a second later is not logged")
	}
}

// Admitting datagrams from new sources costs the same, full table or not.
func BenchmarkAdmitDatagramNewSources(b *testing.B) {
	g := NewGate(&Rules{Rate: 1000, Burst: 1})
	now := time.Unix(1, 0)
	for i := 0; b.Loop(); i++ {
		g.AdmitDatagram(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.2":        "127.0.0.2",
		"::ffff:127.0.0.2": "127.0.0.2",
		"2001:db8:1:2:3::": "2001:db8:1:2::",
		"::1":              "::",
	} {
		if got := Source(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("Source(%s) = %s, want %s", in, got, want)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10", "10/s:20", "30/m", "0.5:3", "1e9", "x", "10/h", ":", "/", "5/m:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, b, err := ParseRate(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "rate ") {
				t.Fatalf("error %q does not name the rate", err)
			}
			return
		}
		if r <= 0 || b == 0 {
			t.Fatalf("ParseRate(%q) = %v, %v with no error", s, r, b)
		}
		if _, err := Compile(&protocol.Rules{RatePerSource: r, RateBurst: b}); err != nil {
			t.Fatalf("ParseRate(%q) = %v, %v, which Compile refuses: %v", s, r, b, err)
		}
		r2, b2, err := ParseRate(FormatRate(r, b))
		if err != nil || b2 != b || r2 != r {
			t.Fatalf("round trip of %q: %v, %v, %v; want %v, %v", s, r2, b2, err, r, b)
		}
	})
}

func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{"127.0.0.0/8", "127.0.0.2,127.0.0.3", "::1", "10.0.0.0/8,10.1.0.0/16", "1.2.3.4/33", "::ffff:1.2.3.0/120", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePrefixes("allow", SplitList(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "allow: ") {
				t.Fatalf("error %q does not name the list", err)
			}
			return
		}
		for i, p := range ps {
			if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() {
				t.Fatalf("ParsePrefixes(%q)[%d] = %v: not canonical", s, i, p)
			}
			for _, q := range ps[:i] {
				if p.Overlaps(q) {
					t.Fatalf("ParsePrefixes(%q) kept overlapping %v and %v", s, q, p)
				}
			}
			back, err := ParsePrefix(p.String())
			if err != nil || back != p {
				t.Fatalf("round trip of %v: %v, %v", p, back, err)
			}
		}
	})
}
