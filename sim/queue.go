package sim

import (
	"cmp"
	"math/bits"
	"slices"
)

// evKind says what a queued event does.
type evKind uint8

const (
	evTimer  evKind = iota + 1 // an endpoint's deadline wake-up
	evFrame                    // a heartbeat frame arrives
	evSyn                      // a client's connection request reaches the server
	evAccept                   // the server's acceptance reaches the client
	evRefuse                   // the server's refusal reaches the client
	evFin                      // a clean close reaches the peer
	evReset                    // a TCP reset reaches an endpoint
	evFault                    // a fault begins (aux: 0 random, else 1 + index in Config.Faults)
	evStart                    // a client starts (or restarts after a crash)
	evCap                      // a failure's detection horizon (aux: its serial)
)

var evNames = [...]string{"", "timer", "frame", "syn", "accept", "refuse", "fin", "reset", "fault", "start", "cap"}

func (k evKind) String() string {
	if int(k) < len(evNames) {
		return evNames[k]
	}
	return "event(?)"
}

// event is one scheduled happening. It is kept to 32 bytes because
// thousands sit in the queue at once and the queue moves them around.
type event struct {
	at int64 // virtual nanoseconds since the run began
	// seq breaks ties in a heap: events at the same moment run in
	// scheduling order. In a wheel bucket it links to the event pushed
	// before (see queue).
	seq  uint64
	aux  uint32 // frame seq (a connection sends far fewer than 2³² pings), fault index, failure serial
	slot int32
	gen  uint32 // connection generation, or timer generation for evTimer
	kind evKind
	side side
	fk   uint8 // frame kind
	flag uint8 // what a server's ping carries: flagWindow, flagTimeout
}

// heap4 is a 4-ary min-heap of events keyed by (at, seq), seq being the
// push order. A 4-ary heap halves the depth of a binary one and keeps
// children on one cache line.
type heap4 struct {
	h   []event
	seq uint64
}

func before(a, b *event) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// push and pop move a hole rather than swapping, so each level of the
// heap costs one 32-byte copy.
func (q *heap4) push(e event) {
	q.seq++
	e.seq = q.seq
	q.h = append(q.h, e)
	h := q.h
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !before(&e, &h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = e
}

func (q *heap4) len() int { return len(q.h) }

// pop removes and returns the earliest event. The heap must not be empty.
func (q *heap4) pop() event {
	h := q.h
	top := h[0]
	n := len(h) - 1
	last := h[n]
	q.h = h[:n]
	h = h[:n]
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for k := c + 1; k < end; k++ {
			if before(&h[k], &h[m]) {
				m = k
			}
		}
		if !before(&h[m], &last) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = last
	return top
}

// Queue geometry. Buckets are 2^shift ns wide, shift chosen from the
// number of connections so that a bucket holds about one event at the
// presets' heartbeat rates (17 ms for up to 127 connections, 2 ms for
// 1,000, 131 µs for 10,000); a page of fineLen buckets is then between
// half a second and a minute, and the coarse wheel reaches a thousand
// pages ahead.
const (
	fineLog    = 12
	fineLen    = 1 << fineLog
	coarseLog  = 10
	coarseLen  = 1 << coarseLog
	coarseMask = coarseLen - 1
	minShift   = 14 // 16 µs
	maxShift   = 24 // 17 ms
)

// queue hands out events in (at, push order), the order of one heap over
// everything, but as a two-level timing wheel (a calendar queue): pushing
// an event and popping one cost O(1), but for sorting the few events of
// one bucket.
//
// Virtual time is cut into buckets of 2^shift ns and the buckets into
// pages of fineLen. The events of the current page sit in the fine wheel,
// one list per bucket; those of the next coarseLen-1 pages in the coarse
// wheel, one list per page; later ones in a heap, far. When the current
// bucket runs out, the next non-empty bucket of the page becomes current:
// its list is sorted by time into run, and the events pushed into the
// current bucket from then on go to a heap, near. When the page runs out,
// the next non-empty page becomes current: the far events of the pages now
// in reach move into the coarse wheel and the new page's list is spread
// over the fine wheel.
//
// Order among equal times is push order because every list is: lists are
// first in, first out (linked through event.seq, an index into pool plus
// one, 0 ending the list), run is sorted stably, near's events were pushed
// after run's; and the events that move into a list (from far, or from a
// page's list) move the moment their list comes into reach, before
// anything can be pushed into it directly, in their own order — so they
// come first, as their earlier pushes demand.
type queue struct {
	run    []event // the current bucket's events, sorted by time
	ri     int     // run[ri:] are still queued
	near   heap4   // events pushed into the current bucket after it became current
	far    heap4   // events beyond the coarse wheel
	pool   []event // the wheels' events; free slots are linked like a list
	free   uint32  // the first free slot in pool, plus one; 0 for none
	fine   wheel   // the current page's events, per bucket
	coarse wheel   // the next pages' events, per page
	cur    int64   // the current bucket: virtual time >> shift
	page   int64   // the current page: cur >> fineLog
	shift  uint
	n      int // events queued
}

// wheel is a ring of lists with a bitmap of the non-empty ones.
type wheel struct {
	head, tail []uint32 // per list: its first and last event in pool, plus one; 0 if empty
	bits       []uint64
}

func newWheel(n int) wheel {
	return wheel{head: make([]uint32, n), tail: make([]uint32, n), bits: make([]uint64, n/64)}
}

// append links pool slot i (whose seq must be 0) at the end of list k.
func (q *queue) append(w *wheel, k int64, i uint32) {
	if t := w.tail[k]; t != 0 {
		q.pool[t-1].seq = uint64(i)
	} else {
		w.head[k] = i
		w.bits[k>>6] |= 1 << (k & 63)
	}
	w.tail[k] = i
}

// clear empties list k of w and returns its first slot.
func (w *wheel) clear(k int64) uint32 {
	i := w.head[k]
	w.head[k], w.tail[k] = 0, 0
	w.bits[k>>6] &^= 1 << (k & 63)
	return i
}

// first returns the first non-empty list at or after k (no wrapping).
func (w *wheel) first(k int64) (int64, bool) {
	if k >= int64(len(w.head)) {
		return 0, false
	}
	i := int(k >> 6)
	word := w.bits[i] &^ (1<<(k&63) - 1)
	for {
		if word != 0 {
			return int64(i<<6 + bits.TrailingZeros64(word)), true
		}
		i++
		if i == len(w.bits) {
			return 0, false
		}
		word = w.bits[i]
	}
}

// after returns the first number after p whose list (number & mask) is
// not empty, looking less than one turn of the ring ahead (p's own list
// must be empty).
func (w *wheel) after(p int64) (int64, bool) {
	mask := int64(len(w.head) - 1)
	if k, ok := w.first((p + 1) & mask); ok {
		return p + 1 + (k-(p+1))&mask, true
	}
	if k, ok := w.first(0); ok {
		return p + 1 + (k-(p+1))&mask, true
	}
	return 0, false
}

// init sizes the buckets for about conns connections.
func (q *queue) init(conns int) {
	q.shift = maxShift
	for c := 128; c <= conns && q.shift > minShift; c *= 2 {
		q.shift--
	}
	q.fine = newWheel(fineLen)
	q.coarse = newWheel(coarseLen)
}

func (q *queue) len() int { return q.n }

// push schedules e. Its time must not be before the current bucket's.
func (q *queue) push(e event) {
	q.n++
	b := e.at >> q.shift
	p := b >> fineLog
	switch {
	case b <= q.cur:
		q.near.push(e)
	case p == q.page:
		q.link(&q.fine, b&(fineLen-1), e)
	case p-q.page < coarseLen:
		q.link(&q.coarse, p&coarseMask, e)
	default:
		q.far.push(e)
	}
}

// link stores e in pool and appends it to list k of w.
func (q *queue) link(w *wheel, k int64, e event) {
	e.seq = 0
	i := q.free
	if i != 0 {
		q.free = uint32(q.pool[i-1].seq)
		q.pool[i-1] = e
	} else {
		q.pool = append(q.pool, e)
		i = uint32(len(q.pool))
	}
	q.append(w, k, i)
}

// peek returns the earliest event, or nil if the queue is empty. The
// pointer is valid until the next push or pop.
func (q *queue) peek() *event {
	for {
		if q.ri < len(q.run) {
			if len(q.near.h) > 0 && q.near.h[0].at < q.run[q.ri].at {
				return &q.near.h[0]
			}
			return &q.run[q.ri]
		}
		if len(q.near.h) > 0 {
			return &q.near.h[0]
		}
		if !q.advance() {
			return nil
		}
	}
}

// pop removes and returns the earliest event; peek must have returned it.
func (q *queue) pop() event {
	q.n--
	if q.ri < len(q.run) && (len(q.near.h) == 0 || q.run[q.ri].at <= q.near.h[0].at) {
		q.ri++
		return q.run[q.ri-1]
	}
	return q.near.pop()
}

// advance makes the next non-empty bucket current, sorting its events
// into run; run and near must be used up. It reports false if the queue
// is empty.
func (q *queue) advance() bool {
	for {
		base := q.page << fineLog
		if k, ok := q.fine.first(q.cur + 1 - base); ok {
			q.cur = base + k
			r := q.run[:0]
			for i := q.fine.clear(k); i != 0; {
				e := &q.pool[i-1]
				next := uint32(e.seq)
				r = append(r, *e)
				e.seq = uint64(q.free)
				q.free = i
				i = next
			}
			sortByTime(r)
			q.run, q.ri = r, 0
			return true
		}
		if !q.nextPage() {
			return false
		}
	}
}

// sortByTime sorts r by time, keeping the order of equal times.
func sortByTime(r []event) {
	if len(r) > 12 {
		slices.SortStableFunc(r, func(a, b event) int { return cmp.Compare(a.at, b.at) })
		return
	}
	for i := 1; i < len(r); i++ {
		e := r[i]
		j := i
		for ; j > 0 && r[j-1].at > e.at; j-- {
			r[j] = r[j-1]
		}
		r[j] = e
	}
}

// nextPage makes the next non-empty page current and spreads its events
// over the fine wheel; the fine wheel must be empty. It reports false if
// no page holds events.
func (q *queue) nextPage() bool {
	p, ok := q.coarse.after(q.page)
	if len(q.far.h) > 0 {
		if fp := q.far.h[0].at >> q.shift >> fineLog; !ok || fp < p {
			p, ok = fp, true
		}
	}
	if !ok {
		return false
	}
	q.page = p
	q.cur = p<<fineLog - 1
	for len(q.far.h) > 0 && q.far.h[0].at>>q.shift>>fineLog-p < coarseLen {
		e := q.far.pop()
		q.link(&q.coarse, (e.at>>q.shift>>fineLog)&coarseMask, e)
	}
	for i := q.coarse.clear(p & coarseMask); i != 0; {
		e := &q.pool[i-1]
		next := uint32(e.seq)
		e.seq = 0
		q.append(&q.fine, (e.at>>q.shift)&(fineLen-1), i)
		i = next
	}
	return true
}

// each calls f for every queued event, in no particular order.
func (q *queue) each(f func(*event)) {
	for i := q.ri; i < len(q.run); i++ {
		f(&q.run[i])
	}
	for i := range q.near.h {
		f(&q.near.h[i])
	}
	for i := range q.far.h {
		f(&q.far.h[i])
	}
	for _, w := range [...]*wheel{&q.fine, &q.coarse} {
		for k := range w.head {
			for i := w.head[k]; i != 0; i = uint32(q.pool[i-1].seq) {
				f(&q.pool[i-1])
			}
		}
	}
}
