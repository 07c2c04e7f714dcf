// Command server is a small chat server whose presence — who is online — is
// kept by the heartbeat's hub: every WebSocket connection is watched on the
// hub's shared timers, a user stays online across reconnects and tabs, and
// the page at / shows who is online, live. Run it, open
// http://127.0.0.1:8080/?user=ann in a browser (and ?user=bob in another
// tab), or connect examples/client; stop it with Ctrl-C (or SIGTERM) to
// watch every client told to go away and spread its redial:
//
//	go run ./examples/server -addr 127.0.0.1:8080
//	go run ./examples/client -url 'ws://127.0.0.1:8080/ws?user=carol'
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/wire/js"
)

//go:embed index.html
var page []byte

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	rate := flag.Float64("accept-rate", presence.DefaultAcceptRate, "connections per second this server accepts after a restart (sets the advised reconnect window)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s/ (WebSocket at ws://%s/ws?user=NAME)\n", ln.Addr(), ln.Addr())
	if err := serve(ctx, ln, os.Stdout, *rate); err != nil {
		log.Fatal(err)
	}
}

// serve runs the server on ln until ctx is done, printing presence events
// and the hub's log to out; then it shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, out io.Writer, acceptRate float64) error {
	var (
		mu      sync.Mutex
		clients = map[*presence.Client]bool{}
	)
	var outMu sync.Mutex
	printf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format, args...)
	}
	hub, err := presence.NewHub(presence.HubConfig{
		AcceptRate: acceptRate,
		Logger:     slog.New(slog.NewTextHandler(lockedWriter{out, &outMu}, nil)),
		OnEvent: func(e presence.Event) {
			switch e.Kind {
			case presence.UserJoined:
				printf("%s joined\n", e.User)
			case presence.UserLeft:
				printf("%s left (%v)\n", e.User, e.Reason)
			}
		},
	})
	if err != nil {
		return err
	}
	// One goroutine broadcasts, so OnMessage (on a connection's reader)
	// returns at once; a burst beyond the queue drops lines.
	lines := make(chan []byte, 256)
	broadcastDone := make(chan struct{})
	go func() {
		defer close(broadcastDone)
		for msg := range lines {
			mu.Lock()
			for c := range clients {
				wctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = c.Write(wctx, websocket.TextMessage, msg) // a client that does not read within 1 s misses the line
				cancel()
			}
			mu.Unlock()
		}
	}()
	defer func() { close(lines); <-broadcastDone }()
	broadcast := func(msg []byte) {
		select {
		case lines <- msg:
		default:
		}
	}
	ws, err := presence.NewHandler(presence.HandlerConfig{
		Hub: hub,
		// A demo trusts the name in the URL; a real server checks a cookie
		// or a token here. The session is a digest of the tab's resume
		// token (heartbeat.js sends one), so a reload is not a leave and
		// the page's events show no token.
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			user := r.URL.Query().Get("user")
			if user == "" {
				return presence.Identity{}, errors.New("no user")
			}
			session, err := js.SessionID(r)
			if err != nil {
				return presence.Identity{}, err
			}
			if session == "" { // a client without a resume token
				session = r.RemoteAddr
			}
			return presence.Identity{User: user, Session: session}, nil
		},
		OnConnect: func(c *presence.Client) {
			mu.Lock()
			clients[c] = true
			mu.Unlock()
		},
		OnMessage: func(c *presence.Client, _ int, msg []byte) {
			line, _ := json.Marshal(map[string]string{"from": c.Identity.User, "text": string(msg)})
			broadcast(line)
		},
		OnDisconnect: func(c *presence.Client, _ error) {
			mu.Lock()
			delete(clients, c)
			mu.Unlock()
		},
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	mux.Handle("/hb/", http.StripPrefix("/hb", js.Handler())) // the browser client
	mux.HandleFunc("/presence", func(w http.ResponseWriter, r *http.Request) { streamPresence(w, r, hub) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		_ = hub.Shutdown(context.Background())
		return err
	}
	// http.Server.Shutdown stops accepting but leaves hijacked WebSockets
	// alone: the hub closes them (1001 with the reconnect window), waits
	// for every leave, and the presence streams then end.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _ = hs.Shutdown(sctx) }()
	err = hub.Shutdown(sctx)
	_ = hs.Close() // ends the presence streams
	<-errc
	printf("shut down\n")
	return err
}

// streamPresence sends who is online as Server-Sent Events: a snapshot,
// then every event after it, until the client or the hub goes.
func streamPresence(w http.ResponseWriter, r *http.Request, hub *presence.Hub) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	evs := make(chan presence.Event, 256)
	lost := make(chan struct{})
	var once sync.Once
	snap, cancel := hub.Subscribe(func(e presence.Event) {
		select {
		case evs <- e:
		default: // too slow: the page reconnects and starts from a snapshot
			once.Do(func() { close(lost) })
		}
	})
	defer cancel()
	users := make([]string, 0, len(snap.Users))
	for _, u := range snap.Users {
		users = append(users, u.User)
	}
	b, _ := json.Marshal(users)
	fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", b)
	fl.Flush()
	for {
		select {
		case e := <-evs:
			if e.Kind == presence.UserJoined || e.Kind == presence.UserLeft {
				fmt.Fprintf(w, "event: %s\ndata: %q\n\n", map[presence.EventKind]string{presence.UserJoined: "join", presence.UserLeft: "leave"}[e.Kind], e.User)
				fl.Flush()
			}
		case <-lost:
			return
		case <-r.Context().Done():
			return
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
