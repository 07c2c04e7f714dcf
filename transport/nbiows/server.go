package nbiows

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// Defaults of ServerConfig and Options, used where a field is zero.
const (
	// DefaultMaxWriteQueue bounds the bytes a connection may have waiting
	// to be written (nbio's own queue is unbounded by default).
	DefaultMaxWriteQueue = 64 << 10
	// DefaultReadLimit bounds one inbound message, as gorillaws's.
	DefaultReadLimit = 1 << 20
	// DefaultMaxReadQueue bounds the bytes of one connection's messages
	// waiting for OnData: two messages of the read limit.
	DefaultMaxReadQueue = 2 * DefaultReadLimit
	// DefaultCloseTimeout bounds the wait for the peer's close frame.
	DefaultCloseTimeout = time.Second
	// DefaultHandshakeTimeout bounds writing the upgrade's response.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultHeaderTimeout bounds, with ServerConfig.Addr, the wait for a
	// request's headers (nbio's own default is 120 s).
	DefaultHeaderTimeout = 10 * time.Second
	// maxPreBind bounds the frames kept for a connection not yet bound.
	maxPreBind = 64
)

// Errors of this package.
var (
	// ErrBound: Bind was called twice.
	ErrBound = errors.New("nbiows: connection already bound to a heartbeat")
	// ErrFrameKind: Send was given a frame that is neither Ping nor Pong.
	ErrFrameKind = errors.New("nbiows: Send takes only Ping and Pong frames")
	// ErrReservedPrefix: on a connection with application-level
	// heartbeats, an application message must not look like a heartbeat.
	ErrReservedPrefix = errors.New("nbiows: application message begins like a heartbeat message")
	// ErrWriteQueueFull: a write would have put more than MaxWriteQueue
	// bytes in the connection's write queue: the peer is not reading. The
	// connection is closed with 1008 (policy violation) and this text.
	ErrWriteQueueFull = errors.New("nbiows: write queue full, the peer does not read")
	// ErrReadQueueFull: a message would have put more than MaxReadQueue
	// bytes in the queue for OnData: the peer sends faster than the
	// application takes its messages. nbio cannot stop reading one
	// connection, so the connection is closed with 1008 and this text; the
	// messages read meanwhile are dropped.
	ErrReadQueueFull = errors.New("nbiows: read queue full, the peer sends faster than OnData returns")
	// ErrUpgrade: the request is not a valid WebSocket upgrade; the
	// response (400, 403, 405) has been written.
	ErrUpgrade = errors.New("nbiows: bad upgrade request")
	// ErrNotTCP: the hijacked connection is not a plain TCP connection
	// (net/http's TLS connections cannot be handed to the poller: serve
	// TLS in front of the server, or see the package doc).
	ErrNotTCP = errors.New("nbiows: hijacked connection is not a *net.TCPConn")
	// ErrEarlyData: the client sent bytes after its upgrade request
	// before the server's response; no conforming client does.
	ErrEarlyData = errors.New("nbiows: client sent data before the upgrade response")
	// ErrServerClosed: the Server was shut down.
	ErrServerClosed = errors.New("nbiows: server closed")
)

// UpgradeError is Upgrade's error for a request it refused with an HTTP
// status (already written). It wraps ErrUpgrade.
type UpgradeError struct {
	Status int
	Reason string
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("%v: %d %s", ErrUpgrade, e.Status, e.Reason)
}

// Unwrap returns ErrUpgrade.
func (e *UpgradeError) Unwrap() error { return ErrUpgrade }

// ServerConfig configures a Server. The zero value is usable.
type ServerConfig struct {
	// Pollers is how many epoll loops read the connections. Zero means 1.
	Pollers int
	// Workers bounds the goroutines that run OnData and the ends of the
	// connections (at most one per connection at a time, in order), and,
	// with Addr, the HTTP handler; they exist only while there is work.
	// Zero means 64 × GOMAXPROCS.
	Workers int
	// MaxWriteQueue bounds the bytes waiting to be written on one
	// connection. Zero means DefaultMaxWriteQueue. A write past it fails
	// with ErrWriteQueueFull and closes the connection (1008).
	MaxWriteQueue int
	// MaxReadQueue bounds the bytes of one connection's messages waiting
	// for Options.OnData. Zero means DefaultMaxReadQueue. A message past it
	// closes the connection with ErrReadQueueFull (1008). It must be at
	// least DefaultReadLimit, so a message of the read limit fits.
	MaxReadQueue int
	// ReadBufferSize is each poller's read buffer (shared by all the
	// connections it serves). Zero means nbio's 64 KiB.
	ReadBufferSize int
	// Subprotocols are the subprotocols Upgrade accepts, in the server's
	// preference (the client's order wins). Nil means wire.Subprotocols().
	Subprotocols []string
	// CheckOrigin decides whether a browser's request may upgrade. Nil
	// means the Origin header, if any, must name the request's Host.
	CheckOrigin func(r *http.Request) bool
	// OnRTT, if set, is called with each round trip a pong answers (the
	// pong of this side's latest ping), on the poller's goroutine.
	OnRTT func(time.Duration)

	// Addr, if set, makes the Server listen on it itself and serve
	// Handler with nbio's own HTTP parser: every connection is in the
	// poller from its first byte, and Handler runs on a worker (call
	// Upgrade there as from net/http). Without it the Server only takes
	// the connections net/http hands to Upgrade.
	Addr string
	// TLSConfig, with Addr, serves HTTPS through nbio's TLS (a fork of
	// crypto/tls, github.com/lesismal/llib/std/crypto/tls), the only TLS
	// whose connections the poller can read.
	TLSConfig *tls.Config
	// Handler serves the requests on Addr.
	Handler http.Handler
	// HeaderTimeout bounds, with Addr, how long a connection may take to
	// send a request's headers, and to idle before its next request (nbio's
	// KeepaliveTime): a client that trickles its upgrade request a byte at
	// a time is closed then. Zero means DefaultHeaderTimeout. (Without
	// Addr, http.Server.ReadHeaderTimeout does this.)
	HeaderTimeout time.Duration
}

// Server holds the poller every connection it upgrades is read by. Its
// methods are safe for concurrent use.
type Server struct {
	cfg    ServerConfig
	addr   atomic.Pointer[net.Addr] // the listener's, with ServerConfig.Addr
	engine *nbhttp.Engine
	up     *websocket.Upgrader
	closed atomic.Bool

	readLimit int // of one message, checked by each connection's guard

	conns, queued, overflows atomic.Int64
}

// Stats is what a Server counts.
type Stats struct {
	// Conns is how many connections are open.
	Conns int64
	// Queued is how many bytes wait in all the write queues.
	Queued int64
	// Overflows counts connections closed because their write queue was
	// full.
	Overflows int64
}

// NewServer starts the poller and its worker pool.
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.Pollers < 0, cfg.Workers < 0, cfg.MaxWriteQueue < 0, cfg.ReadBufferSize < 0:
		return nil, fmt.Errorf("nbiows: pollers %d, workers %d, write queue %d and read buffer %d must not be negative (zero means a default)",
			cfg.Pollers, cfg.Workers, cfg.MaxWriteQueue, cfg.ReadBufferSize)
	case cfg.HeaderTimeout < 0:
		return nil, fmt.Errorf("nbiows: header timeout %v must be positive (zero means %v)", cfg.HeaderTimeout, DefaultHeaderTimeout)
	case cfg.MaxReadQueue != 0 && cfg.MaxReadQueue < DefaultReadLimit:
		return nil, fmt.Errorf("nbiows: read queue %d must hold a message of the read limit, %d bytes (zero means %d)", cfg.MaxReadQueue, DefaultReadLimit, DefaultMaxReadQueue)
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.MaxReadQueue == 0 {
		cfg.MaxReadQueue = DefaultMaxReadQueue
	}
	if cfg.Pollers == 0 {
		cfg.Pollers = 1
	}
	if cfg.Workers == 0 {
		cfg.Workers = 64 * runtime.GOMAXPROCS(0)
	}
	if cfg.MaxWriteQueue == 0 {
		cfg.MaxWriteQueue = DefaultMaxWriteQueue
	}
	if cfg.Subprotocols == nil {
		cfg.Subprotocols = wire.Subprotocols()
	}
	s := &Server{cfg: cfg, readLimit: DefaultReadLimit}
	ec := nbhttp.Config{
		Name:                   "nbiows",
		NPoller:                cfg.Pollers,
		ReadBufferSize:         cfg.ReadBufferSize,
		MessageHandlerPoolSize: cfg.Workers,
		// nbio's own bound is the backstop (it resets the connection); ours
		// fails the write first and closes with a reason. The slack fits a
		// close frame queued behind a full queue.
		MaxWriteBufferSize: cfg.MaxWriteQueue + 256,
		SupportServerOnly:  true,
		KeepaliveTime:      cfg.HeaderTimeout,
		Handler:            cfg.Handler,
		Listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err == nil {
				a := ln.Addr()
				s.addr.Store(&a)
			}
			return ln, err
		},
	}
	switch {
	case cfg.Addr != "" && cfg.TLSConfig != nil:
		ec.AddrsTLS, ec.TLSConfig = []string{cfg.Addr}, cfg.TLSConfig
	case cfg.Addr != "":
		ec.Addrs = []string{cfg.Addr}
	}
	s.engine = nbhttp.NewEngine(ec)
	s.engine.OnWrittenSize(func(nc *nbio.Conn, _ []byte, n int) {
		if c := connOf(nc); c != nil {
			c.written(n)
		}
	})
	up := websocket.NewUpgrader()
	up.Engine = s.engine
	up.KeepaliveTime = 0 // no read deadline, so no timer per connection: the heartbeat judges
	up.MessageLengthLimit = DefaultReadLimit
	up.OnMessage(func(ws *websocket.Conn, typ websocket.MessageType, data []byte) {
		if c := sessionOf(ws); c != nil {
			c.message(int(typ), data)
		}
	})
	up.SetPingHandler(func(ws *websocket.Conn, data string) {
		if c := sessionOf(ws); c != nil {
			c.ping(data)
		}
	})
	up.SetPongHandler(func(ws *websocket.Conn, data string) {
		if c := sessionOf(ws); c != nil {
			c.pong(data)
		}
	})
	up.SetCloseHandler(func(ws *websocket.Conn, code int, text string) {
		if c := sessionOf(ws); c != nil {
			c.peerClose(code, text)
		}
	})
	up.OnClose(func(ws *websocket.Conn, err error) {
		if c := sessionOf(ws); c != nil {
			c.ended(err)
		}
	})
	s.up = up
	if err := s.engine.Start(); err != nil {
		return nil, fmt.Errorf("nbiows: start poller: %w", err)
	}
	return s, nil
}

func connOf(nc *nbio.Conn) *Conn {
	g, _ := nc.Session().(*guard)
	if g == nil {
		return nil
	}
	if c := g.conn.Load(); c.ready.Load() {
		return c
	}
	return nil
}

func sessionOf(ws *websocket.Conn) *Conn {
	if c, _ := ws.Session().(*Conn); c != nil && c.ready.Load() {
		return c
	}
	return nil
}

// Addr returns the address the Server listens on (ServerConfig.Addr), or
// nil.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Conns: s.conns.Load(), Queued: max(s.queued.Load(), 0), Overflows: s.overflows.Load()}
}

// Close stops the poller and its workers, closing every connection
// abruptly. Close the connections first (the hub's Shutdown does) for a
// clean end.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.engine.Stop()
	return nil
}

// Upgrade answers a WebSocket upgrade request on a connection of a
// net/http server and hands the connection to the poller: from then on no
// goroutine is kept for it. The subprotocol is chosen in the client's
// order among ServerConfig.Subprotocols. The handshake runs on the
// caller's goroutine (net/http's), so a slow client or a slow
// authentication before it stalls no poller or worker. Nothing is
// reported until Bind.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, opts Options) (*Conn, error) {
	if s.closed.Load() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return nil, ErrServerClosed
	}
	key, sub, err := s.check(w, r)
	if err != nil {
		return nil, err
	}
	c, err := newConn(s, sub, opts)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, err
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return nil, fmt.Errorf("%w: the ResponseWriter cannot be hijacked", ErrUpgrade)
	}
	raw, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("nbiows: hijack: %w", err)
	}
	if nh, ok := raw.(*nbhttp.Conn); ok { // from our own listener: already in the poller
		if err := c.adopt(nh, key, sub); err != nil {
			_ = nh.Close()
			return nil, err
		}
		return c, nil
	}
	if _, ok := raw.(*net.TCPConn); !ok {
		_ = raw.Close()
		return nil, ErrNotTCP
	}
	if brw != nil && brw.Reader.Buffered() > 0 {
		_ = raw.Close()
		return nil, ErrEarlyData
	}
	_ = raw.SetWriteDeadline(time.Now().Add(DefaultHandshakeTimeout))
	if _, err := raw.Write(response(key, sub)); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("nbiows: write the upgrade response: %w", err)
	}
	_ = raw.SetWriteDeadline(time.Time{})
	nc, err := nbio.NBConn(raw) // duplicates the socket and closes raw: Go's netpoller lets go of it
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("nbiows: hand the connection to the poller: %w", err)
	}
	if err := c.attach(nc); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates the upgrade request, answering a bad one, and returns
// the client's key and the chosen subprotocol.
func (s *Server) check(w http.ResponseWriter, r *http.Request) (key, sub string, err error) {
	fail := func(code int, why string) (string, string, error) {
		http.Error(w, why, code)
		return "", "", &UpgradeError{Status: code, Reason: why}
	}
	switch {
	case r.Method != http.MethodGet:
		return fail(http.StatusMethodNotAllowed, "method not GET")
	case !tokenIn(r.Header, "Connection", "upgrade"):
		return fail(http.StatusBadRequest, "no 'upgrade' in Connection")
	case !tokenIn(r.Header, "Upgrade", "websocket"):
		return fail(http.StatusBadRequest, "no 'websocket' in Upgrade")
	case r.Header.Get("Sec-Websocket-Version") != "13":
		return fail(http.StatusBadRequest, "Sec-WebSocket-Version is not 13")
	}
	check := s.cfg.CheckOrigin
	if check == nil {
		check = sameOrigin
	}
	if !check(r) {
		return fail(http.StatusForbidden, "origin not allowed")
	}
	key = r.Header.Get("Sec-Websocket-Key")
	if key == "" {
		return fail(http.StatusBadRequest, "no Sec-WebSocket-Key")
	}
	var offered []string
	for _, h := range r.Header.Values("Sec-Websocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				offered = append(offered, p)
			}
		}
	}
	if ordered := wire.ClientOrder(offered, s.cfg.Subprotocols); len(ordered) > 0 {
		sub = ordered[0]
	}
	return key, sub, nil
}

func tokenIn(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// response is the upgrade's 101 response.
func response(key, sub string) []byte {
	sum := sha1.Sum([]byte(key + acceptGUID))
	b := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	if sub != "" {
		b = append(b, "\r\nSec-WebSocket-Protocol: "...)
		b = append(b, sub...)
	}
	return append(b, "\r\n\r\n"...)
}
