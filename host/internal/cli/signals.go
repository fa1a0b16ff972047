package cli

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// stopContexts turns SIGINT and SIGTERM into two contexts: stop is cancelled
// by the first (drain and stop), now by the second (stop at once). Their
// causes name the signal. release stops catching the signals.
//
// This is signal.NotifyContext taken twice, on one channel: two
// NotifyContexts made one after the other could lose a second signal that
// came before the second one was made (it would sit in the first one's
// channel), and a stop must never be lost. The channel holds two signals,
// so that os/signal, which drops a signal that finds the channel full, keeps
// both even before the goroutine reads them.
func stopContexts(parent context.Context) (stop, now context.Context, release func()) {
	stop, cancelStop := context.WithCancelCause(parent)
	now, cancelNow := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i, cancel := range []context.CancelCauseFunc{cancelStop, cancelNow} {
			select {
			case sig := <-ch:
				cancel(signalError{sig, i == 1})
			case <-done:
				return
			}
		}
	})
	return stop, now, func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
		cancelStop(context.Canceled)
		cancelNow(context.Canceled)
	}
}

// signalError is the cause of a context that a signal cancelled.
type signalError struct {
	sig    os.Signal
	second bool
}

func (e signalError) Error() string {
	if e.second {
		return "a second signal (" + e.sig.String() + ")"
	}
	return "signal " + e.sig.String()
}

// signalName returns the signal that cancelled ctx ("interrupt",
// "terminated"), or ctx's error.
func signalName(ctx context.Context) string {
	if se, ok := context.Cause(ctx).(signalError); ok {
		return se.sig.String()
	}
	return context.Cause(ctx).Error()
}

// catchSIGHUP catches SIGHUP from now on (its default action ends the
// process): a SIGHUP that comes before forward waits in the channel.
func catchSIGHUP() chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch
}

// forward calls request on each SIGHUP that ch (from catchSIGHUP) gets, until
// stop is called, which stops catching SIGHUP too. request must not block
// (Host.RequestReload does not): the reloads run on the host's Run, never on
// this loop.
func forward(ch chan os.Signal, request func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ch:
				request()
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
	}
}
