package listen_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every socket operation and every wait in these tests.
const timeout = 5 * time.Second

// batch is what one Send call carried: the sink's own copies of the fds.
type batch struct {
	kind  fdpass.Kind
	ids   []uint64
	files []*os.File
}

// sink is a fake plugin process. A working sink takes the descriptors of the
// connections it is sent (a Send transfers them) and a duplicate of a shared
// socket's, as the kernel does for the peer of an SCM_RIGHTS message; a
// failing one records the ids it was offered and takes nothing.
type sink struct {
	mu      sync.Mutex
	held    []*os.File // every file collect returned
	err     error
	batches chan batch    // what a working sink took
	offered chan []uint64 // what a failing sink was offered
}

func newSink(t *testing.T, err error) *sink {
	s := &sink{err: err, batches: make(chan batch, 256), offered: make(chan []uint64, 256)}
	t.Cleanup(func() {
		for {
			select {
			case b := <-s.batches:
				for _, f := range b.files {
					f.Close()
				}
			default:
				s.mu.Lock()
				defer s.mu.Unlock()
				for _, f := range s.held {
					f.Close()
				}
				return
			}
		}
	})
	return s
}

func (s *sink) Send(kind fdpass.Kind, ids []uint64, fds []int) error {
	if s.err != nil {
		s.offered <- append([]uint64(nil), ids...)
		return s.err
	}
	b := batch{kind: kind, ids: append([]uint64(nil), ids...)}
	if kind == fdpass.Conn {
		for _, fd := range fds {
			b.files = append(b.files, os.NewFile(uintptr(fd), "handed-off"))
		}
		s.batches <- b
		return nil
	}
	for _, fd := range fds {
		nfd, err := dupCloexec(fd)
		if err != nil {
			for _, f := range b.files {
				f.Close()
			}
			return fmt.Errorf("fake sink: dup %d: %w", fd, err)
		}
		b.files = append(b.files, os.NewFile(uintptr(nfd), "handed-off"))
	}
	s.batches <- b
	return nil
}

func dupCloexec(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// collect receives batches until they hold n descriptors in all.
func (s *sink) collect(t *testing.T, n int) []batch {
	t.Helper()
	var got []batch
	total := 0
	deadline := time.After(timeout)
	for total < n {
		select {
		case b := <-s.batches:
			got = append(got, b)
			total += len(b.files)
			// The plugin holds them until the test ends (or closes one):
			// a dropped *os.File would be closed by its finalizer.
			s.mu.Lock()
			s.held = append(s.held, b.files...)
			s.mu.Unlock()
		case <-deadline:
			t.Fatalf("after %s: the sink has %d of %d connections", timeout, total, n)
		}
	}
	if total != n {
		t.Fatalf("the sink got %d connections, want %d", total, n)
	}
	return got
}

func listenTCP(t *testing.T, backlog int) *listen.TCP {
	t.Helper()
	l, err := listen.ListenTCP("127.0.0.1:0", backlog)
	if err != nil {
		t.Fatalf("ListenTCP: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// serve runs l.Serve until ctx is done; the channel gets its result. Cleanup
// cancels ctx (tests cancel it earlier, or Close l) and waits for Serve.
func serve(t *testing.T, l *listen.TCP, s listen.Sink) (cancel context.CancelFunc, served <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- l.Serve(ctx, s)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(timeout):
			t.Errorf("Serve did not return after its ctx was cancelled")
		}
	})
	return cancel, done
}

func result(t *testing.T, served <-chan error) error {
	t.Helper()
	select {
	case err := <-served:
		return err
	case <-time.After(timeout):
		t.Fatalf("Serve did not return within %s", timeout)
		return nil
	}
}

func dial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// checkWorks proves f is the server side of client: bytes written to the raw
// descriptor reach the client, and the client's reach it back through a
// net.Conn made from it.
func checkWorks(t *testing.T, f *os.File, client net.Conn, tag string) {
	t.Helper()
	msg := "to " + tag + "\n"
	if _, err := syscall.Write(int(f.Fd()), []byte(msg)); err != nil {
		t.Fatalf("%s: write on the handed-off descriptor: %v", tag, err)
	}
	r := bufio.NewReader(client)
	if got, err := r.ReadString('\n'); err != nil || got != msg {
		t.Fatalf("%s: client read %q, %v; want %q", tag, got, err, msg)
	}
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatalf("%s: FileConn: %v", tag, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(client, "from "+tag+"\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "from "+tag+"\n" {
		t.Fatalf("%s: server side read %q, %v", tag, got, err)
	}
}

// listenerInfo reads the kernel's view of the listening socket bound to addr
// with getsockopt(TCP_INFO): for a listener, tcpi_unacked is how many
// connections wait in its accept queue and tcpi_sacked is its backlog. The
// socket is found among this process's descriptors: listen.TCP keeps its own.
func listenerInfo(t *testing.T, addr net.Addr) (queued, backlog int) {
	t.Helper()
	port := addr.(*net.TCPAddr).Port
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list descriptors: %v", err)
	}
	for _, de := range des {
		fd, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		if v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || v != 1 {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if sa4, ok := sa.(*syscall.SockaddrInet4); err != nil || !ok || sa4.Port != port || sa4.Addr != [4]byte{127, 0, 0, 1} {
			continue
		}
		var info syscall.TCPInfo
		size := uint32(syscall.SizeofTCPInfo)
		_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			t.Fatalf("getsockopt(TCP_INFO) on the listener: %v", errno)
		}
		return int(info.Unacked), int(info.Sacked)
	}
	t.Fatalf("no listening socket on %s among this process's descriptors", addr)
	return 0, 0
}

// waitQueue waits until n connections are in l's accept queue: dial returns
// before the server's kernel has queued the connection.
func waitQueue(t *testing.T, addr net.Addr, n int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		queued, _ := listenerInfo(t, addr)
		if queued >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("accept queue: %d, want %d", queued, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestServeDelivers(t *testing.T) {
	l := listenTCP(t, 128)
	s := newSink(t, nil)
	cancel, served := serve(t, l, s)

	var lastID uint64
	for i := range 5 {
		client := dial(t, l.Addr())
		b := s.collect(t, 1)[0]
		if b.kind != fdpass.Conn || len(b.ids) != 1 {
			t.Fatalf("conn %d: batch kind %q with %d ids", i, b.kind, len(b.ids))
		}
		if b.ids[0] <= lastID {
			t.Fatalf("conn %d: id %d after %d, want increasing ids", i, b.ids[0], lastID)
		}
		lastID = b.ids[0]
		checkWorks(t, b.files[0], client, "conn "+strconv.Itoa(i))
		b.files[0].Close()
	}
	cancel()
	if err := result(t, served); err != nil {
		t.Fatalf("Serve after cancel: %v, want nil", err)
	}
}

func TestServeBatches(t *testing.T) {
	for _, n := range []int{8, fdpass.MaxBatch + 6} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			l := listenTCP(t, 256)
			clients := make([]net.Conn, n)
			for i := range clients {
				clients[i] = dial(t, l.Addr())
			}
			waitQueue(t, l.Addr(), n)

			s := newSink(t, nil)
			cancel, served := serve(t, l, s)
			batches := s.collect(t, n)
			cancel()
			if err := result(t, served); err != nil {
				t.Fatalf("Serve: %v", err)
			}

			sizes := make([]int, len(batches))
			byID := map[uint64]*os.File{}
			for i, b := range batches {
				sizes[i] = len(b.ids)
				if len(b.ids) > fdpass.MaxBatch {
					t.Errorf("a Send carried %d connections, more than MaxBatch", len(b.ids))
				}
				for j, id := range b.ids {
					byID[id] = b.files[j]
				}
			}
			t.Logf("%d queued connections went in Send calls of %v", n, sizes)
			// All were waiting when Serve started: they go in as few
			// messages as MaxBatch allows.
			if want := (n + fdpass.MaxBatch - 1) / fdpass.MaxBatch; len(batches) != want {
				t.Errorf("%d Send calls (%v), want %d", len(batches), sizes, want)
			}
			if len(byID) != n {
				t.Fatalf("%d distinct ids for %d connections", len(byID), n)
			}
			// Ids follow the accept order, which is the dial order.
			for i, c := range clients {
				f := byID[uint64(i+1)]
				if f == nil {
					t.Fatalf("no connection with id %d (ids are not 1..%d)", i+1, n)
				}
				checkWorks(t, f, c, "client "+strconv.Itoa(i))
			}
		})
	}
}

func TestServeKeepsWhatAFailingSinkDidNotTake(t *testing.T) {
	l := listenTCP(t, 128)
	const n = 3
	clients := make([]net.Conn, n)
	for i := range clients {
		clients[i] = dial(t, l.Addr())
	}
	waitQueue(t, l.Addr(), n)

	errDead := errors.New("plugin process is gone")
	bad := newSink(t, errDead)
	_, served := serve(t, l, bad)
	if err := result(t, served); !errors.Is(err, errDead) {
		t.Fatalf("Serve with a failing sink: %v, want its error", err)
	}
	var offered []uint64
	select {
	case offered = <-bad.offered:
	default:
		t.Fatal("the failing sink was never called")
	}
	if len(offered) != n {
		t.Fatalf("the failing sink was offered ids %v, want %d", offered, n)
	}

	// The clients are still connected while no plugin takes them.
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("client %d between Serves: read %v, want a timeout (still connected)", i, err)
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
	}

	good := newSink(t, nil)
	cancel, served := serve(t, l, good)
	first := good.collect(t, n)[0]
	if fmt.Sprint(first.ids) != fmt.Sprint(offered) {
		t.Fatalf("first batch of the next Serve: ids %v, want the kept %v", first.ids, offered)
	}
	late := dial(t, l.Addr())
	next := good.collect(t, 1)[0]
	if next.ids[0] != uint64(n+1) {
		t.Fatalf("connection after the kept ones: id %d, want %d", next.ids[0], n+1)
	}
	for i, c := range clients {
		checkWorks(t, first.files[i], c, "kept client "+strconv.Itoa(i))
	}
	checkWorks(t, next.files[0], late, "late client")
	cancel()
	if err := result(t, served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestServeCancel(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		l := listenTCP(t, 128)
		s := newSink(t, nil)
		cancel, served := serve(t, l, s)
		time.Sleep(20 * time.Millisecond) // let Serve block in its wait
		start := time.Now()
		cancel()
		if err := result(t, served); err != nil {
			t.Fatalf("Serve after cancel: %v, want nil", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Serve took %s to return after cancel", took)
		}

		// The listener is open: a client connects and waits in the backlog
		// for the next Serve.
		c := dial(t, l.Addr())
		waitQueue(t, l.Addr(), 1)
		cancel2, served2 := serve(t, l, s)
		b := s.collect(t, 1)[0]
		checkWorks(t, b.files[0], c, "client after cancel")
		cancel2()
		if err := result(t, served2); err != nil {
			t.Fatalf("second Serve: %v", err)
		}
	})

	t.Run("already cancelled", func(t *testing.T) {
		l := listenTCP(t, 128)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- l.Serve(ctx, newSink(t, nil)) }()
		if err := result(t, done); err != nil {
			t.Fatalf("Serve with a cancelled ctx: %v, want nil", err)
		}
		// The deadline that woke Serve does not stick to the listener.
		s := newSink(t, nil)
		cancel2, served := serve(t, l, s)
		c := dial(t, l.Addr())
		checkWorks(t, s.collect(t, 1)[0].files[0], c, "client")
		cancel2()
		if err := result(t, served); err != nil {
			t.Fatalf("Serve: %v", err)
		}
	})
}

func TestClose(t *testing.T) {
	t.Run("while serving", func(t *testing.T) {
		l := listenTCP(t, 128)
		_, served := serve(t, l, newSink(t, nil))
		time.Sleep(20 * time.Millisecond) // let Serve block in its wait
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := result(t, served); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve after Close: %v, want net.ErrClosed", err)
		}
		c, err := net.DialTimeout("tcp", l.Addr().String(), timeout)
		if err == nil {
			c.Close()
			t.Fatal("dial after Close: connected, want refused")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial after Close: %v, want connection refused", err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Serve(context.Background(), newSink(t, nil)) }()
		if err := result(t, done); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve after Close: %v, want net.ErrClosed", err)
		}
	})

	t.Run("closes kept connections", func(t *testing.T) {
		l := listenTCP(t, 128)
		c := dial(t, l.Addr())
		waitQueue(t, l.Addr(), 1)
		errDead := errors.New("dead")
		_, served := serve(t, l, newSink(t, errDead))
		if err := result(t, served); !errors.Is(err, errDead) {
			t.Fatalf("Serve: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("client of a kept connection after Close: read %d, %v; want io.EOF", n, err)
		}
	})
}

func TestListenTCP(t *testing.T) {
	t.Run("address in use", func(t *testing.T) {
		l := listenTCP(t, 16)
		if l2, err := listen.ListenTCP(l.Addr().String(), 16); err == nil {
			l2.Close()
			t.Fatalf("second ListenTCP on %s: no error", l.Addr())
		} else if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("second ListenTCP on %s: %v, want address in use", l.Addr(), err)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		if l, err := listen.ListenTCP("127.0.0.1", 16); err == nil {
			l.Close()
			t.Fatal("ListenTCP without a port: no error")
		}
	})
	t.Run("backlog", func(t *testing.T) {
		// Linux queues backlog+1 completed connections and then drops new
		// SYNs, so the next client's connect does not complete.
		const backlog = 2
		l := listenTCP(t, backlog)
		if _, got := listenerInfo(t, l.Addr()); got != backlog {
			t.Fatalf("listener backlog %d, want %d", got, backlog)
		}
		connected := 0
		for range backlog + 3 {
			c, err := net.DialTimeout("tcp", l.Addr().String(), 200*time.Millisecond)
			if err != nil {
				break
			}
			defer c.Close()
			connected++
			waitQueue(t, l.Addr(), connected)
		}
		if connected < backlog || connected > backlog+1 {
			t.Fatalf("%d clients connected with backlog %d, want %d or %d", connected, backlog, backlog, backlog+1)
		}
		// They were waiting, not refused: Serve hands them all over.
		s := newSink(t, nil)
		cancel, served := serve(t, l, s)
		s.collect(t, connected)
		cancel()
		if err := result(t, served); err != nil {
			t.Fatalf("Serve: %v", err)
		}
	})
}

func TestUDP(t *testing.T) {
	u, err := listen.ListenUDP("127.0.0.1:0", 1<<16, 1<<16)
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	defer u.Close()
	s := newSink(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- u.Serve(ctx, s) }()

	b := s.collect(t, 1)[0]
	defer b.files[0].Close()
	if b.kind != fdpass.Packet || len(b.ids) != 1 || b.ids[0] != 0 {
		t.Fatalf("UDP handoff: kind %q ids %v, want one Packet with id 0", b.kind, b.ids)
	}
	pc, err := net.FilePacketConn(b.files[0])
	if err != nil {
		t.Fatalf("FilePacketConn: %v", err)
	}
	defer pc.Close()
	if pc.LocalAddr().String() != u.Addr().String() {
		t.Fatalf("handed-off socket bound to %s, want %s", pc.LocalAddr(), u.Addr())
	}
	client, err := net.DialTimeout("udp", u.Addr().String(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(timeout))
	_ = pc.SetDeadline(time.Now().Add(timeout))
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("plugin's copy read %q, %v", buf[:n], err)
	}
	if _, err := pc.WriteTo([]byte("pong"), from); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}

	select {
	case err := <-done:
		t.Fatalf("UDP Serve returned %v before its ctx was done", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("UDP Serve after cancel: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("UDP Serve did not return after cancel")
	}
}

func TestUDPSinkFails(t *testing.T) {
	u, err := listen.ListenUDP("127.0.0.1:0", 0, 0)
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	defer u.Close()
	errDead := errors.New("dead")
	done := make(chan error, 1)
	go func() { done <- u.Serve(context.Background(), newSink(t, errDead)) }()
	select {
	case err := <-done:
		if !errors.Is(err, errDead) {
			t.Fatalf("UDP Serve with a failing sink: %v, want its error", err)
		}
	case <-time.After(timeout):
		t.Fatal("UDP Serve with a failing sink did not return")
	}
}

// sinkFunc adapts a function to listen.Sink.
type sinkFunc func(kind fdpass.Kind, ids []uint64, fds []int) error

func (f sinkFunc) Send(kind fdpass.Kind, ids []uint64, fds []int) error { return f(kind, ids, fds) }

var _ listen.Sink = sinkFunc(nil)

// TestServeOverFdpass runs Serve into a real fdpass.Sender and receives the
// connection on the other end of the pair, as a plugin does.
func TestServeOverFdpass(t *testing.T) {
	host, child, err := fdpass.Pair()
	if err != nil {
		t.Fatal(err)
	}
	pluginEnd, err := fdpass.FileConn(child)
	child.Close()
	if err != nil {
		host.Close()
		t.Fatal(err)
	}
	sender, receiver := fdpass.NewSender(host), fdpass.NewReceiver(pluginEnd)
	defer sender.Close()
	defer receiver.Close()
	_ = pluginEnd.SetDeadline(time.Now().Add(timeout))
	_ = host.SetDeadline(time.Now().Add(timeout))

	l := listenTCP(t, 128)
	var mu sync.Mutex
	cancel, served := serve(t, l, sinkFunc(func(kind fdpass.Kind, ids []uint64, fds []int) error {
		mu.Lock()
		defer mu.Unlock()
		if err := sender.Send(kind, ids, fds); err != nil {
			return err
		}
		for _, fd := range fds { // the peer has its copies: ours are the sink's to close
			syscall.Close(fd)
		}
		return nil
	}))
	client := dial(t, l.Addr())
	hs, err := receiver.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	defer func() {
		for _, h := range hs {
			h.File.Close()
		}
	}()
	if len(hs) != 1 || hs[0].Kind != fdpass.Conn || hs[0].ID != 1 {
		t.Fatalf("Recv: %+v, want one Conn with id 1", hs)
	}
	checkWorks(t, hs[0].File, client, "handed-off client")
	cancel()
	if err := result(t, served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestCloseWhileSinkBlocks: a plugin process that is alive but not reading
// (stopped with SIGSTOP, or wedged) fills its handoff socket, and the host's
// Send blocks in sendmsg. Close must still return at once: the supervisor's
// Kill calls it before it kills the process, which is what would make that
// Send fail. The connection Serve was sending is closed once Serve returns.
// (Close used to wait for the lock Serve held while Send blocked.)
func TestCloseWhileSinkBlocks(t *testing.T) {
	l := listenTCP(t, 128)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	blocking := sinkFunc(func(fdpass.Kind, []uint64, []int) error {
		entered <- struct{}{}
		<-release // a sendmsg that returns only when the process is killed
		return syscall.EPIPE
	})
	served := make(chan error, 1)
	go func() { served <- l.Serve(context.Background(), blocking) }()
	released := false
	defer func() {
		if !released {
			close(release)
			<-served
		}
	}()
	client := dial(t, l.Addr())
	select {
	case <-entered:
	case <-time.After(timeout):
		t.Fatal("Serve never called the sink")
	}

	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Error("Close blocked for 1s while the sink's Send was blocked")
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), timeout); err == nil {
		c.Close()
		t.Error("dial after Close: connected, want refused")
	}

	close(release) // the process is killed: Send fails
	released = true
	if err := result(t, served); err == nil {
		t.Error("Serve: nil after its sink failed on a closed listener")
	}
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client whose handoff failed after Close: read %d, %v; want io.EOF", n, err)
	}
}

// A shared TCP listener goes to the sink once, as a Listener-kind descriptor;
// the plugin's copy accepts; clients that arrive while no plugin holds a copy
// wait in the backlog of the host's copy, and Close refuses from then on.
func TestTCPShared(t *testing.T) {
	l, err := listen.ListenTCPShared("127.0.0.1:0", 64)
	if err != nil {
		t.Fatalf("ListenTCPShared: %v", err)
	}
	waiting := dial(t, l.Addr()) // before any plugin: held in the backlog
	s := newSink(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, s) }()
	b := s.collect(t, 1)[0]
	if b.kind != fdpass.Listener || len(b.ids) != 1 {
		t.Fatalf("handoff: kind %q ids %v, want one Listener", b.kind, b.ids)
	}
	ln, err := net.FileListener(b.files[0])
	b.files[0].Close()
	if err != nil {
		t.Fatalf("FileListener: %v", err)
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(timeout))
	for i, client := range []net.Conn{waiting, dial(t, l.Addr())} {
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("accept %d on the plugin's copy: %v", i, err)
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := client.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
			t.Fatalf("accepted %d: %q, %v", i, buf, err)
		}
		c.Close()
	}
	cancel()
	if err := result(t, done); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	ln.Close() // the plugin's copy: the host's still listens
	still := dial(t, l.Addr())
	still.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), timeout); err == nil {
		c.Close()
		t.Fatal("dial after Close succeeded")
	}
}

// Connections a plugin could not take come back with Requeue and go to the
// sink again before any accepted after them, even while Serve waits in the
// poller for new clients; after Close, Requeue closes them.
func TestRequeue(t *testing.T) {
	l := listenTCP(t, 128)
	s := newSink(t, nil)
	cancel, served := serve(t, l, s)
	a, b := dial(t, l.Addr()), dial(t, l.Addr())
	first := s.collect(t, 2)
	var ids []uint64
	var fds []int
	for _, bt := range first {
		ids = append(ids, bt.ids...)
		for _, f := range bt.files {
			fd, err := dupCloexec(int(f.Fd())) // the plugin gives back what the host kept
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
			f.Close()
		}
	}
	l.Requeue(ids, fds) // Serve is waiting for a client: Requeue wakes it
	again := s.collect(t, 2)
	if fmt.Sprint(again[0].ids) != fmt.Sprint(ids) {
		t.Fatalf("requeued ids came back as %v, want %v in one batch", again[0].ids, ids)
	}
	checkWorks(t, again[0].files[0], a, "requeued a")
	checkWorks(t, again[0].files[1], b, "requeued b")
	c := dial(t, l.Addr())
	next := s.collect(t, 1)[0]
	if next.ids[0] != ids[1]+1 {
		t.Fatalf("new client after the requeue: id %d, want %d", next.ids[0], ids[1]+1)
	}
	checkWorks(t, next.files[0], c, "after")
	cancel()
	if err := result(t, served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	d := dial(t, l.Addr())
	waitQueue(t, l.Addr(), 1)
	fd, err := dupCloexec(int(next.files[0].Fd()))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Requeue([]uint64{99}, []int{fd})
	if isOpen(fd) {
		t.Fatal("Requeue after Close kept the descriptor open")
	}
	if n, err := d.Read(make([]byte, 1)); err == nil {
		t.Fatalf("client in the backlog after Close: read %d, want an error", n)
	}
}

func isOpen(fd int) bool {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return errno == 0
}

// pacedSink is a sink that takes nothing until it is opened.
type pacedSink struct {
	*sink
	open  chan struct{}
	asked chan struct{}
}

func (p *pacedSink) Ready(ctx context.Context) error {
	select {
	case p.asked <- struct{}{}:
	default:
	}
	select {
	case <-p.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var _ listen.Pacer = (*pacedSink)(nil)

// A sink that is not taking connections gets none: Serve stops accepting, and
// clients wait in the kernel's backlog until it takes them again.
func TestPacer(t *testing.T) {
	l := listenTCP(t, 128)
	p := &pacedSink{sink: newSink(t, nil), open: make(chan struct{}), asked: make(chan struct{}, 1)}
	cancel, served := serve(t, l, p)
	clients := []net.Conn{dial(t, l.Addr())}
	select {
	case <-p.asked:
	case <-time.After(timeout):
		t.Fatal("Serve never asked the pacer")
	}
	// The first client was accepted and waits for Ready; later ones stay in
	// the backlog.
	for range 3 {
		clients = append(clients, dial(t, l.Addr()))
	}
	waitQueue(t, l.Addr(), 3)
	select {
	case b := <-p.batches:
		t.Fatalf("a sink that was not ready got %v", b.ids)
	default:
	}
	close(p.open)
	got := p.collect(t, len(clients))
	i := 0
	for _, b := range got {
		for _, f := range b.files {
			checkWorks(t, f, clients[i], "client "+strconv.Itoa(i))
			i++
		}
	}
	cancel()
	if err := result(t, served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestAcceptEMFILE: when the host is out of descriptors, accept4 fails with
// EMFILE. Serve backs off and retries, logging at most once a second, and
// the clients wait in the backlog; once descriptors are free they are all
// served. (Serve used to retry every 10 ms without a word.)
func TestAcceptEMFILE(t *testing.T) {
	l := listenTCP(t, 128)
	var logBuf syncBuffer
	l.SetLogger(hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: hclog.Info}))
	const n = 4
	clients := make([]net.Conn, n)
	for i := range clients {
		clients[i] = dial(t, l.Addr())
	}
	waitQueue(t, l.Addr(), n)

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(lowestFree(t)) // no descriptor number is free below it
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Errorf("restore RLIMIT_NOFILE: %v", err)
			}
		}
	}
	defer restore()

	s := newSink(t, nil)
	start := time.Now()
	cancel, served := serve(t, l, s)
	deadline := time.Now().Add(timeout)
	for !strings.Contains(logBuf.String(), "accept failed") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // several retries: 5, 10, 20, 40, 80 ms...
	restore()
	atLimit := time.Since(start)
	select {
	case b := <-s.batches:
		t.Fatalf("connections delivered while the host had no descriptor: %v", b.ids)
	default:
	}
	if queued, _ := listenerInfo(t, l.Addr()); queued != n {
		t.Fatalf("accept queue at the limit: %d, want the %d clients waiting", queued, n)
	}
	got := s.collect(t, n)
	i := 0
	for _, b := range got {
		for _, f := range b.files {
			checkWorks(t, f, clients[i], "client "+strconv.Itoa(i))
			i++
		}
	}
	cancel()
	if err := result(t, served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	out := logBuf.String()
	// Rate-limited: one line a second at most.
	if c, most := strings.Count(out, "accept failed"), 1+int(atLimit/time.Second); c < 1 || c > most ||
		!strings.Contains(out, "too many open files") {
		t.Errorf("log: %d lines of accept failed in %s at the limit, want 1 to %d naming EMFILE:\n%s", c, atLimit, most, out)
	}
	if !strings.Contains(out, "accepting again") {
		t.Errorf("log: no line for the recovery:\n%s", out)
	}
}

// lowestFree is the lowest descriptor number this process has free.
func lowestFree(t *testing.T) int {
	t.Helper()
	for fd := 0; fd < 1<<16; fd++ {
		if !isOpen(fd) {
			return fd
		}
	}
	t.Fatal("no free descriptor number")
	return 0
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
