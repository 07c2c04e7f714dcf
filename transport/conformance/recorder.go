package conformance

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/transport"
)

// Recorder is a transport.Events that keeps what it is told, for tests.
// It copies each frame's payload, as the contract requires of a receiver
// that keeps it.
type Recorder struct {
	mu          sync.Mutex
	frames      []transport.Frame
	closed      int
	closedErr   error
	afterClosed int
	next        map[transport.FrameKind]int // frames of each kind already returned by WaitFrame
	wake        chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{next: map[transport.FrameKind]int{}, wake: make(chan struct{})}
}

// Frame implements transport.Events.
func (r *Recorder) Frame(f transport.Frame) {
	f.Payload = append([]byte(nil), f.Payload...)
	r.mu.Lock()
	if r.closed > 0 {
		r.afterClosed++
	}
	r.frames = append(r.frames, f)
	r.signal()
	r.mu.Unlock()
}

// Closed implements transport.Events.
func (r *Recorder) Closed(err error) {
	r.mu.Lock()
	r.closed++
	if r.closed == 1 {
		r.closedErr = err
	}
	r.signal()
	r.mu.Unlock()
}

// signal wakes every waiter; r.mu is held.
func (r *Recorder) signal() {
	close(r.wake)
	r.wake = make(chan struct{})
}

// wait blocks until cond (checked under the lock) holds, failing the test
// after Wait.
func (r *Recorder) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(Wait)
	for {
		r.mu.Lock()
		ok, wake := cond(), r.wake
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no %s within %v", what, Wait)
		}
	}
}

// WaitFrame returns the next frame of kind k not yet returned, waiting for
// it.
func (r *Recorder) WaitFrame(t testing.TB, k transport.FrameKind) transport.Frame {
	t.Helper()
	var got transport.Frame
	r.wait(t, k.String()+" frame", func() bool {
		seen := 0
		for _, f := range r.frames {
			if f.Kind != k {
				continue
			}
			if seen == r.next[k] {
				r.next[k]++
				got = f
				return true
			}
			seen++
		}
		return false
	})
	return got
}

// WaitSeq blocks until a frame of kind k with Seq seq has arrived.
func (r *Recorder) WaitSeq(t testing.TB, k transport.FrameKind, seq uint64) {
	t.Helper()
	r.wait(t, fmt.Sprintf("a %v with Seq %d", k, seq), func() bool {
		for _, f := range r.frames {
			if f.Kind == k && f.Seq == seq {
				return true
			}
		}
		return false
	})
}

// WaitCount waits until n frames of kind k have arrived.
func (r *Recorder) WaitCount(t testing.TB, k transport.FrameKind, n int) {
	t.Helper()
	r.wait(t, k.String()+" frames", func() bool { return r.countLocked(k) >= n })
}

// WaitClosed waits for Closed and returns its error.
func (r *Recorder) WaitClosed(t testing.TB) error {
	t.Helper()
	r.wait(t, "Closed", func() bool { return r.closed > 0 })
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closedErr
}

// Count returns how many frames of kind k have arrived.
func (r *Recorder) Count(k transport.FrameKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countLocked(k)
}

func (r *Recorder) countLocked(k transport.FrameKind) int {
	n := 0
	for _, f := range r.frames {
		if f.Kind == k {
			n++
		}
	}
	return n
}

// ClosedCount returns how many times Closed was called.
func (r *Recorder) ClosedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// FramesAfterClosed returns how many frames were reported after Closed.
func (r *Recorder) FramesAfterClosed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.afterClosed
}
