package browser_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/wire/js"
)

// serve is the server of docs/presence.md, verbatim.
func serve(ctx context.Context, ln net.Listener, onEvent func(presence.Event)) error {
	hub, err := presence.NewHub(presence.HubConfig{
		OnEvent: onEvent, // join, leave, update: in order, each once
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	ws, err := presence.NewHandler(presence.HandlerConfig{
		Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			user, ok := userFromCookie(r) // your authentication
			if !ok {
				return presence.Identity{}, errors.New("not signed in")
			}
			// heartbeat.js sends the tab's resume token on every dial: a
			// reload keeps the tab's session, a second tab gets its own.
			// The session is a digest of it, so events, snapshots and logs
			// never show the token that resumes it.
			session, err := js.SessionID(r)
			if err != nil || session == "" {
				return presence.Identity{}, &presence.StatusError{Code: http.StatusBadRequest, Err: errors.New("no resume token")}
			}
			return presence.Identity{User: user, Session: session}, nil
		},
		OnMessage: func(c *presence.Client, typ int, msg []byte) {
			// A write with a deadline: a peer that does not read holds
			// this connection's reader for at most that long.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Write(ctx, typ, msg) // echo
		},
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ws, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	// http.Server.Shutdown leaves hijacked WebSockets open: the hub closes
	// them with 1001 and the reconnect window, and waits for the leaves.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return hub.Shutdown(sctx)
}

func userFromCookie(r *http.Request) (string, bool) {
	c, err := r.Cookie("user")
	if err != nil {
		return "", false
	}
	return c.Value, true
}

// testDocsPresenceTabs runs docs/presence.md's server, as written, behind
// the shipped heartbeat.js in two tabs of one signed-in user: two
// sessions, and a reload of one within the resume window is no leave.
func testDocsPresenceTabs(t testing.TB, bctx context.Context) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The docs' server answers WebSockets alone; the page and the module
	// come from the same address (gorilla refuses another origin), so the
	// listener hands each connection to one or the other by its first
	// request.
	wsLn, pageLn := newChanListener(ln.Addr()), newChanListener(ln.Addr())
	go splitByPath(ln, "GET /ws", wsLn, pageLn)
	mux := http.NewServeMux()
	mux.Handle("/hb/", http.StripPrefix("/hb", js.Handler()))
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "user", Value: "ann", Path: "/"}) // signed in
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(testPage))
	})
	pages := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	pagesDone := make(chan struct{})
	go func() { defer close(pagesDone); _ = pages.Serve(pageLn) }()

	var mu sync.Mutex
	var evs []presence.Event
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, wsLn, func(e presence.Event) {
			mu.Lock()
			evs = append(evs, e)
			mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("the docs' server shut down with %v", err)
		}
		_ = pages.Close()
		_ = ln.Close()
		<-pagesDone
	})
	events := func() []presence.Event {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(evs)
	}

	url := "http://" + ln.Addr().String() + "/page?page=docs&opts=%7B%7D"
	a := open(t, bctx, url)
	b := open(t, bctx, url)
	ta := a.until(10*time.Second, "tab A alive", isAlive).Token
	tb := b.until(10*time.Second, "tab B alive", isAlive).Token
	if ta == "" || ta == tb {
		t.Fatalf("resume tokens %q and %q: want two, distinct", ta, tb)
	}
	start := nowMs()
	if err := chromedp.Do(a.ctx, chromedp.Reload()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if st := a.until(10*time.Second, "tab A alive after reload", func(st pageStats) bool { return isAlive(st) && lastAlive(st, start) > 0 }); st.Token != ta {
		t.Fatalf("tab A's token after the reload: %q, was %q", st.Token, ta)
	}
	// Past the resume window: a reload taken for a leave would show now.
	wait(a.ctx, presence.MinResumeWindow+2*time.Second)

	var sessions []string
	for _, e := range events() {
		switch e.Kind {
		case presence.SessionJoined:
			sessions = append(sessions, e.Session)
		case presence.SessionLeft, presence.UserLeft:
			t.Errorf("%v: a leave while both tabs stayed", e)
		}
	}
	slices.Sort(sessions)
	want := []string{js.SessionIDOf(ta), js.SessionIDOf(tb)} // the sessions are the tokens' digests
	slices.Sort(want)
	for _, e := range events() {
		if strings.Contains(e.String(), ta) || strings.Contains(e.String(), tb) {
			t.Errorf("event %v shows a tab's resume token", e)
		}
	}
	t.Logf("docs' server, two tabs and a reload: sessions joined %v, events %v", sessions, events())
	if !slices.Equal(sessions, want) {
		t.Fatalf("sessions joined %v, want the two tabs' %v", sessions, want)
	}
}

// chanListener is a net.Listener fed by splitByPath.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

// peekedConn is a connection whose first bytes were read ahead.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// splitByPath hands each connection of ln whose request starts with prefix
// to match, the others to rest, until ln is closed; then it closes both.
func splitByPath(ln net.Listener, prefix string, match, rest *chanListener) {
	defer match.Close()
	defer rest.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			r := bufio.NewReader(c)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			head, err := r.Peek(len(prefix))
			_ = c.SetReadDeadline(time.Time{})
			to := rest
			if err == nil && string(head) == prefix {
				to = match
			}
			select {
			case to.ch <- peekedConn{c, r}:
			case <-to.done:
				_ = c.Close()
			}
		}()
	}
}
