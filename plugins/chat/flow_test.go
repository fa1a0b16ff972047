//go:build unix

package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

// startRoom serves a room built from cfg, like sdktest.Start, and also
// returns the room so that a test can see its flow state.
func startRoom(t *testing.T, cfg Config) (*sdktest.Instance, *room) {
	t.Helper()
	noLeaks(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := sdktest.Logger(t, "chat")
	r := newRoom(cfg, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := sdk.NewServer(r, log)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return &sdktest.Instance{Addr: ln.Addr().String(), Server: srv}, r
}

// waitFor polls cond, holding the room's lock, until it holds; it fails
// the test after d.
func waitFor(t *testing.T, r *room, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// collect reads p's lines on its own goroutine until stop returns true for
// the lines so far, or the connection fails; the lines come on the channel.
func collect(p *peer, stop func([]string) bool) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var lines []string
		for !stop(lines) {
			l, err := p.r.ReadString('\n')
			if err != nil {
				break
			}
			lines = append(lines, strings.TrimSuffix(l, "\n"))
		}
		out <- lines
	}()
	return out
}

// countSeq counts the burst lines ("a: m SEQ ...") from sender name.
func countSeq(lines []string, name string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, name+": m ") {
			n++
		}
	}
	return n
}

// TestFairTurns: while a full member holds the room back, senders take
// turns in the order they came, one line each: a flooder that was waiting
// first gets one line in, then the next sender's line goes, however many
// lines the flooder has behind it.
func TestFairTurns(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SendQ = 64 << 10
	cfg.SndBuf = 16 << 10
	cfg.History = 1 // the last line said: where the room stands
	cfg.Stall = time.Minute
	cfg.FloodRate = 0 // only flow control here
	cfg.LineWait = 5 * time.Second
	in, r := startRoom(t, cfg)

	f, c, b := named(t, in, "f"), named(t, in, "c"), named(t, in, "b")
	p := dialSmall(t, in)
	p.send("/nick p") // and reads nothing until told
	for _, q := range []*peer{f, c, b} {
		q.expect("is now known as p")
		_ = q.c.SetDeadline(time.Now().Add(60 * time.Second))
	}
	_ = p.c.SetDeadline(time.Now().Add(60 * time.Second))

	const n = 2000
	pad := strings.Repeat("x", 500)
	// f floods: all its lines in as few writes as TCP takes, while it
	// reads its own echoes so that only p holds the room back.
	sent := make(chan error, 1)
	go func() {
		var w strings.Builder
		for k := range n {
			fmt.Fprintf(&w, "m %d %s\n", k, pad)
		}
		_, err := f.c.Write([]byte(w.String()))
		sent <- err
	}()
	fEcho := collect(f, func(l []string) bool { return countSeq(l, "f") == n })
	cEcho := collect(c, func(l []string) bool { return countSeq(l, "f") == n })
	bGot := collect(b, func(l []string) bool { return countSeq(l, "f") == n })

	lastSaid := func() string {
		if r.history == nil {
			return ""
		}
		return strings.TrimSuffix(string(r.history[(r.histAt+len(r.history)-1)%len(r.history)]), "\n")
	}
	var before string
	// (Under load another reader may be full for a moment too: that only
	// holds the room back longer.)
	waitFor(t, r, 30*time.Second, "f to wait for p", func() bool {
		before = lastSaid()
		pm := r.names["p"]
		return len(r.waiting) == 1 && pm != nil && pm.isFull()
	})
	c.send("hello")
	waitFor(t, r, 30*time.Second, "c to wait behind f", func() bool { return len(r.waiting) == 2 })
	r.mu.Lock()
	still := lastSaid()
	r.mu.Unlock()
	if still != before {
		t.Fatalf("a line went while p held the room back: %.40q after %.40q", still, before)
	}
	k := seqOf(strings.Replace(before, "f: ", "a: ", 1))
	if k < 0 {
		t.Fatalf("the last line said is %.60q, want one of f's", before)
	}

	// p reads: the room moves again, and every reader sees f's next line,
	// then c's, then the rest of f's.
	pGot := collect(p, func(l []string) bool {
		return countSeq(l, "f") == n && strings.Contains(strings.Join(l, "\n"), "c: hello")
	})
	for name, got := range map[string][]string{"b": <-bGot, "p": <-pGot} {
		var order []string
		for _, l := range got {
			if strings.HasPrefix(l, "f: m ") || l == "c: hello" {
				s := l
				if s != "c: hello" {
					s = fmt.Sprint(seqOf(strings.Replace(l, "f: ", "a: ", 1)))
				}
				order = append(order, s)
			}
		}
		if len(order) != n+1 {
			t.Fatalf("%s got %d lines of f and c, want %d", name, len(order), n+1)
		}
		for i, s := range order {
			want := fmt.Sprint(i)
			switch {
			case i == k+2:
				want = "c: hello"
			case i > k+2:
				want = fmt.Sprint(i - 1)
			}
			if s != want {
				t.Fatalf("%s: line %d is %q, want %q (f's line %d was the last before c waited)", name, i, s, want, k)
			}
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got := countSeq(<-fEcho, "f"); got != n {
		t.Errorf("f got %d of its %d echoes", got, n)
	}
	if got := <-cEcho; !slices.Contains(got, "c: hello") {
		t.Error("c did not get its own line")
	}
}

// TestFloodLimit: past floodburst lines, a client's lines are taken at
// floodrate: none is refused or dropped, it is not disconnected, and at no
// time has the room let through more than the bucket allows.
func TestFloodLimit(t *testing.T) {
	const (
		rate  = 50
		burst = 20
		n     = 120
	)
	in := start(t, map[string]string{"floodrate": fmt.Sprint(rate), "floodburst": fmt.Sprint(burst), "linewait": "5s"})
	a, b := named(t, in, "a"), named(t, in, "b")
	// named has already spent two of a's tokens: let the bucket refill.
	time.Sleep(time.Second * 2 / rate)
	for _, q := range []*peer{a, b} {
		_ = q.c.SetDeadline(time.Now().Add(60 * time.Second))
	}
	var w strings.Builder
	for k := range n {
		fmt.Fprintf(&w, "m %d\n", k)
	}
	start := time.Now()
	if _, err := a.c.Write([]byte(w.String())); err != nil {
		t.Fatal(err)
	}
	echoes := collect(a, func(l []string) bool { return countSeq(l, "a") == n })
	for k := range n {
		l := b.line()
		elapsed := time.Since(start)
		if seqOf(l) != k {
			t.Fatalf("b: line %d is %q", k, l)
		}
		// The bucket lets through burst lines at once and rate a second
		// after; the +1 is for rounding. A loaded machine is only slower.
		if allowed := burst + rate*elapsed.Seconds() + 1; float64(k+1) > allowed {
			t.Fatalf("line %d arrived %v after the send; the flood limit allows %.1f lines by then", k, elapsed, allowed)
		}
	}
	t.Logf("%d lines at floodrate=%d floodburst=%d took %v", n, rate, burst, time.Since(start))
	if got := countSeq(<-echoes, "a"); got != n {
		t.Errorf("a got %d of its %d echoes", got, n)
	}
	a.sync() // still connected
}

// TestOverSendQ: the room's own notices do not wait, so only they can push
// a member's backlog over sendq; the member is then disconnected at once.
func TestOverSendQ(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SendQ = 16768 // the least sendq that maxline 4096 allows
	cfg.Stall = time.Minute
	r := newRoom(cfg, sdktest.Logger(t, "chat"))
	srv, cli := net.Pipe() // nobody reads cli: the writer's first write blocks
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := newMember(srv, cancel)
	r.join(m)
	go m.writeLoop(r)

	line := notice("guest99 joined") // what a storm of joins would send
	cost := len(line) + lineOverhead
	for i := 1; i <= cfg.SendQ/cost+1; i++ {
		r.mu.Lock()
		r.broadcastLocked(line)
		full := m.full
		r.mu.Unlock()
		if wantFull := i*cost >= r.high && i*cost <= cfg.SendQ; full != wantFull {
			t.Fatalf("after %d notices (%d bytes) full=%v, want %v", i, i*cost, full, wantFull)
		}
		why, kicked := m.kicked()
		if over := i*cost > cfg.SendQ; over != (kicked && why == endOverBudget) {
			t.Fatalf("after %d notices (%d bytes, sendq %d): end %v", i, i*cost, cfg.SendQ, why)
		}
	}
	if ctx.Err() == nil {
		t.Error("the member's session was not told")
	}
	<-m.done // closing the connection ended the blocked write
	if len(r.full) != 0 {
		t.Errorf("the room still counts %d full members", len(r.full))
	}
	r.leave(m, "")
}

// TestHeldBack: a member that has been full for stall is disconnected by
// the sender it holds back, which then goes on.
func TestHeldBack(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SendQ = 16768
	cfg.Stall = 300 * time.Millisecond
	r := newRoom(cfg, sdktest.Logger(t, "chat"))

	var writers sync.WaitGroup
	add := func() (*member, context.Context) {
		srv, cli := net.Pipe() // nobody reads cli: a write blocks
		ctx, cancel := context.WithCancel(context.Background())
		m := newMember(srv, cancel)
		r.join(m)
		writers.Go(func() { m.writeLoop(r) })
		t.Cleanup(func() { cli.Close(); cancel() })
		return m, ctx
	}
	stuck, stuckCtx := add()
	sender, _ := add()

	r.mu.Lock()
	for !stuck.full {
		r.pushLocked(stuck, notice("filler"))
	}
	r.mu.Unlock()

	// The sender waits until stuck has been full for stall, disconnects it
	// and delivers.
	delivered := false
	if err := r.admit(context.Background(), sender, true, func() { delivered = true }); err != nil || !delivered {
		t.Fatalf("admit: %v, delivered %v", err, delivered)
	}
	if why, _ := stuck.kicked(); why != endStalled {
		t.Errorf("the member that held the room back ended %v, want %v", why, endStalled)
	}
	if stuckCtx.Err() == nil {
		t.Error("its session was not told")
	}
	if why, kicked := sender.kicked(); kicked {
		t.Errorf("the sender was disconnected: %v", why)
	}
	r.leave(stuck, "")
	r.leave(sender, "")
	sender.finish(nil)
	stuck.finish(nil)
	writers.Wait()
}

// TestLongHistory: a newcomer's history is far larger than its sendq; it
// waits for the newcomer's queue like any other output instead of taking
// it over its sendq.
func TestLongHistory(t *testing.T) {
	const n = 300 // lines of 2,000 bytes: 600 KB, against a sendq of 16 KiB
	in := start(t, map[string]string{"history": fmt.Sprint(n), "sendq": "16768", "floodrate": "0", "linewait": "5s"})
	a := named(t, in, "a")
	_ = a.c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := <-burst(a, n, 2000, 50, nil); err != nil {
		t.Fatal(err)
	}
	c := join(t, in, 60*time.Second)
	c.send("/who")
	c.expect("*** welcome to")
	c.expect(fmt.Sprintf("*** the last %d messages before you came:", n))
	for k := range n {
		if l := c.line(); seqOf(l) != k {
			t.Fatalf("history line %d is %.60q", k, l)
		}
	}
	if l := c.line(); l != "*** end of history" {
		t.Fatalf("after the history: %q", l)
	}
	c.sync() // still connected
}
