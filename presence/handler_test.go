package presence_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// events collects a hub's events and lets a test wait for one.
type events struct {
	mu   sync.Mutex
	all  []presence.Event
	more chan struct{}
}

func newEvents() *events { return &events{more: make(chan struct{}, 1)} }

func (e *events) add(ev presence.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	select {
	case e.more <- struct{}{}:
	default:
	}
}

// wait returns once an event of kind k for user has arrived, or fails the
// test after d.
func (e *events) wait(t *testing.T, k presence.EventKind, user string, d time.Duration) presence.Event {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		for _, ev := range e.all {
			if ev.Kind == k && ev.User == user {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		select {
		case <-e.more:
		case <-deadline.C:
			t.Fatalf("no %v for %s within %v", k, user, d)
		}
	}
}

// TestHandlerEndToEnd runs the Handler as docs/presence.md shows it, on a
// real loopback socket, against a client of this library.
func TestHandlerEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t)
	evs := newEvents()
	var logs bytes.Buffer
	var logMu sync.Mutex
	hub, err := presence.NewHub(presence.HubConfig{
		OnEvent: evs.add,
		Logger:  slog.New(slog.NewTextHandler(syncWriter{&logs, &logMu}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	echoed := make(chan string, 1)
	h, err := presence.NewHandler(presence.HandlerConfig{
		Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			user := r.URL.Query().Get("user")
			if user == "" {
				return presence.Identity{}, errors.New("who are you?")
			}
			return presence.Identity{User: user, Session: r.URL.Query().Get("session")}, nil
		},
		OnMessage: func(c *presence.Client, typ int, msg []byte) {
			_ = c.Write(context.Background(), typ, msg) // echo
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	// Refused without a user: 401, and no presence.
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without a user: %v, %v", err, resp)
	}
	// A user without a session is Authenticate's bug: 500, logged, no
	// presence, rather than every tab folded into one session.
	_, resp, err = websocket.DefaultDialer.Dial(url+"?user=bob", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("dial with an empty session: %v, %v", err, resp)
	}
	logMu.Lock()
	refusedLog := strings.Contains(logs.String(), "level=ERROR msg=refused") && strings.Contains(logs.String(), presence.ErrIdentity.Error())
	logMu.Unlock()
	if !refusedLog || hub.Online("bob") {
		t.Fatalf("empty session: logged %v, online %v; logs:\n%s", refusedLog, hub.Online("bob"), logs.String())
	}

	for _, format := range []string{"control", wire.SubprotocolJSON} {
		t.Run(format, func(t *testing.T) {
			dialer := &websocket.Dialer{}
			if format != "control" {
				dialer.Subprotocols = []string{format}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			connected := make(chan *gorillaws.Conn, 4)
			d, err := fsm.Run(ctx, fsm.DriverConfig{
				Dialer: &gorillaws.Dialer{URL: url + "?user=ann-" + format + "&session=tab", Dialer: dialer,
					OnConnect: func(c *gorillaws.Conn) { connected <- c }},
			})
			if err != nil {
				t.Fatal(err)
			}
			evs.wait(t, presence.SessionJoined, "ann-"+format, 10*time.Second)
			if !hub.Online("ann-" + format) {
				t.Fatal("not online after the join event")
			}
			c := <-connected
			if err := c.Write(ctx, websocket.TextMessage, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			go func() {
				_, msg, err := c.Read(ctx)
				if err == nil {
					echoed <- string(msg)
				}
			}()
			if got := <-echoed; got != "hello" {
				t.Fatalf("echo: %q", got)
			}
			closedAt := time.Now()
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			<-d.Done()
			left := evs.wait(t, presence.UserLeft, "ann-"+format, 10*time.Second)
			if left.Reason != presence.LeaveClosed {
				t.Errorf("leave reason %v, want closed", left.Reason)
			}
			t.Logf("%s: leave %v after the client's close", format, left.At.Sub(closedAt))
		})
	}
	if err := hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	for _, want := range []string{"msg=online", "user=ann-control", "msg=offline", "msg=refused"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestHandlerShutdownSendsGoingAwayWithAdvice: a client of the
// application-level format reads the Close message with the window, then
// close code 1001.
func TestHandlerShutdownSendsGoingAwayWithAdvice(t *testing.T) {
	defer goleak.VerifyNone(t)
	evs := newEvents()
	hub, err := presence.NewHub(presence.HubConfig{OnEvent: evs.add, AcceptRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	disconnects := make(chan error, 4)
	h, err := presence.NewHandler(presence.HandlerConfig{Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			return presence.Identity{User: "bob", Session: "s"}, nil
		},
		// With OnDisconnect set the note must still precede the close.
		OnDisconnect: func(c *presence.Client, err error) { disconnects <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dialer := &websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON}}
	ws, _, err := dialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	evs.wait(t, presence.UserJoined, "bob", 10*time.Second) // the client's first message makes it alive
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- hub.Shutdown(ctx)
	}()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var note *wire.Message
	var closeErr *websocket.CloseError
	for {
		_, msg, err := ws.ReadMessage()
		if errors.As(err, &closeErr) {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if m, err := wire.Decode(msg); err == nil && m.Type == wire.Close {
			note = &m
		}
	}
	if note == nil || note.Window != time.Second {
		t.Errorf("close note %+v, want a window of 1 s (1 connection at 1/s)", note)
	}
	if closeErr.Code != websocket.CloseGoingAway {
		t.Errorf("close code %d, want 1001", closeErr.Code)
	}
	_ = ws.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evs.wait(t, presence.UserLeft, "bob", time.Second)
	if err := <-disconnects; !errors.Is(err, presence.ErrShutdown) || len(disconnects) != 0 {
		t.Errorf("OnDisconnect: %v (%d more calls), want one with ErrShutdown", err, len(disconnects))
	}
}

type syncWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestHandlerOneGoroutinePerConnection: the handler returns once the hub
// watches the connection; what remains per connection is the adapter's
// reader. OnMessage sees each message, OnDisconnect each end, once.
func TestHandlerOneGoroutinePerConnection(t *testing.T) {
	defer goleak.VerifyNone(t)
	const n = 50
	var mu sync.Mutex
	messages, ends := 0, 0
	ended := make(chan struct{}, n)
	hub, err := presence.NewHub(presence.HubConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := presence.NewHandler(presence.HandlerConfig{Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			return presence.Identity{User: r.URL.Query().Get("u"), Session: "s"}, nil
		},
		OnMessage: func(c *presence.Client, typ int, msg []byte) {
			mu.Lock()
			messages++
			mu.Unlock()
		},
		OnDisconnect: func(c *presence.Client, err error) {
			mu.Lock()
			ends++
			mu.Unlock()
			ended <- struct{}{}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	base := runtime.NumGoroutine()
	var clients []*websocket.Conn
	for i := range n {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?u="+fmt.Sprint("u", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, ws)
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for hub.Stats().Users < n && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if st := hub.Stats(); st.Users != n {
		t.Fatalf("%d users online, want %d", st.Users, n)
	}
	// Client-side gorilla connections that nobody reads start no goroutine;
	// the server's per connection are what is left.
	per := float64(runtime.NumGoroutine()-base) / n
	t.Logf("%.2f goroutines per connection", per)
	if per > 1.2 {
		t.Errorf("%.2f goroutines per watched connection, want about 1 (the adapter's reader)", per)
	}
	for _, ws := range clients {
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
		_ = ws.Close()
	}
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case <-ended:
		case <-timeout:
			t.Fatalf("OnDisconnect called %d times, want %d", ends, n)
		}
	}
	mu.Lock()
	if messages != n || ends != n {
		t.Errorf("OnMessage saw %d messages, OnDisconnect %d ends; want %d each", messages, ends, n)
	}
	mu.Unlock()
	if err := hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
