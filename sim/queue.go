package sim

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
// thousands sit in the queue at once and the heap moves them around.
type event struct {
	at   int64  // virtual nanoseconds since the run began
	seq  uint64 // tie-break: events at the same moment run in scheduling order
	aux  uint32 // frame seq (a connection sends far fewer than 2³² pings), fault index, failure serial
	slot int32
	gen  uint32 // connection generation, or timer generation for evTimer
	kind evKind
	side side
	fk   uint8 // frame kind
	flag uint8 // frame carries the server's advice
}

// queue is a 4-ary min-heap of events keyed by (at, seq). A 4-ary heap
// halves the depth of a binary one and keeps children on one cache line.
type queue struct {
	h   []event
	seq uint64
}

func before(a, b *event) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// push and pop move a hole rather than swapping, so each level of the
// heap costs one 32-byte copy.
func (q *queue) push(e event) {
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

func (q *queue) len() int { return len(q.h) }

// pop removes and returns the earliest event. The queue must not be empty.
func (q *queue) pop() event {
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
