package gorillaws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// Defaults used where an Options field is zero.
const (
	// DefaultQueue is how many inbound application messages may wait for
	// Read before the read loop pauses (and with it the reading of pings).
	DefaultQueue = 16
	// DefaultReadLimit bounds one inbound message; gorilla itself has no
	// limit, so a peer could make the read loop allocate without end.
	DefaultReadLimit = 1 << 20
	// DefaultCloseTimeout bounds writing the close frame.
	DefaultCloseTimeout = time.Second
	// DefaultWriteTimeout bounds a heartbeat write whose context has no
	// deadline.
	DefaultWriteTimeout = 10 * time.Second
)

// Errors of this package; the transport's ErrClosed and ErrPayloadTooLarge
// are returned (wrapped) where they apply.
var (
	// ErrBound: Bind was called twice.
	ErrBound = errors.New("gorillaws: connection already bound to a heartbeat")
	// ErrFrameKind: Send was given a frame that is neither Ping nor Pong.
	ErrFrameKind = errors.New("gorillaws: Send takes only Ping and Pong frames")
	// ErrReservedPrefix: on a connection with application-level heartbeats,
	// an application message must not look like a heartbeat (begin with
	// {"hb": or 0xFF), or the peer would take it for one.
	ErrReservedPrefix = errors.New("gorillaws: application message begins like a heartbeat message")
)

// Options configures a Conn. The zero value uses control frames (or the
// application-level format the connection's subprotocol selects) and the
// defaults above.
type Options struct {
	// Format says how heartbeats travel. Zero means what the negotiated
	// subprotocol selects (wire.FormatOf(ws.Subprotocol())): control frames
	// unless a heartbeat subprotocol was agreed.
	Format wire.Format
	// ConnID, set on the server side, is sent in application-level
	// heartbeats as the connection's identity. A Conn with a ConnID is the
	// server: it ignores any ID the client sends.
	ConnID string
	// Queue is how many inbound application messages may wait for Read.
	// Zero means DefaultQueue.
	Queue int
	// ReadLimit bounds one inbound message, in bytes. Zero means
	// DefaultReadLimit; negative keeps the limit already set on the
	// websocket.Conn.
	ReadLimit int64
	// CloseTimeout bounds writing the close frame. Zero means
	// DefaultCloseTimeout.
	CloseTimeout time.Duration
	// OnMessage, if set, is called on the read goroutine with every Drain
	// and Close heartbeat message the peer sends (a server asking its
	// client to go). It must return promptly and must not call Close.
	OnMessage func(wire.Message)
	// OnMalformed, if set, is called on the read goroutine with the
	// *wire.Error of a heartbeat message that could not be decoded. The
	// message is dropped; the connection stays up.
	OnMalformed func(error)
}

func (o *Options) withDefaults(ws *websocket.Conn) (Options, error) {
	c := *o
	if c.Format == wire.Control {
		c.Format = wire.FormatOf(ws.Subprotocol())
	}
	if c.Format > wire.Binary {
		return c, fmt.Errorf("gorillaws: format %v is not control, json or binary", c.Format)
	}
	if c.Queue < 0 {
		return c, fmt.Errorf("gorillaws: queue %d must not be negative (zero means %d)", c.Queue, DefaultQueue)
	}
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.CloseTimeout < 0 {
		return c, fmt.Errorf("gorillaws: close timeout %v must be positive (zero means %v)", c.CloseTimeout, DefaultCloseTimeout)
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if len(c.ConnID) > wire.MaxConnIDLen {
		return c, fmt.Errorf("gorillaws: connection ID of %d bytes is longer than %d", len(c.ConnID), wire.MaxConnIDLen)
	}
	return c, nil
}

// Conn is a gorilla/websocket connection watched by the heartbeat. It owns
// the connection's read side: a goroutine, started by Bind, reads every
// frame, so ping and pong handlers run even while the application is busy,
// and hands application messages to Read. It implements transport.Conn.
//
// The application reads only through Read. It writes through Write, or
// through the websocket.Conn itself from a single goroutine (gorilla allows
// one writer); heartbeats use WriteControl, which gorilla allows
// concurrently. With application-level heartbeats, the heartbeats are data
// messages, so the application must write only through Write.
type Conn struct {
	ws   *websocket.Conn
	opts Options

	ev      transport.Events
	msgs    chan message
	wmu     chan struct{} // the data-writer lock, held by Write and application-level heartbeats
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when the read loop has exited (or would never start)
	once    sync.Once

	mu      sync.Mutex
	started bool
	closed  bool
	reason  error
	readErr error
	peerID  atomic.Pointer[string]
	scratch [transport.MaxControlPayload]byte // owned by the read goroutine
	echo    [wire.EchoSize]byte               // owned by the read goroutine
}

type message struct {
	typ  int
	data []byte
}

// Wrap wraps an established gorilla connection, client or server side.
// Nothing is read until Bind (or the heartbeat driver, through Accepted or
// Dialer) starts the read loop.
func Wrap(ws *websocket.Conn, opts Options) (*Conn, error) {
	if ws == nil {
		return nil, errors.New("gorillaws: Wrap needs a *websocket.Conn")
	}
	o, err := opts.withDefaults(ws)
	if err != nil {
		return nil, err
	}
	c := &Conn{
		ws:      ws,
		opts:    o,
		msgs:    make(chan message, o.Queue),
		wmu:     make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if o.ReadLimit > 0 {
		ws.SetReadLimit(o.ReadLimit)
	}
	return c, nil
}

// WebSocket returns the wrapped connection, for what Conn does not cover
// (its addresses, its subprotocol). Do not read from it or replace its
// ping, pong or close handlers.
func (c *Conn) WebSocket() *websocket.Conn { return c.ws }

// Format returns how heartbeats travel on this connection.
func (c *Conn) Format() wire.Format { return c.opts.Format }

// PeerID returns the connection ID the server sent in its application-level
// heartbeats, on the client side; "" if none (and always on the server).
func (c *Conn) PeerID() string {
	if p := c.peerID.Load(); p != nil {
		return *p
	}
	return ""
}

// Accepted returns the transport.Dialer through which the heartbeat
// driver's server role binds this (accepted) connection.
func (c *Conn) Accepted() transport.Dialer {
	return transport.Accepted(func(ev transport.Events) (transport.Conn, error) {
		if err := c.Bind(ev); err != nil {
			return nil, err
		}
		return c, nil
	})
}

// Bind installs the ping and pong handlers and starts the read loop, which
// reports every inbound frame to ev until the connection ends. It fails
// with ErrBound on a second call and with transport.ErrClosed after Close.
func (c *Conn) Bind(ev transport.Events) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return transport.ErrClosed
	case c.started:
		return ErrBound
	}
	c.started = true
	c.ev = ev
	// Replace gorilla's default ping handler, which writes the pong itself
	// inside the reader with a 1 s deadline and drops it when the writer is
	// busy: the heartbeat answers through Send, off the read goroutine.
	c.ws.SetPingHandler(func(data string) error {
		n := copy(c.scratch[:], data)
		f := transport.Frame{Kind: transport.Ping, Payload: c.scratch[:n]}
		if seq, window, err := wire.ParseControl(f.Payload); err == nil {
			f.Seq, f.ReconnectWindow = seq, window
		}
		c.ev.Frame(f)
		return nil
	})
	c.ws.SetPongHandler(func(data string) error {
		n := copy(c.scratch[:], data)
		// The window in an echoed payload is our own advice: ignore it.
		seq, _, _ := wire.ParseControl(c.scratch[:n])
		c.ev.Frame(transport.Frame{Kind: transport.Pong, Seq: seq})
		return nil
	})
	go c.readLoop()
	return nil
}

func (c *Conn) readLoop() {
	defer close(c.done)
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			c.end(err)
			return
		}
		data, err := io.ReadAll(r)
		if err != nil {
			c.end(err)
			return
		}
		if c.opts.Format != wire.Control && wire.IsHeartbeat(data) {
			c.heartbeat(data)
			continue
		}
		// Reported before it is queued: the message is evidence of life
		// even while the application has not read it yet.
		c.ev.Frame(transport.Frame{Kind: transport.Data})
		select {
		case c.msgs <- message{typ, data}:
		case <-c.closing:
			// Closing: keep reading (and dropping) until the peer's close
			// frame ends the loop.
		}
	}
}

// heartbeat handles one application-level heartbeat message.
func (c *Conn) heartbeat(data []byte) {
	m, err := wire.Decode(data)
	if err != nil {
		// A malformed heartbeat is dropped, but it arrived: evidence still.
		c.ev.Frame(transport.Frame{Kind: transport.Data})
		if c.opts.OnMalformed != nil {
			c.opts.OnMalformed(err)
		}
		return
	}
	if c.opts.ConnID == "" && m.ConnID != "" && c.PeerID() != m.ConnID {
		id := m.ConnID
		c.peerID.Store(&id)
	}
	c.ev.Frame(m.Frame(c.echo[:0]))
	if (m.Type == wire.Drain || m.Type == wire.Close) && c.opts.OnMessage != nil {
		c.opts.OnMessage(m)
	}
}

// end records why the read loop stopped and reports it, unless Close
// stopped it; a local Close is reported as transport.ErrClosed so that a
// driver whose application closed the connection learns of it.
func (c *Conn) end(err error) {
	c.mu.Lock()
	if c.closed {
		err = fmt.Errorf("%w: %v", transport.ErrClosed, c.reason)
	}
	c.readErr = err
	c.mu.Unlock()
	c.ev.Closed(err)
}

// Read returns the next application message: its gorilla message type
// (websocket.TextMessage or BinaryMessage) and its bytes, which the caller
// owns. After the connection ends, Read returns the queued messages and
// then the error that ended it.
func (c *Conn) Read(ctx context.Context) (messageType int, p []byte, err error) {
	select {
	case m := <-c.msgs:
		return m.typ, m.data, nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-c.done:
	}
	select {
	case m := <-c.msgs:
		return m.typ, m.data, nil
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	return 0, nil, transport.ErrClosed
}

// Write writes one application message within ctx's deadline (if any).
// Writes are serialised with each other and with application-level
// heartbeats; the deadline is cleared afterwards, so it never bleeds into
// a later write.
func (c *Conn) Write(ctx context.Context, messageType int, p []byte) error {
	if c.opts.Format != wire.Control && wire.IsHeartbeat(p) {
		return ErrReservedPrefix
	}
	return c.writeData(ctx, messageType, p)
}

func (c *Conn) writeData(ctx context.Context, messageType int, p []byte) error {
	select {
	case c.wmu <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closing:
		return transport.ErrClosed
	}
	defer func() { <-c.wmu }()
	dl, _ := ctx.Deadline()
	if err := c.ws.SetWriteDeadline(dl); err != nil {
		return err
	}
	err := c.ws.WriteMessage(messageType, p)
	_ = c.ws.SetWriteDeadline(time.Time{})
	return err
}

// Send writes one heartbeat frame. A control-frame ping carries
// wire.AppendControl's payload (Seq and the reconnect-window advice); a
// pong echoes f.Payload. Both go through WriteControl, which gorilla
// allows concurrently with the application's writer and which takes its
// own deadline (ctx's, or DefaultWriteTimeout from now), so no deadline
// is left on the connection for the application's next write.
func (c *Conn) Send(ctx context.Context, f transport.Frame) error {
	if len(f.Payload) > transport.MaxControlPayload {
		return transport.ErrPayloadTooLarge
	}
	if f.Kind != transport.Ping && f.Kind != transport.Pong {
		return ErrFrameKind
	}
	select {
	case <-c.closing:
		return transport.ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if c.opts.Format == wire.Control {
		err = c.sendControl(ctx, f)
	} else {
		err = c.sendMessage(ctx, f)
	}
	if err != nil {
		select {
		case <-c.closing:
			return fmt.Errorf("gorillaws: send %v: %w", f.Kind, transport.ErrClosed)
		default:
		}
		return fmt.Errorf("gorillaws: send %v: %w", f.Kind, err)
	}
	return nil
}

func (c *Conn) sendControl(ctx context.Context, f transport.Frame) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultWriteTimeout)
	}
	if f.Kind == transport.Ping {
		var buf [wire.ControlAdviceSize]byte
		return c.ws.WriteControl(websocket.PingMessage, wire.AppendControl(buf[:0], f.Seq, f.ReconnectWindow), deadline)
	}
	return c.ws.WriteControl(websocket.PongMessage, f.Payload, deadline)
}

func (c *Conn) sendMessage(ctx context.Context, f transport.Frame) error {
	m := wire.PongFor(f.Payload)
	if f.Kind == transport.Ping {
		m = wire.Message{Type: wire.Ping, Seq: f.Seq, SentAt: time.Now().UnixMilli(),
			ConnID: c.opts.ConnID, Window: min(f.ReconnectWindow, wire.MaxWindow).Truncate(time.Millisecond)}
	}
	return c.SendMessage(ctx, &m)
}

// SendMessage writes one application-level heartbeat message, such as a
// server's Drain or Close request, in the connection's format. It fails on
// a connection that uses control frames.
func (c *Conn) SendMessage(ctx context.Context, m *wire.Message) error {
	if c.opts.Format == wire.Control {
		return errors.New("gorillaws: SendMessage needs an application-level format (json or binary)")
	}
	if c.opts.ConnID != "" && m.ConnID == "" {
		cp := *m
		cp.ConnID = c.opts.ConnID
		m = &cp
	}
	var buf [256]byte
	b, err := wire.Append(buf[:0], c.opts.Format, m)
	if err != nil {
		return err
	}
	typ := websocket.BinaryMessage
	if c.opts.Format == wire.JSON {
		typ = websocket.TextMessage
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultWriteTimeout)
		defer cancel()
	}
	return c.writeData(ctx, typ, b)
}

// Close sends a close frame saying why (see wire.CloseStatus), closes the
// connection and waits for the read loop to exit. When the peer is thought
// alive (wire.Handshake), it first waits up to CloseTimeout for the peer's
// close frame, so the peer reads the reason before the socket goes. It is
// idempotent. It must not be called from the Events callbacks or from
// Options' callbacks.
func (c *Conn) Close(reason error) error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.reason = reason
		started := c.started
		c.mu.Unlock()
		close(c.closing)
		code, text := wire.CloseStatus(reason)
		err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(int(code), text), time.Now().Add(c.opts.CloseTimeout))
		if err == nil && started && wire.Handshake(reason) {
			t := time.NewTimer(c.opts.CloseTimeout)
			select {
			case <-c.done: // the peer answered (or went)
			case <-t.C:
			}
			t.Stop()
		}
		_ = c.ws.Close()
		if !started {
			close(c.done)
		}
	})
	<-c.done
	return nil
}

// Done is closed once the connection has ended and its read loop exited.
func (c *Conn) Done() <-chan struct{} { return c.done }
