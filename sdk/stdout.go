package sdk

import (
	"bufio"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// handshakeStdout is the real standard output, kept for go-plugin's
// handshake line when the host started this binary. From guardStdout, called
// by Main, until Serve, os.Stdout is a pipe whose lines go to the host's log,
// so that nothing printed while the plugin starts comes first on stdout and
// is taken for a broken handshake. After the handshake go-plugin sends stdout
// to the host, which logs it under the plugin's name. What a program prints
// before it calls Main is not guarded: it is on stdout ahead of the handshake,
// and the host refuses the binary as not a sockplay plugin, quoting it.
var (
	handshakeStdout *os.File
	earlyStdout     *os.File // the pipe's write end
	earlyDone       chan struct{}
)

// guardStdout points os.Stdout at a pipe whose lines are logged, until
// restoreStdout. Main calls it only when the host started the binary.
func guardStdout() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	handshakeStdout, earlyStdout, earlyDone = os.Stdout, w, make(chan struct{})
	os.Stdout = w
	log := plog.New(&hclog.LoggerOptions{Output: plog.JSONOutput(os.Stderr), JSONFormat: true, TimeFormat: plog.TimeFormat})
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
