package fanout

import (
	"slices"
	"sync"
	"testing"
)

type ev struct{ seq uint64 }

// Every consumer gets the events in order; a subscriber that joins at a
// snapshot's Seq gets exactly the later ones, even those queued before it
// joined; a cancelled one gets no more; Wait returns with all delivered.
func TestOrderAndHandover(t *testing.T) {
	var mu sync.Mutex
	var fixed []uint64 // written on the delivery goroutine, read after Wait
	f := New(&mu, func(e ev) uint64 { return e.seq }, func(e ev) { fixed = append(fixed, e.seq) })
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); f.Run(stop, nil) }()

	var late, gone []uint64
	mu.Lock()
	f.Push([]ev{{1}, {2}, {3}})
	cancelGone := f.Subscribe(0, func(e ev) { gone = append(gone, e.seq) })
	// A snapshot as of 2: event 3, still queued or not, is news; 1 and 2 are not.
	f.Subscribe(2, func(e ev) { late = append(late, e.seq) })
	f.Wait()
	mu.Unlock()
	cancelGone()
	mu.Lock()
	f.Push([]ev{{4}, {5}})
	f.Wait()
	mu.Unlock()

	close(stop)
	<-done
	if want := []uint64{1, 2, 3, 4, 5}; !slices.Equal(fixed, want) {
		t.Errorf("fixed consumer got %v, want %v", fixed, want)
	}
	if want := []uint64{3, 4, 5}; !slices.Equal(late, want) {
		t.Errorf("subscriber from 2 got %v, want %v", late, want)
	}
	if want := []uint64{1, 2, 3}; !slices.Equal(gone, want) {
		t.Errorf("cancelled subscriber got %v, want %v", gone, want)
	}
	mu.Lock()
	if p := f.Pending(); len(p) != 0 {
		t.Errorf("pending after Wait: %v", p)
	}
	mu.Unlock()
}

// Once Run has returned, Wait does not wait for events no one will
// deliver (a shutdown whose context ended first).
func TestWaitAfterStop(t *testing.T) {
	var mu sync.Mutex
	f := New(&mu, func(e ev) uint64 { return e.seq })
	stop := make(chan struct{})
	close(stop)
	f.Run(stop, nil)
	mu.Lock()
	f.Push([]ev{{1}})
	f.Wait() // returns: nothing is delivered any more
	mu.Unlock()
}
