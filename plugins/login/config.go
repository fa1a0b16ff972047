package main

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/sockplay/sockplay/sdk"
)

// config is the login server's configuration, from the --set login.KEY=VALUE
// options.
type config struct {
	accounts       string        // accounts file; "" means no accounts
	maxRequest     int           // bytes in one request, line end excluded
	addrFailures   int           // failures per source address per window
	userFailures   int           // failures per user name per window
	window         time.Duration // the sliding window failures are counted in
	lockout        time.Duration // how long a key stays locked once at its limit
	baseDelay      time.Duration // delay after a first failure, doubling after each
	maxDelay       time.Duration // the delay's ceiling
	reloadInterval time.Duration // how often the accounts file is looked at
	idleTimeout    time.Duration // a connection silent this long is closed
	maxChecks      int           // password checks at once; 0 means GOMAXPROCS
}

func defaultConfig() config {
	return config{
		maxRequest:     4096,
		addrFailures:   10,
		userFailures:   20,
		window:         5 * time.Minute,
		lockout:        5 * time.Minute,
		baseDelay:      250 * time.Millisecond,
		maxDelay:       4 * time.Second,
		reloadInterval: time.Second,
		idleTimeout:    5 * time.Minute,
	}
}

// options declares the plugin's options, with defaultConfig's values.
func options() []sdk.Option {
	d := defaultConfig()
	return []sdk.Option{
		{Name: "accounts", Default: d.accounts, Help: "accounts file, NAME:HASH lines (empty: no accounts, every login fails)"},
		{Name: "max-request", Default: strconv.Itoa(d.maxRequest), Help: "largest request in bytes; a larger one gets fail and the connection is closed"},
		{Name: "addr-failures", Default: strconv.Itoa(d.addrFailures), Help: "failed logins allowed per source address per window"},
		{Name: "user-failures", Default: strconv.Itoa(d.userFailures), Help: "failed logins allowed per user name per window, across addresses (keep it above addr-failures)"},
		{Name: "window", Default: d.window.String(), Help: "sliding window the failures are counted in"},
		{Name: "lockout", Default: d.lockout.String(), Help: "how long an address or name at its limit is locked out"},
		{Name: "base-delay", Default: d.baseDelay.String(), Help: "delay of the reply to a first failure; it doubles with each failure"},
		{Name: "max-delay", Default: d.maxDelay.String(), Help: "ceiling of the reply delay after failures"},
		{Name: "reload-interval", Default: d.reloadInterval.String(), Help: "how often the accounts file is checked for changes"},
		{Name: "idle-timeout", Default: d.idleTimeout.String(), Help: "a connection that sends nothing this long is closed"},
		{Name: "max-checks", Default: strconv.Itoa(d.maxChecks), Help: "password checks run at once (0: one per CPU); each argon2id check takes 19 MiB"},
	}
}

// configFrom reads and validates the options.
func configFrom(sc sdk.Config) (config, error) {
	c := config{accounts: sc.String("accounts")}
	ints := []struct {
		name string
		dst  *int
	}{
		{"max-request", &c.maxRequest}, {"addr-failures", &c.addrFailures},
		{"user-failures", &c.userFailures}, {"max-checks", &c.maxChecks},
	}
	for _, o := range ints {
		v, err := sc.Int(o.name)
		if err != nil {
			return config{}, err
		}
		*o.dst = v
	}
	durs := []struct {
		name string
		dst  *time.Duration
	}{
		{"window", &c.window}, {"lockout", &c.lockout}, {"base-delay", &c.baseDelay},
		{"max-delay", &c.maxDelay}, {"reload-interval", &c.reloadInterval}, {"idle-timeout", &c.idleTimeout},
	}
	for _, o := range durs {
		v, err := sc.Duration(o.name)
		if err != nil {
			return config{}, err
		}
		*o.dst = v
	}
	if err := c.Validate(); err != nil {
		return config{}, err
	}
	if c.maxChecks == 0 {
		c.maxChecks = runtime.GOMAXPROCS(0)
	}
	return c, nil
}

// Validate reports every option out of its range.
func (c config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("option login."+format, args...))
		}
	}
	check(c.maxRequest >= 16 && c.maxRequest <= 1<<20, "max-request=%d: want 16 to 1048576 bytes", c.maxRequest)
	check(c.addrFailures >= 1 && c.addrFailures <= 1e6, "addr-failures=%d: want 1 to 1000000", c.addrFailures)
	check(c.userFailures >= 1 && c.userFailures <= 1e6, "user-failures=%d: want 1 to 1000000", c.userFailures)
	check(c.window > 0 && c.window <= 24*time.Hour, "window=%s: want more than 0, at most 24h", c.window)
	check(c.lockout >= 0 && c.lockout <= 24*time.Hour, "lockout=%s: want 0 to 24h", c.lockout)
	check(c.maxDelay >= 0 && c.maxDelay <= time.Minute, "max-delay=%s: want 0 to 1m", c.maxDelay)
	check(c.baseDelay >= 0 && c.baseDelay <= c.maxDelay, "base-delay=%s: want 0 to max-delay (%s)", c.baseDelay, c.maxDelay)
	check(c.reloadInterval >= 10*time.Millisecond && c.reloadInterval <= time.Hour, "reload-interval=%s: want 10ms to 1h", c.reloadInterval)
	check(c.idleTimeout >= time.Second && c.idleTimeout <= 24*time.Hour, "idle-timeout=%s: want 1s to 24h", c.idleTimeout)
	check(c.maxChecks >= 0 && c.maxChecks <= 1024, "max-checks=%d: want 0 to 1024", c.maxChecks)
	return errors.Join(errs...)
}
