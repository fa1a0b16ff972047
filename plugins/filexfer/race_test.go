//go:build race

package main

// raceEnabled: the race detector slows the 1 GiB cases past the package's time
// budget, so they run only without it.
const raceEnabled = true
