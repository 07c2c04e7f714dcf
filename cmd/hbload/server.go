package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	nbtls "github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio/logging"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/nbiohandler"
	"github.com/heartbeat-go/heartbeat/transport/nbiows"
)

// The constants of gorilla/websocket's examples/chat.
const (
	chatWriteWait      = 10 * time.Second
	chatPongWait       = 60 * time.Second
	chatPingPeriod     = (chatPongWait * 9) / 10 // 54 s
	chatMaxMessageSize = 512
	chatBufferSize     = 1024 // the Upgrader's ReadBufferSize and WriteBufferSize
)

// chatRate is the chat pattern's rate: a ping after 54 s of silence, a
// peer silent for 60 s is suspect (gorilla's read deadline).
func chatRate() policy.Set {
	return policy.Set{
		Detector: &policy.Fixed{SuspectAfter: chatPongWait, DeadAfter: 70 * time.Second},
		Interval: &policy.Idle{Every: chatPingPeriod},
	}
}

// serverStats is what a server role reports on /stats, measured after a
// full garbage collection.
type serverStats struct {
	Goroutines int    `json:"goroutines"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Conns      int    `json:"conns"`
	Deadlines  uint64 `json:"deadlines"` // the hub's timer-wheel firings so far
	// Late counts the hub's firings by lateness (presence.LatenessBuckets).
	Late []uint64 `json:"late"`
	// Verdicts counts connections the hub found suspect or dead so far.
	Verdicts uint64 `json:"verdicts"`
}

// serve runs one server kind on a loopback port until stdin ends: it prints
// "listening ADDR" once, serves WebSockets on /ws, its own figures on
// /stats and net/http/pprof under /debug/pprof/.
func serve(kind string, echo, secure bool, stdin io.Reader, stdout io.Writer) error {
	if err := raiseFileLimit(); err != nil {
		return err
	}
	var (
		ws       http.Handler
		conns    func() int
		fired    = func() uint64 { return 0 }
		late     = func() []uint64 { return nil }
		shutdown func(context.Context) error
		verdicts atomic.Uint64
		wsAddr   string // with TLS: where the WebSockets are served
		closeWS  = func() {}
	)
	stdCert, nbCert, err := selfSigned()
	if err != nil {
		return err
	}
	observe := func(c presence.ConnChange) {
		if c.To == fsm.Suspect || c.To == fsm.Dead {
			verdicts.Add(1)
		}
	}
	switch kind {
	case "chat":
		h := newChatHub()
		h.echo = echo
		go h.run()
		ws, conns = h, func() int { return int(h.n.Load()) }
		shutdown = func(context.Context) error { close(h.stop); return nil }
	case "hub", "hub-default":
		cfg := presence.HubConfig{Observe: observe}
		if kind == "hub" {
			// The chat pattern's rate: a ping after 54 s of silence, a
			// peer silent for 60 s is suspect (gorilla's read deadline).
			cfg.Policies = chatRate
		}
		hub, err := presence.NewHub(cfg)
		if err != nil {
			return err
		}
		var seq atomic.Uint64
		h, err := presence.NewHandler(presence.HandlerConfig{
			Hub: hub,
			Authenticate: func(*http.Request) (presence.Identity, error) {
				n := strconv.FormatUint(seq.Add(1), 10)
				return presence.Identity{User: "u" + n, Session: "s" + n}, nil
			},
			Upgrader: websocket.Upgrader{ReadBufferSize: chatBufferSize, WriteBufferSize: chatBufferSize},
			OnMessage: func(c *presence.Client, typ int, data []byte) {
				if echo {
					ctx, cancel := context.WithTimeout(context.Background(), chatWriteWait)
					_ = c.Write(ctx, typ, data)
					cancel()
				}
			},
		})
		if err != nil {
			return err
		}
		ws, conns, shutdown = h, func() int { return hub.Stats().Conns }, hub.Shutdown
		late = func() []uint64 { st := hub.Stats(); return st.Lateness[:] }
		fired = func() uint64 {
			var n uint64
			for _, b := range hub.Stats().Lateness {
				n += b
			}
			return n
		}
	case "nbio":
		// The hub at the chat pattern's rate, its connections read by
		// nbiows' poller: no goroutine per connection.
		logging.SetLevel(logging.LevelNone)
		hub, err := presence.NewHub(presence.HubConfig{Policies: chatRate, Observe: observe})
		if err != nil {
			return err
		}
		var wsh http.Handler
		nbc := nbiows.ServerConfig{}
		if secure { // nbio listens itself: net/http's TLS connections cannot go to the poller
			nbc.Addr, nbc.TLSConfig = "127.0.0.1:0", &nbtls.Config{Certificates: []nbtls.Certificate{nbCert}}
			nbc.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { wsh.ServeHTTP(w, r) })
		}
		nb, err := nbiows.NewServer(nbc)
		if err != nil {
			return err
		}
		if secure {
			wsAddr = nb.Addr().String()
		}
		var seq atomic.Uint64
		h, err := nbiohandler.New(nbiohandler.Config{
			Hub: hub, Server: nb,
			Authenticate: func(*http.Request) (presence.Identity, error) {
				n := strconv.FormatUint(seq.Add(1), 10)
				return presence.Identity{User: "u" + n, Session: "s" + n}, nil
			},
			OnMessage: func(c *nbiohandler.Client, typ int, data []byte) {
				if echo {
					_ = c.Write(context.Background(), typ, data)
				}
			},
		})
		if err != nil {
			return err
		}
		ws, wsh, conns = h, h, func() int { return hub.Stats().Conns }
		late = func() []uint64 { st := hub.Stats(); return st.Lateness[:] }
		shutdown = func(ctx context.Context) error {
			err := hub.Shutdown(ctx)
			_ = nb.Close()
			return err
		}
		fired = func() uint64 {
			var n uint64
			for _, b := range hub.Stats().Lateness {
				n += b
			}
			return n
		}
	default:
		return usagef("unknown server %q (want chat, hub, hub-default or nbio)", kind)
	}

	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := serverStats{Goroutines: runtime.NumGoroutine(), HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Conns: conns(), Deadlines: fired(), Late: late(), Verdicts: verdicts.Load()}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if secure && wsAddr == "" { // crypto/tls in front of the same handlers
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		wsAddr = tln.Addr().String()
		tsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		tlsServed := make(chan error, 1)
		go func() {
			tlsServed <- tsrv.Serve(tls.NewListener(tln, &tls.Config{Certificates: []tls.Certificate{stdCert}}))
		}()
		closeWS = func() { _ = tsrv.Close(); <-tlsServed }
	}
	if secure {
		fmt.Fprintf(stdout, "listening %s wss %s\n", ln.Addr(), wsAddr)
	} else {
		fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	}

	_, _ = io.Copy(io.Discard, stdin) // the parent closes stdin to stop us
	_ = srv.Close()                   // hijacked connections are left to shutdown
	closeWS()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = shutdown(ctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// chatHub is the hub of gorilla's chat example: one goroutine owns the set
// of clients and fans broadcasts out to their send queues.
type chatHub struct {
	clients    map[*chatClient]bool
	broadcast  chan []byte
	register   chan *chatClient
	unregister chan *chatClient
	stop       chan struct{}
	n          atomic.Int64
	echo       bool // each message goes back to its sender, not to everyone
	up         websocket.Upgrader
}

func newChatHub() *chatHub {
	return &chatHub{
		clients:    map[*chatClient]bool{},
		broadcast:  make(chan []byte),
		register:   make(chan *chatClient),
		unregister: make(chan *chatClient),
		stop:       make(chan struct{}),
		up:         websocket.Upgrader{ReadBufferSize: chatBufferSize, WriteBufferSize: chatBufferSize},
	}
}

func (h *chatHub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
			h.n.Add(1)
		case c := <-h.unregister:
			if h.clients[c] {
				delete(h.clients, c)
				close(c.send)
				h.n.Add(-1)
			}
		case msg := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- msg:
				default:
					close(c.send)
					delete(h.clients, c)
					h.n.Add(-1)
				}
			}
		case <-h.stop:
			for c := range h.clients {
				_ = c.conn.Close()
			}
			return
		}
	}
}

// chatClient is one connection of the chat example: a read pump and a
// write pump, each its own goroutine; the handler goroutine returns.
type chatClient struct {
	hub  *chatHub
	conn *websocket.Conn
	send chan []byte
}

func (h *chatHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &chatClient{hub: h, conn: conn, send: make(chan []byte, 256)}
	select {
	case h.register <- c:
	case <-h.stop:
		_ = conn.Close()
		return
	}
	go c.writePump()
	go c.readPump()
}

func (c *chatClient) readPump() {
	defer func() {
		select {
		case c.hub.unregister <- c:
		case <-c.hub.stop:
		}
		_ = c.conn.Close()
	}()
	limit := int64(chatMaxMessageSize)
	if c.hub.echo {
		limit = 2 * echoSize // the load's messages are larger than the chat's 512 B
	}
	c.conn.SetReadLimit(limit)
	_ = c.conn.SetReadDeadline(time.Now().Add(chatPongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(chatPongWait))
	})
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if c.hub.echo {
			select {
			case c.send <- msg:
			default: // the chat example's answer to a full queue: drop the client
				return
			}
			continue
		}
		select {
		case c.hub.broadcast <- msg:
		case <-c.hub.stop:
			return
		}
	}
}

func (c *chatClient) writePump() {
	ticker := time.NewTicker(chatPingPeriod)
	defer func() {
		ticker.Stop()
		_ = c.conn.Close()
	}()
	for {
		select {
		case msg, ok := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(chatWriteWait))
			if !ok {
				_ = c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ticker.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(chatWriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-c.hub.stop:
			return
		}
	}
}
