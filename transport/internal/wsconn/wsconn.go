// Package wsconn is what the WebSocket adapters (gorillaws, coderws) share
// and what does not depend on the library: the read loop's dispatch of
// application messages and application-level heartbeats to
// transport.Events, the queue that hands messages to Read, the close-state
// bookkeeping, the Bind guard, the peer's connection ID, and the checks and
// encoding of heartbeat sends. Each adapter keeps what is its library's
// own: how frames are read and written, control frames, and the close
// handshake.
package wsconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

const (
	// DefaultQueue is how many inbound application messages may wait for
	// Read before the read loop pauses (and with it the reading of pings).
	DefaultQueue = 16
	// DefaultQueueBytes is how many bytes of inbound application messages
	// may wait for Read before the read loop pauses: with one more message
	// in the application's hands, a peer that outpaces it holds at most
	// about twice the read limit per connection.
	DefaultQueueBytes = 1 << 20
	// DefaultWriteTimeout bounds a heartbeat write whose context has no
	// deadline.
	DefaultWriteTimeout = 10 * time.Second
)

// ErrOnData is wrapped by Read's error on a connection whose messages go
// to an OnData callback.
var ErrOnData = errors.New("messages are delivered to Options.OnData, not Read")

// sendBufSize fits any heartbeat message but the largest JSON ones.
const sendBufSize = 256

// Config describes one connection to New. T is the library's message type
// (websocket.TextMessage's type).
type Config[T any] struct {
	// Name is the adapter's package name; it begins the errors New and
	// SendMessage make.
	Name string
	// Subprotocol is the negotiated subprotocol, which selects the format
	// when Format is zero.
	Subprotocol string

	// The adapter's Options of the same names.
	Format      wire.Format
	ConnID      string
	Queue       int
	QueueBytes  int
	OnMessage   func(wire.Message)
	OnMalformed func(error)
	// OnData, if set, receives every application message on the read loop,
	// in order, instead of the queue Read drains; Read then fails with
	// ErrOnData. It spares the application a goroutine per connection.
	OnData func(typ T, data []byte)

	// Text and Binary are the library's message types for JSON and binary
	// heartbeats.
	Text, Binary T
	// Read reads the next data message; only the read loop calls it. It may
	// return a heartbeat message (wire.IsHeartbeat) in a buffer it reuses
	// on the next call; any other message must be the caller's to keep.
	Read func() (T, []byte, error)
	// Write writes one data message within ctx.
	Write func(ctx context.Context, typ T, p []byte) error
	// CleanClose reports whether a read error is the peer's clean close
	// (a close frame with 1000 or 1001): the end is then reported wrapped
	// in fsm.ErrPeerLeft, an end rather than a death.
	CleanClose func(error) bool
	// KeepReading makes the read loop go on reading (and dropping
	// messages) while the connection closes: gorilla reads the peer's
	// close frame only through the loop's reads. Without it the loop
	// stops, for a library (coder) whose Close reads that frame itself.
	KeepReading bool

	// The adapter's errors: a second Bind, a Send of a data frame, and a
	// Write of a message that looks like a heartbeat.
	ErrBound, ErrFrameKind, ErrReservedPrefix error
}

// Core is the library-independent part of an adapter's Conn. The adapter
// wraps it, delegating to it the methods of the same names.
type Core[T any] struct {
	cfg Config[T]

	ev      transport.Events
	msgs    chan message[T]
	queued  atomic.Int64  // bytes in msgs
	room    chan struct{} // a token when Read took a message
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when the read loop has exited (or would never start)
	once    sync.Once

	mu      sync.Mutex
	started bool
	closed  bool
	reason  error
	readErr error
	failed  error // a broken write, reported as the end unless Close came first

	sendBuf chan []byte // the encoding buffer of SendMessage, when free
	peerID  atomic.Pointer[string]
	scratch [transport.MaxControlPayload]byte // owned by the read goroutine
	echo    [wire.EchoSize]byte               // owned by the read goroutine
}

type message[T any] struct {
	typ  T
	data []byte
}

// New checks cfg's options, fills in their defaults and returns the Core.
// Nothing is read until Bind.
func New[T any](cfg Config[T]) (*Core[T], error) {
	if cfg.Format == wire.Control {
		cfg.Format = wire.FormatOf(cfg.Subprotocol)
	}
	if cfg.Format > wire.Binary {
		return nil, fmt.Errorf("%s: format %v is not control, json or binary", cfg.Name, cfg.Format)
	}
	if cfg.Queue < 0 || cfg.QueueBytes < 0 {
		return nil, fmt.Errorf("%s: queue %d and queue bytes %d must not be negative (zero means %d and %d)", cfg.Name, cfg.Queue, cfg.QueueBytes, DefaultQueue, DefaultQueueBytes)
	}
	if cfg.Queue == 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if len(cfg.ConnID) > wire.MaxConnIDLen {
		return nil, fmt.Errorf("%s: connection ID of %d bytes is longer than %d", cfg.Name, len(cfg.ConnID), wire.MaxConnIDLen)
	}
	c := &Core[T]{
		cfg:     cfg,
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if cfg.OnData == nil { // with OnData nothing is queued
		c.msgs = make(chan message[T], cfg.Queue)
		c.room = make(chan struct{}, 1)
	}
	if cfg.Format != wire.Control {
		c.sendBuf = make(chan []byte, 1)
		c.sendBuf <- make([]byte, 0, sendBufSize)
	}
	return c, nil
}

// Format returns how heartbeats travel on this connection.
func (c *Core[T]) Format() wire.Format { return c.cfg.Format }

// PeerID returns the connection ID the server sent in its application-level
// heartbeats, on the client side; "" if none (and always on the server).
func (c *Core[T]) PeerID() string {
	if p := c.peerID.Load(); p != nil {
		return *p
	}
	return ""
}

// Closing is closed when Close begins.
func (c *Core[T]) Closing() <-chan struct{} { return c.closing }

// Done is closed once the connection has ended and its read loop exited.
func (c *Core[T]) Done() <-chan struct{} { return c.done }

// Bind starts the read loop, reporting to ev. install, if set, runs first,
// under the lock that keeps Bind from racing Close: the adapter puts its
// library's frame handlers in place there.
func (c *Core[T]) Bind(ev transport.Events, install func()) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return transport.ErrClosed
	case c.started:
		return c.cfg.ErrBound
	}
	c.started = true
	c.ev = ev
	if install != nil {
		install()
	}
	go c.readLoop()
	return nil
}

func (c *Core[T]) readLoop() {
	defer close(c.done)
	for {
		// Past QueueBytes the loop waits before it reads on, so the socket's
		// buffers fill and the peer is slowed down, as by a full queue.
		for c.msgs != nil && c.queued.Load() >= int64(c.cfg.QueueBytes) {
			select {
			case <-c.room:
			case <-c.closing:
				if !c.cfg.KeepReading {
					c.end(nil)
					return
				}
				c.queued.Store(0) // closing: what is read now is dropped
			}
		}
		typ, data, err := c.cfg.Read()
		if err != nil {
			c.end(err)
			return
		}
		if c.cfg.Format != wire.Control && wire.IsHeartbeat(data) {
			c.heartbeat(data)
			continue
		}
		// Reported before it is queued: the message is evidence of life
		// even while the application has not read it yet.
		c.ev.Frame(transport.Frame{Kind: transport.Data, Size: len(data)})
		if c.cfg.OnData != nil {
			c.cfg.OnData(typ, data)
			continue
		}
		c.queued.Add(int64(len(data)))
		select {
		case c.msgs <- message[T]{typ, data}:
		case <-c.closing:
			if !c.cfg.KeepReading {
				c.end(nil)
				return
			}
		}
	}
}

// heartbeat handles one application-level heartbeat message.
func (c *Core[T]) heartbeat(data []byte) {
	m, err := wire.Decode(data)
	if err != nil {
		// A malformed heartbeat is dropped, but it arrived: evidence still,
		// and bytes the data meter counts.
		c.ev.Frame(transport.Frame{Kind: transport.Data, Size: len(data)})
		if c.cfg.OnMalformed != nil {
			c.cfg.OnMalformed(err)
		}
		return
	}
	if c.cfg.ConnID == "" && m.ConnID != "" && c.PeerID() != m.ConnID {
		id := m.ConnID
		c.peerID.Store(&id)
	}
	c.ev.Frame(m.Frame(c.echo[:0]))
	if (m.Type == wire.Drain || m.Type == wire.Close) && c.cfg.OnMessage != nil {
		c.cfg.OnMessage(m)
	}
}

// Payload is a control frame's payload as a library hands it over: a
// string (gorilla) or bytes (coder).
type Payload interface{ ~string | ~[]byte }

// PingIn reports an inbound control ping with payload p, whose Seq and
// advice it reads if p is wire.AppendControl's. It runs inside the
// library's reader and does nothing before Bind.
func PingIn[T any, P Payload](c *Core[T], p P) {
	if c.ev == nil {
		return
	}
	n := copy(c.scratch[:], p)
	f := transport.Frame{Kind: transport.Ping, Payload: c.scratch[:n]}
	if seq, window, timeout, err := wire.ParseControlAdvice(f.Payload); err == nil {
		f.Seq, f.ReconnectWindow, f.TimeoutAdvice = seq, window, timeout
	}
	c.ev.Frame(f)
}

// PongSeq returns the Seq in a pong's payload p: the echo of
// wire.AppendControl's, or 0 (unknown) for a peer's own payload. The
// window in an echoed payload is our own advice: it is ignored.
func PongSeq[P Payload](p P) uint64 {
	var b [transport.MaxControlPayload]byte
	n := copy(b[:], p)
	seq, _, _ := wire.ParseControl(b[:n])
	return seq
}

// PongIn reports an inbound control pong for the ping with seq (0:
// unknown). It runs inside the library's reader and does nothing before
// Bind.
func (c *Core[T]) PongIn(seq uint64) {
	if c.ev == nil {
		return
	}
	c.ev.Frame(transport.Frame{Kind: transport.Pong, Seq: seq})
}

// end records why the read loop stopped and reports it: a local Close is
// reported as transport.ErrClosed (so that a driver whose application
// closed the connection learns of it), then a broken write (Fail), then
// err.
func (c *Core[T]) end(err error) {
	c.mu.Lock()
	switch {
	case c.closed:
		err = ClosedError(c.reason)
	case c.failed != nil:
		err = c.failed
	case c.cfg.CleanClose != nil && c.cfg.CleanClose(err):
		err = fmt.Errorf("%w: %w", fsm.ErrPeerLeft, err)
	}
	c.readErr = err
	c.mu.Unlock()
	c.ev.Closed(err)
}

// ClosedError is the error of a connection closed locally for reason: it
// wraps both transport.ErrClosed and reason, so that errors.Is finds the
// cause (fsm.ErrPeerSilent after a conviction, say) as well.
func ClosedError(reason error) error {
	if reason == nil || errors.Is(reason, transport.ErrClosed) {
		if reason == nil {
			return transport.ErrClosed
		}
		return reason
	}
	return fmt.Errorf("%w: %w", transport.ErrClosed, reason)
}

// Fail records that a write broke the connection, so that the read loop
// reports err as its end. It reports false, recording nothing, after Close
// or an earlier Fail.
func (c *Core[T]) Fail(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.failed != nil {
		return false
	}
	c.failed = err
	return true
}

// Read returns the next application message. After the connection ends, it
// returns the queued messages and then the error that ended it.
func (c *Core[T]) Read(ctx context.Context) (T, []byte, error) {
	var zero T
	if c.cfg.OnData != nil {
		return zero, nil, fmt.Errorf("%s: %w", c.cfg.Name, ErrOnData)
	}
	select {
	case m := <-c.msgs:
		return c.took(m)
	case <-ctx.Done():
		return zero, nil, ctx.Err()
	case <-c.done:
	}
	select {
	case m := <-c.msgs:
		return c.took(m)
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr != nil {
		return zero, nil, c.readErr
	}
	return zero, nil, transport.ErrClosed
}

// took accounts for a message Read hands over and wakes the read loop if it
// waits for room.
func (c *Core[T]) took(m message[T]) (T, []byte, error) {
	c.queued.Add(-int64(len(m.data)))
	select {
	case c.room <- struct{}{}:
	default:
	}
	return m.typ, m.data, nil
}

// Write writes one application message, refusing one that would pass for a
// heartbeat on a connection with application-level heartbeats.
func (c *Core[T]) Write(ctx context.Context, typ T, p []byte) error {
	if c.cfg.Format != wire.Control && wire.IsHeartbeat(p) {
		return c.cfg.ErrReservedPrefix
	}
	return c.cfg.Write(ctx, typ, p)
}

// CheckSend reports why f cannot be sent, if it cannot: too large a
// payload, neither Ping nor Pong, a closed connection, or ctx done.
func (c *Core[T]) CheckSend(ctx context.Context, f transport.Frame) error {
	if len(f.Payload) > transport.MaxControlPayload {
		return transport.ErrPayloadTooLarge
	}
	if f.Kind != transport.Ping && f.Kind != transport.Pong {
		return c.cfg.ErrFrameKind
	}
	select {
	case <-c.closing:
		return transport.ErrClosed
	default:
	}
	return ctx.Err()
}

// SendError wraps the error of a failed heartbeat send of kind k; a send
// that failed because Close began is reported as transport.ErrClosed.
func (c *Core[T]) SendError(k transport.FrameKind, err error) error {
	if err == nil {
		return nil
	}
	select {
	case <-c.closing:
		return fmt.Errorf("%s: send %v: %w", c.cfg.Name, k, transport.ErrClosed)
	default:
	}
	return fmt.Errorf("%s: send %v: %w", c.cfg.Name, k, err)
}

// SendFrame sends f, checked by CheckSend, as an application-level message:
// a Ping with its Seq, the time, the connection ID and the advice; a Pong
// echoing its ping. Its error is SendError's.
func (c *Core[T]) SendFrame(ctx context.Context, f transport.Frame) error {
	m := c.FrameMessage(f)
	return c.SendError(f.Kind, c.SendMessage(ctx, &m))
}

// FrameMessage is the application-level message that carries f: a Ping
// with its Seq, the time, the connection ID and the advice; a Pong echoing
// its ping.
func (c *Core[T]) FrameMessage(f transport.Frame) wire.Message {
	m := wire.PongFor(f.Payload)
	if f.Kind == transport.Ping {
		m = wire.Message{Type: wire.Ping, Seq: f.Seq, SentAt: time.Now().UnixMilli(),
			ConnID: c.cfg.ConnID, Window: min(f.ReconnectWindow, wire.MaxWindow).Truncate(time.Millisecond)}
		if c.cfg.Format == wire.JSON {
			// A JSON reader of version 1 ignores the member; a binary one
			// would reject version 2, so binary peers go without.
			m.TimeoutAdvice = min(max(f.TimeoutAdvice, 0), wire.MaxTimeoutAdvice)
		}
	}
	return m
}

// Encode appends m to buf in the connection's format, with the server's
// connection ID if m has none, and returns the message type to write it
// as.
func (c *Core[T]) Encode(buf []byte, m *wire.Message) (T, []byte, error) {
	if c.cfg.ConnID != "" && m.ConnID == "" {
		cp := *m
		cp.ConnID = c.cfg.ConnID
		m = &cp
	}
	typ := c.cfg.Binary
	if c.cfg.Format == wire.JSON {
		typ = c.cfg.Text
	}
	b, err := wire.Append(buf, c.cfg.Format, m)
	return typ, b, err
}

// SendMessage writes one application-level heartbeat message in the
// connection's format, with the server's connection ID if m has none,
// within ctx's deadline or DefaultWriteTimeout.
func (c *Core[T]) SendMessage(ctx context.Context, m *wire.Message) error {
	if c.cfg.Format == wire.Control {
		return errors.New(c.cfg.Name + ": SendMessage needs an application-level format (json or binary)")
	}
	// One buffer serves the writes that do not overlap (the steady
	// heartbeat); a concurrent one (a Drain sent meanwhile) makes its own.
	var buf []byte
	select {
	case buf = <-c.sendBuf:
	default:
		buf = make([]byte, 0, sendBufSize)
	}
	defer func() {
		select {
		case c.sendBuf <- buf[:0]:
		default:
		}
	}()
	typ, b, err := c.Encode(buf[:0], m)
	if err != nil {
		return err
	}
	buf = b[:0] // keep what Append grew, if it did
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultWriteTimeout)
		defer cancel()
	}
	return c.cfg.Write(ctx, typ, b)
}

// Close marks the connection closed for reason, wakes whatever waits on
// Closing, runs shut once (the library's close; started says whether the
// read loop runs) and waits for the read loop to exit. It is idempotent.
func (c *Core[T]) Close(reason error, shut func(started bool)) {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.reason = reason
		started := c.started
		if !started {
			c.readErr = ClosedError(reason) // no read loop will record it
		}
		c.mu.Unlock()
		close(c.closing)
		shut(started)
		if !started {
			close(c.done)
		}
	})
	<-c.done
}

// Conn is what both adapters' Conn types offer.
type Conn interface {
	transport.Conn
	Bind(ev transport.Events) error
}

// Accepted returns the transport.Dialer through which the heartbeat
// driver's server role binds c, an accepted connection.
func Accepted(c Conn) transport.Dialer {
	return transport.Accepted(func(ev transport.Events) (transport.Conn, error) {
		if err := c.Bind(ev); err != nil {
			return nil, err
		}
		return c, nil
	})
}

// Dialed finishes a client-side Dial: it binds c, just dialled and wrapped,
// to ev (closing c if that fails) and hands it to onConnect, if set.
func Dialed[C Conn](c C, ev transport.Events, onConnect func(C)) (transport.Conn, error) {
	if err := c.Bind(ev); err != nil {
		_ = c.Close(err)
		return nil, err
	}
	if onConnect != nil {
		onConnect(c)
	}
	return c, nil
}

// Watch runs the heartbeat's server role on c, an accepted connection, and
// reports presence through p; c is closed if the driver cannot start, and
// when the driver ends, even before it bound c (ctx already done).
func Watch(ctx context.Context, c Conn, cfg fsm.DriverConfig, p fsm.Presence) (*fsm.Driver, error) {
	cfg.Role = fsm.Server
	var bound bool // touched only on the driver's goroutine
	accepted := Accepted(c)
	cfg.Dialer = transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
		conn, err := accepted.Dial(ctx, ev)
		bound = err == nil
		return conn, err
	})
	next := p.OnChange(cfg.OnChange)
	cfg.OnChange = func(ch fsm.Change) {
		// The driver closes a connection it bound; one it never bound (the
		// context was done before its first turn) is closed here, or it
		// would stay open with nobody reading it.
		if !bound && (ch.To == fsm.Closed || ch.To == fsm.Dead) {
			_ = c.Close(ch.Err)
		}
		next(ch)
	}
	d, err := fsm.Run(ctx, cfg)
	if err != nil {
		_ = c.Close(err)
		return nil, err
	}
	return d, nil
}
