package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

// Short heartbeats, so the test sees several intervals and a conviction in
// seconds: both sides ping every 250 ms; dead after 2 s of silence.
const (
	ping   = 250 * time.Millisecond
	dead   = 2 * time.Second
	resume = time.Second
)

var hbFlags = []string{"-ping", ping.String(), "-dead", dead.String()}

// proc is a process of the built program whose stdout lines are kept.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on every new line
	exit  chan error
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), more: make(chan struct{}), exit: make(chan error, 1)}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.exit
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		p.exit <- p.cmd.Wait()
		close(p.exit)
	}()
	return p
}

// count is how many lines so far contain s.
func (p *proc) count(s string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// waitCount waits until n lines contain s, and returns the first of them.
func (p *proc) waitCount(t *testing.T, s string, n int, within time.Duration) string {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		p.mu.Lock()
		var hit []string
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				hit = append(hit, l)
			}
		}
		more := p.more
		all := strings.Join(p.lines, "\n")
		p.mu.Unlock()
		if len(hit) >= n {
			return hit[0]
		}
		select {
		case <-more:
		case <-timer.C:
			t.Fatalf("no %d lines with %q within %v; output:\n%s", n, s, within, all)
		}
	}
}

// scrape reads /metrics into name{labels} → value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for l := range strings.SplitSeq(string(b), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metric line %q", l)
		}
		m[l[:i]] = v
	}
	return m
}

// sumPrefix adds the values of every series whose name{labels} starts with p.
func sumPrefix(m map[string]float64, p string) float64 {
	s := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, p) {
			s += v
		}
	}
	return s
}

// poll scrapes until ok holds, failing after within.
func poll(t *testing.T, base string, within time.Duration, what string, ok func(m map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		m := scrape(t, base)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; metrics: users %v sessions %v alive %v suspect %v dead verdicts %v",
				what, within, m["heartbeat_online_users"], m["heartbeat_online_sessions"],
				m[`heartbeat_connections{state="alive"}`], m[`heartbeat_connections{state="suspect"}`],
				sumPrefix(m, `heartbeat_verdicts_total{reason=`))
		}
		<-tick.C
	}
}

// goClient is a client of this library: fsm.Run with a gorillaws.Dialer.
type goClient struct {
	d     *fsm.Driver
	conns chan *gorillaws.Conn
	mu    sync.Mutex
	chg   []fsm.Change
}

func dialGo(t *testing.T, ctx context.Context, url string) *goClient {
	t.Helper()
	g := &goClient{conns: make(chan *gorillaws.Conn, 4)}
	d, err := fsm.Run(ctx, fsm.DriverConfig{
		Config: fsm.Config{
			Detector: &policy.Fixed{SuspectAfter: dead / 2, DeadAfter: dead},
			Interval: &policy.Every{Period: ping},
			Backoff:  &policy.Constant{Delay: ping},
		},
		Dialer: &gorillaws.Dialer{URL: url, OnConnect: func(c *gorillaws.Conn) { g.conns <- c }},
		OnChange: func(c fsm.Change) {
			g.mu.Lock()
			g.chg = append(g.chg, c)
			g.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	g.d = d
	return g
}

func (g *goClient) changes() []fsm.Change {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]fsm.Change(nil), g.chg...)
}

func TestProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	bin := filepath.Join(t.TempDir(), "nbio")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	srv := start(t, bin, append([]string{"-addr", "127.0.0.1:0", "-resume", resume.String()}, hbFlags...)...)
	addr := strings.TrimPrefix(srv.waitCount(t, "listening on ", 1, 10*time.Second), "listening on ")
	base, ws := "http://"+addr, "ws://"+addr+"/ws"

	// 1. Three clients of this library, two raw gorilla ones, one child
	// process: six users.
	var gos []*goClient
	var gconns []*gorillaws.Conn
	for i := range 3 {
		g := dialGo(t, ctx, fmt.Sprintf("%s?user=go%d&session=s", ws, i))
		select {
		case c := <-g.conns:
			gconns = append(gconns, c)
		case <-ctx.Done():
			t.Fatal("go client did not connect")
		}
		gos = append(gos, g)
	}
	var raws []*websocket.Conn
	var rawEnds []chan error
	rawEchoes := make(chan string, 16)
	for i := range 2 {
		rd := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		c, _, err := rd.DialContext(ctx, fmt.Sprintf("%s?user=raw%d&session=s", ws, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		end := make(chan error, 1)
		go func() { // a reader: gorilla answers pings only inside it
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					end <- err
					return
				}
				rawEchoes <- string(msg)
			}
		}()
		raws = append(raws, c)
		rawEnds = append(rawEnds, end)
	}
	child := start(t, bin, append([]string{"-dial", ws + "?user=proc&session=p"}, hbFlags...)...)
	child.waitCount(t, "connecting → alive", 1, 10*time.Second)
	srv.waitCount(t, "connect proc/p", 1, 10*time.Second)

	// Echo.
	for i, c := range gconns {
		want := fmt.Sprintf("hello from go%d", i)
		if err := c.Write(ctx, websocket.TextMessage, []byte(want)); err != nil {
			t.Fatal(err)
		}
		rctx, rc := context.WithTimeout(ctx, 5*time.Second)
		_, got, err := c.Read(rctx)
		rc()
		if err != nil || string(got) != want {
			t.Fatalf("go%d echo: %q, %v; want %q", i, got, err, want)
		}
	}
	for i, c := range raws {
		want := fmt.Sprintf("hello from raw%d", i)
		if err := c.WriteMessage(websocket.TextMessage, []byte(want)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-rawEchoes:
			if got != want {
				t.Fatalf("raw%d echo %q, want %q", i, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("raw%d: no echo", i)
		}
	}

	// 2. Everyone stays alive across several dead timeouts' worth of
	// heartbeats: the metrics show six users, sessions and alive
	// connections on every scrape, and the server pongs keep coming.
	const n = 6
	first := scrape(t, base)
	stayUntil := time.Now().Add(2 * dead)
	m := poll(t, base, 4*dead, "six online for two dead timeouts", func(m map[string]float64) bool {
		if m["heartbeat_online_users"] != n || m["heartbeat_online_sessions"] != n ||
			m[`heartbeat_connections{state="alive"}`] != n || m[`heartbeat_connections{state="suspect"}`] != 0 ||
			sumPrefix(m, "heartbeat_verdicts_total") != 0 {
			t.Fatalf("not six alive: users %v sessions %v alive %v suspect %v verdicts %v",
				m["heartbeat_online_users"], m["heartbeat_online_sessions"], m[`heartbeat_connections{state="alive"}`],
				m[`heartbeat_connections{state="suspect"}`], sumPrefix(m, "heartbeat_verdicts_total"))
		}
		return time.Now().After(stayUntil)
	})
	// The server should ping every connection every 250 ms, but the hub
	// drops most of its pings to clients that ping at the same period
	// (TestServerPingsWhileClientPings in presence/nbiohandler): only ask
	// for one round trip per connection.
	rtts := m["heartbeat_rtt_seconds_count"] - first["heartbeat_rtt_seconds_count"]
	if rtts < n {
		t.Errorf("%v round trips measured over %v with %d clients pinged every %v", rtts, 2*dead, n, ping)
	}
	t.Logf("%v round trips measured over %v with %d clients", rtts, 2*dead, n)
	for i, g := range gos {
		if ch := g.changes(); len(ch) != 1 || ch[0].To != fsm.Alive {
			t.Errorf("go%d changes %v, want only connecting → alive", i, ch)
		}
	}
	if got := child.count("→"); got != 1 {
		t.Errorf("child changed state %d times, want once (alive)", got)
	}

	// A clean close (1000) leaves at once; a socket dropped without a
	// close waits the resume window.
	closed := time.Now()
	if err := gos[0].d.Close(); err != nil {
		t.Fatal(err)
	}
	poll(t, base, 2*time.Second, "go0 gone at once after a 1000", func(m map[string]float64) bool {
		return m["heartbeat_online_users"] == n-1 && m[`heartbeat_connections{state="alive"}`] == n-1
	})
	if e := time.Since(closed); e >= resume {
		t.Errorf("go0 left %v after closing with 1000, not at once (resume window %v); server said %q",
			e, resume, srv.waitCount(t, "disconnect go0/s", 1, time.Second))
	} else {
		t.Logf("go0 left %v after closing with 1000", e)
	}
	killed := time.Now()
	_ = raws[0].UnderlyingConn().Close()
	poll(t, base, 2*time.Second, "raw0's connection gone", func(m map[string]float64) bool {
		if m[`heartbeat_connections{state="alive"}`] == n-2 {
			if time.Since(killed) < resume && m["heartbeat_online_users"] != n-1 {
				t.Fatalf("raw0 left %v after its socket closed, before the %v resume window", time.Since(killed), resume)
			}
			return true
		}
		return false
	})
	poll(t, base, resume+3*time.Second, "raw0 left after the resume window", func(m map[string]float64) bool {
		if m["heartbeat_online_users"] == n-2 {
			if e := time.Since(killed); e < resume {
				t.Fatalf("raw0 left %v after its socket closed, before the %v resume window", e, resume)
			} else {
				t.Logf("raw0 left %v after its socket closed (resume window %v)", e, resume)
			}
			return true
		}
		return false
	})
	srv.waitCount(t, "disconnect raw0/s", 1, time.Second)

	// A request without a user is refused with 401 and counted.
	if _, resp, err := websocket.DefaultDialer.DialContext(ctx, ws, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without a user: %v, %v; want 401", resp, err)
	}
	poll(t, base, 2*time.Second, "refused dial counted", func(m map[string]float64) bool {
		return m[`heartbeat_refused_dials_total{status="401"}`] == 1
	})

	// A dropped socket redialled within the resume window is a redial,
	// not a leave: the user never goes offline.
	redials := scrape(t, base)["heartbeat_redials_total"]
	_ = raws[1].UnderlyingConn().Close()
	<-rawEnds[1]
	c, _, err := websocket.DefaultDialer.DialContext(ctx, ws+"?user=raw1&session=s", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	raws[1] = c
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				rawEnds[1] <- err
				return
			}
		}
	}()
	redialled := time.Now()
	poll(t, base, resume+3*time.Second, "raw1 still online past the resume window", func(m map[string]float64) bool {
		if m["heartbeat_online_users"] != n-2 {
			t.Fatalf("online users %v after raw1's redial, want %d", m["heartbeat_online_users"], n-2)
		}
		return time.Since(redialled) > 2*resume && m["heartbeat_redials_total"] == redials+1
	})
	srv.waitCount(t, "disconnect go0/s", 1, time.Second)

	// 3. A stopped client process is convicted after the dead timeout.
	before := scrape(t, base)
	if err := child.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	m = poll(t, base, dead+5*time.Second, "stopped client convicted", func(m map[string]float64) bool {
		return verdicts(m, "dead") > verdicts(before, "dead")
	})
	if e := time.Since(stopped); e < dead-2*ping {
		t.Errorf("convicted %v after SIGSTOP, before the dead timeout %v (less two pings of %v)", e, dead, ping)
	} else {
		t.Logf("stopped client convicted %v after SIGSTOP (dead timeout %v)", e, dead)
	}
	for k, v := range m {
		if strings.HasPrefix(k, "heartbeat_verdicts_total{") {
			t.Logf("%s %v", k, v)
		}
	}
	if got := m["heartbeat_suspect_to_dead_seconds_count"] - before["heartbeat_suspect_to_dead_seconds_count"]; got != 1 {
		t.Errorf("suspect-to-dead observations %v, want 1", got)
	}
	t.Log(srv.waitCount(t, "disconnect proc/p", 1, 5*time.Second))
	if err := child.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	srv.waitCount(t, "connect proc/p", 2, 10*time.Second)
	child.waitCount(t, "connecting → alive", 2, 10*time.Second)
	poll(t, base, 5*time.Second, "proc back online", func(m map[string]float64) bool {
		return m["heartbeat_online_users"] == n-2 && m[`heartbeat_connections{state="alive"}`] == n-2
	})

	// 4. SIGTERM: every client is told 1001, the server exits 0.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rawEnds[1]:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("raw1 ended with %v, want close 1001", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("raw1 not closed after SIGTERM")
	}
	select {
	case err := <-srv.exit:
		if err != nil {
			t.Errorf("server exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not exit within 10 s of SIGTERM")
	}
	for i, g := range gos[1:] {
		found := false
		for _, c := range g.changes() {
			if c.From == fsm.Alive && strings.Contains(c.String(), "peer left") {
				found = true
			}
		}
		if !found {
			t.Errorf("go%d changes %v, want alive → … (peer left)", i+1, g.changes())
		}
	}
	child.waitCount(t, "peer left", 1, 5*time.Second)
	if srv.count("shut down") != 1 {
		t.Error("server did not print its shutdown")
	}
}

// verdicts sums heartbeat_verdicts_total over reasons for one verdict.
func verdicts(m map[string]float64, verdict string) float64 {
	s := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "heartbeat_verdicts_total{") && strings.Contains(k, `verdict="`+verdict+`"`) {
			s += v
		}
	}
	return s
}
