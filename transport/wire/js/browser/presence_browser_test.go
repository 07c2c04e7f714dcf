package browser_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/wire/js"
)

// presenceServer serves the test page and the module, and runs its
// WebSockets through presence.Handler, the session being the page's
// resume token.
type presenceServer struct {
	addr string
	hub  *presence.Hub
	mu   sync.Mutex
	evs  []presence.Event
}

func newPresenceServer(t testing.TB) *presenceServer {
	t.Helper()
	s := &presenceServer{}
	hub, err := presence.NewHub(presence.HubConfig{OnEvent: func(e presence.Event) {
		s.mu.Lock()
		s.evs = append(s.evs, e)
		s.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.hub = hub
	ws, err := presence.NewHandler(presence.HandlerConfig{Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			tok, err := js.SessionID(r)
			if err != nil || tok == "" {
				return presence.Identity{}, errors.New("no resume token")
			}
			return presence.Identity{User: r.URL.Query().Get("page"), Session: tok}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hb/", http.StripPrefix("/hb", js.Handler()))
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(testPage))
	})
	mux.Handle("/ws", ws)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = hub.Shutdown(ctx)
		_ = hs.Close()
		<-done
	})
	return s
}

func (s *presenceServer) url(page string, opts map[string]any) string {
	o, _ := json.Marshal(opts)
	return "http://" + s.addr + "/page?page=" + page + "&opts=" + url.QueryEscape(string(o))
}

func (s *presenceServer) count(user string, k presence.EventKind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.evs {
		if e.User == user && e.Kind == k {
			n++
		}
	}
	return n
}

// testReloadsKeepPresence: a page reloaded 100 times, each reload within
// the hub's resume window, is one session that never leaves — the page's
// resume token names the session, and the browser's close on unload (1001)
// or the client's own (4001) is a loss the session outlives.
func testReloadsKeepPresence(t testing.TB, bctx context.Context) {
	const reloads = 100
	s := newPresenceServer(t)
	p := open(t, bctx, s.url("reloader", opts(nil)))
	p.until(5*time.Second, "alive", isAlive)
	var back []float64
	for i := range reloads {
		start := nowMs()
		if err := chromedp.Do(p.ctx, chromedp.Reload()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		st := p.until(5*time.Second, "alive after reload", isAlive)
		back = append(back, lastAlive(st, start)-start)
	}
	// Past the resume window (10 s for a small hub): a leave would show.
	wait(p.ctx, presence.MinResumeWindow+2*time.Second)
	joins, leaves := s.count("reloader", presence.SessionJoined), s.count("reloader", presence.SessionLeft)
	t.Logf("reloads with presence: %d reloads within the resume window, %d session joins, %d leaves; reload to alive %s",
		reloads, joins, leaves, quantiles(back))
	if !s.hub.Online("reloader") {
		t.Fatal("the reloaded page is offline")
	}
	// The bar: no leave in at least 99 of 100 reloads.
	if leaves > reloads/100 || joins != leaves+1 {
		t.Fatalf("%d reloads: %d joins and %d leaves of the page's session", reloads, joins, leaves)
	}
}
