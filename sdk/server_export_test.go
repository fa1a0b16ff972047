package sdk

import "time"

// SetLinger changes the bounds of s's lingering close; a zero timeout turns
// it off, as the SDK did before it had one. Call it before s serves.
func SetLinger(s *Server, timeout time.Duration, bytes int64) {
	s.lingerTimeout, s.lingerBytes = timeout, bytes
}
