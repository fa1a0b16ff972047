package load

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// DirectServer is the baseline: echo written the obvious way, a goroutine
// per connection running io.Copy, and a UDP loop that writes every datagram
// back to its sender.
type DirectServer struct {
	l  net.Listener
	pc net.PacketConn
}

// ListenDirect binds the direct server's TCP and UDP sockets on ephemeral
// loopback ports.
func ListenDirect() (*DirectServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return nil, err
	}
	return &DirectServer{l: l, pc: pc}, nil
}

// TCPAddr is the TCP echo's address.
func (d *DirectServer) TCPAddr() string { return d.l.Addr().String() }

// UDPAddr is the UDP echo's address.
func (d *DirectServer) UDPAddr() string { return d.pc.LocalAddr().String() }

// Serve serves until ctx is done, then closes everything and waits for every
// connection's goroutine.
func (d *DirectServer) Serve(ctx context.Context) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		d.l.Close()
		d.pc.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, addr, err := d.pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			_, _ = d.pc.WriteTo(buf[:n], addr)
		}
	})
	for {
		c, err := d.l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// EMFILE and the like: back off as net/http does.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			break
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			_, _ = io.Copy(c, c)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		})
	}
	d.l.Close()
	d.pc.Close()
	wg.Wait()
	return nil
}

// ServeDirect is the direct-server process: it prints "tcp ADDR", "udp ADDR"
// and "serving" lines to out, and serves until ctx is done or stdin reaches
// EOF (the bench closes it, or exits).
func ServeDirect(ctx context.Context, stdin io.Reader, out io.Writer) error {
	d, err := ListenDirect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	if _, err := io.WriteString(out, "tcp "+d.TCPAddr()+"\nudp "+d.UDPAddr()+"\nserving\n"); err != nil {
		return err
	}
	return d.Serve(ctx)
}
