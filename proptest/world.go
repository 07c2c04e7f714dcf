package proptest

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim/network"
	"github.com/heartbeat-go/heartbeat/transport"
)

// The world is a small discrete-event harness on virtual time around one
// Machine under test: a peer (a second Machine whose detector never
// convicts, so it answers pings and pings on its own schedule), a link
// from the simulator's network model (package sim/network: latency, loss
// in bursts or not, stream or datagram delivery) whose peer can crash,
// restart or be cut off by a partition or a half-open link, a dialler, and
// local pauses. It owns no goroutine and no clock, so a rapid case replays
// exactly from its draws.

// t0 is the virtual epoch: the time of the machine's first input.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	errRefused  = errors.New("proptest: connection refused")
	errPeerGone = errors.New("proptest: peer closed the connection")
	errBroken   = errors.New("proptest: broken pipe")
	errReset    = errors.New("proptest: connection reset by peer")
)

// phase is the link's behaviour from its start until the next phase.
type phase struct {
	at          time.Duration // start, from t0
	out, in     network.Dir   // our frames to the peer; the peer's to us
	stallFrom   time.Duration // a stall (the simulator's Stalls): both ways
	stallUntil  time.Duration // black out [stallFrom, stallUntil); a stream delivers late
	dataMin     time.Duration // the peer application's message gaps; dataMax 0: none
	dataMax     time.Duration
	dialFailPct int
	dialMax     time.Duration // dial latency is drawn from [0, dialMax]
	sendFailPct int
	healthy     bool // connections established in this phase count for A1/A2
}

func (p phase) String() string {
	s := fmt.Sprintf("from %v: %s", p.at, describeDir(p.out))
	if p.in != p.out {
		s += fmt.Sprintf(" out, %s in", describeDir(p.in))
	}
	if p.stallUntil > p.stallFrom {
		s += fmt.Sprintf(", stalled %v..%v", p.stallFrom, p.stallUntil)
	}
	if p.dataMax > 0 {
		s += fmt.Sprintf(", peer data every %v..%v", p.dataMin, p.dataMax)
	}
	if p.dialFailPct > 0 {
		s += fmt.Sprintf(", dials fail %d%%", p.dialFailPct)
	}
	if p.sendFailPct > 0 {
		s += fmt.Sprintf(", sends fail %d%%", p.sendFailPct)
	}
	if p.healthy {
		s += " (healthy)"
	}
	return s
}

// describeDir is a direction as a failure message shows it.
func describeDir(d network.Dir) string {
	l := d.Latency
	s := d.Delivery.String()
	if l.Dist == network.Edge {
		s += fmt.Sprintf(", delay %v..%v", l.Mean-l.Jitter, l.Mean+l.Jitter)
	} else {
		s += fmt.Sprintf(", delay %v mean %v shape %g max %v", l.Dist, l.Mean, l.Shape, l.Max)
	}
	if d.Loss.Rate > 0 {
		s += fmt.Sprintf(", loss %.0f%%", 100*d.Loss.Rate)
		if d.Loss.Burst > 1 {
			s += fmt.Sprintf(" in bursts of %g", d.Loss.Burst)
		}
	}
	if d.Duplicate > 0 {
		s += fmt.Sprintf(", %.0f%% duplicated", 100*d.Duplicate)
	}
	if d.Reorder > 0 {
		s += fmt.Sprintf(", %.0f%% held up to %v", 100*d.Reorder, d.ReorderDelay)
	}
	return s
}

// The failures are the simulator's fault kinds (network.FaultKind), named
// by side: the machine under test is the client or the server of its
// connection, and the peer is the other. A crash of our own side is not
// drawn (the machine would be gone), nor a server restart when we are the
// server.

// peerCrash is the fault kind of the peer's crash.
func (s settings) peerCrash() network.FaultKind {
	if s.role == fsm.Server {
		return network.CrashClient
	}
	return network.CrashServer
}

// cuts reports which directions a failure silences, in our terms: out
// (our frames to the peer) and in (the peer's to us).
func (s settings) cuts(k network.FaultKind) (out, in bool) {
	up, down := k.Cuts()
	if s.role == fsm.Server {
		return down, up
	}
	return up, down
}

// halfOpenIn is the half-open link that loses the peer's frames to us:
// the one our detector must find (the other leaves us hearing the peer).
func (s settings) halfOpenIn() network.FaultKind {
	if s.role == fsm.Server {
		return network.HalfOpenUp
	}
	return network.HalfOpenDown
}

type evKind uint8

const (
	evArrive    evKind = iota + 1 // a frame or close reaches one side
	evDial                        // a dial completes
	evData                        // the peer's application sends a message
	evPhase                       // the link changes behaviour
	evPause                       // the local process stops
	evResume                      // the local process runs again
	evFail                        // the peer fails
	evPeerClose                   // the peer closes the connection
	evUserClose                   // the user closes the machine
	evRecover                     // a restarted server accepts dials again
)

type event struct {
	at     time.Duration
	seq    uint64
	kind   evKind
	conn   int  // evArrive, evData, evDial: the connection or dial
	toPeer bool // evArrive
	frame  transport.Frame
	close  bool              // evArrive: a close, not a frame
	reset  bool              // evArrive: the close is a reset from a restarted server
	sentAt time.Duration     // evArrive
	ok     bool              // evDial
	dur    time.Duration     // evPause
	n      int               // evPhase: index; evResume: timer first if 1
	fail   network.FaultKind // evFail
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// conn is one established connection.
type conn struct {
	id       int
	at       time.Duration
	healthy  bool
	peer     *fsm.Machine
	peerActs []fsm.Action
	dirs     [2]network.State // [toLocal, toPeer]
	failed   network.FaultKind
	failedAt time.Duration
	started  bool // the peer is up
}

// input is a local input tagged with the connection it belongs to (0: none).
type input struct {
	in   fsm.Input
	conn int
}

// settings are the resolved Config values the checks need.
type settings struct {
	role           fsm.Role
	minPing        time.Duration
	stallThreshold time.Duration // < 0: off
	stallGrace     time.Duration
	pingBurst      int // < 0: off
	stableAfter    time.Duration
	connectTimeout time.Duration
	inflight       time.Duration // how long frames sent before a failure may still arrive
}

func resolve(c fsm.Config) settings {
	s := settings{
		role:           c.Role,
		minPing:        c.MinPingInterval,
		stallThreshold: c.StallThreshold,
		stallGrace:     c.StallGrace,
		pingBurst:      c.PingBurst,
		stableAfter:    c.StableAfter,
		connectTimeout: c.ConnectTimeout,
	}
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&s.minPing, fsm.DefaultMinPingInterval)
	def(&s.stallThreshold, fsm.DefaultStallThreshold)
	def(&s.stallGrace, fsm.DefaultStallGrace)
	def(&s.stableAfter, fsm.DefaultStableAfter)
	def(&s.connectTimeout, fsm.DefaultConnectTimeout)
	if s.pingBurst == 0 {
		s.pingBurst = fsm.DefaultPingBurst
	}
	return s
}

// scenario is everything drawn for one run.
type scenario struct {
	phases  []phase
	pauses  [][2]time.Duration // start, length
	fail    network.FaultKind
	failAt  time.Duration // 0: no failure; the failure waits for a live connection
	failFor time.Duration // ServerRestart: how long dials are refused
	closeAt []time.Duration
	userAt  time.Duration // 0: the user never closes
	end     time.Duration
	seed    uint64
}

func (s scenario) String() string {
	var b strings.Builder
	for _, p := range s.phases {
		fmt.Fprintf(&b, "\n  phase %v", p)
	}
	for _, p := range s.pauses {
		fmt.Fprintf(&b, "\n  local pause at %v for %v", p[0], p[1])
	}
	for _, c := range s.closeAt {
		fmt.Fprintf(&b, "\n  peer closes at %v", c)
	}
	if s.userAt > 0 {
		fmt.Fprintf(&b, "\n  user closes at %v", s.userAt)
	}
	if s.fail == network.ServerRestart {
		fmt.Fprintf(&b, "\n  the server restarts (refusing dials for %v) at %v or as soon after as it is connected", s.failFor, s.failAt)
	} else if s.fail != 0 {
		fmt.Fprintf(&b, "\n  peer fails (%v) at %v or as soon after as it is connected", s.fail, s.failAt)
	}
	fmt.Fprintf(&b, "\n  run until %v", s.end)
	return b.String()
}

// maxSteps bounds one run: far more local steps than any scenario needs
// unless the machine loops.
const maxSteps = 200_000

// maxSameInstant bounds the steps one instant may take: far more than a
// burst of frames arriving together explains.
const maxSameInstant = 10_000

// world runs one scenario.
type world struct {
	fatalf func(format string, args ...any)
	rng    *rand.Rand
	sc     scenario
	set    settings
	peerIv PeerFunc
	obs    *observer

	m     *fsm.Machine
	acts  []fsm.Action
	now   time.Duration
	q     queue
	seq   uint64
	steps int

	sameInstant int // steps taken at lastStepAt
	lastStepAt  time.Duration

	phase   phase
	conn    *conn
	connID  int
	dialID  int
	dialing bool
	bound   bool // server role: the accepted connection was bound once
	down    bool // the peer is gone for good: dials are refused or hang
	hang    bool // dials never complete (a partition)

	paused      bool
	framesFirst bool // on resume, queued inputs go before the late timer
	inbox       []input
	pending     []input
	inStep      bool

	failed   network.FaultKind
	failWait bool // the failure waits for the next connection
	stopped  bool

	stats network.Stats // the link's retransmissions

	trace []string // the last local steps, for failure messages
}

func newWorld(fatalf func(string, ...any), cfg fsm.Config, sc scenario, peer PeerFunc, obs *observer) (*world, error) {
	m, err := fsm.NewMachine(cfg)
	if err != nil {
		return nil, err
	}
	w := &world{
		fatalf: fatalf,
		rng:    rand.New(rand.NewPCG(sc.seed, sc.seed^0x9e3779b97f4a7c15)),
		sc:     sc,
		set:    resolve(cfg),
		peerIv: peer,
		obs:    obs,
		m:      m,
		acts:   make([]fsm.Action, 0, 8),
	}
	obs.w = w
	if len(sc.phases) == 0 {
		w.fatalf("proptest: internal error: scenario without phases")
	}
	for _, p := range sc.phases {
		if err := (network.Link{Up: p.out, Down: p.in}).Validate(); err != nil {
			w.fatalf("proptest: internal error: phase %v draws a link that cannot run: %v", p, err)
		}
	}
	w.phase = sc.phases[0]
	for i := 1; i < len(sc.phases); i++ {
		w.push(&event{at: sc.phases[i].at, kind: evPhase, n: i})
	}
	for _, p := range sc.pauses {
		w.push(&event{at: p[0], kind: evPause, dur: p[1]})
	}
	for _, c := range sc.closeAt {
		w.push(&event{at: c, kind: evPeerClose})
	}
	if sc.userAt > 0 {
		w.push(&event{at: sc.userAt, kind: evUserClose})
	}
	if sc.fail != 0 {
		w.push(&event{at: sc.failAt, kind: evFail, fail: sc.fail})
	}
	return w, nil
}

func (w *world) push(e *event) {
	w.seq++
	e.seq = w.seq
	heap.Push(&w.q, e)
}

// fail reports a violated invariant with the run's recent history.
func (w *world) fail(id, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.fatalf("[%s %s] at %v: %s\nscenario:%v\nlast steps (time, input, actions, state after, next deadline):\n%s",
		id, invariantName(id), w.now, msg, w.sc, strings.Join(w.trace, "\n"))
}

// run plays the scenario until its end, until stop is set, or until the
// step bound says the machine is looping.
func (w *world) run() {
	w.feed(input{in: fsm.Input{Kind: fsm.Start}})
	for !w.stopped {
		if w.steps > maxSteps {
			w.fail(L2, "more than %d steps: the machine loops", maxSteps)
		}
		at, which := w.next()
		if which == 0 || at > w.sc.end {
			w.now = max(w.now, w.sc.end)
			return
		}
		w.now = at
		switch which {
		case 1:
			w.feed(input{in: fsm.Input{Kind: fsm.DeadlineReached}})
		case 2:
			w.peerStep(w.conn, fsm.Input{Kind: fsm.DeadlineReached})
		case 3:
			w.handle(heap.Pop(&w.q).(*event))
		}
	}
}

// next returns the earliest thing due: 1 the local deadline, 2 the peer's,
// 3 a queued event. At equal times the local deadline goes first, so a
// verdict due at the very moment a frame arrives is taken: accuracy
// promises must hold with a strict margin.
func (w *world) next() (time.Duration, int) {
	best, which := time.Duration(0), 0
	if dl := w.m.Deadline(); !w.paused && !dl.IsZero() {
		best, which = dl.Sub(t0), 1
	}
	if c := w.conn; c != nil && c.started && !w.peerGone(c) {
		if dl := c.peer.Deadline(); !dl.IsZero() && (which == 0 || dl.Sub(t0) < best) {
			best, which = dl.Sub(t0), 2
		}
	}
	if len(w.q) > 0 && (which == 0 || w.q[0].at < best) {
		best, which = w.q[0].at, 3
	}
	return best, which
}

func (w *world) handle(e *event) {
	switch e.kind {
	case evPhase:
		w.phase = w.sc.phases[e.n]
	case evPause:
		if !w.paused {
			w.paused = true
			first := 0
			if !w.framesFirst && w.rng.IntN(2) == 0 {
				first = 1
			}
			w.push(&event{at: w.now + e.dur, kind: evResume, n: first})
		}
	case evResume:
		w.resume(e.n == 1)
	case evPeerClose:
		if c := w.conn; c != nil && c.failed == 0 {
			w.transmit(c, false, transport.Frame{}, true)
		}
	case evFail:
		w.failed = e.fail
		if st := w.m.State(); (st == fsm.Alive || st == fsm.Suspect) && w.conn != nil {
			w.breakConn()
		} else {
			w.failWait = true // hit the next connection the moment it is up
		}
	case evRecover:
		w.down = false
	case evUserClose:
		w.feed(input{in: fsm.Input{Kind: fsm.CloseRequested}})
	case evData:
		c := w.conn
		if c == nil || c.id != e.conn || c.failed != 0 {
			return
		}
		w.transmit(c, false, transport.Frame{Kind: transport.Data}, false)
		w.scheduleData(c)
	case evDial:
		if !w.dialing || e.conn != w.dialID {
			return // abandoned
		}
		w.dialing = false
		if e.ok {
			w.connect()
			w.feed(input{in: fsm.Input{Kind: fsm.Connected}, conn: w.connID})
		} else {
			w.feed(input{in: fsm.Input{Kind: fsm.DialFailed, Err: errRefused}})
		}
	case evArrive:
		w.arrive(e)
	}
}

// breakConn makes the current connection fail as drawn. A crashed peer
// and a partition take the peer away for good (dials are refused, or
// hang); a half-open link spares new connections, as in the simulator; a
// restarted server resets the connection and refuses dials for a while.
func (w *world) breakConn() {
	c := w.conn
	w.failWait = false
	switch w.failed {
	case w.set.peerCrash():
		w.down = true
	case network.Partition:
		w.down, w.hang = true, true
	case network.ServerRestart:
		w.down = true
		w.push(&event{at: w.now + w.sc.failFor, kind: evRecover})
	}
	if c != nil {
		c.failed = w.failed
		c.failedAt = w.now
		if w.failed == network.ServerRestart {
			at, _, ok := w.phase.in.Transmit(w.rng, &c.dirs[0], int64(w.now), 0, 0, true, &w.stats)
			if ok {
				w.push(&event{at: time.Duration(at), kind: evArrive, conn: c.id, close: true, reset: true, sentAt: w.now})
			}
		}
	}
	w.obs.failure(w.now)
}

// peerGone reports whether c's peer no longer runs: it crashed, or its
// server restarted.
func (w *world) peerGone(c *conn) bool {
	return c.failed == w.set.peerCrash() || c.failed == network.ServerRestart
}

func (w *world) resume(timerFirst bool) {
	w.paused = false
	due := func() {
		if dl := w.m.Deadline(); !dl.IsZero() && !dl.After(t0.Add(w.now)) {
			w.feed(input{in: fsm.Input{Kind: fsm.DeadlineReached}})
		}
	}
	if timerFirst {
		due()
	}
	inbox := w.inbox
	w.inbox = nil
	for _, in := range inbox {
		w.feed(in)
	}
	if !timerFirst {
		due()
	}
}

// feed hands a local input to the machine, then any inputs its actions
// produced, in order, as the driver does. Inputs of a connection the
// machine no longer has are dropped, as the driver drops them.
func (w *world) feed(in input) {
	if w.paused {
		if in.in.Kind != fsm.DeadlineReached {
			w.inbox = append(w.inbox, in)
		}
		return
	}
	if w.inStep {
		w.pending = append(w.pending, in)
		return
	}
	w.pending = append(w.pending[:0], in)
	for len(w.pending) > 0 && !w.stopped {
		in := w.pending[0]
		w.pending = w.pending[1:]
		if in.conn != 0 && (w.conn == nil || w.conn.id != in.conn) {
			continue
		}
		w.step(in.in)
		if in.in.Kind == fsm.Connected && w.conn != nil && w.conn.id == in.conn {
			w.startPeer(w.conn)
		}
	}
}

func (w *world) step(in fsm.Input) {
	w.steps++
	if w.now == w.lastStepAt {
		w.sameInstant++
		if w.sameInstant > maxSameInstant {
			w.fail(L2, "more than %d steps at one instant: the machine loops without letting time pass", maxSameInstant)
		}
	} else {
		w.lastStepAt, w.sameInstant = w.now, 0
	}
	before := w.m.State()
	prevDeadline := w.m.Deadline()
	now := t0.Add(w.now)
	w.inStep = true
	w.obs.begin(in, before)
	w.acts = w.safeStep(now, in)
	w.record(in, w.acts)
	w.obs.step(in, before, prevDeadline, w.acts)
	for i := range w.acts {
		w.do(&w.acts[i])
	}
	w.inStep = false
}

// safeStep steps the machine and reports a panic as a broken invariant,
// with the run's history, rather than as a crash.
func (w *world) safeStep(now time.Time, in fsm.Input) []fsm.Action {
	defer func() {
		if p := recover(); p != nil {
			if rapidStop(p) {
				panic(p) // a failure of the check itself (rapid stops a test by panicking)
			}
			w.fail(M1, "Step(%v) panicked in %v (in the Machine or a policy it called): %v", describeInput(in), w.m.State(), p)
		}
	}()
	return w.m.Step(now, in, w.acts[:0])
}

func (w *world) record(in fsm.Input, acts []fsm.Action) {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-12v %-16s", w.now, describeInput(in))
	for _, a := range acts {
		b.WriteString(" " + describeAction(a))
	}
	dl := "none"
	if d := w.m.Deadline(); !d.IsZero() {
		dl = d.Sub(t0).String()
	}
	fmt.Fprintf(&b, " => %v, next %s", w.m.State(), dl)
	const keep = 30
	if len(w.trace) == keep {
		copy(w.trace, w.trace[1:])
		w.trace = w.trace[:keep-1]
	}
	w.trace = append(w.trace, b.String())
}

func describeInput(in fsm.Input) string {
	if in.Kind == fsm.FrameIn {
		s := in.Frame.Kind.String()
		if in.Frame.Seq != 0 {
			s += fmt.Sprintf("#%d", in.Frame.Seq)
		}
		return s + " in"
	}
	return in.Kind.String()
}

func describeAction(a fsm.Action) string {
	switch a.Kind {
	case fsm.SendPing:
		return fmt.Sprintf("[ping#%d]", a.Seq)
	case fsm.StateChanged:
		s := fmt.Sprintf("[%v→%v %v", a.From, a.To, a.Reason)
		if a.To == fsm.Reconnecting {
			s += fmt.Sprintf(" in %v", a.Delay)
		}
		return s + "]"
	}
	return "[" + a.Kind.String() + "]"
}

func (w *world) do(a *fsm.Action) {
	switch a.Kind {
	case fsm.SendPing:
		c := w.conn
		if c == nil {
			return
		}
		if w.phase.sendFailPct > 0 && c.failed == 0 && w.rng.IntN(100) < w.phase.sendFailPct {
			w.feed(input{in: fsm.Input{Kind: fsm.SendFailed, Err: errBroken}, conn: c.id})
			return
		}
		var p [8]byte
		binary.BigEndian.PutUint64(p[:], a.Seq)
		w.transmit(c, true, transport.Frame{Kind: transport.Ping, Seq: a.Seq, Payload: p[:]}, false)
	case fsm.SendPong:
		if c := w.conn; c != nil {
			w.transmit(c, true, transport.Frame{Kind: transport.Pong, Payload: append([]byte(nil), a.Payload...)}, false)
		}
	case fsm.Dial:
		w.dial()
	case fsm.CloseTransport:
		w.conn = nil
		w.dialing = false
	case fsm.StateChanged:
		if a.To == fsm.Closed || (a.To == fsm.Dead && w.set.role == fsm.Server) {
			w.obs.finished()
		}
	}
}

func (w *world) dial() {
	w.dialID++
	w.dialing = true
	if w.set.role == fsm.Server {
		if w.bound {
			w.feed(input{in: fsm.Input{Kind: fsm.DialFailed, Err: transport.ErrAlreadyBound}})
			w.dialing = false
			return
		}
		w.bound = true
		w.push(&event{at: w.now, kind: evDial, conn: w.dialID, ok: true})
		return
	}
	if w.hang {
		return // the dial never completes: only the connect timeout ends it
	}
	lat := time.Duration(0)
	if w.phase.dialMax > 0 {
		lat = time.Duration(w.rng.Int64N(int64(w.phase.dialMax) + 1))
	}
	ok := !w.down && (w.phase.dialFailPct == 0 || w.rng.IntN(100) >= w.phase.dialFailPct)
	w.push(&event{at: w.now + lat, kind: evDial, conn: w.dialID, ok: ok})
}

// connect establishes a connection and its peer.
func (w *world) connect() {
	w.connID++
	peerCfg := fsm.Config{
		Role:            fsm.Server,
		Detector:        &policy.Fixed{SuspectAfter: 1 << 50, DeadAfter: 1 << 50}, // never convicts within a run
		Interval:        policy.Never{},
		Backoff:         &policy.Constant{},
		MinPingInterval: floodInterval(w.set.minPing), // the peer pings as fast as it asks, up to what is honest
		StallThreshold:  -1,
		PingBurst:       -1,
	}
	if w.set.role == fsm.Server {
		peerCfg.Role = fsm.Client
	}
	if w.peerIv != nil {
		peerCfg.Interval = &peerGuard{iv: w.peerIv(rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))), floor: floodInterval(w.set.minPing), fatalf: w.fatalf}
	}
	peer, err := fsm.NewMachine(peerCfg)
	if err != nil {
		w.fatalf("[%s %s] proptest: the peer's configuration (MachinePromise.Peer): %v", V1, invariantName(V1), err)
	}
	c := &conn{id: w.connID, at: w.now, healthy: w.phase.healthy, peer: peer}
	w.conn = c
	w.obs.connected(c)
}

// startPeer brings the peer up once the machine has seen the connection:
// a peer that pinged before that would look, to the machine, like one
// that floods it the moment it connects.
func (w *world) startPeer(c *conn) {
	if c.started {
		return
	}
	c.started = true
	w.peerStep(c, fsm.Input{Kind: fsm.Start})
	w.peerStep(c, fsm.Input{Kind: fsm.Connected})
	w.scheduleData(c)
	if w.failWait {
		w.breakConn()
	}
}

func (w *world) scheduleData(c *conn) {
	if w.phase.dataMax <= 0 {
		return
	}
	gap := w.phase.dataMin
	if w.phase.dataMax > gap && w.rng.IntN(4) != 0 { // one gap in four is the longest allowed
		gap += time.Duration(w.rng.Int64N(int64(w.phase.dataMax - gap)))
	} else {
		gap = w.phase.dataMax
	}
	w.push(&event{at: w.now + gap, kind: evData, conn: c.id})
}

func (w *world) peerStep(c *conn, in fsm.Input) {
	if c == nil || !c.started || w.peerGone(c) {
		return
	}
	c.peerActs = c.peer.Step(t0.Add(w.now), in, c.peerActs[:0])
	for _, a := range c.peerActs {
		switch a.Kind {
		case fsm.SendPing:
			var p [8]byte
			binary.BigEndian.PutUint64(p[:], a.Seq)
			w.transmit(c, false, transport.Frame{Kind: transport.Ping, Seq: a.Seq, Payload: p[:]}, false)
		case fsm.SendPong:
			f := transport.Frame{Kind: transport.Pong}
			if len(a.Payload) == 8 {
				f.Seq = binary.BigEndian.Uint64(a.Payload)
			}
			w.transmit(c, false, f, false)
		}
	}
}

// transmit sends a frame (or a close) over c, on the phase's direction:
// its loss, delay and delivery (a stream keeps order and retransmits, a
// datagram link may lose, duplicate and reorder). Closes are never lost.
func (w *world) transmit(c *conn, toPeer bool, f transport.Frame, close bool) {
	if c.failed != 0 {
		out, in := w.set.cuts(c.failed)
		if (toPeer && out) || (!toPeer && in) {
			return
		}
	}
	d, dir := &w.phase.in, 0
	if toPeer {
		d, dir = &w.phase.out, 1
	}
	at, dup, ok := d.Transmit(w.rng, &c.dirs[dir], int64(w.now), int64(w.phase.stallFrom), int64(w.phase.stallUntil), close, &w.stats)
	if !ok {
		return
	}
	w.push(&event{at: time.Duration(at), kind: evArrive, conn: c.id, toPeer: toPeer, frame: f, close: close, sentAt: w.now})
	if dup > 0 && !close {
		w.push(&event{at: time.Duration(dup), kind: evArrive, conn: c.id, toPeer: toPeer, frame: f, sentAt: w.now})
	}
}

func (w *world) arrive(e *event) {
	c := w.conn
	if c == nil || c.id != e.conn {
		return
	}
	if e.toPeer {
		if w.peerGone(c) {
			return
		}
		if e.close {
			w.peerStep(c, fsm.Input{Kind: fsm.PeerClosed, Err: errPeerGone})
			return
		}
		f := e.frame
		w.peerStep(c, fsm.Input{Kind: fsm.FrameIn, Frame: f})
		return
	}
	if e.reset {
		w.feed(input{in: fsm.Input{Kind: fsm.PeerClosed, Err: errReset}, conn: c.id})
		return
	}
	if c.failed != 0 && (e.sentAt >= c.failedAt || e.at > c.failedAt+w.set.inflight) {
		return // after a failure only frames already in flight arrive, and only within the network bound
	}
	if e.close {
		w.feed(input{in: fsm.Input{Kind: fsm.PeerClosed, Err: errPeerGone}, conn: c.id})
		return
	}
	w.feed(input{in: fsm.Input{Kind: fsm.FrameIn, Frame: e.frame}, conn: c.id})
}

// floodInterval is the peer's ping rate a Machine with this MinPingInterval
// accepts without strikes (see fsm.Config.MinPingInterval).
func floodInterval(minPing time.Duration) time.Duration {
	return min(minPing, fsm.DefaultMinPingInterval)
}

// peerGuard refuses a MachinePromise.Peer that asks to ping faster than the
// flood meter allows: the machine would rightly convict it (F1's premise),
// and slowing it down in silence would test another peer than promised.
type peerGuard struct {
	iv     policy.Interval
	floor  time.Duration
	fatalf func(format string, args ...any)
}

func (g *peerGuard) NextPing(l policy.Link) time.Time {
	at := g.iv.NextPing(l)
	if !at.IsZero() && !l.LastPing.IsZero() && at.Sub(l.LastPing) < g.floor {
		g.fatalf("[%s %s] proptest: MachinePromise.Peer asks for a ping %v after its last one, faster than the flood meter allows (%v: min(MinPingInterval, fsm.DefaultMinPingInterval)); the machine would rightly convict it: slow the peer down",
			V1, invariantName(V1), max(at.Sub(l.LastPing), 0), g.floor)
	}
	return at
}
