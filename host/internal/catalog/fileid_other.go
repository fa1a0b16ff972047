//go:build !linux

package catalog

import (
	"os"
	"time"
)

// fileID would identify one version of a file. Outside Linux there is none:
// its change time is always now, so sumOf never remembers a version and every
// hash reads the file.
type fileID struct{}

func (fileID) ctime() time.Time { return time.Now().Add(time.Hour) }

func statID(*os.File) (fileID, error) { return fileID{}, nil }
