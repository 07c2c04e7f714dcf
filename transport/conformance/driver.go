package conformance

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport"
)

// Changes records a heartbeat driver's state changes: pass its Add as
// fsm.DriverConfig.OnChange.
type Changes struct {
	mu   sync.Mutex
	list []fsm.Change
	wake chan struct{}
}

// NewChanges returns an empty Changes.
func NewChanges() *Changes { return &Changes{wake: make(chan struct{})} }

// Add records c.
func (w *Changes) Add(c fsm.Change) {
	w.mu.Lock()
	w.list = append(w.list, c)
	close(w.wake)
	w.wake = make(chan struct{})
	w.mu.Unlock()
}

// WaitFor waits up to Wait for a change at index from or later that
// matches, and returns its index and the change.
func (w *Changes) WaitFor(t testing.TB, from int, what string, match func(fsm.Change) bool) (int, fsm.Change) {
	t.Helper()
	deadline := time.After(Wait)
	for {
		w.mu.Lock()
		for i := from; i < len(w.list); i++ {
			if match(w.list[i]) {
				c := w.list[i]
				w.mu.Unlock()
				return i, c
			}
		}
		wake := w.wake
		w.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no %s within %v; changes: %v", what, Wait, w.List())
		}
	}
}

// List returns the changes so far.
func (w *Changes) List() []fsm.Change {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]fsm.Change(nil), w.list...)
}

// Len returns how many changes there have been.
func (w *Changes) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.list)
}

// Verdicts returns the changes since index from that say the peer is in
// trouble (to suspect or dead).
func (w *Changes) Verdicts(from int) []fsm.Change {
	var bad []fsm.Change
	for _, c := range w.List()[from:] {
		if c.To == fsm.Suspect || c.To == fsm.Dead {
			bad = append(bad, c)
		}
	}
	return bad
}

// To matches a change to s.
func To(s fsm.State) func(fsm.Change) bool { return func(c fsm.Change) bool { return c.To == s } }

// Counter is a transport.Dialer that counts the heartbeats and data
// messages its connections report to the driver: a test's run is measured
// in heartbeats, not in wall time.
type Counter struct {
	transport.Dialer
	pongs, heartbeats, data atomic.Int64
	wake                    chan struct{}

	mu       sync.Mutex
	arrivals []time.Time // of every frame, oldest first, the latest maxArrivals
}

// maxArrivals bounds the arrival times a Counter keeps.
const maxArrivals = 1 << 14

// NewCounter returns a Counter that dials through d.
func NewCounter(d transport.Dialer) *Counter {
	return &Counter{Dialer: d, wake: make(chan struct{}, 1)}
}

// Dial implements transport.Dialer.
func (d *Counter) Dial(ctx context.Context, ev transport.Events) (transport.Conn, error) {
	return d.Dialer.Dial(ctx, counting{ev, d})
}

// WaitPongs waits up to within until n more pongs than now have arrived.
func (d *Counter) WaitPongs(t testing.TB, n int64, within time.Duration) {
	t.Helper()
	d.wait(t, &d.pongs, "pongs", n, within)
}

// WaitHeartbeats waits up to within until n more heartbeats (pings or
// pongs, whichever side pinged) than now have arrived. When both sides ping
// on idle, which side's timer fires first is a race; heartbeats in either
// direction measure the healthy run the same.
func (d *Counter) WaitHeartbeats(t testing.TB, n int64, within time.Duration) {
	t.Helper()
	d.wait(t, &d.heartbeats, "heartbeats", n, within)
}

// WaitData waits up to within until n more data messages than now have
// arrived.
func (d *Counter) WaitData(t testing.TB, n int64, within time.Duration) {
	t.Helper()
	d.wait(t, &d.data, "data messages", n, within)
}

// LastFrameBefore returns when the latest frame (of any kind) that arrived
// no later than at arrived, and false if none did. A test uses it to tell
// a verdict the link earned (it really carried nothing for a timeout) from
// a false one, on a machine too busy to keep a slow link's pace.
func (d *Counter) LastFrameBefore(at time.Time) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.arrivals) - 1; i >= 0; i-- {
		if !d.arrivals[i].After(at) {
			return d.arrivals[i], true
		}
	}
	return time.Time{}, false
}

func (d *Counter) wait(t testing.TB, count *atomic.Int64, what string, n int64, within time.Duration) {
	t.Helper()
	target := count.Load() + n
	deadline := time.After(within)
	for count.Load() < target {
		select {
		case <-d.wake:
		case <-deadline:
			t.Fatalf("only %d of %d %s", count.Load()-(target-n), n, what)
		}
	}
}

// counting passes every event on to the driver, counting it first.
type counting struct {
	transport.Events
	d *Counter
}

func (c counting) Frame(f transport.Frame) {
	switch f.Kind {
	case transport.Pong:
		c.d.pongs.Add(1)
		c.d.heartbeats.Add(1)
	case transport.Ping:
		c.d.heartbeats.Add(1)
	case transport.Data:
		c.d.data.Add(1)
	}
	c.d.mu.Lock()
	if len(c.d.arrivals) == maxArrivals {
		c.d.arrivals = append(c.d.arrivals[:0], c.d.arrivals[maxArrivals/2:]...)
	}
	c.d.arrivals = append(c.d.arrivals, time.Now())
	c.d.mu.Unlock()
	select {
	case c.d.wake <- struct{}{}:
	default:
	}
	c.Events.Frame(f)
}
