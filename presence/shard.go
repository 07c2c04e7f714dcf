package presence

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// conn is the hub's whole per-connection state besides the Machine and its
// policies: identity, the wheel links and a few flags.
type conn struct {
	shard *shard
	m     *fsm.Machine // nil once the connection is over
	t     Conn

	id, user, session string
	meta              Meta // until the registry has it

	next, prev *conn // in the wheel slot
	due        int64 // the deadline, ns since the wheel's origin
	slot       int32 // -1: not in the wheel
	index      int32 // in shard.all; -1: not there

	onEnd func(error) // see Hub.watch

	// The fleet's (HubConfig.Fleet): the last evidence (Unix ns), when
	// the advice last went out, the class and the detector that takes it.
	heard, advisedAt int64
	class            string
	adv              policy.Advisable

	writing bool      // a heartbeat write is in flight
	direct  bool      // its Send never blocks: the timer goroutine writes its pings
	online  bool      // the registry knows it alive
	final   fsm.State // the last state, once m is nil
}

// The hub's conn is the transport.Events its adapter reports to, from the
// adapter's reader goroutine.
var _ transport.Events = (*conn)(nil)

// Frame steps the connection's Machine on an inbound frame, directly on the
// reader's goroutine.
//
// A pong the frame calls for is written right here, on the reader's
// goroutine and outside the shard's lock, echoing the frame's own payload
// (still valid until Frame returns): no copy, no hand-off to a writer, and
// a peer that does not read blocks only its own reader, as gorilla's
// default ping handler would.
func (c *conn) Frame(f transport.Frame) {
	s := c.shard
	s.mu.Lock()
	if fl := s.up.fleet; fl != nil && c.m != nil {
		// A silence that ended in a frame: the peer was alive through it.
		now := time.Now()
		if st := c.m.State(); st == fsm.Alive || st == fsm.Suspect {
			fl.Observe(c.class, now, time.Duration(now.UnixNano()-c.heard))
		}
		c.heard = now.UnixNano()
	}
	s.inline = c
	s.step(c, fsm.Input{Kind: fsm.FrameIn, Frame: f})
	s.inline = nil
	pong := s.pong
	s.pong = inlinePong{}
	s.unlock()
	if !pong.due {
		return
	}
	err := s.send(c, transport.Frame{Kind: transport.Pong, Seq: pong.seq, Payload: pong.payload})
	if err == nil && pong.ping {
		err = s.send(c, transport.Frame{Kind: transport.Ping, Seq: pong.pingSeq, TimeoutAdvice: pong.advice})
	}
	s.mu.Lock()
	c.writing = false
	if err != nil {
		s.sendErrs.Add(1)
		s.step(c, fsm.Input{Kind: fsm.SendFailed, Err: err})
	}
	s.unlock()
}

// Closed steps the Machine on the end of the connection.
func (c *conn) Closed(err error) {
	s := c.shard
	s.mu.Lock()
	s.step(c, fsm.Input{Kind: fsm.PeerClosed, Err: err})
	s.unlock()
}

// inlinePong is a pong Frame writes itself, and the ping of ours that fell
// due in the same step, written after it: the pong holds the connection's
// one write, and the Machine counts the ping sent.
type inlinePong struct {
	due     bool
	seq     uint64
	payload []byte // aliases the inbound frame's payload
	ping    bool
	pingSeq uint64
	advice  time.Duration
}

// send writes one heartbeat within the write timeout, carrying the hub's
// advice.
func (s *shard) send(c *conn, f transport.Frame) error {
	f.ReconnectWindow = s.up.reconnectWindow()
	deadline := time.Now().Add(s.up.writeTimeout)
	if ds, ok := c.t.(DeadlineSender); ok {
		return ds.SendBy(deadline, f)
	}
	ctx := deadlineCtxs.Get().(*deadlineCtx)
	ctx.deadline = deadline
	err := c.t.Send(ctx, f)
	deadlineCtxs.Put(ctx)
	return err
}

var deadlineCtxs = sync.Pool{New: func() any { return new(deadlineCtx) }}

// unlock wakes a writer if jobs wait and none is awake, then releases the
// shard: jobs are queued in batches and handed over once.
//
// When no writer is free and the oldest job has waited stuckWrite, the
// writers are held by peers that do not read (a blocking Conn's write waits
// for the peer's socket buffer, up to the write timeout): one more writer
// is started, and leaves once the queue is empty, so a few stuck peers
// never delay the heartbeats of the rest.
func (s *shard) unlock() {
	if s.head < len(s.queue) {
		switch {
		case s.asleep > 0:
			if s.awake == 0 {
				s.awake++
				s.wcond.Signal()
			}
		case s.extra < maxExtraWriters && time.Now().UnixNano()-s.queue[s.head].at > int64(stuckWrite):
			s.extra++
			s.up.wg.Add(1)
			go s.write(true)
		}
	}
	s.mu.Unlock()
}

// stuckWrite is how long the oldest queued heartbeat may wait with every
// writer busy before another writer starts; maxExtraWriters bounds those
// per shard (each blocked one holds a goroutine for at most the write
// timeout, and a connection has at most one write in flight).
const stuckWrite = 50 * time.Millisecond

var maxExtraWriters = 1024 // a variable so a test can turn them off

// DeadlineSender is an optional method of a Conn: Send bounded by a
// deadline rather than a context, so a heartbeat write needs no context
// (and allocates nothing). The hub uses it when a Conn has it.
type DeadlineSender interface {
	SendBy(deadline time.Time, f transport.Frame) error
}

// NonBlockingSender is an optional method of a Conn whose Send never
// blocks on the peer (it queues what the socket does not take, bounded,
// as transport/nbiows does). The hub then writes such a connection's pings
// on the shard's timer goroutine as their deadlines fire, outside its lock,
// instead of waking a writer goroutine per batch: with no goroutine per
// connection, those wake-ups are most of an idle server's CPU. Other Conns
// keep the writers, so a peer that does not read delays no other.
type NonBlockingSender interface {
	SendNeverBlocks() bool
}

// shard runs the timers of its connections on one goroutine and writes
// their heartbeats on a few others. mu guards everything but the counters.
type shard struct {
	up upstream
	mu sync.Mutex
	w  *wheel

	all   []*conn
	acts  []fsm.Action
	due   []*conn
	armed int64 // the wheel time the timer is set for; 0: none
	kick  chan struct{}

	// The write queue: at most one job per connection (conn.writing), so
	// it never holds more than the shard's connections.
	queue    []job
	head     int
	wcond    *sync.Cond // on mu: a job was queued, or the hub stops
	asleep   int        // writers waiting on wcond
	awake    int        // writers signalled but not yet running
	extra    int        // writers started beyond HubConfig.Writers
	stopping bool

	inline *conn      // the connection whose Frame is stepping, if any
	pong   inlinePong // the pong that Frame will write

	// The timer goroutine's own writes (conn.direct), taken while it
	// steps the due connections and sent once it has unlocked.
	timing  bool
	direct  []job
	sending []job
	errs    []error

	queuePeak, sendErrs atomic.Uint64
	late                [len(LatenessBuckets) + 1]atomic.Uint64
}

type jobKind uint8

const (
	jobPing jobKind = iota + 1
	jobPong
)

// job is one heartbeat write, with its payload inline so that queuing it
// allocates nothing.
type job struct {
	c       *conn
	kind    jobKind
	n       uint8
	seq     uint64
	at      int64         // when it was queued, in Unix nanoseconds
	advice  time.Duration // the fleet's timeout advice a ping carries
	payload [transport.MaxControlPayload]byte
}

// upstream is what a shard needs from its hub, handed down when the hub
// starts it: settings, and the hub's services the shard reports to. A
// shard holds no *Hub: work comes down through its methods, results go up
// through these.
type upstream struct {
	slot, writeTimeout time.Duration
	fleet              *policy.Fleet    // nil: off
	log                *slog.Logger     // nil: none
	observe            func(ConnChange) // HubConfig.Observe, or nil
	stop               <-chan struct{}
	wg                 *sync.WaitGroup // the hub's goroutines: the shard's join it
	conns              *atomic.Int64   // the hub's live connections
	farewell           *atomic.Int64   // the reconnect window as shutdown began, for close notes

	reconnectWindow func() time.Duration // the advice a ping carries now
	resumeWindow    func() time.Duration // how long a session lost now waits
	closeConn       func(closeJob)       // the hub's close queue
	alive           func(RegistryInput) (resumed bool)
	lost            func(in RegistryInput, window time.Duration)
}

func newShard(up upstream, origin time.Time) *shard {
	s := &shard{
		up:   up,
		w:    newWheel(origin, up.slot),
		acts: make([]fsm.Action, 0, 8),
		kick: make(chan struct{}, 1),
	}
	s.wcond = sync.NewCond(&s.mu)
	return s
}

// timeoutAdvice returns the fleet's advice for a ping to c, if one is due
// (the connection's first ping, then every DefaultFleetAdvicePeriod), and
// gives it to c's own detector too. s.mu is held.
func (s *shard) timeoutAdvice(c *conn) time.Duration {
	if s.up.fleet == nil {
		return 0
	}
	now := time.Now().UnixNano()
	if c.advisedAt != 0 && now-c.advisedAt < int64(policy.DefaultFleetAdvicePeriod) {
		return 0
	}
	adv := s.up.fleet.Advice(c.class)
	if adv == 0 {
		return 0
	}
	c.advisedAt = now
	if c.adv != nil {
		c.adv.Advise(adv)
	}
	return adv
}

func (s *shard) add(c *conn) {
	c.index = int32(len(s.all))
	s.all = append(s.all, c)
}

func (s *shard) drop(c *conn) {
	if c.index < 0 {
		return
	}
	last := s.all[len(s.all)-1]
	s.all[c.index] = last
	last.index = c.index
	s.all[len(s.all)-1] = nil
	s.all = s.all[:len(s.all)-1]
	c.index = -1
}

// step feeds one input to c's Machine and carries out the actions. s.mu is
// held.
func (s *shard) step(c *conn, in fsm.Input) {
	if c.m == nil {
		return
	}
	now := time.Now()
	s.acts = c.m.Step(now, in, s.acts[:0])
	for i := range s.acts {
		s.do(c, &s.acts[i])
	}
	if c.m == nil {
		s.w.remove(c)
		return
	}
	s.w.schedule(c, c.m.Deadline())
	if c.slot >= 0 && (s.armed == 0 || c.due < s.armed) {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *shard) do(c *conn, a *fsm.Action) {
	switch a.Kind {
	case fsm.SendPing, fsm.SendPong:
		if a.Kind == fsm.SendPing && s.inline == c && s.pong.due {
			s.pong.ping, s.pong.pingSeq, s.pong.advice = true, a.Seq, s.timeoutAdvice(c)
			return
		}
		if c.writing {
			return // the last write has not finished: the peer is not reading
		}
		c.writing = true
		if a.Kind == fsm.SendPong && s.inline == c {
			s.pong = inlinePong{due: true, seq: a.Seq, payload: a.Payload}
			return
		}
		if a.Kind == fsm.SendPing && c.direct && s.timing {
			s.direct = append(s.direct, job{c: c, kind: jobPing, seq: a.Seq, advice: s.timeoutAdvice(c)})
			return
		}
		s.queue = append(s.queue, job{c: c, kind: jobPing, seq: a.Seq, at: time.Now().UnixNano()})
		j := &s.queue[len(s.queue)-1]
		if a.Kind == fsm.SendPing {
			j.advice = s.timeoutAdvice(c)
		}
		if a.Kind == fsm.SendPong {
			j.kind = jobPong
			j.n = uint8(copy(j.payload[:], a.Payload))
		}
		if d := uint64(len(s.queue) - s.head); d > s.queuePeak.Load() {
			s.queuePeak.Store(d)
		}
	case fsm.CloseTransport:
		// The close carries the end callback, so it runs after this close
		// (and its shutdown note), not beside it.
		s.up.closeConn(closeJob{s: s, t: c.t, reason: a.Err, onEnd: c.onEnd})
		c.onEnd = nil
	case fsm.StateChanged:
		s.changed(c, a)
	}
}

// changed reports a state change to the registry and the log; a connection
// that is over leaves the shard.
func (s *shard) changed(c *conn, a *fsm.Action) {
	up := &s.up
	resumed := false
	if up.observe != nil {
		defer func() { s.observe(c, a, resumed) }()
	}
	switch {
	case a.To == fsm.Alive && !c.online:
		c.online = true
		resumed = up.alive(RegistryInput{Kind: ConnAlive, Conn: c.id, User: c.user, Session: c.session, Meta: c.meta})
		c.meta = nil
		if up.log != nil {
			up.log.LogAttrs(context.Background(), slog.LevelInfo, "online", c.attrs(a)...)
		}
	case a.To == fsm.Dead || a.To == fsm.Closed:
		c.final = a.To
		c.m = nil
		s.drop(c)
		up.conns.Add(-1)
		if c.onEnd != nil { // an end without a close action: close here
			up.closeConn(closeJob{s: s, t: c.t, reason: a.Err, onEnd: c.onEnd})
			c.onEnd = nil
		}
		if c.online {
			in := RegistryInput{Kind: ConnLost, Conn: c.id}
			if closedOnPurpose(a.Err) {
				in.Kind = ConnClosed
			}
			up.lost(in, up.resumeWindow())
		}
		if up.log != nil {
			up.log.LogAttrs(context.Background(), slog.LevelInfo, "offline", c.attrs(a)...)
		}
	default:
		if up.log != nil && up.log.Enabled(context.Background(), slog.LevelDebug) {
			up.log.LogAttrs(context.Background(), slog.LevelDebug, "state", c.attrs(a)...)
		}
	}
}

func (c *conn) attrs(a *fsm.Action) []slog.Attr {
	attrs := []slog.Attr{
		slog.String("conn", c.id), slog.String("user", c.user), slog.String("session", c.session),
		slog.String("from", a.From.String()), slog.String("to", a.To.String()), slog.String("reason", a.Reason.String()),
	}
	if a.Err != nil {
		attrs = append(attrs, slog.String("err", a.Err.Error()))
	}
	return attrs
}

// closedOnPurpose tells a deliberate end (the server closed it, or the
// client closed with 1000) from a loss, after which the session waits for
// a reconnect.
func closedOnPurpose(err error) bool {
	if errors.Is(err, ErrShutdown) || errors.Is(err, fsm.ErrClosed) {
		return true
	}
	return normalClosure(err)
}

// close closes one connection on its own goroutine (a close may wait for
// the peer's close frame), telling a client of the application-level
// format, on shutdown, the window to spread its redial over.
func (s *shard) close(t Conn, reason error) {
	if errors.Is(reason, ErrShutdown) {
		if mw, ok := t.(messageWriter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), s.up.writeTimeout)
			// Fails harmlessly on a control-frame connection.
			_ = mw.SendMessage(ctx, &wire.Message{Type: wire.Close, Window: time.Duration(s.up.farewell.Load()), Reason: ErrShutdown.Error()})
			cancel()
		}
	}
	_ = t.Close(reason)
}

// run is the shard's timer goroutine: it steps every connection whose
// deadline has come, then sleeps until the wheel's next used slot or a
// kick.
func (s *shard) run() {
	defer s.up.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		s.due = s.w.expire(now, s.due[:0])
		nowNs := s.w.ns(now)
		s.timing = true
		for _, c := range s.due {
			s.recordLateness(time.Duration(nowNs - c.due))
			s.step(c, fsm.Input{Kind: fsm.DeadlineReached})
		}
		s.timing = false
		clear(s.due)
		if len(s.direct) > 0 {
			s.unlock()
			s.sendDirect()
			s.mu.Lock()
		}
		next, ok := s.w.next()
		s.armed = 0
		if ok {
			s.armed = next
			timer.Reset(time.Duration(next - s.w.ns(time.Now())))
		}
		s.unlock()
		select {
		case <-timer.C:
		case <-s.kick:
		case <-s.up.stop:
			timer.Stop()
			return
		}
		timer.Stop()
	}
}

// sendDirect writes the pings the timer goroutine took (s.direct), with
// s.mu not held, then settles them under one lock.
func (s *shard) sendDirect() {
	// Only the timer goroutine touches these slices.
	s.sending, s.direct = s.direct, s.sending[:0]
	s.errs = s.errs[:0]
	for i := range s.sending {
		j := &s.sending[i]
		s.errs = append(s.errs, s.send(j.c, transport.Frame{Kind: transport.Ping, Seq: j.seq, TimeoutAdvice: j.advice}))
	}
	s.mu.Lock()
	for i := range s.sending {
		c := s.sending[i].c
		c.writing = false
		if err := s.errs[i]; err != nil {
			s.sendErrs.Add(1)
			s.step(c, fsm.Input{Kind: fsm.SendFailed, Err: err})
		}
	}
	clear(s.sending)
	clear(s.errs)
	if cap(s.sending) > 4096 {
		s.sending, s.errs = nil, nil // let a burst's backlog go
	}
	s.mu.Unlock()
}

func (s *shard) recordLateness(d time.Duration) {
	i := 0
	for i < len(LatenessBuckets) && d >= LatenessBuckets[i] {
		i++
	}
	s.late[i].Add(1)
}

// write is a writer goroutine: it sends queued heartbeats in order, one at
// a time, each bounded by the write timeout. A peer whose socket buffer is
// full holds one writer for at most that long; the others go on. An extra
// writer (see unlock) returns once the queue is empty.
func (s *shard) write(extra bool) {
	defer s.up.wg.Done()
	j := new(job) // reused: the payload handed to Send escapes
	s.mu.Lock()
	for {
		if extra && s.head == len(s.queue) {
			s.extra--
			s.mu.Unlock()
			return
		}
		for s.head == len(s.queue) && !s.stopping {
			s.asleep++
			s.wcond.Wait()
			s.asleep--
			s.awake = max(s.awake-1, 0)
		}
		if s.stopping {
			s.mu.Unlock()
			return
		}
		*j = s.queue[s.head]
		s.queue[s.head] = job{}
		if s.head++; s.head == len(s.queue) {
			s.head = 0
			s.queue = s.queue[:0]
			if cap(s.queue) > 4096 {
				s.queue = nil // let a burst's backlog go
			}
		} else if s.asleep > 0 && s.awake == 0 {
			// More wait: another writer takes them, so a send that blocks
			// on a full socket buffer holds up nobody else.
			s.awake++
			s.wcond.Signal()
		}
		s.mu.Unlock()
		f := transport.Frame{Kind: transport.Ping, Seq: j.seq, TimeoutAdvice: j.advice}
		if j.kind == jobPong {
			f.Kind, f.Payload = transport.Pong, j.payload[:j.n]
		}
		err := s.send(j.c, f)
		s.mu.Lock()
		j.c.writing = false
		if err != nil {
			s.sendErrs.Add(1)
			s.step(j.c, fsm.Input{Kind: fsm.SendFailed, Err: err})
		}
		j.c = nil
	}
}

// deadlineCtx is a context that only carries a deadline, reused by one
// writer so a write allocates none. Its Done channel is nil: a Conn must
// honour the deadline itself (every adapter in this module does).
type deadlineCtx struct{ deadline time.Time }

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *deadlineCtx) Done() <-chan struct{}       { return nil }
func (c *deadlineCtx) Err() error                  { return nil }
func (c *deadlineCtx) Value(any) any               { return nil }
