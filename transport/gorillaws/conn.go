package gorillaws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/internal/wsconn"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// Defaults used where an Options field is zero.
const (
	// DefaultQueue (16) is how many inbound application messages may wait
	// for Read before the read loop pauses (and with it the reading of
	// pings).
	DefaultQueue = wsconn.DefaultQueue
	// DefaultQueueBytes (1 MiB) is how many bytes of them may wait.
	DefaultQueueBytes = wsconn.DefaultQueueBytes
	// DefaultReadLimit bounds one inbound message; gorilla itself has no
	// limit, so a peer could make the read loop allocate without end.
	DefaultReadLimit = 1 << 20
	// DefaultCloseTimeout bounds writing the close frame.
	DefaultCloseTimeout = time.Second
	// DefaultWriteTimeout bounds a heartbeat write whose context has no
	// deadline: 10 s.
	DefaultWriteTimeout = wsconn.DefaultWriteTimeout
	// DefaultMessageTimeout (30 s) bounds reading one message once its
	// first frame has arrived.
	DefaultMessageTimeout = wsconn.DefaultMessageTimeout
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
	// ErrMessageTimeout: a message took longer than Options.MessageTimeout
	// to arrive in full (the peer reads close 1008).
	ErrMessageTimeout = errors.New("gorillaws: message not finished within the message timeout")
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
	// QueueBytes is how many bytes of them may wait: past it the read loop
	// reads nothing more (pings neither) until Read takes a message, which
	// slows the peer down through TCP. Zero means DefaultQueueBytes.
	QueueBytes int
	// ReadLimit bounds one inbound message, in bytes. Zero means
	// DefaultReadLimit; negative keeps the limit already set on the
	// websocket.Conn.
	ReadLimit int64
	// CloseTimeout bounds writing the close frame and waiting for the
	// peer's; after a message over ReadLimit, the rest of it is discarded
	// for at most 5 CloseTimeouts. Zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// MessageTimeout bounds reading one message once its first frame has
	// arrived; a peer that keeps a message open longer (gorilla reads all
	// of a message's fragments inside one read, so an endless stream of
	// empty fragments would hold the connection and a core) is closed
	// with 1008 and ErrMessageTimeout. Zero means DefaultMessageTimeout;
	// negative, no bound.
	MessageTimeout time.Duration
	// OnMessage, if set, is called on the read goroutine with every Drain
	// and Close heartbeat message the peer sends (a server asking its
	// client to go). It must return promptly and must not call Close.
	OnMessage func(wire.Message)
	// OnMalformed, if set, is called on the read goroutine with the
	// *wire.Error of a heartbeat message that could not be decoded. The
	// message is dropped; the connection stays up.
	OnMalformed func(error)
	// OnData, if set, is called on the read goroutine with every
	// application message, in order, instead of queueing it for Read
	// (which then fails with an error wrapping wsconn's ErrOnData): a
	// server then needs no goroutine of its own per connection to read.
	// data is the callee's to keep. It must return promptly (the
	// connection reads nothing else meanwhile) and must not call Close.
	OnData func(messageType int, data []byte)
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
	core *wsconn.Core[int]

	readLimit    int64
	closeTimeout time.Duration
	msgClock     *wsconn.MessageClock // nil: no bound on a message's reading
	wmu          chan struct{}        // the writer lock, held by Write and by heartbeats
	// deferred holds the heartbeats that found the writer busy, the latest
	// of each kind; whoever releases the writer writes them.
	dmu      sync.Mutex
	deferred [2]deferredFrame // by kind: ping, pong
	sendBuf  []byte           // encodes application-level heartbeats; owned by the wmu holder
	// scratch receives inbound messages with application-level heartbeats
	// (nil with control frames); owned by the read loop.
	scratch *[wire.MaxMessageSize + 1]byte
}

// Wrap wraps an established gorilla connection, client or server side.
// Nothing is read until Bind (or the heartbeat driver, through Accepted or
// Dialer) starts the read loop.
func Wrap(ws *websocket.Conn, opts Options) (*Conn, error) {
	if ws == nil {
		return nil, errors.New("gorillaws: Wrap needs a *websocket.Conn")
	}
	c := &Conn{ws: ws, readLimit: opts.ReadLimit, closeTimeout: opts.CloseTimeout, wmu: make(chan struct{}, 1)}
	core, err := wsconn.New(wsconn.Config[int]{
		Name: "gorillaws", Subprotocol: ws.Subprotocol(),
		Format: opts.Format, ConnID: opts.ConnID, Queue: opts.Queue, QueueBytes: opts.QueueBytes,
		OnMessage: opts.OnMessage, OnMalformed: opts.OnMalformed, OnData: opts.OnData,
		Text: websocket.TextMessage, Binary: websocket.BinaryMessage,
		Read: c.read, Write: c.writeData,
		CleanClose: func(err error) bool {
			return websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, wire.ClosePageAway)
		},
		KeepReading: true, // the peer's close frame reaches Close only through the loop's reads
		ErrBound:    ErrBound, ErrFrameKind: ErrFrameKind, ErrReservedPrefix: ErrReservedPrefix,
	})
	if err != nil {
		return nil, err
	}
	c.core = core
	if core.Format() != wire.Control {
		c.scratch = new([wire.MaxMessageSize + 1]byte)
	}
	if c.closeTimeout < 0 {
		return nil, fmt.Errorf("gorillaws: close timeout %v must be positive (zero means %v)", c.closeTimeout, DefaultCloseTimeout)
	}
	if c.closeTimeout == 0 {
		c.closeTimeout = DefaultCloseTimeout
	}
	if c.readLimit == 0 {
		c.readLimit = DefaultReadLimit
	}
	c.msgClock = wsconn.NewMessageClock(opts.MessageTimeout, c.messageExpired)
	// The limit is enforced in read, not by gorilla, whose close frame
	// carries an empty reason.
	return c, nil
}

// WebSocket returns the wrapped connection, for what Conn does not cover
// (its addresses, its subprotocol). Do not read from it or replace its
// ping, pong or close handlers.
func (c *Conn) WebSocket() *websocket.Conn { return c.ws }

// Format returns how heartbeats travel on this connection.
func (c *Conn) Format() wire.Format { return c.core.Format() }

// PeerID returns the connection ID the server sent in its application-level
// heartbeats, on the client side; "" if none (and always on the server).
func (c *Conn) PeerID() string { return c.core.PeerID() }

// Accepted returns the transport.Dialer through which the heartbeat
// driver's server role binds this (accepted) connection.
func (c *Conn) Accepted() transport.Dialer { return wsconn.Accepted(c) }

// Watch runs the heartbeat's server role on c, an accepted connection,
// and reports presence through p. cfg's Role and Dialer are set for you;
// cfg.OnChange still sees every change, before the presence callbacks. The
// driver ends when the peer is dead, the connection is closed or ctx is
// done; c is closed then, even if ctx was done before the driver began.
//
// ctx is the connection's lifetime. r.Context() fits a handler that blocks
// until the connection ends (reading it, as in the package example); a
// handler that starts goroutines and returns cancels r.Context() at once,
// so it must pass a context that outlives it (the server's shutdown
// context, say), or the connection is closed before the peer is ever seen
// alive.
//
// Flood protection comes with the driver: a peer that pings faster than
// cfg.MinPingInterval (default fsm.DefaultMinPingInterval, 100 ms) beyond a
// burst of cfg.PingBurst (default fsm.DefaultPingBurst, 50) is closed with
// fsm.ErrPingFlood, which the peer receives as close code 1008 with that
// text.
func (c *Conn) Watch(ctx context.Context, cfg fsm.DriverConfig, p fsm.Presence) (*fsm.Driver, error) {
	return wsconn.Watch(ctx, c, cfg, p)
}

// Bind installs the ping and pong handlers and starts the read loop, which
// reports every inbound frame to ev until the connection ends. It fails
// with ErrBound on a second call and with transport.ErrClosed after Close.
func (c *Conn) Bind(ev transport.Events) error {
	return c.core.Bind(ev, func() {
		// Replace gorilla's default ping handler, which writes the pong
		// itself inside the reader with a 1 s deadline and drops it when
		// the writer is busy: the heartbeat answers through Send, off the
		// read goroutine.
		c.ws.SetPingHandler(func(data string) error {
			wsconn.PingIn(c.core, data)
			return nil
		})
		c.ws.SetPongHandler(func(data string) error {
			c.core.PongIn(wsconn.PongSeq(data))
			return nil
		})
	})
}

// read reads the next data message; gorilla runs the ping and pong
// handlers inside it. With application-level heartbeats, a message that
// fits the scratch buffer (every heartbeat does) is read into it, and a
// heartbeat is returned there, valid until the next read, so the steady
// heartbeat allocates nothing; any other message is the caller's own.
func (c *Conn) read() (int, []byte, error) {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return 0, nil, err
	}
	c.msgClock.Start()
	typ, data, err := c.readMessage(typ, r)
	if c.msgClock.Stop() && err != nil {
		err = fmt.Errorf("%w (%v): %w", ErrMessageTimeout, c.msgClock.Timeout(), err)
	}
	return typ, data, err
}

// messageExpired closes a connection whose message ran past the message
// timeout: close 1008, then the socket, which ends the read blocked in
// gorilla.
func (c *Conn) messageExpired() {
	text := fmt.Sprintf("gorillaws: message not finished within %v", c.msgClock.Timeout())
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, text), time.Now().Add(c.closeTimeout))
	_ = c.ws.NetConn().Close()
}

func (c *Conn) readMessage(typ int, r io.Reader) (int, []byte, error) {
	if c.scratch == nil {
		return c.readRest(typ, nil, r)
	}
	n, err := io.ReadFull(r, c.scratch[:])
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // the whole message is in scratch
		if c.readLimit > 0 && int64(n) > c.readLimit {
			return c.overLimit(r)
		}
		if wire.IsHeartbeat(c.scratch[:n]) {
			return typ, c.scratch[:n], nil
		}
		return typ, bytes.Clone(c.scratch[:n]), nil
	case nil: // longer than scratch: no heartbeat
		return c.readRest(typ, bytes.Clone(c.scratch[:n]), r)
	}
	return typ, nil, err
}

// readRest reads the rest of a message after head, holding it to the read
// limit: at most readLimit+1 bytes are read, whatever the frame claimed.
func (c *Conn) readRest(typ int, head []byte, r io.Reader) (int, []byte, error) {
	if c.readLimit <= 0 {
		rest, err := io.ReadAll(r)
		return typ, append(head, rest...), err
	}
	rest, err := io.ReadAll(io.LimitReader(r, c.readLimit+1-int64(len(head))))
	data := append(head, rest...)
	if err == nil && int64(len(data)) > c.readLimit {
		return c.overLimit(r)
	}
	return typ, data, err
}

// overLimitDrain is how many close timeouts overLimit may spend discarding
// the rest of a message: a peer still sending it (a browser tab starved of
// CPU pauses for seconds) must finish before the socket goes.
const overLimitDrain = 5

// overLimit closes with 1009 and a reason the peer can read. It then
// discards the rest of the message, without buffering it, for at most
// overLimitDrain close timeouts: a socket closed while the peer is still
// sending is reset, and the reset can overtake the close frame, so the
// peer would see only 1006.
func (c *Conn) overLimit(r io.Reader) (int, []byte, error) {
	c.msgClock.Stop() // the drain has its own bound: no second close frame on top of 1009
	text := fmt.Sprintf("gorillaws: message over the read limit of %d bytes", c.readLimit)
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseMessageTooBig, text), time.Now().Add(c.closeTimeout))
	_ = c.ws.SetReadDeadline(time.Now().Add(overLimitDrain * c.closeTimeout))
	_, _ = io.Copy(io.Discard, r)
	return 0, nil, fmt.Errorf("%s: %w", text, websocket.ErrReadLimit)
}

// Read returns the next application message: its gorilla message type
// (websocket.TextMessage or BinaryMessage) and its bytes, which the caller
// owns. After the connection ends, Read returns the queued messages and
// then the error that ended it.
func (c *Conn) Read(ctx context.Context) (messageType int, p []byte, err error) {
	return c.core.Read(ctx)
}

// Write writes one application message within ctx's deadline (if any).
// Writes are serialised with each other and with application-level
// heartbeats; the deadline is cleared afterwards, so it never bleeds into
// a later write.
func (c *Conn) Write(ctx context.Context, messageType int, p []byte) error {
	return c.core.Write(ctx, messageType, p)
}

func (c *Conn) writeData(ctx context.Context, messageType int, p []byte) error {
	select {
	case c.wmu <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.core.Closing():
		return transport.ErrClosed
	}
	defer c.release()
	dl, _ := ctx.Deadline()
	return c.writeLocked(dl, messageType, p)
}

// writeLocked writes one data message; the caller holds wmu.
func (c *Conn) writeLocked(deadline time.Time, messageType int, p []byte) error {
	if err := c.ws.SetWriteDeadline(deadline); err != nil {
		return err
	}
	err := c.ws.WriteMessage(messageType, p)
	_ = c.ws.SetWriteDeadline(time.Time{})
	return err
}

// deferredFrame is a heartbeat frame waiting for the writer.
type deferredFrame struct {
	f        transport.Frame
	payload  [transport.MaxControlPayload]byte
	deadline time.Time
	set      bool
}

// deferFrame keeps f, the latest of its kind, for whoever holds the writer.
func (c *Conn) deferFrame(f transport.Frame, deadline time.Time) {
	slot := 0
	if f.Kind == transport.Pong {
		slot = 1
	}
	c.dmu.Lock()
	d := &c.deferred[slot]
	d.f, d.deadline, d.set = f, deadline, true
	d.f.Payload = d.payload[:copy(d.payload[:], f.Payload)]
	c.dmu.Unlock()
}

// takeDeferred returns a deferred frame, if any, copied out of the slot.
func (c *Conn) takeDeferred(buf *[transport.MaxControlPayload]byte) (transport.Frame, time.Time, bool) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	for i := range c.deferred {
		if d := &c.deferred[i]; d.set {
			d.set = false
			f := d.f
			f.Payload = buf[:copy(buf[:], d.f.Payload)]
			return f, d.deadline, true
		}
	}
	return transport.Frame{}, time.Time{}, false
}

func (c *Conn) hasDeferred() bool {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	return c.deferred[0].set || c.deferred[1].set
}

// release writes the deferred heartbeats and lets go of the writer. A
// frame deferred after the last look but before the release is written by
// this goroutine too, unless another has taken the writer (then it will).
func (c *Conn) release() {
	var buf [transport.MaxControlPayload]byte
	for {
		for {
			f, deadline, ok := c.takeDeferred(&buf)
			if !ok {
				break
			}
			_ = c.sendLocked(deadline, f) // a broken writer fails the next Send too
		}
		<-c.wmu
		if !c.hasDeferred() {
			return
		}
		select {
		case c.wmu <- struct{}{}:
		default:
			return // the new holder writes it
		}
	}
}

// Send writes one heartbeat frame. A control-frame ping carries
// wire.AppendControlAdvice's payload (Seq and the reconnect-window and
// timeout advice); a pong echoes f.Payload. Both go through WriteControl, which gorilla
// allows concurrently with the application's writer and which takes its
// own deadline (ctx's, or DefaultWriteTimeout from now), so no deadline
// is left on the connection for the application's next write.
//
// Send never waits behind an application Write: while one holds the
// writer (a peer that does not read can hold it up to the Write's
// deadline), the frame is kept, the latest of its kind, and written as
// that Write ends; Send returns nil at once. A hub's writer is so never
// held by one stuck connection.
func (c *Conn) Send(ctx context.Context, f transport.Frame) error {
	if err := c.core.CheckSend(ctx, f); err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultWriteTimeout)
	}
	select {
	case c.wmu <- struct{}{}:
	default:
		c.deferFrame(f, deadline)
		return nil
	}
	err := c.sendLocked(deadline, f)
	c.release()
	return peerClosed(c.core.SendError(f.Kind, err))
}

// sendLocked writes one heartbeat frame; the caller holds wmu.
func (c *Conn) sendLocked(deadline time.Time, f transport.Frame) error {
	if c.core.Format() == wire.Control {
		return c.sendControl(deadline, f)
	}
	m := c.core.FrameMessage(f)
	typ, b, err := c.core.Encode(c.sendBuf[:0], &m)
	if err != nil {
		return err
	}
	c.sendBuf = b[:0] // keep what Append grew, if it did
	return c.writeLocked(deadline, typ, b)
}

// peerClosed marks a send refused because gorilla's reader has answered the
// peer's close frame (it refuses every write after): the peer closed, the
// link is not broken. A local Close is reported as transport.ErrClosed
// before this.
func peerClosed(err error) error {
	if errors.Is(err, websocket.ErrCloseSent) && !errors.Is(err, transport.ErrClosed) {
		return fmt.Errorf("%w: %w", transport.ErrPeerClosed, err)
	}
	return err
}

func (c *Conn) sendControl(deadline time.Time, f transport.Frame) error {
	if f.Kind == transport.Ping {
		var buf [wire.ControlMaxSize]byte
		return c.ws.WriteControl(websocket.PingMessage, wire.AppendControlAdvice(buf[:0], f.Seq, f.ReconnectWindow, f.TimeoutAdvice), deadline)
	}
	return c.ws.WriteControl(websocket.PongMessage, f.Payload, deadline)
}

// SendMessage writes one application-level heartbeat message, such as a
// server's Drain or Close request, in the connection's format. It fails on
// a connection that uses control frames.
func (c *Conn) SendMessage(ctx context.Context, m *wire.Message) error {
	return c.core.SendMessage(ctx, m)
}

// Close sends a close frame saying why (see wire.CloseStatus), closes the
// connection and waits for the read loop to exit. When the peer is thought
// alive (wire.Handshake), it first waits up to CloseTimeout for the peer's
// close frame, so the peer reads the reason before the socket goes. It is
// idempotent. It must not be called from the Events callbacks or from
// Options' callbacks.
func (c *Conn) Close(reason error) error {
	c.core.Close(reason, func(started bool) {
		code, text := wire.CloseStatus(reason)
		err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(int(code), text), time.Now().Add(c.closeTimeout))
		if err == nil && started && wire.Handshake(reason) {
			t := time.NewTimer(c.closeTimeout)
			select {
			case <-c.core.Done(): // the peer answered (or went)
			case <-t.C:
			}
			t.Stop()
		}
		_ = c.ws.Close()
	})
	return nil
}

// Done is closed once the connection has ended and its read loop exited.
func (c *Conn) Done() <-chan struct{} { return c.core.Done() }
