package main

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

func roundTrip(t *testing.T, c net.Conn, payload []byte) []byte {
	t.Helper()
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("write %d bytes: %v", len(payload), err)
	}
	buf := make([]byte, 1<<16)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reply to %d bytes: %v", len(payload), err)
	}
	return buf[:n]
}

func TestEcho(t *testing.T) {
	big := bytes.Repeat([]byte{0xA5}, sdk.MaxDatagram)
	cases := []struct {
		name    string
		options map[string]string
		payload []byte
		want    []byte
	}{
		{"tutorial", nil, []byte("你好"), []byte("hello 你好")},
		{"custom prefix", map[string]string{"prefix": "> "}, []byte("x"), []byte("> x")},
		{"plain echo", map[string]string{"prefix": ""}, []byte("abc"), []byte("abc")},
		{"empty datagram", map[string]string{"prefix": ""}, []byte{}, []byte{}},
		{"empty datagram with prefix", nil, []byte{}, []byte("hello ")},
		{"invalid UTF-8 and NUL", map[string]string{"prefix": ""}, []byte{0xff, 0xfe, 0, 'a', 0xc3}, []byte{0xff, 0xfe, 0, 'a', 0xc3}},
		{"largest datagram", map[string]string{"prefix": ""}, big, big},
		{"largest datagram with prefix is truncated", nil, big, append([]byte("hello "), big[:sdk.MaxDatagram-6]...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := sdktest.Start(t, Plugin(), tc.options)
			c := in.DialUDP(t)
			if got := roundTrip(t, c, tc.payload); !bytes.Equal(got, tc.want) {
				t.Fatalf("reply: %d bytes %q..., want %d bytes %q...", len(got), head(got), len(tc.want), head(tc.want))
			}
		})
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct{ opt, val, want string }{
		{"rate", "fast", "udpecho.rate"},
		{"rate", "10/h", "unit"},
		{"burst", "-1", "udpecho.burst"},
		{"loop-guard", "maybe", "loop-guard"},
	} {
		err := sdktest.Configure(t, Plugin(), map[string]string{tc.opt: tc.val})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: %v, want an error with %q", tc.opt, tc.val, err, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(10, 5)
	allowed := 0
	for range 100 {
		if l.allow(now, "a") {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("burst: %d allowed, want 5", allowed)
	}
	if !l.allow(now, "b") {
		t.Fatal("another source is limited by the first")
	}
	now = now.Add(time.Second)
	allowed = 0
	for range 100 {
		if l.allow(now, "a") {
			allowed++
		}
	}
	if allowed != 5 { // refilled 10, capped at the burst of 5
		t.Fatalf("after 1 s: %d allowed, want 5", allowed)
	}
}

// The limiter's memory is bounded whatever the sources (issue 27, kind 6):
// a source that keeps sending keeps its bucket; past maxSources the one
// seen least recently is forgotten, in constant time.
func TestLimiterBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(10, 1)
	if !l.allow(now, "victim") || l.allow(now, "victim") {
		t.Fatal("a burst of 1 allowed none, or two")
	}
	for i := range 3 * maxSources {
		l.allow(now, strconv.Itoa(i))
		if i%4096 == 0 && l.allow(now, "victim") {
			t.Fatalf("a source sending all along got its bucket back after %d others", i)
		}
	}
	if n := l.sources.Len(); n != maxSources {
		t.Fatalf("%d sources remembered, want maxSources (%d)", n, maxSources)
	}
}

// A flood from one source is held to its rate, while another source is
// answered in full at the same time.
func TestRateLimitHoldsUnderFlood(t *testing.T) {
	const rate, burst = 200, 20
	in := sdktest.Start(t, Plugin(), map[string]string{"prefix": "", "rate": "200/s", "burst": "20"})
	raddr, _ := net.ResolveUDPAddr("udp", in.Addr)

	flood, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	_ = flood.SetReadBuffer(4 << 20)
	calm, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer calm.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	floodDone := make(chan int)
	go func() { // a bounded flood: at most 1 s and 200,000 datagrams
		sent := 0
		for ; sent < 200000 && ctx.Err() == nil; sent++ {
			// Each datagram its own: the same bytes again within a second
			// would be taken for an echo loop (see loopGuard).
			_, _ = flood.Write(strconv.AppendInt([]byte("flood"), int64(sent), 10))
		}
		floodDone <- sent
	}()

	calmAnswered := 0
	const calmSent = 50
	buf := make([]byte, 64)
	for i := range calmSent {
		msg := "calm" + strconv.Itoa(i)
		if _, err := calm.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = calm.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := calm.Read(buf); err == nil && string(buf[:n]) == msg {
			calmAnswered++
		}
		time.Sleep(10 * time.Millisecond)
	}
	sent := <-floodDone
	elapsed := time.Since(start)

	answered := 0
	for {
		_ = flood.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := flood.Read(buf); err != nil {
			break
		}
		answered++
		if answered > sent {
			break
		}
	}
	limit := int(rate*elapsed.Seconds()) + burst
	t.Logf("flood: %d sent, %d answered in %s (limit %d); calm: %d of %d answered", sent, answered, elapsed.Round(time.Millisecond), limit, calmAnswered, calmSent)
	if answered > limit {
		t.Errorf("flooding source got %d replies, more than rate×time+burst = %d", answered, limit)
	}
	if answered < burst {
		t.Errorf("flooding source got %d replies, fewer than its burst %d: the limiter is not letting its rate through", answered, burst)
	}
	if calmAnswered < calmSent*9/10 {
		t.Errorf("calm source: %d of %d answered during the flood", calmAnswered, calmSent)
	}
}

func TestClient(t *testing.T) {
	in := sdktest.Start(t, Plugin(), nil)
	var out, errb bytes.Buffer
	p := Plugin()
	code := client.Run(context.Background(), p.Client(), []string{"send", in.Addr}, client.Stdio{In: strings.NewReader("one\ntwo\n\nnot sent\n"), Out: &out, Err: &errb})
	if code != 0 || out.String() != "hello one\nhello two\n" {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errb.String())
	}

	// Nobody listens: each line is reported, and the exit status is 1.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := pc.LocalAddr().String()
	defer pc.Close()
	out.Reset()
	errb.Reset()
	code = client.Run(context.Background(), p.Client(), []string{"send", silent, "--timeout", "100ms"}, client.Stdio{In: strings.NewReader("a\nb\n"), Out: &out, Err: &errb})
	if code != 1 || strings.Count(errb.String(), "within 100ms") != 2 || !strings.Contains(errb.String(), "2 of the datagrams got no reply") {
		t.Fatalf("exit %d, err %q", code, errb.String())
	}
}
