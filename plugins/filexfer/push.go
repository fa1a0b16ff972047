package main

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/sockplay/sockplay/sdk"
)

// pusher is tutorial mode: it sends one file to every client exactly as the
// tutorial's server does. The size goes as ASCII digits in one write; the
// server then waits for any acknowledgement (the tutorial's client sends
// "Ready to recv file") so that the size and the first bytes never share a
// read; then the bytes, then it closes.
type pusher struct {
	path string
	idle time.Duration
}

var _ sdk.Handler = (*pusher)(nil)

func (p *pusher) ServeConn(ctx context.Context, c net.Conn) {
	log := sdk.Logger(ctx)
	// The file is opened per connection, so that a replaced file is served
	// whole; its size is taken from the open descriptor, so that the count
	// and the bytes describe the same file.
	f, err := os.Open(p.path)
	if err != nil {
		log.Error("push: open", "error", err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		log.Error("push: not a readable regular file", "path", p.path, "error", err)
		return
	}
	_ = c.SetDeadline(time.Now().Add(p.idle))
	if _, err := io.WriteString(c, strconv.FormatInt(st.Size(), 10)); err != nil {
		return
	}
	ack := make([]byte, 1024)
	if _, err := c.Read(ack); err != nil {
		return
	}
	if err := sendRange(c, f, 0, st.Size(), p.idle, sendChunk, nil, nil); err != nil {
		log.Debug("push: send", "peer", c.RemoteAddr().String(), "error", err)
	}
}
