package sdktest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

// greeter is the plugin under test in the examples: it answers each line with
// its greeting and the line.
func greeter() sdk.Plugin {
	return sdk.Plugin{
		Name:        "greeter",
		Version:     "1.0.0",
		DefaultAddr: "127.0.0.1:12399",
		Options:     []sdk.Option{{Name: "greeting", Default: "hello", Help: "what to say"}},
		TCP: func(cfg sdk.Config) (sdk.Handler, error) {
			g := cfg.String("greeting")
			return sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s, %s\n", g, sc.Text())
				}
			}), nil
		},
	}
}

// In a plugin's test, t is the test's *testing.T: the example stands one in
// so that it can run here.
func ExampleStart() {
	t := &exampleT{}
	defer t.cleanup()

	in := sdktest.Start(t, greeter(), map[string]string{"greeting": "hi"})
	c := in.Dial(t) // closed, and the plugin stopped, when the test ends
	fmt.Fprintln(c, "gopher")
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	fmt.Print(reply)
	// Output:
	// hi, gopher
}

// A UDP plugin is dialled with DialUDP: the returned conn is connected to the
// plugin's socket.
func ExampleInstance_DialUDP() {
	t := &exampleT{}
	defer t.cleanup()

	shout := sdk.Plugin{
		Name:        "shout",
		Version:     "1.0.0",
		DefaultAddr: "127.0.0.1:12398",
		UDP: func(sdk.Config) (sdk.PacketHandler, error) {
			return sdk.DatagramFunc(func(_ context.Context, p []byte, _ net.Addr) []byte {
				return bytes.ToUpper(p)
			}), nil
		},
	}
	c := sdktest.Start(t, shout, nil).DialUDP(t)
	_, _ = io.WriteString(c, "quiet please")
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	fmt.Printf("%s\n", buf[:n])
	// Output:
	// QUIET PLEASE
}

// Configure checks that bad options are refused, the way the host would
// refuse them, without serving anything.
func ExampleConfigure() {
	t := &exampleT{}
	defer t.cleanup()

	fmt.Println(sdktest.Configure(t, greeter(), map[string]string{"greeting": "hey"}))
	fmt.Println(sdktest.Configure(t, greeter(), map[string]string{"colour": "red"}))
	// Output:
	// <nil>
	// greeter has no option "colour" (options: greeting)
}

// Logger is the logger Start gives the plugin: its lines go to t.Log, so
// that go test shows them with the failing test. A test can pass it to a
// Server of its own.
func ExampleLogger() {
	t := &exampleT{printLog: true}
	log := sdktest.Logger(t, "greeter")
	log.Info("configured", "greeting", "hi")
	// Output:
	// [INFO]  greeter: configured: greeting=hi
}

// exampleT stands in for a *testing.T in the examples, which have none. It
// implements what sdktest calls (Helper, Log, Fatalf, Cleanup); the embedded
// nil testing.TB makes any other method panic, which fails the example.
type exampleT struct {
	testing.TB
	cleanups []func()
	printLog bool // Log prints, as go test -v shows t.Log lines, less the time
}

func (*exampleT) Helper() {}

func (t *exampleT) Log(args ...any) {
	if t.printLog {
		_, line, _ := strings.Cut(fmt.Sprint(args...), " ") // hclog's line starts with the time
		fmt.Println(line)
	}
}

func (*exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (t *exampleT) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

// cleanup runs the registered functions last first, as testing does.
func (t *exampleT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
