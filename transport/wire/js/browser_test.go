package js_test

// Tests of heartbeat.js in headless Chromium, driven through chromedp,
// against a real Go server on loopback: gorillaws with the fsm server role
// (Watch), serving the embedded module and a test page. They skip when
// chromium is missing, except under CI=true, where they fail.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
	"github.com/heartbeat-go/heartbeat/transport/wire/js"
)

// The short timing the browser tests run at: the page's client and the
// server both expect a heartbeat every interval.
const (
	interval = time.Second
	probe    = 500 * time.Millisecond
)

// pageOpts are the client options the test page passes to connect.
var pageOpts = map[string]any{"interval": interval.Milliseconds(), "probe": probe.Milliseconds(), "stableAfter": 1000}

const testPage = `<!doctype html><meta charset=utf-8><title>heartbeat</title>
<script type=module>
import { connect } from "/hb/heartbeat.js";
const q = new URLSearchParams(location.search);
const opts = JSON.parse(q.get("opts") || "{}");
let live = 0, maxLive = 0, made = 0;
// CountingWS counts the sockets that are opening or open and not yet
// abandoned by the client (closed, or being closed).
class CountingWS extends WebSocket {
  constructor(u, p) {
    super(u, p);
    made++; live++; maxLive = Math.max(maxLive, live);
    let done = false;
    const dec = () => { if (!done) { done = true; live--; } };
    this.addEventListener("close", dec);
    const close = this.close.bind(this);
    this.close = (c, r) => { dec(); close(c, r); };
  }
}
const hb = window.hb = { changes: [], errors: [], closes: [], messages: 0 };
hb.stats = () => ({ state: c.state, live, maxLive, made, errors: hb.errors, closes: hb.closes,
  changes: hb.changes, token: c.resumeToken, protocol: c.protocol, now: performance.timeOrigin + performance.now() });
const ws = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?page=" + q.get("page");
const c = connect(ws, { ...opts, WebSocket: CountingWS });
hb.client = c;
c.on("change", (ch) => hb.changes.push({ from: ch.from, to: ch.to, reason: ch.reason, code: ch.code ?? 0, wall: performance.timeOrigin + ch.at }));
c.on("error", (e) => hb.errors.push(e.code));
c.on("close", (e) => hb.closes.push(e.code));
c.on("message", () => hb.messages++);
window.addEventListener("error", (e) => hb.errors.push("uncaught: " + e.message));
</script>`

type change struct {
	From, To, Reason string
	Code             int
	Wall             float64 // Unix ms
}

type pageStats struct {
	State    string
	Live     int
	MaxLive  int
	Made     int
	Errors   []string
	Closes   []int
	Changes  []change
	Token    string
	Protocol string
	Now      float64
}

// ---------------------------------------------------------------- server

// server is the Go side: a listener it can kill and restart on the same
// address, a per-connection freeze, and per-page socket counts.
type server struct {
	t       *testing.T
	addr    string
	advice  atomic.Int64 // ms
	lenient atomic.Bool  // a server detector that tolerates long silences
	raw     func(ws *websocket.Conn)

	mu      sync.Mutex
	ln      net.Listener
	hs      *http.Server
	conns   map[*gateConn]bool
	live    map[string]int
	maxLive map[string]int
	offline map[string][]string
	tokens  map[string][]string
	drivers map[*fsm.Driver]bool
	wg      sync.WaitGroup
}

func newServer(t *testing.T) *server {
	s := &server{t: t, conns: map[*gateConn]bool{}, live: map[string]int{}, maxLive: map[string]int{},
		offline: map[string][]string{}, tokens: map[string][]string{}, drivers: map[*fsm.Driver]bool{}}
	s.advice.Store(2000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/hb/", http.StripPrefix("/hb", js.Handler()))
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(testPage))
	})
	mux.HandleFunc("/ws", s.ws)
	return mux
}

func (s *server) serve(ln net.Listener) {
	hs := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.ln, s.hs = ln, hs
	s.mu.Unlock()
	gl := &gateListener{Listener: ln, s: s}
	s.wg.Go(func() { _ = hs.Serve(gl) })
}

func (s *server) ws(w http.ResponseWriter, r *http.Request) {
	page := r.URL.Query().Get("page")
	tok, err := js.ResumeToken(r)
	if err != nil || tok == "" {
		http.Error(w, "no resume token", http.StatusBadRequest)
		return
	}
	up := &websocket.Upgrader{Subprotocols: wire.Subprotocols()}
	ws, err := gorillaws.Upgrade(up, w, r, nil)
	if err != nil {
		return
	}
	if s.raw != nil {
		s.raw(ws)
		return
	}
	c, err := gorillaws.Wrap(ws, gorillaws.Options{ConnID: page})
	if err != nil {
		_ = ws.Close()
		return
	}
	var det policy.Detector = &policy.Adaptive{Interval: interval, Probe: probe}
	if s.lenient.Load() {
		det = &policy.Fixed{SuspectAfter: 20 * time.Second, DeadAfter: 30 * time.Second}
	}
	advice := time.Duration(s.advice.Load()) * time.Millisecond
	s.mu.Lock()
	s.tokens[page] = append(s.tokens[page], tok)
	s.live[page]++
	s.maxLive[page] = max(s.maxLive[page], s.live[page])
	s.mu.Unlock()
	d, err := c.Watch(context.Background(), fsm.DriverConfig{
		Config: fsm.Config{Detector: det, Interval: &policy.AdaptiveInterval{Min: probe, Max: interval, ProbeGrowth: 2}},
		Advice: func() time.Duration { return advice },
	}, fsm.Presence{
		Online: func() {},
		Offline: func(ch fsm.Change) {
			s.mu.Lock()
			s.offline[page] = append(s.offline[page], ch.Reason.String())
			s.mu.Unlock()
		},
	})
	if err != nil {
		s.mu.Lock()
		s.live[page]--
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	s.drivers[d] = true
	s.mu.Unlock()
	s.wg.Go(func() {
		for { // drain application messages
			if _, _, err := c.Read(context.Background()); err != nil {
				break
			}
		}
		<-c.Done()
		s.mu.Lock()
		s.live[page]--
		delete(s.drivers, d)
		s.mu.Unlock()
	})
}

// kill stops the server as a crash would: the listener and every
// connection closed at once, no close frame.
func (s *server) kill() {
	s.mu.Lock()
	hs := s.hs
	conns := make([]*gateConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	_ = hs.Close()
	for _, c := range conns {
		c.thaw()
		_ = c.Conn.Close()
	}
}

// restart listens again on the same address.
func (s *server) restart() {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("restart: %v", err)
	}
	s.serve(ln)
}

func (s *server) stop() {
	s.kill()
	s.mu.Lock()
	ds := make([]*fsm.Driver, 0, len(s.drivers))
	for d := range s.drivers {
		ds = append(ds, d)
	}
	s.mu.Unlock()
	for _, d := range ds {
		_ = d.Close()
	}
	s.wg.Wait()
}

// freezeAll makes every open connection stop answering, its socket left
// open: reads and writes block until the test ends.
func (s *server) freezeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.frozen.Store(true)
	}
}

func (s *server) counts(page string) (live, maxLive int, offline []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[page], s.maxLive[page], slices.Clone(s.offline[page])
}

func (s *server) url(page string, opts map[string]any) string {
	o, _ := json.Marshal(opts)
	return "http://" + s.addr + "/page?page=" + page + "&opts=" + url.QueryEscape(string(o))
}

type gateListener struct {
	net.Listener
	s *server
}

func (l *gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &gateConn{Conn: c, s: l.s, thawed: make(chan struct{})}
	l.s.mu.Lock()
	l.s.conns[g] = true
	l.s.mu.Unlock()
	return g, nil
}

// gateConn is a connection the test can freeze: while frozen, reads and
// writes wait and Close leaves the socket open, as a hung server would.
type gateConn struct {
	net.Conn
	s        *server
	frozen   atomic.Bool
	thawOnce sync.Once
	thawed   chan struct{}
}

func (g *gateConn) thaw() { g.thawOnce.Do(func() { close(g.thawed) }) }

func (g *gateConn) wait() {
	if g.frozen.Load() {
		<-g.thawed
	}
}

func (g *gateConn) Read(p []byte) (int, error) {
	g.wait()
	return g.Conn.Read(p)
}

func (g *gateConn) Write(p []byte) (int, error) {
	g.wait()
	return g.Conn.Write(p)
}

func (g *gateConn) Close() error {
	g.s.mu.Lock()
	delete(g.s.conns, g)
	g.s.mu.Unlock()
	if g.frozen.Load() {
		go func() { // a hung server does not close; the test's end does
			<-g.thawed
			_ = g.Conn.Close()
		}()
		return nil
	}
	return g.Conn.Close()
}

// ---------------------------------------------------------------- browser

// browser starts headless Chromium for the test and returns its context.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is missing; CI must install it (apt-get install chromium)")
		}
		t.Skip("chromium is missing")
	}
	if testing.Short() {
		t.Skip("browser test in -short mode")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		bcancel()
		acancel() // kills the browser and waits for it
		cancel()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

type tab struct {
	t   *testing.T
	ctx context.Context
}

// open opens url in a new tab of the browser.
func open(t *testing.T, bctx context.Context, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	return &tab{t: t, ctx: ctx}
}

func (p *tab) stats() pageStats {
	p.t.Helper()
	st, err := chromedp.Run(p.ctx, chromedp.Evaluate[pageStats](`hb.stats()`))
	if err != nil {
		p.t.Fatalf("reading the page: %v", err)
	}
	return st
}

// until polls the page every 20 ms until cond holds, or fails after d.
func (p *tab) until(d time.Duration, what string, cond func(pageStats) bool) pageStats {
	p.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st := p.stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not within %v; page: state %s, changes %+v, errors %v", what, d, st.State, st.Changes, st.Errors)
		}
		select {
		case <-tick.C:
		case <-p.ctx.Done():
			p.t.Fatalf("%s: %v", what, p.ctx.Err())
		}
	}
}

func isAlive(st pageStats) bool { return st.State == "alive" }

// wait lets real time pass: the browser runs on the wall clock.
func wait(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

func nowMs() float64 { return float64(time.Now().UnixMicro()) / 1000 }

func opts(extra map[string]any) map[string]any {
	o := map[string]any{}
	for k, v := range pageOpts {
		o[k] = v
	}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

func quantiles(xs []float64) string {
	if len(xs) == 0 {
		return "none"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(f float64) float64 { return s[min(int(f*float64(len(s))), len(s)-1)] }
	return fmt.Sprintf("n=%d min=%.0f p25=%.0f p50=%.0f p75=%.0f p90=%.0f max=%.0f ms", len(s), s[0], q(0.25), q(0.5), q(0.75), q(0.9), s[len(s)-1])
}

// ---------------------------------------------------------------- tests

// A healthy page stays alive, and the server never declares it offline.
func TestBrowserHealthyStaysAlive(t *testing.T) {
	bctx := browser(t, 60*time.Second)
	s := newServer(t)
	p := open(t, bctx, s.url("h", opts(nil)))
	p.until(5*time.Second, "alive", isAlive)
	run := 15 * time.Second
	wait(p.ctx, run)
	st := p.stats()
	_, _, off := s.counts("h")
	t.Logf("healthy: %v run at interval %v: page changes %d (%+v), server offline events %d, errors %v, subprotocol %s",
		run, interval, len(st.Changes), st.Changes, len(off), st.Errors, st.Protocol)
	if st.State != "alive" || len(st.Changes) != 1 || len(off) != 0 || len(st.Errors) != 0 {
		t.Fatalf("false verdict: page %s %+v, server offline %v, errors %v", st.State, st.Changes, off, st.Errors)
	}
	if st.Protocol != wire.SubprotocolBinary {
		t.Errorf("negotiated %q, want the page's first offer %q", st.Protocol, wire.SubprotocolBinary)
	}
}

// A page that offers JSON first gets JSON, and stays alive on it.
func TestBrowserOffersJSONFirst(t *testing.T) {
	bctx := browser(t, 30*time.Second)
	s := newServer(t)
	p := open(t, bctx, s.url("j", opts(map[string]any{"protocols": []string{wire.SubprotocolJSON, wire.SubprotocolBinary}})))
	st := p.until(5*time.Second, "alive", isAlive)
	if st.Protocol != wire.SubprotocolJSON {
		t.Fatalf("negotiated %q, want %q", st.Protocol, wire.SubprotocolJSON)
	}
	wait(p.ctx, 5*interval)
	if st := p.stats(); st.State != "alive" || len(st.Changes) != 1 {
		t.Fatalf("page %s %+v", st.State, st.Changes)
	}
}
