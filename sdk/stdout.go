package sdk

import (
	"bufio"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// handshakeStdout is the real standard output, kept for go-plugin's
// handshake line when the host started this binary. Until Serve, os.Stdout
// is a pipe whose lines go to the host's log: a fmt.Println before sdk.Main
// (in an init, say) would otherwise come first on stdout and be taken for a
// broken handshake. After the handshake go-plugin sends stdout to the host,
// which logs it under the plugin's name.
var (
	handshakeStdout *os.File
	earlyStdout     *os.File // the pipe's write end
	earlyDone       chan struct{}
)

func init() {
	if os.Getenv(protocol.Handshake.MagicCookieKey) != protocol.Handshake.MagicCookieValue {
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	handshakeStdout, earlyStdout, earlyDone = os.Stdout, w, make(chan struct{})
	os.Stdout = w
	log := plog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, TimeFormat: plog.TimeFormat})
	go func() {
		defer close(earlyDone)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			log.Info(sc.Text(), "stream", "stdout")
		}
		r.Close()
	}()
}

// restoreStdout gives go-plugin the real standard output for its handshake,
// after logging what was printed before.
func restoreStdout() {
	if handshakeStdout == nil {
		return
	}
	os.Stdout = handshakeStdout
	earlyStdout.Close()
	<-earlyDone
	handshakeStdout = nil
}
