package main

import (
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBruteForceThrottled runs a bounded brute-force loop from 127.0.0.2
// against alice while alice herself logs in from 127.0.0.3 the whole time.
// The limits are scaled down (5 failures per address and 10 per name per 3 s
// window, instead of 10 and 20 per 5 min) so that the test takes seconds; the
// rule is the same at any scale: in every window, the attacker gets at most
// addr-failures answers, and since that is below user-failures, one address
// alone never locks alice's name: she is never slowed.
func TestBruteForceThrottled(t *testing.T) {
	const (
		limit  = 5
		window = 3 * time.Second
		run    = 8 * time.Second
	)
	path := writeAccounts(t, t.TempDir(), "alice", "correct horse", "bob", "battery staple")
	in, logs := start(t, map[string]string{
		"accounts":      path,
		"addr-failures": "5",
		"user-failures": "10",
		"window":        window.String(),
		"lockout":       "2s",
		"base-delay":    "20ms",
		"max-delay":     "200ms",
	})

	var wg sync.WaitGroup
	var aliceTimes []time.Duration
	var aliceErr error
	stop := make(chan struct{})
	c := dialFrom(t, in.Addr, "127.0.0.3", run+10*time.Second)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			start := time.Now()
			r, err := tutorialLogin(c, "alice", "correct horse")
			if err != nil || r != "success" {
				aliceErr = err
				if err == nil {
					aliceErr = &replyError{r}
				}
				return
			}
			aliceTimes = append(aliceTimes, time.Since(start))
		}
	}()

	attacker := dialFrom(t, in.Addr, "127.0.0.2", run+10*time.Second)
	var answers []time.Duration
	begin := time.Now()
	for i := 0; i < 1000 && time.Since(begin) < run; i++ {
		r, err := tutorialLogin(attacker, "alice", "guess"+strings.Repeat("x", i%7)+string(rune('a'+i%26)))
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if r != "fail" {
			t.Fatalf("attempt %d: %q", i, r)
		}
		answers = append(answers, time.Since(begin))
	}
	elapsed := time.Since(begin)
	close(stop)
	wg.Wait()
	if aliceErr != nil {
		t.Fatalf("alice, from her own address: %v", aliceErr)
	}

	// Every window of the attack holds at most limit answers. The window
	// checked is 150 ms shorter, for the jitter between the server's clock
	// and the moment the reply is read here.
	most := 0
	for i := range answers {
		n := sort.Search(len(answers), func(j int) bool { return answers[j] >= answers[i]+window-150*time.Millisecond }) - i
		most = max(most, n)
	}
	perMinute := float64(len(answers)) / elapsed.Minutes()
	t.Logf("attacker: %d answers in %s (%.0f/min); at most %d in any %s window; limit %d per window (%.0f/min)",
		len(answers), elapsed.Round(time.Millisecond), perMinute, most, window, limit, limit*float64(time.Minute/window))
	if most > limit {
		t.Errorf("%d answers in one window, limit %d", most, limit)
	}
	if perMinute > limit*float64(time.Minute/window) {
		t.Errorf("%.0f answers per minute, over the limit", perMinute)
	}
	if len(answers) < limit {
		t.Errorf("only %d answers: the limit should let %d through", len(answers), limit)
	}

	// Alice is never held nor delayed: the server logs every hold, and her
	// logins cost one check each. The time bound leaves room for a loaded
	// machine, where one check can take ten times its quiet 70 ms, but not
	// for the 2 s lock-out.
	sort.Slice(aliceTimes, func(i, j int) bool { return aliceTimes[i] < aliceTimes[j] })
	if len(aliceTimes) < 3 {
		t.Fatalf("alice logged in only %d times", len(aliceTimes))
	}
	slowest, med := aliceTimes[len(aliceTimes)-1], aliceTimes[len(aliceTimes)/2]
	t.Logf("alice from 127.0.0.3: %d logins during the attack, median %s, slowest %s", len(aliceTimes),
		med.Round(time.Millisecond), slowest.Round(time.Millisecond))
	if med > time.Second {
		t.Errorf("alice was slowed: median %s", med)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "held") && strings.Contains(line, "127.0.0.3") {
			t.Errorf("alice was held: %s", line)
		}
	}
	// The address is locked out when it reaches its limit within a window;
	// on a machine so loaded that the checks alone outlast the window, it
	// is not. The name never is: one address cannot reach its limit.
	if most == limit && !strings.Contains(logs.String(), "source address locked out") {
		t.Error("no log line for the address's lock-out")
	}
	if most < limit {
		t.Logf("the limit was not reached in any window (checks too slow on this machine); no lock-out expected")
	}
	if strings.Contains(logs.String(), "user name locked out") {
		t.Error("one address locked alice's name out")
	}
}

type replyError struct{ reply string }

func (e *replyError) Error() string { return "reply " + e.reply }

// TestUserLockoutAcrossAddresses fails carol's password once from each of
// three addresses: her name is locked out, so a fourth address with the right
// password is held until the lockout ends, while another user on the first
// address is not slowed.
func TestUserLockoutAcrossAddresses(t *testing.T) {
	path := writeAccounts(t, t.TempDir(), "carol", "carol's password", "dave", "dave's password")
	in, logs := start(t, map[string]string{
		"accounts":      path,
		"addr-failures": "100",
		"user-failures": "3",
		"window":        "1500ms",
		"lockout":       "1s",
		"base-delay":    "0s",
	})
	for _, src := range []string{"127.0.0.4", "127.0.0.5", "127.0.0.6"} {
		c := dialFrom(t, in.Addr, src, 10*time.Second)
		if r := mustLogin(t, c, "carol", "not it at all"); r != "fail" {
			t.Fatalf("from %s: %q", src, r)
		}
	}
	if !logs.waitFor("user name locked out", time.Second) {
		t.Fatal("no log line for the lockout")
	}

	c := dialFrom(t, in.Addr, "127.0.0.7", 10*time.Second)
	start := time.Now()
	if _, err := c.Write([]byte("carol|carol's password")); err != nil {
		t.Fatal(err)
	}
	passwordsUsed.Store("carol's password", true)
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 1024)
	if n, err := c.Read(buf); !isTimeout(err) {
		t.Fatalf("a locked-out name was answered at once: %q, %v", buf[:n], err)
	}

	// Meanwhile dave, from an address that failed for carol, is not held.
	d := dialFrom(t, in.Addr, "127.0.0.4", 10*time.Second)
	dstart := time.Now()
	if r := mustLogin(t, d, "dave", "dave's password"); r != "success" {
		t.Fatalf("dave: %q", r)
	}
	t.Logf("dave logged in in %s during carol's lockout", time.Since(dstart).Round(time.Millisecond))

	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "success" {
		t.Fatalf("carol after the lockout: %q, %v", buf[:n], err)
	}
	held := time.Since(start)
	t.Logf("carol's right password was held %s, then answered success", held.Round(time.Millisecond))
	if held < 900*time.Millisecond {
		t.Errorf("held only %s, lockout is 1s", held)
	}
}
