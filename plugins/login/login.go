package main

import "github.com/sockplay/sockplay/sdk"

// Version is the login plugin's own version.
const Version = "1.0.0"

// Plugin describes the login plugin.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:        "login",
		Version:     Version,
		Summary:     "the tutorial's user|password login (success/fail), with hashed passwords and throttled failures",
		DefaultAddr: "127.0.0.1:8001",
		Options:     options(),
		TCP:         newHandler,
		Commands:    commands(),
	}
}

// newHandler builds the server from the options; a bad option or an accounts
// file that cannot be used stops the plugin from starting.
func newHandler(sc sdk.Config) (sdk.Handler, error) {
	c, err := configFrom(sc)
	if err != nil {
		return nil, err
	}
	log := sc.Logger
	st, err := openStore(c.accounts, c.reloadInterval, log)
	if err != nil {
		return nil, err
	}
	if c.userFailures <= c.addrFailures {
		log.Warn("user-failures is not above addr-failures: a single address can lock a name out for everyone",
			"user_failures", c.userFailures, "addr_failures", c.addrFailures)
	}
	if c.accounts == "" {
		log.Warn("no accounts file (set login.accounts=FILE): every login fails")
	}
	return newServer(c, st, log), nil
}
