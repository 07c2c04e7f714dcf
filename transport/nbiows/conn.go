package nbiows

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/internal/wsconn"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// Message types of Options.OnData and Conn.Write (RFC 6455 opcodes, the
// same values as gorilla's).
const (
	TextMessage   = 1
	BinaryMessage = 2
)

// Options configures one Conn. The zero value uses control frames (or the
// application-level format the negotiated subprotocol selects).
type Options struct {
	// Format says how heartbeats travel. Zero means what the negotiated
	// subprotocol selects: control frames unless a heartbeat subprotocol
	// was agreed.
	Format wire.Format
	// ConnID is sent in application-level heartbeats as the connection's
	// identity.
	ConnID string
	// CloseTimeout bounds the wait for the peer's close frame. Zero means
	// DefaultCloseTimeout.
	CloseTimeout time.Duration
	// OnData, if set, is called with every application message, in order,
	// on a worker goroutine; data is the callee's to keep. It should return
	// promptly (it holds a worker, and this connection's next messages
	// wait, at most ServerConfig.MaxReadQueue bytes of them; its heartbeats
	// do not) and must not call Close. Without it messages are dropped
	// (still evidence of life).
	OnData func(messageType int, data []byte)
	// OnMessage, if set, is called with every Drain and Close heartbeat
	// message the peer sends, on the poller: it must not block.
	OnMessage func(wire.Message)
	// OnMalformed, if set, is called on the poller with the error of a
	// heartbeat message that could not be decoded; the message is dropped.
	OnMalformed func(error)
	// OnClose, if set, is called once the connection has ended, after the
	// end was reported to the bound Events, on a worker goroutine.
	OnClose func(err error)
}

// Conn is a server-side WebSocket connection read by the Server's poller:
// no goroutine waits on it. Its frames are reported to the Events it is
// bound to (and OnMessage, OnMalformed called) inline on the poller that
// read them; OnData, the end (Events.Closed) and OnClose run on the
// Server's workers, one at a time per connection and in order. It
// implements transport.Conn and presence.Conn.
type Conn struct {
	srv    *Server
	nc     *nbio.Conn
	ws     *websocket.Conn
	opts   Options
	format wire.Format
	sub    string
	tls    bool // through nbio's TLS: the queue counts ciphertext

	dmu      sync.Mutex // held while a frame or the end is reported: Closed comes last
	mu       sync.Mutex
	ev       transport.Events
	pre      []func() // work held until Bind (or until its replay ran)
	reported bool     // Closed was reported
	bound    bool
	closed   bool  // Close began
	over     bool  // ended: Closed reported (or will be at Bind)
	reason   error // Close's
	failed   error // a write queue overflow
	peerCode int   // the close code the peer sent; 0: none
	once     sync.Once
	finished bool          // the end was reported: done is (or will be made) closed
	done     chan struct{} // closed once finished; made on demand (an idle connection needs none)

	// ready is set once the fields above are, before the poller can see
	// the Conn: the poller's callbacks load it first (sessionOf), which
	// orders them after attach for the race detector too (nbio's own
	// synchronisation is invisible to it).
	ready   atomic.Bool
	pending atomic.Int64  // bytes handed to nbio and not yet written
	inbound atomic.Int64  // bytes of messages handed to OnData's queue and not yet returned
	pingSeq atomic.Uint64 // this side's latest ping, for the RTT
	pingAt  atomic.Int64
}

func newConn(s *Server, sub string, opts Options) (*Conn, error) {
	format := opts.Format
	if format == wire.Control {
		format = wire.FormatOf(sub)
	}
	switch {
	case format > wire.Binary:
		return nil, fmt.Errorf("nbiows: format %v is not control, json or binary", format)
	case len(opts.ConnID) > wire.MaxConnIDLen:
		return nil, fmt.Errorf("nbiows: connection ID of %d bytes is longer than %d", len(opts.ConnID), wire.MaxConnIDLen)
	case opts.CloseTimeout < 0:
		return nil, fmt.Errorf("nbiows: close timeout %v must be positive (zero means %v)", opts.CloseTimeout, DefaultCloseTimeout)
	}
	if opts.CloseTimeout == 0 {
		opts.CloseTimeout = DefaultCloseTimeout
	}
	return &Conn{srv: s, opts: opts, format: format, sub: sub}, nil
}

// attach puts the connection into the poller. Frames read before Bind are
// held for it.
func (c *Conn) attach(nc *nbio.Conn) error {
	ws := websocket.NewServerConn(c.srv.up, nc, c.sub, false, false)
	ws.Engine = c.srv.engine
	// Frames are handled inline on the poller that read them: a heartbeat
	// steps the hub and writes its pong without waking another goroutine.
	// Only OnData goes to the workers (nc.MustExecute: in order, one at a
	// time per connection), so a slow application delays no heartbeat.
	ws.Execute = func(f func()) bool { f(); return true }
	c.nc, c.ws = nc, ws
	c.ready.Store(true)
	ws.SetSession(c)
	g := newGuard(c)
	nc.SetSession(g)
	nc.OnData(func(nc *nbio.Conn, data []byte) {
		// nbio keeps a partial frame across reads (bytesCached) until the
		// rest arrives: TestDribbledFrames sends one byte per read.
		if err := g.Parse(data); err != nil {
			_ = nc.CloseWithError(err)
		}
	})
	c.srv.conns.Add(1)
	if err := c.srv.engine.AddTransferredConn(nc); err != nil {
		c.srv.conns.Add(-1)
		return fmt.Errorf("nbiows: add to the poller: %w", err)
	}
	return nil
}

// adopt takes over a connection our own listener accepted (plain or TLS):
// it is in the poller already, and the request handler that upgrades it
// runs as one of the connection's ordered jobs, so nothing of it is parsed
// before this returns.
func (c *Conn) adopt(nh *nbhttp.Conn, key, sub string) error {
	var nc *nbio.Conn
	switch v := nh.Conn.(type) {
	case *nbio.Conn:
		nc = v
	case *tls.Conn:
		nc, _ = v.Conn().(*nbio.Conn)
		c.tls = true
	}
	if nc == nil {
		return fmt.Errorf("nbiows: hijacked connection %T is not the poller's", nh.Conn)
	}
	// The writes go through nh (and its TLS); nbio's TLS data handler
	// finds the parser through it.
	ws := websocket.NewServerConn(c.srv.up, nh, sub, false, false)
	ws.Engine = c.srv.engine
	ws.Execute = func(f func()) bool { f(); return true }
	c.nc, c.ws = nc, ws
	c.ready.Store(true)
	ws.SetSession(c)
	nc.SetSession(newGuard(c)) // from now on nbio's data handler parses its bytes as WebSocket frames
	nh.Parser = nil
	_ = nc.SetReadDeadline(time.Time{}) // the HTTP keep-alive timer
	c.srv.conns.Add(1)
	resp := response(key, sub)
	n := int64(len(resp) + c.overhead(len(resp)))
	c.pending.Add(n) // what OnWrittenSize will report of it
	c.srv.queued.Add(n)
	if _, err := nh.Write(resp); err != nil {
		return fmt.Errorf("nbiows: write the upgrade response: %w", err)
	}
	return nil
}

// overhead estimates what TLS adds to n bytes of plaintext on the wire
// (a record header, nonce and tag per 16 KiB record, TLS 1.2 AES-GCM's 29
// bytes): the write queue is counted in what nbio writes.
func (c *Conn) overhead(n int) int {
	if !c.tls {
		return 0
	}
	return 29 * ((n + 16383) / 16384)
}

// Watch runs the heartbeat's server role on c with its own driver (a
// goroutine, its timers): the per-connection alternative to the presence
// hub, which watches a Conn with neither. cfg's Role and Dialer are set;
// c is closed when the driver ends.
func (c *Conn) Watch(ctx context.Context, cfg fsm.DriverConfig, p fsm.Presence) (*fsm.Driver, error) {
	return wsconn.Watch(ctx, c, cfg, p)
}

// CloseNow closes the socket at once, without a close frame, as a crash
// would.
func (c *Conn) CloseNow() { _ = c.nc.Close() }

// Format returns how heartbeats travel on this connection.
func (c *Conn) Format() wire.Format { return c.format }

// Subprotocol returns the negotiated subprotocol ("" if none).
func (c *Conn) Subprotocol() string { return c.sub }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Queued returns how many bytes wait in this connection's write queue.
func (c *Conn) Queued() int { return int(max(c.pending.Load(), 0)) }

// Done is closed once the connection has ended.
func (c *Conn) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.finished {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

// closedChan is Done's answer once the connection has ended.
var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// Bind starts reporting the connection's frames to ev (those read before
// Bind first). It fails with ErrBound on a second call and with
// transport.ErrClosed once the connection has ended. It does not call ev
// itself.
func (c *Conn) Bind(ev transport.Events) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed || c.over:
		return transport.ErrClosed
	case c.bound:
		return ErrBound
	}
	c.bound, c.ev = true, ev
	if len(c.pre) > 0 {
		// Replayed on the connection's own queue: the frames that arrive
		// meanwhile queue behind (c.pre stays non-nil until this ran).
		c.nc.MustExecute(c.replay)
	}
	return nil
}

func (c *Conn) replay() {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	for {
		c.mu.Lock()
		work := c.pre
		if len(work) == 0 {
			c.pre = nil
			c.mu.Unlock()
			return
		}
		c.pre = make([]func(), 0, 1) // non-nil: what arrives meanwhile queues behind
		c.mu.Unlock()
		for _, f := range work {
			f()
		}
	}
}

// emit runs f, which reports to the bound Events, unless the end was
// reported; before Bind (or before the replay of what came before it) f is
// held. It runs on the poller, or on a worker for the end.
func (c *Conn) emit(f func()) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.mu.Lock()
	switch {
	case c.reported:
		c.mu.Unlock()
		return
	case !c.bound || c.pre != nil:
		if len(c.pre) >= maxPreBind {
			c.mu.Unlock()
			_ = c.nc.CloseWithError(errors.New("nbiows: too many frames before Bind"))
			return
		}
		c.pre = append(c.pre, f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	f()
}

func (c *Conn) frame(f transport.Frame) {
	c.mu.Lock()
	direct := c.bound && c.pre == nil
	c.mu.Unlock()
	if !direct { // held for later: the payload is the caller's
		f.Payload = append([]byte(nil), f.Payload...)
	}
	c.emit(func() { c.ev.Frame(f) })
}

// message handles one inbound data message.
func (c *Conn) message(typ int, data []byte) {
	if c.format != wire.Control && wire.IsHeartbeat(data) {
		c.heartbeat(data)
		return
	}
	size := len(data)
	if c.opts.OnData == nil {
		c.emit(func() { c.ev.Frame(transport.Frame{Kind: transport.Data, Size: size}) })
		return
	}
	// nbio cannot pause one connection's reads, so a peer that sends faster
	// than OnData returns is bounded by closing it.
	n := int64(len(data))
	if q := c.inbound.Add(n); q > int64(c.srv.cfg.MaxReadQueue) {
		c.inbound.Add(-n)
		c.refuse(fmt.Errorf("%w (%d bytes waiting for OnData, limit %d)", ErrReadQueueFull, q-n, c.srv.cfg.MaxReadQueue))
		return
	}
	c.emit(func() {
		c.ev.Frame(transport.Frame{Kind: transport.Data, Size: size})
		c.nc.MustExecute(func() {
			c.opts.OnData(typ, data)
			c.inbound.Add(-n)
		})
	})
}

func (c *Conn) heartbeat(data []byte) {
	m, err := wire.Decode(data)
	if err != nil {
		c.frame(transport.Frame{Kind: transport.Data, Size: len(data)}) // it arrived: evidence still, and bytes
		if c.opts.OnMalformed != nil {
			c.opts.OnMalformed(err)
		}
		return
	}
	var echo [wire.EchoSize]byte
	f := m.Frame(echo[:0])
	if f.Kind == transport.Pong {
		c.rtt(f.Seq)
	}
	c.frame(f)
	if (m.Type == wire.Drain || m.Type == wire.Close) && c.opts.OnMessage != nil {
		c.opts.OnMessage(m)
	}
}

func (c *Conn) ping(data string) {
	var buf [transport.MaxControlPayload]byte
	f := transport.Frame{Kind: transport.Ping, Payload: buf[:copy(buf[:], data)]}
	if seq, window, err := wire.ParseControl(f.Payload); err == nil {
		f.Seq, f.ReconnectWindow = seq, window
	}
	c.frame(f)
}

func (c *Conn) pong(data string) {
	seq := wsconn.PongSeq(data)
	c.rtt(seq)
	c.frame(transport.Frame{Kind: transport.Pong, Seq: seq})
}

func (c *Conn) rtt(seq uint64) {
	if seq != 0 && c.srv.cfg.OnRTT != nil && c.pingSeq.Load() == seq {
		c.srv.cfg.OnRTT(time.Duration(time.Now().UnixNano() - c.pingAt.Load()))
	}
}

// peerClose answers the peer's close frame with the same code, unless
// this side's close frame went first; nbio closes the socket next.
func (c *Conn) peerClose(code int, _ string) {
	c.mu.Lock()
	c.peerCode = code
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	var p []byte
	if code != 1005 {
		p = binary.BigEndian.AppendUint16(nil, uint16(code))
	}
	_ = c.write(websocket.CloseMessage, p, false)
}

// ended reports the end of the connection: a local Close as
// transport.ErrClosed (wrapping its reason), an overflow as
// ErrWriteQueueFull, the peer's close with 1000 or 1001 as
// fsm.ErrPeerLeft, anything else as it came.
func (c *Conn) ended(err error) {
	c.mu.Lock()
	switch code := c.peerCode; {
	case c.closed:
		err = wsconn.ClosedError(c.reason)
	case c.failed != nil:
		err = c.failed
	case code != 0:
		err = &wire.PeerCloseError{Code: uint16(code)}
	case err == nil:
		err = fmt.Errorf("nbiows: connection lost: %w", net.ErrClosed)
	}
	bound := c.bound
	c.over = true
	c.mu.Unlock()
	c.srv.conns.Add(-1)
	c.srv.queued.Add(-c.pending.Swap(0))
	finish := func() {
		c.mu.Lock()
		c.finished = true
		if c.done != nil {
			close(c.done)
		}
		c.mu.Unlock()
		if c.opts.OnClose != nil {
			c.opts.OnClose(err)
		}
	}
	if !bound {
		finish()
		return
	}
	c.emit(func() {
		c.ev.Closed(err)
		c.mu.Lock()
		c.reported = true
		c.mu.Unlock()
		finish()
	})
}

// write hands one message to nbio, which writes what the socket takes now
// and queues the rest. bounded writes fail once the queue would pass
// MaxWriteQueue: the connection is then closed (1008).
func (c *Conn) write(typ websocket.MessageType, p []byte, bounded bool) error {
	size := frameSize(len(p), c.srv.engine.MaxWebsocketFramePayloadSize)
	n := int64(size + c.overhead(size))
	if bounded && c.pending.Load()+n > int64(c.srv.cfg.MaxWriteQueue) {
		return c.overflow()
	}
	c.pending.Add(n)
	c.srv.queued.Add(n)
	err := c.ws.WriteMessage(typ, p)
	if err != nil {
		c.pending.Add(-n)
		c.srv.queued.Add(-n)
	}
	return err
}

func (c *Conn) written(n int) {
	c.pending.Add(-int64(n))
	c.srv.queued.Add(-int64(n))
}

// overflow records a full write queue and closes the connection on a
// goroutine of its own (Close waits for the peer's close frame).
func (c *Conn) overflow() error {
	err := fmt.Errorf("%w (%d bytes waiting, limit %d)", ErrWriteQueueFull, c.pending.Load(), c.srv.cfg.MaxWriteQueue)
	c.mu.Lock()
	first := c.failed == nil && !c.closed
	if first {
		c.failed = err
	}
	c.mu.Unlock()
	if first {
		c.srv.overflows.Add(1)
		go func() { _ = c.Close(err) }()
	}
	return err
}

// frameSize is the bytes nbio writes for a server message of n bytes cut
// into frames of at most max payload bytes.
func frameSize(n, maxPayload int) int {
	if maxPayload <= 0 {
		maxPayload = n
	}
	size := 0
	for first := true; first || n > 0; first = false {
		k := min(n, maxPayload)
		switch {
		case k < 126:
			size += 2 + k
		case k <= 65535:
			size += 4 + k
		default:
			size += 10 + k
		}
		n -= k
	}
	return size
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed || c.over
}

// Send writes one heartbeat frame: a control-frame ping carries
// wire.AppendControl's payload (Seq and advice), a pong echoes f.Payload;
// with an application-level format, a heartbeat message. It never blocks:
// what the socket does not take now waits in the write queue, which is
// bounded (ErrWriteQueueFull).
func (c *Conn) Send(ctx context.Context, f transport.Frame) error {
	switch {
	case len(f.Payload) > transport.MaxControlPayload:
		return transport.ErrPayloadTooLarge
	case f.Kind != transport.Ping && f.Kind != transport.Pong:
		return ErrFrameKind
	case c.isClosed():
		return fmt.Errorf("nbiows: send %v: %w", f.Kind, transport.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.Kind == transport.Ping {
		c.pingSeq.Store(f.Seq)
		c.pingAt.Store(time.Now().UnixNano())
	}
	var err error
	if c.format == wire.Control {
		if f.Kind == transport.Ping {
			var buf [wire.ControlAdviceSize]byte
			err = c.write(websocket.PingMessage, wire.AppendControl(buf[:0], f.Seq, f.ReconnectWindow), true)
		} else {
			err = c.write(websocket.PongMessage, f.Payload, true)
		}
	} else {
		m := wire.PongFor(f.Payload)
		if f.Kind == transport.Ping {
			m = wire.Message{Type: wire.Ping, Seq: f.Seq, SentAt: time.Now().UnixMilli(),
				Window: min(f.ReconnectWindow, wire.MaxWindow).Truncate(time.Millisecond)}
		}
		err = c.SendMessage(ctx, &m)
	}
	if err != nil {
		if c.isClosed() && !errors.Is(err, ErrWriteQueueFull) {
			err = transport.ErrClosed
		}
		return fmt.Errorf("nbiows: send %v: %w", f.Kind, err)
	}
	return nil
}

// SendNeverBlocks reports that Send never waits on the peer: the presence
// hub then writes pings on its timer goroutine rather than waking a writer
// (presence.NonBlockingSender).
func (c *Conn) SendNeverBlocks() bool { return true }

var sendBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// SendMessage writes one application-level heartbeat message (a server's
// Drain or Close request) in the connection's format, with the
// connection's ID if m has none. It fails on a connection that uses
// control frames.
func (c *Conn) SendMessage(_ context.Context, m *wire.Message) error {
	if c.format == wire.Control {
		return errors.New("nbiows: SendMessage needs an application-level format (json or binary)")
	}
	if c.opts.ConnID != "" && m.ConnID == "" {
		cp := *m
		cp.ConnID = c.opts.ConnID
		m = &cp
	}
	bp := sendBufs.Get().(*[]byte)
	defer sendBufs.Put(bp)
	b, err := wire.Append((*bp)[:0], c.format, m)
	if err != nil {
		return err
	}
	*bp = b[:0]
	typ := websocket.BinaryMessage
	if c.format == wire.JSON {
		typ = websocket.TextMessage
	}
	return c.write(typ, b, true)
}

// Write writes one application message (TextMessage or BinaryMessage). It
// never blocks, so ctx is not consulted (it is there to match the other
// adapters' Write); past MaxWriteQueue bytes waiting it fails with
// ErrWriteQueueFull and the connection is closed (1008).
func (c *Conn) Write(_ context.Context, messageType int, p []byte) error {
	if c.format != wire.Control && wire.IsHeartbeat(p) {
		return ErrReservedPrefix
	}
	if messageType != TextMessage && messageType != BinaryMessage {
		return fmt.Errorf("nbiows: message type %d is neither text nor binary", messageType)
	}
	if c.isClosed() {
		return transport.ErrClosed
	}
	return c.write(websocket.MessageType(messageType), p, true)
}

// closeStatus is wire.CloseStatus, with a full write queue a policy
// violation and the guard's refusals their RFC 6455 codes.
func closeStatus(reason error) (uint16, string) {
	code, text := wire.CloseStatus(reason)
	switch {
	case errors.Is(reason, ErrWriteQueueFull), errors.Is(reason, ErrReadQueueFull):
		code = wire.ClosePolicyViolation
	case errors.Is(reason, ErrProtocol):
		code = closeProtocolError
	case errors.Is(reason, ErrMessageTooBig):
		code = closeMessageTooBig
	}
	return code, text
}

// Close codes of RFC 6455 §7.4.1 the guard sends.
const (
	closeProtocolError = 1002
	closeMessageTooBig = 1009
)

// Close sends a close frame saying why (see wire.CloseStatus; a full write
// queue is 1008), waits up to CloseTimeout for the peer's close frame when
// the peer is thought alive (wire.Handshake), closes the socket and waits
// until the end is reported. It is idempotent. It must not be called from
// the connection's callbacks.
func (c *Conn) Close(reason error) error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed, c.reason = true, reason
		c.mu.Unlock()
		code, text := closeStatus(reason)
		p := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(text)), code)
		err := c.write(websocket.CloseMessage, append(p, text...), false)
		// A full queue may be a slow reader, not a dead one, and a peer that
		// broke the protocol may still read: each gets the close timeout to
		// read the reason.
		if err == nil && (wire.Handshake(reason) || errors.Is(reason, ErrWriteQueueFull) ||
			errors.Is(reason, ErrProtocol) || errors.Is(reason, ErrMessageTooBig)) {
			t := time.NewTimer(c.opts.CloseTimeout)
			select {
			case <-c.Done():
			case <-t.C:
			}
			t.Stop()
		}
		_ = c.nc.Close()
	})
	<-c.Done()
	return nil
}
