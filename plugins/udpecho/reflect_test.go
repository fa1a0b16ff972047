package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

// logBuffer collects the plugin's log, for the tests that count its lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogged serves udpecho with options, its log kept in the returned
// buffer as well as in the test's.
func startLogged(t *testing.T, options map[string]string) (*sdktest.Instance, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	p := Plugin()
	build := p.UDP
	p.UDP = func(cfg sdk.Config) (sdk.PacketHandler, error) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "udpecho", Level: hclog.Debug,
			Output: io.MultiWriter(logs, sdktest.Logger(t, "udpecho").StandardWriter(&hclog.StandardLoggerOptions{}))})
		return build(cfg)
	}
	return sdktest.Start(t, p, options), logs
}

// bindUDP returns a UDP socket bound to ip:port (port 0 picks one), or skips
// the test when that port cannot be had (a privileged port without root).
func bindUDP(t *testing.T, ip string, port int) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
	if errors.Is(err, syscall.EACCES) {
		t.Skipf("bind %s:%d: %v (privileged ports need root)", ip, port, err)
	}
	if err != nil {
		t.Fatalf("bind %s:%d: %v", ip, port, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// settle sends a probe from its own socket and waits for the reply. The
// plugin reads its socket in order with one goroutine and a reply on
// loopback is in its receiver's queue when the send returns, so once the
// probe is answered, every datagram sent before it has been answered or
// dropped, and any reply to it is waiting to be read.
func settle(t *testing.T, server *net.UDPAddr, want string) {
	t.Helper()
	p := bindUDP(t, "127.0.0.9", 0)
	if _, err := p.WriteToUDP([]byte("probe"), server); err != nil {
		t.Fatal(err)
	}
	_ = p.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := p.Read(buf)
	if err != nil || string(buf[:n]) != want {
		t.Fatalf("probe: %q, %v; want %q", buf[:n], err, want)
	}
}

// pending reads what is already queued on c, without waiting for more: the
// short deadline only ends the read of an empty queue (see settle).
func pending(c *net.UDPConn) [][]byte {
	var got [][]byte
	buf := make([]byte, 1<<16)
	for range 100000 {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		got = append(got, bytes.Clone(buf[:n]))
	}
	return got
}

func TestRefusedPort(t *testing.T) {
	const own = 12345
	for _, tc := range []struct {
		port   int
		refuse bool
	}{
		{0, true}, {7, true}, {9, true}, {13, true}, {17, true}, {19, true}, {37, true},
		{53, true}, {69, true}, {111, true}, {123, true}, {137, true}, {161, true}, {389, true}, {520, true},
		{1023, true}, {2049, true}, {1900, true}, {3702, true}, {5353, true}, {11211, true}, {26000, true}, {27015, true},
		{own, true},
		{1024, false}, {32768, false}, {54321, false}, {60999, false}, {65535, false},
	} {
		if why := refusedPort(tc.port, own); (why != "") != tc.refuse {
			t.Errorf("refusedPort(%d) = %q, want refused %v", tc.port, why, tc.refuse)
		}
	}
}

// TestReflectorPortsGetNoReply sends from the ports of services that answer
// anything (echo, chargen, daytime, qotd, time, DNS, NTP, SSDP, memcached...)
// and from udpecho's own port on another address: none gets a reply, each
// kind of drop is logged, and the log stays at one line a second however
// many arrive. A client port next to them is answered.
func TestReflectorPortsGetNoReply(t *testing.T) {
	in, logs := startLogged(t, nil)
	server, err := net.ResolveUDPAddr("udp", in.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ports := []int{7, 13, 17, 19, 37, 53, 123, 1900, 5353, 11211, server.Port}
	start := time.Now()
	var socks []*net.UDPConn
	for _, port := range ports {
		c := bindUDP(t, "127.0.0.2", port)
		socks = append(socks, c)
		for range 20 { // 220 datagrams in all, far more than one warning's worth
			if _, err := c.WriteToUDP([]byte("loop?"), server); err != nil {
				t.Fatal(err)
			}
		}
	}
	client := bindUDP(t, "127.0.0.2", 0)
	if _, err := client.WriteToUDP([]byte("hi"), server); err != nil {
		t.Fatal(err)
	}
	settle(t, server, "hello probe")
	for i, c := range socks {
		if got := pending(c); len(got) != 0 {
			t.Errorf("source port %d got %d replies, first %q", ports[i], len(got), got[0])
		}
	}
	if got := pending(client); len(got) != 1 || string(got[0]) != "hello hi" {
		t.Errorf("client port: %q, want one reply, hello hi", got)
	}
	text := logs.String()
	warns := strings.Count(text, "datagram from a service port dropped")
	t.Logf("%d datagrams from service ports, %d warnings", 20*len(ports), warns)
	if most := 2 + int(time.Since(start)/time.Second); warns < 1 || warns > most {
		t.Errorf("%d warnings for %d dropped datagrams: want 1 to %d (one a second)", warns, 20*len(ports), most)
	}
	if !strings.Contains(text, "reason=") || !strings.Contains(text, "suppressed=") {
		t.Errorf("the warning does not give its reason and count:\n%s", text)
	}
}

// TestRateLimitOnByDefault: with no options, a source that sends fast is
// answered for its burst (one second's worth, 100) and then at 100 a second,
// while another source is answered.
func TestRateLimitOnByDefault(t *testing.T) {
	in, logs := startLogged(t, nil)
	server, _ := net.ResolveUDPAddr("udp", in.Addr)
	flood := bindUDP(t, "127.0.0.2", 0)
	_ = flood.SetReadBuffer(1 << 20)
	const sent = 300
	start := time.Now()
	answered := 0
	for i := range sent {
		if _, err := flood.WriteToUDP([]byte("x"), server); err != nil {
			t.Fatal(err)
		}
		if i%25 == 24 { // in groups, so that no socket buffer overflows
			settle(t, server, "hello probe")
			answered += len(pending(flood))
		}
	}
	elapsed := time.Since(start)
	limit := 100 + int(100*elapsed.Seconds()) + 1
	t.Logf("%d of %d answered in %s (limit %d)", answered, sent, elapsed.Round(time.Millisecond), limit)
	if answered < 100 || answered > limit {
		t.Errorf("%d answered; want the burst of 100 at least and at most %d", answered, limit)
	}
	if n := strings.Count(logs.String(), "over the per-source rate limit"); n < 1 || n > int(elapsed.Seconds())+2 {
		t.Errorf("%d rate-limit warnings in %s: want at least one, at most one a second", n, elapsed)
	}
}

// TestReplyNoLargerThanRequest: a reply is at most its request plus the
// allowance max-growth (6 bytes by default: the tutorial's "hello "); a
// longer prefix is refused at start unless max-growth is raised.
func TestReplyNoLargerThanRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options map[string]string
		growth  int
		err     string
	}{
		{"tutorial prefix", nil, 6, ""},
		{"plain echo", map[string]string{"prefix": ""}, 0, ""},
		{"plain echo, no growth allowed", map[string]string{"prefix": "", "max-growth": "0"}, 0, ""},
		{"long prefix refused", map[string]string{"prefix": "a long greeting: "}, 0, "udpecho.max-growth=17"},
		{"tutorial prefix with no growth allowed", map[string]string{"max-growth": "0"}, 0, "max-growth=0"},
		{"long prefix allowed", map[string]string{"prefix": "a long greeting: ", "max-growth": "17"}, 17, ""},
		{"bad max-growth", map[string]string{"max-growth": "-1"}, 0, "udpecho.max-growth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err != "" {
				err := sdktest.Configure(t, Plugin(), tc.options)
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("configure: %v, want an error with %q", err, tc.err)
				}
				return
			}
			in := sdktest.Start(t, Plugin(), tc.options)
			c := in.DialUDP(t)
			for _, size := range []int{0, 1, 5, 100, 1400, sdk.MaxDatagram - 6, sdk.MaxDatagram} {
				payload := bytes.Repeat([]byte{'p'}, size)
				got := roundTrip(t, c, payload)
				if len(got) > size+tc.growth {
					t.Errorf("%d-byte request: %d-byte reply, more than %d larger", size, len(got), tc.growth)
				}
			}
		})
	}
}

// TestEchoLoopEnds plays another echo service on 127.0.0.3 at an ordinary
// port, which answers everything it gets, and starts a loop as a forged
// datagram would: it sends first. udpecho answers once; the other echo's
// answer to that comes back holding udpecho's reply, and is dropped: the loop
// ends after one round, with udpecho's prefix or without (a plain echo), and
// with the rate limit off. The loop here is slow (each round waits for a
// probe): a rate limit alone would let it run forever.
func TestEchoLoopEnds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		options     map[string]string
		mirrorPrefx string // the other echo's own prefix
		maxRounds   int
	}{
		{"plain mirror", nil, "", 1},
		{"prefixed mirror", nil, "re: ", 1},
		{"plain echo both sides", map[string]string{"prefix": ""}, "", 1},
		{"plain echo, no rate limit", map[string]string{"prefix": "", "rate": "0"}, "", 1},
		{"prefixed, no rate limit", map[string]string{"rate": "0"}, "re: ", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, logs := startLogged(t, tc.options)
			server, _ := net.ResolveUDPAddr("udp", in.Addr)
			mirror := bindUDP(t, "127.0.0.3", 0)
			if _, err := mirror.WriteToUDP([]byte("start"), server); err != nil {
				t.Fatal(err)
			}
			probeReply := "hello probe"
			if p, ok := tc.options["prefix"]; ok && p == "" {
				probeReply = "probe"
			}
			rounds := 0
			for rounds < 1000 { // bounded, whatever udpecho does
				settle(t, server, probeReply)
				got := pending(mirror)
				if len(got) == 0 {
					break // no answer: the loop is over
				}
				if len(got) != 1 {
					t.Fatalf("round %d: %d replies to one datagram", rounds+1, len(got))
				}
				rounds++
				if _, err := mirror.WriteToUDP(append([]byte(tc.mirrorPrefx), got[0]...), server); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%d rounds", rounds)
			if rounds < 1 || rounds > tc.maxRounds {
				t.Errorf("%d rounds of the loop, want 1 to %d", rounds, tc.maxRounds)
			}
			if !strings.Contains(logs.String(), "echoes our last reply") {
				t.Error("the loop was not logged")
			}
		})
	}
}

func TestLoopGuard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		at      time.Duration
		payload string
		echoed  bool
	}
	for _, tc := range []struct {
		name  string
		plain bool
		reply string // sent to the sender at t0
		steps []step
	}{
		{"prefixed", false, "hello hi", []step{
			{10 * time.Millisecond, "hello hi", true},        // a plain echo's answer
			{10 * time.Millisecond, "re: hello hi", true},    // a prefixed echo's answer
			{time.Hour, "hello hi", true},                    // however late
			{10 * time.Millisecond, "hi", false},             // the same request again
			{10 * time.Millisecond, "hello h", false},        // not our reply
			{10 * time.Millisecond, "hello hi there", false}, // our reply, not at the end
		}},
		{"plain", true, "ping", []step{
			{10 * time.Millisecond, "ping", true},
			{999 * time.Millisecond, "ping", true},
			{time.Second, "ping", false}, // a client repeating itself, slowly
			{10 * time.Millisecond, "re: ping", false},
			{10 * time.Millisecond, "pong", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, s := range tc.steps {
				g := newLoopGuard(tc.plain)
				g.sent(t0, "127.0.0.3:4000", []byte(tc.reply))
				if got := g.echoed(t0.Add(s.at), "127.0.0.3:4000", []byte(s.payload)); got != s.echoed {
					t.Errorf("step %d: %q at +%s: echoed %v, want %v", i, s.payload, s.at, got, s.echoed)
				}
				if g.echoed(t0.Add(s.at), "127.0.0.3:4001", []byte(s.payload)) {
					t.Errorf("step %d: another sender's datagram taken for an echo", i)
				}
			}
		})
	}
}

// TestPlainEchoRepeats: a plain echo's client that sends the same bytes again
// at once (a ping-pong benchmark does) looks exactly like a loop: with the
// loop guard it is answered once, the repeats within a second dropped; with
// loop-guard=false every one is answered.
func TestPlainEchoRepeats(t *testing.T) {
	for _, guard := range []bool{true, false} {
		t.Run(fmt.Sprintf("loop-guard=%v", guard), func(t *testing.T) {
			in, _ := startLogged(t, map[string]string{"prefix": "", "loop-guard": fmt.Sprint(guard)})
			server, _ := net.ResolveUDPAddr("udp", in.Addr)
			c := bindUDP(t, "127.0.0.4", 0)
			const sent = 20
			start := time.Now()
			for range sent {
				if _, err := c.WriteToUDP([]byte("same bytes"), server); err != nil {
					t.Fatal(err)
				}
			}
			settle(t, server, "probe")
			elapsed := time.Since(start)
			answered := len(pending(c))
			// With the guard, each answer after the first needs a loopWindow
			// since the one before: on a quiet machine the 20 arrive within
			// milliseconds and one is answered.
			most := 1 + int(elapsed/loopWindow)
			t.Logf("%d of %d answered in %s", answered, sent, elapsed.Round(time.Millisecond))
			switch {
			case guard && (answered < 1 || answered > most):
				t.Errorf("%d of %d identical datagrams answered in %s, want 1 to %d", answered, sent, elapsed, most)
			case !guard && answered != sent:
				t.Errorf("%d of %d identical datagrams answered with the guard off", answered, sent)
			}
		})
	}
}
