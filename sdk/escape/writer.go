package escape

import (
	"io"
	"unicode/utf8"
)

// NewWriter returns a writer that passes text to w with Lines
// applied, for copying what a server sends straight to a terminal. A UTF-8
// sequence cut between two writes is kept until the next write completes it;
// Close writes out (escaped) what is left, and does not close w.
func NewWriter(w io.Writer) io.WriteCloser { return &writer{w: w} }

type writer struct {
	w    io.Writer
	tail []byte // an incomplete UTF-8 sequence from the last write
}

func (t *writer) Write(p []byte) (int, error) {
	buf := append(t.tail, p...)
	t.tail = nil
	// Keep back at most utf8.UTFMax-1 bytes of an unfinished sequence.
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	t.tail = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(t.w, Lines(string(buf[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *writer) Close() error {
	if len(t.tail) == 0 {
		return nil
	}
	_, err := io.WriteString(t.w, Lines(string(t.tail)))
	t.tail = nil
	return err
}
