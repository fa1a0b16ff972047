package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sockplay/sockplay/sdk"
)

// Version is the filexfer plugin's own version.
const Version = "1.1.0"

// Plugin describes the filexfer plugin.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:        "filexfer",
		Version:     Version,
		Summary:     "safe, resumable, verified file transfer; with push=FILE, the tutorial's file server",
		DefaultAddr: "127.0.0.1:12347",
		Options: []sdk.Option{
			{Name: "push", Default: "", Help: "tutorial mode: send this one file to every client (size, wait for an ack, bytes, close)"},
			{Name: "root", Default: "", Help: "serve this directory with the filexfer protocol (LIST, SUM, GET, PUT)"},
			{Name: "writable", Default: "false", Help: "accept uploads into root"},
			{Name: "maxfile", Default: "16G", Help: "largest file an upload may announce (bytes, or with K, M, G, T; 0 = no limit)"},
			{Name: "quota", Default: "0", Help: "most bytes of regular files under root, uploads in flight included (0 = no limit)"},
			{Name: "maxtransfers", Default: "16", Help: "most GET, PUT and SUM transfers at once; more are refused as busy"},
			{Name: "lockwait", Default: "5s", Help: "how long an upload waits for another upload to the same name before it is refused as busy"},
			{Name: "idle", Default: "2m", Help: "close a connection that moves no bytes for this long"},
			{Name: "direct", Default: "true", Help: "write uploads with O_DIRECT where the file system allows it (no copy into the page cache); false: through the page cache"},
		},
		TCP:      newHandler,
		Commands: commands(),
	}
}

// Config is the server's configuration, built from the plugin's options.
type Config struct {
	Push         string
	Root         string
	Writable     bool
	MaxFile      int64 // 0: no limit
	Quota        int64 // 0: no limit
	MaxTransfers int
	LockWait     time.Duration
	Idle         time.Duration
	Direct       bool // write uploads with O_DIRECT where the file system allows it
}

// DefaultConfig returns the defaults of Plugin's options, with neither root
// nor push set.
func DefaultConfig() Config {
	return Config{MaxFile: 16 << 30, MaxTransfers: 16, LockWait: 5 * time.Second, Idle: 2 * time.Minute, Direct: true}
}

// Validate reports the first thing wrong with c. Neither Push nor Root is not
// an error: such a server answers every request with a clear refusal, so that
// `sockplay serve` starts with every plugin found.
func (c Config) Validate() error {
	switch {
	case c.Push != "" && c.Root != "":
		return errors.New("set one of filexfer.push (tutorial mode) and filexfer.root (directory), not both")
	case c.MaxFile < 0 || c.Quota < 0:
		return errors.New("maxfile and quota must not be negative")
	case c.MaxTransfers < 1:
		return fmt.Errorf("maxtransfers=%d: want at least 1", c.MaxTransfers)
	case c.LockWait < 0 || c.Idle <= 0:
		return errors.New("lockwait must not be negative and idle must be positive")
	}
	if c.Push != "" {
		st, err := os.Stat(c.Push)
		if err != nil {
			return fmt.Errorf("filexfer.push: %w", err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("filexfer.push=%s: not a regular file", c.Push)
		}
	}
	if c.Root != "" {
		st, err := os.Stat(c.Root)
		if err != nil {
			return fmt.Errorf("filexfer.root: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("filexfer.root=%s: not a directory", c.Root)
		}
	}
	return nil
}

func configFrom(cfg sdk.Config) (Config, error) {
	c := Config{Push: cfg.String("push"), Root: cfg.String("root")}
	var err error
	if c.Writable, err = cfg.Bool("writable"); err != nil {
		return c, err
	}
	if c.MaxFile, err = parseBytes(cfg.String("maxfile")); err != nil {
		return c, fmt.Errorf("option filexfer.maxfile: %w", err)
	}
	if c.Quota, err = parseBytes(cfg.String("quota")); err != nil {
		return c, fmt.Errorf("option filexfer.quota: %w", err)
	}
	if c.MaxTransfers, err = cfg.Int("maxtransfers"); err != nil {
		return c, err
	}
	if c.LockWait, err = cfg.Duration("lockwait"); err != nil {
		return c, err
	}
	if c.Idle, err = cfg.Duration("idle"); err != nil {
		return c, err
	}
	if c.Direct, err = cfg.Bool("direct"); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// parseBytes parses a byte count: digits with an optional binary suffix K, M,
// G or T (KiB, MiB, ...).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	if n := len(s); n > 0 {
		if i := strings.IndexByte("KMGT", s[n-1]&^0x20); i >= 0 {
			mult = 1 << (10 * (i + 1))
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q: want a byte count such as 1048576, 512M or 4G", s)
	}
	return v * mult, nil
}

func newHandler(cfg sdk.Config) (sdk.Handler, error) {
	c, err := configFrom(cfg)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Push != "":
		return &pusher{path: c.Push, idle: c.Idle}, nil
	case c.Root != "":
		return NewServer(c, cfg.Logger)
	}
	cfg.Logger.Warn("neither filexfer.root nor filexfer.push is set; every request is refused")
	return sdk.HandlerFunc(unconfigured), nil
}

// unconfigured answers one request line with a refusal that says what to set.
func unconfigured(_ context.Context, c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, MaxLine)
	_, _ = c.Read(buf)
	e := &Error{Code: CodeUnconfig, Msg: "this server has nothing to serve: start it with --set filexfer.root=DIR or --set filexfer.push=FILE"}
	_, _ = c.Write([]byte(e.statusLine()))
}
