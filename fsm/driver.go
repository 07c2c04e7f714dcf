package fsm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/heartbeat-go/heartbeat/transport"
)

// DefaultWriteTimeout bounds one heartbeat write, as gorilla's chat example
// bounds its writes (writeWait 10 s).
const DefaultWriteTimeout = 10 * time.Second

// eventQueue is how many transport events may wait for the driver goroutine
// before the transport's reader blocks (backpressure, never loss).
const eventQueue = 64

// Change is one state change, as delivered to DriverConfig.OnChange.
type Change struct {
	At       time.Time
	From, To State
	Event    Event         // the declared edge taken
	Reason   Reason        // why it was taken
	Err      error         // the cause, if any
	Delay    time.Duration // the wait before the next dial, when To is Reconnecting
}

func (c Change) String() string {
	s := fmt.Sprintf("%v → %v (%v)", c.From, c.To, c.Reason)
	if c.To == Reconnecting {
		s += fmt.Sprintf(" in %v", c.Delay)
	}
	if c.Err != nil {
		s += ": " + c.Err.Error()
	}
	return s
}

// DriverConfig configures a Driver.
type DriverConfig struct {
	// Config configures the Machine.
	Config
	// Dialer makes connections: a client's dials, or for the server role
	// transport.Accepted around the accepted connection. Required.
	Dialer transport.Dialer
	// Clock is the driver's only source of time. Nil means the real clock;
	// tests pass clock.NewMock().
	Clock clock.Clock
	// OnChange, if set, is called with every state change, in order, none
	// dropped, on the driver's goroutine: it must return promptly, and while
	// it runs the connection is not watched. It may call Close, which then
	// returns without waiting (see Close).
	OnChange func(Change)
	// WriteTimeout bounds each heartbeat write. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Advice, if set, returns the reconnect window to advertise in every
	// ping this side sends (see transport.Frame.ReconnectWindow): a server
	// sets it to connected clients / accept rate. Pongs echo the peer's
	// ping and carry none, so a server that advises must ping (see
	// policy.Listen's Advise).
	Advice func() time.Duration
	// TimeoutAdvice, if set, returns the dead-timeout advice to carry in
	// a ping (see transport.Frame.TimeoutAdvice; a server sets it from a
	// policy.Fleet), or 0 to carry none. It is asked for every ping; return
	// 0 for pings that should not carry it, to save bytes.
	TimeoutAdvice func() time.Duration
}

// Driver runs one Machine against a real connection and clock, on one
// goroutine. Its methods are safe for concurrent use.
type Driver struct {
	m             *Machine
	dialer        transport.Dialer
	clk           clock.Clock
	onChange      func(Change)
	writeTO       time.Duration
	advice        func() time.Duration
	timeoutAdvice func() time.Duration

	ctx       context.Context
	cancel    context.CancelFunc
	userClose atomic.Bool
	goid      uint64 // the driver goroutine's id, set before it starts
	done      chan struct{}
	events    chan event
	state     atomic.Uint32

	// Owned by the driver goroutine.
	conn    transport.Conn
	connEv  *connEvents
	gen     uint64
	acts    []Action
	payload [transport.MaxControlPayload]byte // the payload of the event being stepped
	wctx    *writeCtx
	errMu   sync.Mutex
	err     error
	pending []Input
	dialDue bool // the machine asked for a dial; run performs it
}

// event is one transport event, tagged with the connection it came from so
// that events of a connection already closed are ignored.
type event struct {
	gen     uint64
	in      Input // Frame.Payload is nil: the bytes travel in payload
	n       uint8
	payload [transport.MaxControlPayload]byte
}

// Run validates cfg, starts the driver's goroutine and the first dial. The
// driver runs until Close, until ctx is done, until the backoff gives up or,
// for the server role, until the peer is dead.
func Run(ctx context.Context, cfg DriverConfig) (*Driver, error) {
	if cfg.Dialer == nil {
		return nil, errors.New("heartbeat: driver needs a Dialer")
	}
	if cfg.WriteTimeout < 0 {
		return nil, fmt.Errorf("heartbeat: write timeout %v must be positive (zero means %v)", cfg.WriteTimeout, DefaultWriteTimeout)
	}
	m, err := NewMachine(cfg.Config)
	if err != nil {
		return nil, err
	}
	d := &Driver{
		m:             m,
		dialer:        cfg.Dialer,
		clk:           cfg.Clock,
		onChange:      cfg.OnChange,
		writeTO:       cfg.WriteTimeout,
		advice:        cfg.Advice,
		timeoutAdvice: cfg.TimeoutAdvice,
		done:          make(chan struct{}),
		events:        make(chan event, eventQueue),
		acts:          make([]Action, 0, 8),
		pending:       make([]Input, 0, 4),
	}
	if d.clk == nil {
		d.clk = clock.New()
	}
	if d.writeTO == 0 {
		d.writeTO = DefaultWriteTimeout
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	d.wctx = newWriteCtx(d.ctx, d.clk)
	started := make(chan struct{})
	go func() {
		d.goid = goid()
		close(started)
		d.run()
	}()
	<-started
	return d, nil
}

// State returns the connection's current state.
func (d *Driver) State() State { return State(d.state.Load()) }

// Done is closed when the driver's goroutine has exited.
func (d *Driver) Done() <-chan struct{} { return d.done }

// Err returns why the driver stopped (ErrClosed after Close, the context's
// error, the backoff's give-up error, the peer's loss for the server role),
// or nil while it runs.
func (d *Driver) Err() error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.err
}

// Close closes the connection for good and waits for the driver's goroutine
// to exit, so that once it returns Done is closed and State and Err are
// final, whichever goroutine calls it and whatever the driver was doing
// (an OnChange running meanwhile included). The one exception is a call
// made on the driver's own goroutine (from OnChange, the Dialer, a
// Dialer's OnConnect), where waiting would deadlock: it returns at once
// and the driver exits as soon as that callback returns. It is idempotent
// and returns nil.
func (d *Driver) Close() error {
	d.userClose.Store(true)
	d.cancel()
	if goid() == d.goid {
		return nil
	}
	<-d.done
	return nil
}

// goid returns the calling goroutine's id, read from the header of its
// stack trace ("goroutine 42 [running]:"). Go offers no other way to tell
// whether Close runs on the driver's goroutine (inside one of its
// callbacks), and a flag set around the callbacks cannot tell that from a
// concurrent Close on another goroutine. It costs about a microsecond, once
// per driver and once per Close.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = b[len("goroutine "):]
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

func (d *Driver) run() {
	defer close(d.done)
	defer d.wctx.release()
	defer d.cancel()
	timer := d.clk.Timer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	d.step(Input{Kind: Start})
	for !d.finished() {
		// Close wins over everything else, and a dial runs between loop
		// turns, so a backoff of zero against a dialer that fails at once
		// cannot keep the driver from hearing Close.
		if d.ctx.Err() != nil {
			d.closeRequested()
			continue
		}
		if d.dialDue {
			d.dialDue = false
			d.step(d.dial())
			continue
		}
		if dl := d.m.Deadline(); !dl.IsZero() {
			timer.Reset(max(dl.Sub(d.clk.Now()), 0))
		}
		select {
		case <-d.ctx.Done():
			d.closeRequested()
		case ev := <-d.events:
			d.handle(&ev)
		case <-timer.C:
			// select picks at random among ready cases; evidence already
			// queued must be heard before the timer that would convict.
			d.drainEvents()
			d.step(Input{Kind: DeadlineReached})
		}
		timer.Stop()
	}
	d.dropConn(nil)
}

// handle steps a transport event, unless it comes from a connection the
// driver has already dropped.
func (d *Driver) handle(ev *event) {
	if ev.gen == d.gen && d.conn != nil {
		// The payload is copied to a buffer of the driver's own, not
		// sliced from ev: a slice of ev would move it to the heap on every
		// event.
		n := copy(d.payload[:], ev.payload[:ev.n])
		in := ev.in
		in.Frame.Payload = d.payload[:n]
		d.step(in)
	}
}

// closeRequested steps the close, after any end of the connection the
// transport has already reported: an application whose Read failed because
// the peer left, and which then closes the driver (a handler's deferred
// Close), must see the peer's leaving, not its own close. Queued frames are
// dropped: answering them now would only fail.
func (d *Driver) closeRequested() {
	for drained := false; !drained; {
		select {
		case ev := <-d.events:
			if ev.in.Kind == PeerClosed {
				d.handle(&ev)
			}
		default:
			drained = true
		}
	}
	if !d.finished() {
		d.step(Input{Kind: CloseRequested, Err: d.closeCause()})
	}
}

// drainEvents handles every transport event already queued.
func (d *Driver) drainEvents() {
	for {
		select {
		case ev := <-d.events:
			d.handle(&ev)
		default:
			return
		}
	}
}

func (d *Driver) closeCause() error {
	if d.userClose.Load() {
		return ErrClosed
	}
	return d.ctx.Err()
}

// finished reports whether the machine has nothing more to do.
func (d *Driver) finished() bool {
	st := d.m.State()
	return st == Closed || (st == Dead && d.m.Role() == Server)
}

// step feeds one input and carries out the actions, feeding back any input
// they produce (a failed send).
func (d *Driver) step(in Input) {
	// Indexed, not consumed from the front: re-slicing from the front
	// would shrink the capacity and reallocate every few steps.
	d.pending = append(d.pending[:0], in)
	for i := 0; i < len(d.pending); i++ {
		d.acts = d.m.Step(d.clk.Now(), d.pending[i], d.acts[:0])
		for j := range d.acts {
			d.do(&d.acts[j])
		}
	}
	clear(d.pending) // drop the errors and payloads they hold
	d.pending = d.pending[:0]
}

func (d *Driver) do(a *Action) {
	switch a.Kind {
	case SendPing, SendPong:
		f := transport.Frame{Kind: transport.Ping, Seq: a.Seq}
		if d.advice != nil { // only pings: a pong echoes its ping (RFC 6455 §5.5.3)
			f.ReconnectWindow = d.advice()
		}
		if d.timeoutAdvice != nil && a.Kind == SendPing {
			f.TimeoutAdvice = d.timeoutAdvice()
		}
		if a.Kind == SendPong {
			f = transport.Frame{Kind: transport.Pong, Seq: a.Seq, Payload: a.Payload}
		}
		if d.conn == nil {
			return
		}
		d.wctx.begin(d.clk.Now(), d.writeTO)
		err := d.conn.Send(d.wctx, f)
		d.wctx.end()
		// A write cut short by Close (or the caller's context) is not a
		// broken connection: the close is about to be stepped, and must
		// reach the peer as itself (1000), not as a send failure (1001).
		if err != nil && d.ctx.Err() == nil {
			d.pending = append(d.pending, Input{Kind: SendFailed, Err: err})
		}
	case Dial:
		d.dialDue = true
	case CloseTransport:
		d.dropConn(a.Err)
	case StateChanged:
		d.state.Store(uint32(a.To))
		if a.To == Closed || (a.To == Dead && d.m.Role() == Server) {
			d.errMu.Lock()
			d.err = a.Err
			d.errMu.Unlock()
		}
		if d.onChange != nil {
			d.onChange(Change{At: d.clk.Now(), From: a.From, To: a.To, Event: a.Event, Reason: a.Reason, Err: a.Err, Delay: a.Delay})
		}
	}
}

// dial runs one dial on the driver goroutine, bounded by the machine's
// connect deadline and cancelled by Close, and returns its outcome.
func (d *Driver) dial() Input {
	d.gen++
	ev := &connEvents{d: d, gen: d.gen, stop: make(chan struct{})}
	ctx, cancel := d.clk.WithDeadline(d.ctx, d.m.Deadline())
	conn, err := d.dialer.Dial(ctx, ev)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	if err == nil && conn == nil {
		err = errors.New("heartbeat: dialer returned neither a connection nor an error")
	}
	if err != nil {
		close(ev.stop)
		switch {
		case d.ctx.Err() != nil:
			// Close (or the caller's context) cut the dial short: that is
			// the close, not a failed dial to retry.
			return Input{Kind: CloseRequested, Err: d.closeCause()}
		case timedOut:
			// The dial ran into the machine's connect deadline: the machine
			// reports it as the connect timeout it is.
			return Input{Kind: DeadlineReached}
		}
		return Input{Kind: DialFailed, Err: err}
	}
	d.conn, d.connEv = conn, ev
	return Input{Kind: Connected}
}

// dropConn closes the current connection, if any; its later events are
// ignored.
func (d *Driver) dropConn(reason error) {
	if d.conn == nil {
		return
	}
	close(d.connEv.stop)
	conn := d.conn
	d.conn, d.connEv = nil, nil
	d.gen++
	_ = conn.Close(reason)
}

// connEvents is the transport.Events of one connection.
type connEvents struct {
	d    *Driver
	gen  uint64
	stop chan struct{} // closed when the driver drops this connection
}

func (c *connEvents) Frame(f transport.Frame) {
	e := event{gen: c.gen, in: Input{Kind: FrameIn, Frame: f}}
	e.in.Frame.Payload = nil
	e.n = uint8(copy(e.payload[:], f.Payload))
	c.send(e)
}

func (c *connEvents) Closed(err error) {
	if err == nil {
		err = ErrPeerClosed
	}
	c.send(event{gen: c.gen, in: Input{Kind: PeerClosed, Err: err}})
}

func (c *connEvents) send(e event) {
	select {
	case c.d.events <- e:
	case <-c.stop:
	case <-c.d.done:
	}
}

// writeCtx is the context of the driver's heartbeat writes: the driver's
// context with a deadline WriteTimeout after each write begins. One value
// serves every write, so the steady path allocates nothing (a
// context.WithTimeout per write costs a context, a timer and a closure).
// It keeps the context contract: Done closes at the deadline, with
// context.DeadlineExceeded, or when the driver's context ends.
type writeCtx struct {
	parent context.Context
	clk    clock.Clock
	timer  *clock.Timer // cancels the write in progress at its deadline
	stop   func() bool  // unregisters from parent

	mu       sync.Mutex
	deadline time.Time
	done     chan struct{}
	err      error
}

func newWriteCtx(parent context.Context, clk clock.Clock) *writeCtx {
	w := &writeCtx{parent: parent, clk: clk, done: make(chan struct{})}
	w.timer = clk.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	w.stop = context.AfterFunc(parent, func() { w.cancel(parent.Err()) })
	return w
}

// begin starts a write at now that must end within d.
func (w *writeCtx) begin(now time.Time, d time.Duration) {
	w.mu.Lock()
	if w.err != nil && w.parent.Err() == nil {
		// The previous write ran out of time: a fresh channel for this one.
		w.done, w.err = make(chan struct{}), nil
	}
	w.deadline = now.Add(d)
	w.mu.Unlock()
	w.timer.Reset(d)
}

// end marks the write over.
func (w *writeCtx) end() { w.timer.Stop() }

// release unregisters from the parent context when the driver exits.
func (w *writeCtx) release() {
	w.timer.Stop()
	w.stop()
}

// expire runs at a write's deadline. A timer that fired for an earlier
// write, racing end, finds a later deadline and does nothing.
func (w *writeCtx) expire() {
	w.mu.Lock()
	late := !w.clk.Now().Before(w.deadline)
	w.mu.Unlock()
	if late {
		w.cancel(context.DeadlineExceeded)
	}
}

func (w *writeCtx) cancel(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
		close(w.done)
	}
}

func (w *writeCtx) Deadline() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.deadline, true
}

func (w *writeCtx) Done() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

func (w *writeCtx) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writeCtx) Value(key any) any { return w.parent.Value(key) }
