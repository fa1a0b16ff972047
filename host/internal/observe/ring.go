package observe

import (
	"sync"
)

// Ring keeps the last records added, each numbered (Seq) from 1 in the
// order added. A reader asks for what came after the last Seq it saw; one
// that fell more than the ring's size behind gets what is left.
type Ring[T Event | Trace] struct {
	mu   sync.Mutex
	buf  []T    // circular: record seq lives at buf[(seq-1) % cap]
	next uint64 // the Seq of the next record
}

// NewRing returns a ring of the last n records.
func NewRing[T Event | Trace](n int) *Ring[T] {
	return &Ring[T]{buf: make([]T, n), next: 1}
}

// Add appends records, numbering them.
func (r *Ring[T]) Add(recs ...T) {
	if len(recs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		switch v := any(&rec).(type) {
		case *Event:
			v.Seq = r.next
		case *Trace:
			v.Seq = r.next
		}
		r.buf[(r.next-1)%uint64(len(r.buf))] = rec
		r.next++
	}
}

// Since returns the records after seq (every kept one for 0), oldest
// first, at most the newest limit of them when limit > 0, and the Seq of
// the last record added so far.
func (r *Ring[T]) Since(seq uint64, limit int) ([]T, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.next - 1
	kept := min(last, uint64(len(r.buf)))
	from := max(seq+1, last-kept+1)
	if limit > 0 && last+1-from > uint64(limit) {
		from = last + 1 - uint64(limit)
	}
	var out []T
	for s := from; s <= last; s++ {
		out = append(out, r.buf[(s-1)%uint64(len(r.buf))])
	}
	return out, last
}
