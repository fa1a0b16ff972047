//go:build !linux

package main

import (
	"errors"
	"os"
)

// oDirect is 0 where directWriter does not use O_DIRECT: every write goes
// through the page cache.
const oDirect = 0

// statusFlags: O_DIRECT is used on Linux only.
func statusFlags(*os.File) (int, func(int) error, error) {
	return 0, nil, errors.New("O_DIRECT is used on Linux only")
}

// adviseSequential is a hint the kernel takes on Linux only.
func adviseSequential(*os.File) {}

// advance hands the written bytes to writeback early on Linux only
// (sync_file_range); elsewhere the final fsync does it all.
func (w *writeback) advance(int64) {}

// freeBytes is not known here: the quota check then relies on the write
// error itself.
func freeBytes(*os.File) (int64, error) {
	return 0, errors.New("free space is known on Linux only")
}
