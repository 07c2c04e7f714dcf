//go:build !js

package coderws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

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
	// DefaultPingTimeout bounds how long a ping waits for its pong inside
	// coder's Conn.Ping; the heartbeat's own detector decides long before.
	DefaultPingTimeout = 30 * time.Second
	// DefaultCloseTimeout bounds Close's wait for the peer's close frame,
	// as gorillaws bounds it: coder alone waits 5 s, for a frozen peer in
	// vain.
	DefaultCloseTimeout = time.Second
	// DefaultWriteTimeout bounds an application-level heartbeat write whose
	// context has no deadline: 10 s.
	DefaultWriteTimeout = wsconn.DefaultWriteTimeout
	// MaxInFlight bounds the pings waiting for their pong, each in its own
	// goroutine inside coder's Conn.Ping. A wait is never cut short: coder
	// closes the connection when a write's context ends mid-write.
	MaxInFlight = 64
	// DefaultMessageTimeout (30 s) bounds reading one message once its
	// first frame has arrived.
	DefaultMessageTimeout = wsconn.DefaultMessageTimeout
)

// Errors of this package; the transport's ErrClosed and ErrPayloadTooLarge
// are returned (wrapped) where they apply.
var (
	// ErrBound: Bind was called twice.
	ErrBound = errors.New("coderws: connection already bound to a heartbeat")
	// ErrFrameKind: Send was given a frame that is neither Ping nor Pong.
	ErrFrameKind = errors.New("coderws: Send takes only Ping and Pong frames")
	// ErrNoHooks: Wrap was given no Hooks, or Hooks already used.
	ErrNoHooks = errors.New("coderws: Wrap needs the Hooks installed in the Accept or Dial options of this connection, unused")
	// ErrTooManyPings: MaxInFlight pings are already waiting for pongs.
	ErrTooManyPings = errors.New("coderws: too many pings waiting for a pong")
	// ErrReservedPrefix: on a connection with application-level heartbeats,
	// an application message must not look like a heartbeat (begin with
	// {"hb": or 0xFF), or the peer would take it for one.
	ErrReservedPrefix = errors.New("coderws: application message begins like a heartbeat message")
	// ErrMessageTimeout: a message took longer than Options.MessageTimeout
	// to arrive in full (the peer reads close 1008).
	ErrMessageTimeout = errors.New("coderws: message not finished within the message timeout")
)

// Options configures a Conn. The zero value uses control frames (or the
// application-level format the connection's subprotocol selects) and the
// defaults above.
type Options struct {
	// Format says how heartbeats travel. Zero means what the negotiated
	// subprotocol selects (wire.FormatOf(ws.Subprotocol())).
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
	// ReadLimit bounds one inbound message, in bytes. Zero keeps coder's
	// default (32 KiB).
	ReadLimit int64
	// PingTimeout bounds a ping's wait for its pong. Zero means
	// DefaultPingTimeout.
	PingTimeout time.Duration
	// CloseTimeout bounds Close's wait for the close handshake; past it,
	// coder finishes the handshake (within its own 5 s) in the background.
	// Zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// MessageTimeout bounds reading one message once its first frame has
	// arrived; a peer that keeps a message open longer (coder reads all of
	// a message's fragments inside one read, so an endless stream of empty
	// fragments would hold the connection and a core) is closed with 1008
	// and ErrMessageTimeout. Zero means DefaultMessageTimeout; negative,
	// no bound.
	MessageTimeout time.Duration
	// OnMessage, if set, is called on the read goroutine with every Drain
	// and Close heartbeat message the peer sends. It must return promptly
	// and must not call Close.
	OnMessage func(wire.Message)
	// OnMalformed, if set, is called on the read goroutine with the
	// *wire.Error of a heartbeat message that could not be decoded. The
	// message is dropped; the connection stays up.
	OnMalformed func(error)
}

// Hooks carries ping and pong frames from coder's reader to a Conn. coder
// reports control frames only through the OnPingReceived and
// OnPongReceived options given to Accept or Dial, so the hooks must be in
// place before the connection exists: make one Hooks per connection, pass
// its options to Accept or Dial, then Wrap the connection with it.
type Hooks struct {
	conn atomic.Pointer[Conn]
	used atomic.Bool
}

// NewHooks returns Hooks for one connection.
func NewHooks() *Hooks { return &Hooks{} }

// AcceptOptions returns a copy of opts (nil means defaults) with the hooks
// installed; callbacks already set in opts still run first.
func (h *Hooks) AcceptOptions(opts *websocket.AcceptOptions) *websocket.AcceptOptions {
	var o websocket.AcceptOptions
	if opts != nil {
		o = *opts
	}
	o.OnPingReceived = h.onPing(o.OnPingReceived)
	o.OnPongReceived = h.onPong(o.OnPongReceived)
	return &o
}

// DialOptions returns a copy of opts (nil means defaults) with the hooks
// installed; callbacks already set in opts still run first.
func (h *Hooks) DialOptions(opts *websocket.DialOptions) *websocket.DialOptions {
	var o websocket.DialOptions
	if opts != nil {
		o = *opts
	}
	o.OnPingReceived = h.onPing(o.OnPingReceived)
	o.OnPongReceived = h.onPong(o.OnPongReceived)
	return &o
}

func (h *Hooks) onPing(prev func(context.Context, []byte) bool) func(context.Context, []byte) bool {
	return func(ctx context.Context, p []byte) bool {
		answer := true
		if prev != nil {
			answer = prev(ctx, p)
		}
		if c := h.conn.Load(); c != nil {
			c.pingIn(p)
		}
		// coder writes the pong itself, from its reader, right after this.
		return answer
	}
}

func (h *Hooks) onPong(prev func(context.Context, []byte)) func(context.Context, []byte) {
	return func(ctx context.Context, p []byte) {
		if prev != nil {
			prev(ctx, p)
		}
		if c := h.conn.Load(); c != nil {
			c.pongIn(p)
		}
	}
}

// Conn is a coder/websocket connection watched by the heartbeat. It owns
// the connection's read side: a goroutine, started by Bind, reads every
// frame, so coder answers pings and Conn.Ping gets its pongs even while the
// application is busy (coder needs a concurrent reader for both), and hands
// application messages to Read. It implements transport.Conn.
//
// The application reads only through Read, and writes through Write or the
// websocket.Conn itself (coder allows concurrent writers).
type Conn struct {
	ws   *websocket.Conn
	core *wsconn.Core[websocket.MessageType]

	pingTimeout  time.Duration
	closeTimeout time.Duration
	ctx          context.Context // cancelled by Close: ends reads and pings
	cancel       context.CancelFunc
	pings        sync.WaitGroup

	mu       sync.Mutex
	counter  int64                // mirrors coder's ping counter: the payload of our next Conn.Ping
	inFlight map[string]uint64    // ping payload → Seq, for the pongs
	msgClock *wsconn.MessageClock // nil: no bound on a message's reading
	waiting  int                  // pings waiting for their pong
}

// read reads the next message, as coder's Read does, within the message
// timeout once its first frame has arrived.
func (c *Conn) read() (websocket.MessageType, []byte, error) {
	typ, r, err := c.ws.Reader(c.ctx)
	if err != nil {
		return 0, nil, err
	}
	c.msgClock.Start()
	data, err := io.ReadAll(r)
	if c.msgClock.Stop() && err != nil {
		err = fmt.Errorf("%w (%v): %w", ErrMessageTimeout, c.msgClock.Timeout(), err)
	}
	return typ, data, err
}

// messageExpired closes a connection whose message ran past the message
// timeout: coder writes close 1008 at once, and closes the socket, which
// ends the read blocked inside it, when the handshake is over or timed out.
func (c *Conn) messageExpired() {
	go func() {
		_ = c.ws.Close(websocket.StatusPolicyViolation, fmt.Sprintf("coderws: message not finished within %v", c.msgClock.Timeout()))
	}()
}

// Wrap wraps an established coder connection whose Accept or Dial options
// came from h. Nothing is read until Bind (or the heartbeat driver, through
// Accepted or Dialer) starts the read loop.
func Wrap(ws *websocket.Conn, h *Hooks, opts Options) (*Conn, error) {
	if ws == nil {
		return nil, errors.New("coderws: Wrap needs a *websocket.Conn")
	}
	if h == nil || !h.used.CompareAndSwap(false, true) {
		return nil, ErrNoHooks
	}
	c := &Conn{ws: ws, pingTimeout: opts.PingTimeout, closeTimeout: opts.CloseTimeout, inFlight: make(map[string]uint64)}
	core, err := wsconn.New(wsconn.Config[websocket.MessageType]{
		Name: "coderws", Subprotocol: ws.Subprotocol(),
		Format: opts.Format, ConnID: opts.ConnID, Queue: opts.Queue, QueueBytes: opts.QueueBytes,
		OnMessage: opts.OnMessage, OnMalformed: opts.OnMalformed,
		Text: websocket.MessageText, Binary: websocket.MessageBinary,
		Read:  c.read,
		Write: ws.Write,
		CleanClose: func(err error) bool {
			s := websocket.CloseStatus(err)
			return s == websocket.StatusNormalClosure || s == websocket.StatusGoingAway || s == wire.ClosePageAway
		},
		// KeepReading stays false: coder's Close reads the peer's close
		// frame itself once the loop has stopped.
		ErrBound: ErrBound, ErrFrameKind: ErrFrameKind, ErrReservedPrefix: ErrReservedPrefix,
	})
	if err != nil {
		return nil, err
	}
	c.core = core
	c.msgClock = wsconn.NewMessageClock(opts.MessageTimeout, c.messageExpired)
	if c.pingTimeout < 0 {
		return nil, fmt.Errorf("coderws: ping timeout %v must be positive (zero means %v)", c.pingTimeout, DefaultPingTimeout)
	}
	if c.pingTimeout == 0 {
		c.pingTimeout = DefaultPingTimeout
	}
	if c.closeTimeout < 0 {
		return nil, fmt.Errorf("coderws: close timeout %v must be positive (zero means %v)", c.closeTimeout, DefaultCloseTimeout)
	}
	if c.closeTimeout == 0 {
		c.closeTimeout = DefaultCloseTimeout
	}
	if opts.ReadLimit < 0 {
		return nil, fmt.Errorf("coderws: read limit %d must be positive (zero keeps coder's default)", opts.ReadLimit)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if opts.ReadLimit > 0 {
		ws.SetReadLimit(opts.ReadLimit)
	}
	h.conn.Store(c)
	return c, nil
}

// Accept upgrades an HTTP request with the hooks in place and wraps the
// connection: the server side in one call. To use application-level
// heartbeats, list wire.Subprotocols() in opts.Subprotocols; the client's
// order of preference among them wins (coder's own Accept takes the
// server's).
func Accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions, o Options) (*Conn, error) {
	h := NewHooks()
	ao := h.AcceptOptions(opts)
	if len(ao.Subprotocols) > 0 { // the client's order of preference, not coder's (the server's)
		ao.Subprotocols = wire.ClientOrder(offered(r), ao.Subprotocols)
	}
	ws, err := websocket.Accept(w, r, ao)
	if err != nil {
		return nil, err
	}
	c, err := Wrap(ws, h, o)
	if err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	return c, nil
}

// WebSocket returns the wrapped connection. Do not read from it and do not
// call its Ping (the heartbeat pings; a ping of yours would shift coder's
// ping counter and cost the pongs their Seq).
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

// Bind starts the read loop, which reports every inbound frame to ev until
// the connection ends. It fails with ErrBound on a second call and with
// transport.ErrClosed after Close.
func (c *Conn) Bind(ev transport.Events) error { return c.core.Bind(ev, nil) }

// pingIn runs on the read goroutine, inside coder's reader.
func (c *Conn) pingIn(p []byte) { wsconn.PingIn(c.core, p) }

// pongIn runs on the read goroutine, inside coder's reader.
func (c *Conn) pongIn(p []byte) {
	c.mu.Lock()
	seq, ok := c.inFlight[string(p)]
	delete(c.inFlight, string(p))
	c.mu.Unlock()
	if !ok {
		// Not one of ours (or its entry was dropped): a peer's own payload.
		seq = wsconn.PongSeq(p)
	}
	c.core.PongIn(seq)
}

// Read returns the next application message, which the caller owns. After
// the connection ends, Read returns the queued messages and then the error
// that ended it.
func (c *Conn) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	return c.core.Read(ctx)
}

// Write writes one application message (coder bounds it by ctx).
func (c *Conn) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	return c.core.Write(ctx, typ, p)
}

// Send writes one heartbeat frame.
//
// With control frames, a Ping goes through coder's Conn.Ping, which picks
// its own payload (a decimal counter) and waits for the pong: Send starts
// it on a goroutine and returns once it is started, and the pong is
// reported through the hooks with the ping's Seq. coder cannot carry the
// reconnect-window advice in a ping; use application-level heartbeats for
// that. A Pong is a no-op: coder has already answered the ping from its
// reader (and cannot send a pong on request).
func (c *Conn) Send(ctx context.Context, f transport.Frame) error {
	if err := c.core.CheckSend(ctx, f); err != nil {
		return err
	}
	if c.core.Format() != wire.Control {
		return c.core.SendFrame(ctx, f)
	}
	if f.Kind == transport.Pong {
		return nil
	}
	return c.startPing(f.Seq)
}

// startPing runs one coder Conn.Ping on its own goroutine.
func (c *Conn) startPing(seq uint64) error {
	c.mu.Lock()
	if c.waiting >= MaxInFlight {
		c.mu.Unlock()
		return ErrTooManyPings
	}
	c.waiting++
	c.counter++
	key := strconv.FormatInt(c.counter, 10)
	c.inFlight[key] = seq
	c.pings.Add(1)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, c.pingTimeout)
	go func() {
		defer c.pings.Done()
		defer cancel()
		err := c.ws.Ping(ctx)
		c.mu.Lock()
		c.waiting--
		delete(c.inFlight, key) // answered (pongIn took it) or given up
		c.mu.Unlock()
		// A ping that could not be written means a broken connection.
		if err != nil && ctx.Err() == nil && c.core.Fail(fmt.Errorf("coderws: send ping: %w", err)) {
			_ = c.ws.CloseNow()
		}
	}()
	return nil
}

// SendMessage writes one application-level heartbeat message, such as a
// server's Drain or Close request, in the connection's format. It fails on
// a connection that uses control frames.
func (c *Conn) SendMessage(ctx context.Context, m *wire.Message) error {
	return c.core.SendMessage(ctx, m)
}

// Close closes the connection and waits for the read loop and the pings to
// end. A user close, a ping flood or a shutdown gets coder's close
// handshake with wire.CloseStatus's code and reason, bounded by
// CloseTimeout;
// a lost peer is cut at once (CloseNow), since it would not answer. It is
// idempotent and must not be called from the Events callbacks or from
// Options' callbacks.
func (c *Conn) Close(reason error) error {
	c.core.Close(reason, func(bool) {
		if wire.Handshake(reason) {
			code, text := wire.CloseStatus(reason)
			c.closeHandshake(websocket.StatusCode(code), text)
		} else {
			_ = c.ws.CloseNow()
		}
		c.cancel()
	})
	c.pings.Wait()
	return nil
}

// Done is closed once the connection has ended and its read loop exited.
func (c *Conn) Done() <-chan struct{} { return c.core.Done() }

// closeHandshake runs coder's close handshake and returns once it is over
// or CloseTimeout has passed: a frozen peer never answers the close frame,
// and coder gives no way to cut a handshake in progress (CloseNow waits for
// it). Past the timeout coder finishes on its own goroutine, within its
// 5 s, and then closes the socket.
func (c *Conn) closeHandshake(code websocket.StatusCode, text string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.ws.Close(code, text)
	}()
	t := time.NewTimer(c.closeTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// offered returns the subprotocols the client offered, in its order.
func offered(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
