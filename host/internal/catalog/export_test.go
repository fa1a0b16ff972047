package catalog

import "time"

// SetRacyWindow sets how old a file's change time must be for its hash to
// be remembered, and returns a function that restores it.
func SetRacyWindow(d time.Duration) (restore func()) {
	old := racyWindow
	racyWindow = d
	return func() { racyWindow = old }
}

// Hashes returns how many times a file was read to be hashed.
func Hashes() int64 { return hashes.Load() }
