//go:build !linux

package main

import "sync/atomic"

// spliced counts the connections echoed with splice: none here.
var spliced atomic.Int64

// spliceEcho is Linux's (splice(2)); elsewhere echo copies through a buffer.
func spliceEcho(rawConn) bool { return false }
