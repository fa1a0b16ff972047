package sdk

import (
	"time"

	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// SetLinger changes the bounds of s's lingering close; a zero timeout turns
// it off, as the SDK did before it had one. Call it before s serves.
func SetLinger(s *Server, timeout time.Duration, bytes int64) {
	s.lingerTimeout, s.lingerBytes = timeout, bytes
}

// SetGate makes s enforce g's rules, as the plugin runtime does with the
// host's. Call it before s serves.
func SetGate(s *Server, g *rules.Gate) { s.gate = g }
