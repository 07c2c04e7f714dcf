package fsm

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// Errors a Machine hands to CloseTransport actions and state changes.
var (
	// ErrPeerSilent: the detector's dead timeout passed without evidence.
	ErrPeerSilent = errors.New("heartbeat: peer silent past the dead timeout")
	// ErrPingFlood: the peer pinged faster than Config.MinPingInterval and
	// Config.PingBurst allow.
	ErrPingFlood = errors.New("heartbeat: peer sent too many pings")
	// ErrDataFlood: the peer sent application messages faster than
	// Config.DataRate and DataBurst allow. A WebSocket adapter sends close
	// code 1008 (policy violation) with this text.
	ErrDataFlood = errors.New("heartbeat: peer sent too many messages")
	// ErrConnectTimeout: a dial took longer than Config.ConnectTimeout.
	ErrConnectTimeout = errors.New("heartbeat: connect timeout")
	// ErrClosed: the user closed the connection.
	ErrClosed = errors.New("heartbeat: closed")
	// ErrPeerLeft is wrapped by the error of a PeerClosed input when the
	// peer closed the connection cleanly (a WebSocket close frame with
	// 1000 or 1001; the adapters wrap it around their library's error).
	// The Machine reports it as ReasonPeerLeft: the server role closes
	// (the peer is gone, not dead), a client redials without passing
	// through dead.
	ErrPeerLeft = errors.New("heartbeat: peer closed the connection cleanly")
	// ErrPeerClosed is the cause the driver reports when a transport says
	// its connection ended without saying why.
	ErrPeerClosed = errors.New("heartbeat: peer closed the connection")
)

// InputKind says what happened.
type InputKind uint8

const (
	// Start begins the machine's life: it asks for the first dial (or bind).
	Start InputKind = iota + 1
	// Connected: the dial or bind succeeded.
	Connected
	// DialFailed: the dial or bind failed; Input.Err says why.
	DialFailed
	// FrameIn: a frame arrived (any frame is evidence of life).
	FrameIn
	// SendFailed: a heartbeat could not be written; Input.Err says why.
	SendFailed
	// PeerClosed: the transport reported the connection ended.
	PeerClosed
	// DeadlineReached: the driver woke the machine at (or after) Deadline.
	DeadlineReached
	// CloseRequested: the user wants the connection closed for good.
	CloseRequested
)

var inputNames = [...]string{"", "start", "connected", "dial failed", "frame in", "send failed", "peer closed", "deadline reached", "close requested"}

func (k InputKind) String() string {
	if int(k) < len(inputNames) && k != 0 {
		return inputNames[k]
	}
	return "input(?)"
}

// Input is one thing that happened, handed to Machine.Step.
type Input struct {
	Kind  InputKind
	Frame transport.Frame // FrameIn only
	Err   error           // DialFailed, SendFailed, PeerClosed, CloseRequested: the cause
}

// ActionKind says what the driver must do.
type ActionKind uint8

const (
	// SendPing: send a ping carrying Action.Seq.
	SendPing ActionKind = iota + 1
	// SendPong: send a pong echoing Action.Payload.
	SendPong
	// Dial: dial a new connection (server role: bind the accepted one),
	// cancelling it at Deadline.
	Dial
	// CloseTransport: close the connection (or abandon the dial in
	// progress); Action.Err is the reason.
	CloseTransport
	// StateChanged: the machine moved From → To because of Reason (and Err).
	StateChanged
)

var actionNames = [...]string{"", "send ping", "send pong", "dial", "close transport", "state changed"}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) && k != 0 {
		return actionNames[k]
	}
	return "action(?)"
}

// Action is one thing the driver must do, in the order returned.
type Action struct {
	Kind ActionKind
	// Seq numbers a SendPing (its pong should echo it); for a SendPong it
	// is the inbound ping's Seq (0 if unknown), for transports that carry
	// it apart from the payload.
	Seq uint64
	// Payload is the ping payload a SendPong echoes. It aliases the inbound
	// Input.Frame.Payload: use it before reusing that buffer.
	Payload []byte
	// From, To, Event, Reason describe a StateChanged: Event is the
	// declaration's edge taken, Reason why it was taken.
	From, To State
	Event    Event
	Reason   Reason
	// Err is the cause of a StateChanged or the reason of a CloseTransport.
	Err error
	// Delay is the wait before the next dial when To is Reconnecting: the
	// backoff's delay, raised to keep dials MinRedialGap apart.
	Delay time.Duration
}

// tick is a time on the machine's clock: nanoseconds since its first input.
type tick int64

const (
	never tick = math.MaxInt64 // no deadline
	unset tick = math.MinInt64 // no such moment yet
)

// plus returns t+d, saturating at never: a duration of math.MaxInt64 is a
// common way to say "never" and must not wrap into the past.
func (t tick) plus(d tick) tick {
	if d > 0 && t > never-d {
		return never
	}
	return t + d
}

// MinRedialGap is the least time between the starts of two dials, whatever
// the backoff says: a zero backoff against a dialer that fails at once
// would otherwise redial at one instant for ever.
const MinRedialGap = 10 * time.Millisecond

// maxChain bounds the transitions one Step can chain (alive → suspect → dead
// → reconnecting → connecting is the longest); more is a bug.
const maxChain = 8

// Machine is the sans-I/O liveness state machine of one connection. It reads
// no clock, starts no goroutine, touches no socket and draws no randomness:
// Step is handed the time and an input, and returns actions; Deadline says
// when to wake it next. It is not safe for concurrent use; the driver (or the
// simulator) serialises calls.
type Machine struct {
	epoch time.Time // the time of the first input; every tick is relative to it

	det policy.Detector
	iv  policy.Interval
	bo  policy.Backoff

	connectTimeout  tick
	stableAfter     tick
	stallThreshold  tick // < 0: guard off
	stallGrace      tick
	minPingInterval tick

	now          tick // the latest input's time; time never runs backwards
	deadline     tick // what Deadline reports
	stateSince   tick
	connectedAt  tick // unset while no connection has been established
	lastEvidence tick
	lastPing     tick
	probeBy      tick // after a stall: no conviction before this; unset otherwise
	dialAt       tick // reconnecting: when to dial
	streakStart  tick // when the current backoff streak began
	pingAt       tick // when the next ping is due (set by maybePing)
	pingTAT      tick // GCRA theoretical arrival time of the peer's next ping
	pingFloor    tick // the previous step's time: pings may have queued since
	advice       time.Duration

	seq        uint64
	attempt    int32
	unanswered int32
	pingBurst  int32      // < 0: flood enforcement off
	data       *dataMeter // nil: no limit on the peer's messages nor bytes

	state   State
	role    Role
	started bool
	dialing bool // Connecting with a dial in progress
	stalled bool // this step began with a late wake-up
	// wallEpoch: epoch carries no monotonic clock reading (see since).
	wallEpoch bool
}

// NewMachine returns a Machine in Connecting, ready for a Start input.
func NewMachine(cfg Config) (*Machine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Machine{
		det:             c.Detector,
		iv:              c.Interval,
		bo:              c.Backoff,
		connectTimeout:  tick(c.ConnectTimeout),
		stableAfter:     tick(c.StableAfter),
		stallThreshold:  tick(c.StallThreshold),
		stallGrace:      tick(c.StallGrace),
		minPingInterval: tick(c.MinPingInterval),
		pingBurst:       int32(min(c.PingBurst, math.MaxInt32)),
		role:            c.Role,
		state:           Connecting,
		deadline:        never,
		connectedAt:     unset,
		lastEvidence:    unset,
		lastPing:        unset,
		probeBy:         unset,
		dialAt:          unset,
		streakStart:     unset,
	}
	if c.PingBurst < 0 {
		m.pingBurst = -1
	}
	if c.DataRate > 0 || c.DataByteRate > 0 {
		m.data = &dataMeter{}
	}
	if c.DataRate > 0 {
		iv := tick(max(float64(time.Second)/c.DataRate, 1))
		w := never
		if iv < never/tick(c.DataBurst) {
			w = tick(c.DataBurst) * iv
		}
		m.data.interval, m.data.window = iv, w
	}
	if c.DataByteRate > 0 {
		// Per byte, in ticks (ns) as a float: a fast link's byte is well
		// under a nanosecond.
		iv := float64(time.Second) / c.DataByteRate
		m.data.perByte, m.data.byteWindow = iv, float64(c.DataByteBurst)*iv
	}
	if c.StallThreshold < 0 {
		m.stallThreshold = -1
	}
	return m, nil
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Role returns the machine's role.
func (m *Machine) Role() Role { return m.role }

// Attempt returns the number of the latest dial in the current backoff
// streak (0 once a connection has proved stable).
func (m *Machine) Attempt() int { return int(m.attempt) }

// Deadline returns when the driver must next wake the machine with
// DeadlineReached, or the zero Time if nothing is pending (Closed, or Dead
// for the server role). After any Step it is strictly later than that
// Step's time.
func (m *Machine) Deadline() time.Time {
	if m.deadline == never || !m.started {
		return time.Time{}
	}
	return m.at(m.deadline)
}

// since is t.Sub(m.epoch) as a tick. When the epoch has no monotonic
// clock reading Sub works on the wall clock, and within ±272 years of the
// epoch cannot overflow, so the difference is taken directly; Sub itself
// verifies every result by adding it back, which costs more than the rest
// of a step's arithmetic.
func (m *Machine) since(t time.Time) tick {
	if m.wallEpoch {
		if ds := t.Unix() - m.epoch.Unix(); ds > -1<<33 && ds < 1<<33 {
			return tick(ds*int64(time.Second) + int64(t.Nanosecond()-m.epoch.Nanosecond()))
		}
	}
	return tick(t.Sub(m.epoch))
}

func (m *Machine) at(t tick) time.Time {
	if t == unset {
		return time.Time{}
	}
	return m.epoch.Add(time.Duration(t))
}

// Step hands the machine an input that happened at now and appends the
// resulting actions to out, which it returns. Pass out[:0] of a reused slice
// to step without allocating. A now earlier than the previous Step's is
// taken as equal to it.
//
// Inputs about a connection (Connected, FrameIn, SendFailed, PeerClosed)
// that arrive in a state without one are ignored; the driver must not feed
// inputs from a connection it has already closed.
func (m *Machine) Step(now time.Time, in Input, out []Action) []Action {
	if !m.started {
		m.started = true
		m.epoch = now
		m.wallEpoch = now == now.Round(0)
	}
	t := m.since(now)
	if t < m.now {
		t = m.now
	}
	// The stall guard: the driver was due to wake us at m.deadline. Waking
	// much later means our own process stood still (suspended, throttled),
	// so the silence we now see was not measured by us.
	m.stalled = m.stallThreshold >= 0 && m.deadline != never && t > m.deadline.plus(m.stallThreshold)
	if t > m.now {
		// Pings the peer sent at the allowed rate since our last step may
		// arrive together now (we were busy, paused or stalled, noticed or
		// not): the flood meter counts from then, for every input at t.
		m.pingFloor = m.now
	}
	m.now = t
	// One grace per silence: a driver that is late at every wake (a
	// throttled tab) must not postpone the verdict for ever.
	if m.stalled && (m.state == Alive || m.state == Suspect) && m.probeBy == unset {
		m.probeBy = t.plus(m.graceAfterStall())
	}
	out = m.apply(in, out)
	out = m.advance(out)
	m.deadline = m.nextDeadline()
	return out
}

// graceAfterStall is how long a probe sent after a stall gets before the
// peer may be convicted: the detector's suspect-to-dead window, at least
// Config.StallGrace; a side that never pings gets a whole dead timeout,
// since only the peer's own heartbeat can answer.
func (m *Machine) graceAfterStall() tick {
	s, d := m.timeouts()
	if m.iv.NextPing(m.link()).IsZero() {
		return d
	}
	return max(d-s, m.stallGrace)
}

func (m *Machine) apply(in Input, out []Action) []Action {
	switch in.Kind {
	case Start:
		if m.state == Connecting && m.streakStart == unset {
			m.streakStart = m.now
			out = m.dial(out)
		}
	case Connected:
		if m.state == Connecting && m.dialing {
			m.dialing = false
			m.connectedAt = m.now
			m.lastEvidence = m.now
			m.lastPing = unset
			m.unanswered = 0
			m.probeBy = unset
			m.pingTAT = m.now
			if m.data != nil {
				m.data.tat = m.now
			}
			m.det.Start(m.at(m.now))
			out = m.transition(out, EvConnected, ReasonConnected, nil)
		}
	case DialFailed:
		if m.state == Connecting && m.dialing {
			out = m.dialFailed(out, ReasonDialFailed, in.Err)
		}
	case FrameIn:
		if m.state == Alive || m.state == Suspect {
			out = m.frame(in.Frame, out)
		}
	case SendFailed, PeerClosed:
		reason := ReasonSendFailed
		if in.Kind == PeerClosed || errors.Is(in.Err, transport.ErrPeerClosed) {
			reason = ReasonPeerClosed
			if errors.Is(in.Err, ErrPeerLeft) {
				reason = ReasonPeerLeft
			}
		}
		switch m.state {
		case Alive, Suspect:
			if reason == ReasonPeerLeft {
				out = m.left(out, in.Err)
				break
			}
			out = m.lose(out, EvLost, reason, in.Err)
		case Connecting:
			if m.dialing {
				out = m.dialFailed(out, reason, in.Err)
			}
		}
	case CloseRequested:
		if m.state == Closed {
			break
		}
		err := in.Err
		if err == nil {
			err = ErrClosed
		}
		if m.dialing || m.state == Alive || m.state == Suspect {
			out = append(out, Action{Kind: CloseTransport, Err: err})
		}
		m.dialing = false
		out = m.transition(out, EvClose, ReasonUserClose, err)
	case DeadlineReached:
		// advance does the work.
	default:
		panic(fmt.Sprintf("heartbeat: unknown input kind %d in state %v", in.Kind, m.state))
	}
	return out
}

// frame handles an inbound frame on a live connection.
func (m *Machine) frame(f transport.Frame, out []Action) []Action {
	if f.Kind == transport.Ping && m.pingBurst >= 0 {
		// GCRA: each ping advances the theoretical arrival time by the
		// minimum interval; running more than a burst ahead of now is a flood.
		m.pingTAT = max(m.pingTAT, m.pingFloor).plus(m.floodInterval())
		if m.pingTAT-m.now > m.burstWindow() {
			return m.lose(out, EvLost, ReasonPingFlood, ErrPingFlood)
		}
	}
	if f.Kind == transport.Data && m.data != nil {
		d := m.data
		if d.interval > 0 {
			d.tat = max(d.tat, m.pingFloor).plus(d.interval)
			if d.tat-m.now > d.window {
				return m.lose(out, EvLost, ReasonDataFlood, ErrDataFlood)
			}
		}
		if d.perByte > 0 && f.Size > 0 {
			d.byteTat = max(d.byteTat, float64(m.pingFloor)) + float64(f.Size)*d.perByte
			if d.byteTat-float64(m.now) > d.byteWindow {
				return m.lose(out, EvLost, ReasonDataFlood, ErrDataFlood)
			}
		}
	}
	var rtt time.Duration
	if f.Kind == transport.Pong && f.Seq != 0 && f.Seq == m.seq && m.lastPing != unset {
		rtt = time.Duration(m.now - m.lastPing)
	}
	if f.ReconnectWindow > 0 {
		m.advice = f.ReconnectWindow
	}
	if f.TimeoutAdvice > 0 {
		if a, ok := m.det.(policy.Advisable); ok {
			a.Advise(f.TimeoutAdvice)
		}
	}
	if m.probeBy != unset {
		// The first evidence after our own stall: the silence since the
		// last one spans our pause, and a pong's round trip too. Neither is
		// the peer's lateness; learning them would stretch every later
		// verdict by the stall. The detector restarts its measurement.
		m.det.Start(m.at(m.now))
	} else {
		m.det.Observe(m.at(m.now), rtt)
	}
	m.lastEvidence = m.now
	m.unanswered = 0
	m.probeBy = unset
	if f.Kind == transport.Ping {
		out = append(out, Action{Kind: SendPong, Seq: f.Seq, Payload: f.Payload})
	}
	if m.state == Suspect {
		out = m.transition(out, EvEvidence, ReasonEvidence, nil)
	}
	return out
}

// advance fires everything that is due at m.now, chaining transitions.
func (m *Machine) advance(out []Action) []Action {
	for range maxChain {
		switch m.state {
		case Connecting:
			if m.dialing && m.now >= m.stateSince.plus(m.connectTimeout) {
				out = m.dialFailed(out, ReasonConnectTimeout, ErrConnectTimeout)
				continue
			}
		case Alive:
			if s, _ := m.timeouts(); m.now >= m.lastEvidence.plus(s) {
				reason := ReasonSilence
				if m.stalled {
					reason = ReasonLocalStall
				}
				out = m.transition(out, EvSuspect, reason, nil)
				continue
			}
			out = m.maybePing(out)
		case Suspect:
			if m.now >= m.convictAt() {
				out = m.lose(out, EvConvict, ReasonUnanswered, ErrPeerSilent)
				continue
			}
			out = m.maybePing(out)
		case Reconnecting:
			if m.now >= m.dialAt {
				out = m.transition(out, EvDial, ReasonBackoffElapsed, nil)
				out = m.dial(out)
				continue
			}
		}
		return out
	}
	panic(fmt.Sprintf("heartbeat: more than %d transitions in one step, now in %v", maxChain, m.state))
}

func (m *Machine) timeouts() (suspect, dead tick) {
	s, d := m.det.Timeouts()
	s = max(s, 1)
	return tick(s), tick(max(d, s))
}

func (m *Machine) convictAt() tick {
	_, d := m.timeouts()
	at := m.lastEvidence.plus(d)
	if m.probeBy != unset {
		at = max(at, m.probeBy)
	}
	return at
}

func (m *Machine) link() policy.Link {
	return policy.Link{
		Now:          m.at(m.now),
		AliveSince:   m.at(m.connectedAt),
		LastEvidence: m.at(m.lastEvidence),
		LastPing:     m.at(m.lastPing),
		Unanswered:   int(m.unanswered),
		Suspect:      m.state == Suspect,
	}
}

// nextPing is when the interval policy wants the next ping, kept at least
// minPingInterval after the last one; never if the policy never pings.
func (m *Machine) nextPing() tick {
	next := m.iv.NextPing(m.link())
	if next.IsZero() {
		return never
	}
	at := m.since(next)
	if m.lastPing != unset {
		at = max(at, m.lastPing.plus(m.minPingInterval))
	}
	return at
}

// floodInterval is the peer's ping rate the flood meter allows:
// MinPingInterval, but never slower than DefaultMinPingInterval, so that
// spacing our own pings further apart does not convict a peer that pings
// at an ordinary rate.
func (m *Machine) floodInterval() tick {
	return min(m.minPingInterval, tick(DefaultMinPingInterval))
}

// dataMeter holds the GCRA meters of Config.DataRate (each message
// advances tat by interval; running more than window ahead of now is a
// flood; interval 0: off) and DataByteRate (the same per byte, in float
// ticks; perByte 0: off). One pointer, so the Machine stays small.
type dataMeter struct {
	interval, window, tat        tick
	perByte, byteWindow, byteTat float64
}

// burstWindow is how far ahead of now the peer's ping allowance may run.
func (m *Machine) burstWindow() tick {
	if m.floodInterval() > never/tick(max(m.pingBurst, 1)) {
		return never
	}
	return tick(m.pingBurst) * m.floodInterval()
}

// maybePing sends the ping that is due, if any, and caches when the next
// one is due for nextDeadline.
func (m *Machine) maybePing(out []Action) []Action {
	m.pingAt = m.nextPing()
	if m.pingAt > m.now {
		return out
	}
	m.seq++
	m.lastPing = m.now
	m.unanswered++
	m.pingAt = m.nextPing()
	return append(out, Action{Kind: SendPing, Seq: m.seq})
}

func (m *Machine) dial(out []Action) []Action {
	m.dialing = true
	m.stateSince = m.now
	return append(out, Action{Kind: Dial})
}

// dialFailed handles a failed dial: a client backs off, a server's peer is
// gone for good.
func (m *Machine) dialFailed(out []Action, reason Reason, err error) []Action {
	m.dialing = false
	out = append(out, Action{Kind: CloseTransport, Err: err})
	if m.role == Server {
		return m.transition(out, EvLost, reason, err)
	}
	return m.retry(out, EvDialFailed, reason, err)
}

// lose moves a live connection to Dead, closing the transport, and a client
// on to Reconnecting.
func (m *Machine) lose(out []Action, ev Event, reason Reason, err error) []Action {
	out = append(out, Action{Kind: CloseTransport, Err: err})
	if m.role == Server {
		return m.transition(out, ev, reason, err)
	}
	if m.now-m.connectedAt >= m.stableAfter {
		m.attempt = 0 // the connection proved stable: a new streak begins
	}
	out = m.transition(out, ev, reason, err)
	return m.retry(out, EvRetry, ReasonRetry, err)
}

// left ends a live connection the peer closed cleanly: the server role
// closes, a client redials, neither through dead.
func (m *Machine) left(out []Action, err error) []Action {
	out = append(out, Action{Kind: CloseTransport, Err: err})
	if m.role == Server {
		return m.transition(out, EvLeft, ReasonPeerLeft, err)
	}
	if m.now-m.connectedAt >= m.stableAfter {
		m.attempt = 0
	}
	return m.retry(out, EvRedial, ReasonPeerLeft, err)
}

// retry asks the backoff for the next delay and moves to Reconnecting through
// ev, or gives up.
func (m *Machine) retry(out []Action, ev Event, reason Reason, err error) []Action {
	if m.attempt == 0 {
		m.streakStart = m.now
	}
	m.attempt++
	delay, gerr := m.bo.Next(policy.Retry{
		Attempt: int(m.attempt),
		Elapsed: time.Duration(m.now - m.streakStart),
		Advice:  m.advice,
	})
	if gerr != nil {
		return m.transition(out, EvGiveUp, ReasonGaveUp, gerr)
	}
	delay = max(delay, 0)
	m.dialAt = m.now.plus(tick(delay))
	if m.state == Connecting { // the dial that failed began at stateSince
		m.dialAt = max(m.dialAt, m.stateSince.plus(tick(MinRedialGap)))
	}
	out = m.transition(out, ev, reason, err)
	if m.dialAt != never {
		delay = time.Duration(m.dialAt - m.now) // the wait in effect
	}
	out[len(out)-1].Delay = delay
	return out
}

// transition moves the machine along the declaration's edge ev and reports
// it. An edge the declaration lacks is a bug in the machine.
func (m *Machine) transition(out []Action, ev Event, reason Reason, err error) []Action {
	dst, ok := Next(m.state, ev)
	if !ok {
		panic(fmt.Sprintf("heartbeat: illegal transition: event %v in state %v", ev, m.state))
	}
	from := m.state
	m.state = dst
	m.stateSince = m.now
	return append(out, Action{Kind: StateChanged, From: from, To: dst, Event: ev, Reason: reason, Err: err})
}

// nextDeadline is the earliest moment something is due.
func (m *Machine) nextDeadline() tick {
	switch m.state {
	case Connecting:
		if !m.dialing {
			return never // waiting for Start
		}
		return m.stateSince.plus(m.connectTimeout)
	case Alive: // advance ended in maybePing, which set pingAt
		s, _ := m.timeouts()
		return min(m.lastEvidence.plus(s), m.pingAt)
	case Suspect:
		return min(m.convictAt(), m.pingAt)
	case Reconnecting:
		return m.dialAt
	}
	return never
}
