package main

import (
	"net"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(limiterConfig{addrLimit: 3, userLimit: 5, window: 10 * time.Second,
		lockout: 20 * time.Second, base: 100 * time.Millisecond, maxDelay: 300 * time.Millisecond})
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

	// Three failures from one address: delays 100, 200, 300 (the cap) ms,
	// and the third locks the address out.
	for i, want := range []time.Duration{100, 200, 300} {
		tk, _, ok := l.admit(at(float64(i)), "10.0.0.1", "alice")
		if !ok {
			t.Fatalf("failure %d not admitted", i+1)
		}
		f := l.failed(at(float64(i)), tk)
		if f.delay != want*time.Millisecond || f.addrLocked != (i == 2) || f.userLocked {
			t.Fatalf("failure %d: %+v", i+1, f)
		}
	}
	// Locked until 2 s + 20 s, for any name.
	if _, retry, ok := l.admit(at(3), "10.0.0.1", "bob"); ok || !retry.Equal(at(22)) {
		t.Fatalf("locked address admitted (%v) or retry at %v, want %v", ok, retry, at(22))
	}
	// Another address, same user: alice has 3 of her 5.
	tk, _, ok := l.admit(at(3), "10.0.0.2", "alice")
	if !ok {
		t.Fatal("another address was refused")
	}
	l.succeeded(tk)
	// A success resets the name's count but not the address's.
	if e := l.users.m["alice"]; e != nil && len(e.fails) != 0 {
		t.Fatalf("alice still has %d failures after a success", len(e.fails))
	}
	if e := l.addrs.m["10.0.0.1"]; e == nil || len(e.fails) != 3 {
		t.Fatal("the address's failures were forgotten")
	}
	// After the lockout and the window, the address is admitted again.
	if _, _, ok := l.admit(at(22), "10.0.0.1", "bob"); !ok {
		t.Fatal("address still refused after lockout and window")
	}
}

func TestLimiterInFlight(t *testing.T) {
	// Checks in flight count: with a limit of 2, a third concurrent check
	// waits even though nothing has failed yet.
	l := newLimiter(limiterConfig{addrLimit: 2, userLimit: 100, window: time.Minute, lockout: time.Minute})
	now := time.Unix(1000, 0)
	a, _, ok1 := l.admit(now, "10.0.0.1", "u1")
	b, _, ok2 := l.admit(now, "10.0.0.1", "u2")
	if _, _, ok3 := l.admit(now, "10.0.0.1", "u3"); !ok1 || !ok2 || ok3 {
		t.Fatalf("admitted %v %v %v, want true true false", ok1, ok2, ok3)
	}
	l.succeeded(a)
	if _, _, ok := l.admit(now, "10.0.0.1", "u3"); !ok {
		t.Fatal("a success did not free its slot")
	}
	l.cancel(b)
}

func TestLimiterTableBounded(t *testing.T) {
	l := newLimiter(limiterConfig{addrLimit: 5, userLimit: 5, window: time.Minute, lockout: time.Minute})
	now := time.Unix(1000, 0)
	for i := 0; i < maxKeys+100; i++ {
		tk, _, ok := l.admit(now, "10.0.0.1", "user"+string(rune(i+0x4e00)))
		if ok {
			l.cancel(tk)
		}
	}
	if n := len(l.users.m); n > maxKeys {
		t.Fatalf("%d names kept, at most %d", n, maxKeys)
	}
}

func TestSourceKey(t *testing.T) {
	cases := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 5}, "127.0.0.2"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 5}, "10.1.2.3"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 5}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::1"), Port: 9}, "2001:db8:1:2::/64"},
	}
	for _, tc := range cases {
		if got := sourceKey(tc.addr); got != tc.want {
			t.Errorf("sourceKey(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
