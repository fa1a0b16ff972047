// Package sdk is the one import a sockplay protocol plugin needs.
//
// A plugin is a small program whose main calls Main with a Plugin value:
//
//	func main() {
//		sdk.Main(sdk.Plugin{
//			Name:        "echo",
//			Version:     "1.0.0",
//			DefaultAddr: "127.0.0.1:12348",
//			TCP: func(cfg sdk.Config) (sdk.Handler, error) {
//				return sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
//					io.Copy(c, c)
//				}), nil
//			},
//		})
//	}
//
// Started by the sockplay host, the binary serves the host's control service
// (github.com/hashicorp/go-plugin over gRPC) and receives every connection the
// host accepts on its listener, as a net.Conn, exactly as if it had called
// Accept itself: the host passes the connection's file descriptor, and after
// that the plugin talks to the client directly. One goroutine per connection
// runs the Handler; a panic in it is recovered, logged with its stack, and
// closes that connection only. The handler's context is cancelled when the
// host asks the plugin to drain.
//
// When a handler returns, the SDK closes its connection the orderly way, so
// that no handler turns a close into a reset because the client sent bytes
// it did not read: it half-closes (FIN), reads and discards what the client
// still sends until the client closes too, for at most LingerTimeout (1 s)
// and LingerBytes (4 MiB), and then closes. This is the lingering close of
// Apache httpd and net/http; a handler needs no code of its own for it.
//
// A plugin that accepts itself (Server.Serve, the host's --handoff listener)
// retries temporary accept errors such as EMFILE with a back-off of 5 ms
// doubling to 1 s, as net/http does, and logs them at most once a second.
//
// The plugin's transport follows from the handler constructor it sets: TCP
// (a Handler per connection) or UDP (a PacketHandler per socket).
//
// Run by hand, the same binary is the protocol's client: Main runs the
// Plugin.Commands the command line names (package sdk/client), and answers
// --help and --version itself. Commands are optional: a plugin without any
// says so in its --help, and the host serves it all the same. Package
// sdk/escape prints what a server sent without letting it drive the terminal.
//
// Server and PacketServer, which the runtime serves the host's sockets with,
// have net/http's lifecycle: Serve blocks until the server stops and then
// returns ErrServerClosed, Shutdown(ctx) drains, Close stops at once.
//
// What a plugin prints reaches the host's log under the plugin's name: its
// Config.Logger lines at their level, plain lines on stderr, and what it
// prints on stdout from Main on (Main keeps standard output clear for
// go-plugin's handshake line until it has written it). Importing the package
// has no side effect, and output printed before Main (in an init, say) is not
// guarded: it comes first on stdout, where the host reads the handshake, and
// the host refuses the binary as not a plugin, quoting the line.
//
// `sockplay new NAME` writes a new plugin ready to build and test, and
// `sockplay dev NAME` builds it, serves it, and rebuilds and reloads it on
// every save.
//
// Package sdktest runs a plugin's handler behind a real loopback listener, so
// a plugin is unit-tested without a host.
//
// The SDK is a Go module of its own (sdk/go.mod), so that a plugin's module
// graph holds the SDK's requirements and none of the host's.
package sdk
