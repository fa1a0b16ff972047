package load

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// summarize classifies each attempt against the kills: served again (the
// first success after a kill), lost (failed, and begun before the process
// was gone), failed (failed later, or any hello), refused.
func TestRestartSummarize(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := func(start, end int) restartAttempt { return restartAttempt{start: at(start), end: at(end)} }
	bad := func(start, end int) restartAttempt {
		return restartAttempt{start: at(start), end: at(end), err: errors.New("reset")}
	}
	refused := func(start int) restartAttempt {
		return restartAttempt{start: at(start), end: at(start), err: errors.New("refused"), refused: true}
	}
	kills := []kill{
		{at: at(100), gone: at(102), next: at(1000)},
		{at: at(1000), gone: at(1001), next: at(2000)},
	}
	echo := []restartAttempt{
		ok(90, 95),      // before any kill
		bad(99, 103),    // open at the first kill: lost
		bad(101, 104),   // begun between kill and death: lost
		ok(101, 160),    // the first kill served again after 60 ms
		ok(150, 170),    // later, not the first
		bad(500, 501),   // after the death, failed
		ok(1000, 1040),  // the second kill: 40 ms
		refused(1500),   // refused
		ok(1010, 1030),  // the second kill's first by end: 30 ms
		bad(1500, 1501), // failed
	}
	hello := []restartAttempt{ok(10, 20), bad(30, 40)}
	var r Restart
	r.summarize(kills, [][]restartAttempt{echo, hello}, 1)
	if !slices.Equal(r.ServedAgainMs, []float64{60, 30}) {
		t.Errorf("served again %v, want [60 30]", r.ServedAgainMs)
	}
	if r.Attempts != 12 || r.LostOpen != 2 || r.Failed != 4 || r.Refused != 1 {
		t.Errorf("attempts %d, lost %d, failed %d, refused %d; want 12, 2, 4, 1 (%q)",
			r.Attempts, r.LostOpen, r.Failed, r.Refused, r.Failures)
	}
	if r.MedianMs != 45 || r.P90Ms != 60 || r.MaxMs != 60 {
		t.Errorf("median %v, p90 %v, max %v; want 45, 60, 60", r.MedianMs, r.P90Ms, r.MaxMs)
	}
}
