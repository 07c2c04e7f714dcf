// Package fanout hands one ordered stream of events to its consumers, none
// dropped, none twice, on one delivery goroutine. A subscriber joins at a
// snapshot's sequence number and receives only the events after it; taken
// under the owner's lock, the snapshot and the subscription agree, so the
// handover loses and repeats nothing. The presence hub and the cluster
// node both deliver through it.
package fanout

import (
	"slices"
	"sync"
	"time"
)

// Fanout is the queue and the consumers. Its methods marked "mu held" must
// be called with the owner's lock (the one given to New) held.
type Fanout[E any] struct {
	mu    *sync.Mutex
	seq   func(E) uint64
	fixed []func(E) // consumers of every event, from the start

	queue   []E
	subs    map[uint64]sub[E]
	nextID  uint64
	busy    bool       // the delivery goroutine is delivering a batch
	stopped bool       // Run has returned: nothing more is delivered
	idle    *sync.Cond // on mu: the queue is empty and nothing is being delivered
	kick    chan struct{}
}

type sub[E any] struct {
	fn   func(E)
	from uint64
}

// New returns a Fanout guarded by the owner's mu. seq gives an event's
// sequence number; fixed consumers get every event, whatever its number.
func New[E any](mu *sync.Mutex, seq func(E) uint64, fixed ...func(E)) *Fanout[E] {
	return &Fanout[E]{mu: mu, seq: seq, fixed: fixed, subs: map[uint64]sub[E]{},
		idle: sync.NewCond(mu), kick: make(chan struct{}, 1)}
}

// Push queues evs for delivery. mu held.
func (f *Fanout[E]) Push(evs []E) {
	if len(evs) == 0 {
		return
	}
	f.queue = append(f.queue, evs...)
	f.Kick()
}

// Pending returns a copy of the events queued and not yet taken for
// delivery. mu held.
func (f *Fanout[E]) Pending() []E { return slices.Clone(f.queue) }

// Kick wakes the delivery goroutine, for its owner's own reasons too (a new
// deadline). It never blocks.
func (f *Fanout[E]) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Subscribe adds fn for the events numbered above from (the Seq of a
// snapshot taken under mu, so that events still queued, which it already
// holds, are skipped). mu held. cancel takes mu itself.
func (f *Fanout[E]) Subscribe(from uint64, fn func(E)) (cancel func()) {
	f.nextID++
	id := f.nextID
	f.subs[id] = sub[E]{fn: fn, from: from}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
	}
}

// Wait returns once every event queued so far has been delivered (or the
// delivery goroutine has stopped). mu held; Wait releases it meanwhile.
func (f *Fanout[E]) Wait() {
	for (len(f.queue) > 0 || f.busy) && !f.stopped {
		f.idle.Wait()
	}
}

// Run is the delivery goroutine; it returns when stop is closed. Each
// round it calls before with mu held, which may Push and returns when Run
// must wake even if no one kicks it (zero: only on a kick); then it
// delivers what is queued, in order, each event to the fixed consumers and
// to the subscribers that joined before it.
func (f *Fanout[E]) Run(stop <-chan struct{}, before func() (wake time.Time)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []E
	var subs []sub[E]
	for {
		f.mu.Lock()
		var wake time.Time
		if before != nil {
			wake = before()
		}
		// Swap buffers; one grown by a burst (a shutdown's leaves) is let go.
		batch, f.queue = f.queue, batch[:0]
		if cap(f.queue) > 4096 {
			f.queue = nil
		}
		subs = subs[:0]
		for _, fn := range f.fixed {
			subs = append(subs, sub[E]{fn: fn})
		}
		for _, s := range f.subs {
			subs = append(subs, s)
		}
		f.busy = len(batch) > 0
		if !f.busy {
			f.idle.Broadcast()
		}
		f.mu.Unlock()
		for _, e := range batch {
			n := f.seq(e)
			for i, s := range subs {
				if i < len(f.fixed) || n > s.from {
					s.fn(e)
				}
			}
		}
		clear(batch) // no event's strings outlive its delivery
		if len(batch) > 0 {
			continue // look again before waiting
		}
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
		}
		select {
		case <-f.kick:
		case <-timer.C:
		case <-stop:
			timer.Stop()
			f.mu.Lock()
			f.busy, f.stopped = false, true
			f.idle.Broadcast()
			f.mu.Unlock()
			return
		}
		timer.Stop()
	}
}
