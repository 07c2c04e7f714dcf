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

func (q *queue) less(i, j int) bool {
	a, b := &q.h[i], &q.h[j]
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

func (q *queue) push(e event) {
	q.seq++
	e.seq = q.seq
	q.h = append(q.h, e)
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !q.less(i, p) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *queue) len() int { return len(q.h) }

// pop removes and returns the earliest event. The queue must not be empty.
func (q *queue) pop() event {
	top := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	q.h = q.h[:n]
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for k := c + 1; k < c+4 && k < n; k++ {
			if q.less(k, m) {
				m = k
			}
		}
		if !q.less(m, i) {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}
