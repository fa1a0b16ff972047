package main

import (
	"bufio"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"time"
)

// sendRange sends n bytes of f from off. The copy is io.Copy from an
// *io.LimitedReader around the *os.File to the connection, which for a
// *net.TCPConn is sendfile(2): the bytes go from the page cache to the socket
// without passing through this process. It goes in chunks so that the write
// deadline follows progress rather than the whole transfer.
func sendRange(c net.Conn, f *os.File, off, n int64, idle time.Duration, chunk int64, hook func(sent int64)) error {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	var sent int64
	for sent < n {
		_ = c.SetWriteDeadline(time.Now().Add(idle))
		k, err := io.Copy(c, &io.LimitedReader{R: f, N: min(chunk, n-sent)})
		sent += k
		if err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("file shrank while being sent: %d of %d bytes", sent, n)
		}
		if hook != nil {
			hook(sent)
		}
	}
	return nil
}

// spliceChunk is how many bytes receive splices before it hands them to the
// hashing goroutine and moves the read deadline.
const spliceChunk = 8 << 20

// receive copies n bytes from the connection c (read through br, which may
// hold bytes already) into f at its offset, and writes them to h in order.
//
// The bytes go from the socket to the file with io.Copy from the connection
// to the *os.File, which is splice(2): they never pass through this process.
// The SHA-256 needs them in this process, though, so a second goroutine reads
// each chunk back from the page cache (one copy, from memory that is still
// hot) and hashes it, while the next chunk is spliced: on two or more cores
// the hash costs little wall time. setDeadline runs before each chunk;
// progress after each chunk is on disk (in the page cache). When receive
// returns, h holds exactly the bytes written.
func receive(c net.Conn, br *bufio.Reader, f *os.File, h hash.Hash, n int64, setDeadline func(), progress func(got int64)) (got int64, err error) {
	start, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	chunks := make(chan int64, 64) // ends of the chunks written so far
	hashed := make(chan error, 1)
	go func() {
		buf := make([]byte, bufSize)
		var done int64
		var herr error
		for end := range chunks {
			if herr == nil {
				_, herr = io.CopyBuffer(h, io.NewSectionReader(f, start+done, end-done), buf)
			}
			done = end
		}
		hashed <- herr
	}()
	defer func() {
		close(chunks)
		if herr := <-hashed; err == nil && herr != nil {
			err = fmt.Errorf("hash what was written: %w", herr)
		}
	}()

	// Bytes the client sent before the status line reached it are already
	// in br.
	if k := min(int64(br.Buffered()), n); k > 0 {
		b, _ := br.Peek(int(k))
		if _, err := f.Write(b); err != nil {
			return 0, err
		}
		_, _ = br.Discard(int(k))
		got = k
		chunks <- got
	}
	for got < n {
		setDeadline()
		k, rerr := io.Copy(f, &io.LimitedReader{R: c, N: min(spliceChunk, n-got)})
		if k > 0 {
			got += k
			chunks <- got
			if progress != nil {
				progress(got)
			}
		}
		if rerr != nil {
			return got, rerr
		}
		if k == 0 {
			return got, io.ErrUnexpectedEOF
		}
	}
	return got, nil
}
