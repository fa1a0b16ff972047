// Package load is sockplay's data-path benchmark: a closed-loop load
// generator over loopback (ping-pong, bulk echo, many connections, connection
// rate, UDP datagrams), the servers it compares against (the real host with
// the echo plugin, a plain Go echo server in its own process, and, when
// installed, xinetd and tcpserver running cat), the run that alternates
// between them round after round, and the report of medians and ratios.
//
// Every measurement is bounded twice: by a duration and by a count of
// operations, and every socket has a deadline past the measurement's end, so
// a stuck server costs seconds, not a hung run.
package load
