package main

import (
	"fmt"
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
	if e, _ := l.users.m.Peek("alice"); e != nil && len(e.fails) != 0 {
		t.Fatalf("alice still has %d failures after a success", len(e.fails))
	}
	if e, _ := l.addrs.m.Peek("10.0.0.1"); e == nil || len(e.fails) != 3 {
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

// The tables are bounded, with bounded work per request (issue 27, kind 6):
// full of keys that each failed in the window, a new key waits (as a locked
// one does) rather than make anyone's failures forgotten; once the window
// has passed, the least recently used idle key makes room for it.
func TestLimiterTableBounded(t *testing.T) {
	l := newLimiter(limiterConfig{addrLimit: 5, userLimit: 5, window: time.Minute, lockout: time.Minute})
	now := time.Unix(1000, 0)
	for i := range maxKeys {
		tk, _, ok := l.admit(now, fmt.Sprintf("addr-%d", i), fmt.Sprintf("user-%d", i))
		if !ok {
			t.Fatalf("key %d of %d refused", i, maxKeys)
		}
		l.failed(now, tk)
	}
	if _, retry, ok := l.admit(now, "new-addr", "new-user"); ok || !retry.Equal(now.Add(tableFullRetry)) {
		t.Fatalf("a new key in full tables: admitted %v, retry %v", ok, retry)
	}
	if tk, _, ok := l.admit(now, "addr-7", "user-7"); !ok { // a known key: its failure is kept, 1 of 5
		t.Fatal("a known key was refused")
	} else {
		l.cancel(tk)
	}
	later := now.Add(time.Minute + time.Second)
	if tk, _, ok := l.admit(later, "new-addr", "new-user"); !ok {
		t.Fatal("a new key still waits once the window has passed")
	} else {
		l.cancel(tk)
	}
	if a, u := l.addrs.m.Len(), l.users.m.Len(); a > maxKeys || u > maxKeys {
		t.Fatalf("%d addresses and %d names kept, at most %d each", a, u, maxKeys)
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
