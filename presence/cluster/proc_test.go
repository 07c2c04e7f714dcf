package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/faultproxy"
)

// The fault tests run each node as its own process: this test binary,
// re-executed with HB_CLUSTER_CHILD set. A child reads commands on stdin
// ("join user session", "leave user session", "snap") and writes lines on
// stdout: "ready", "ev <unix ns> <kind> <user> <session>" for each cluster
// event, "snap <session>..." on request, "fenced <unix ns>" when it counts
// its lease lost. It exits when stdin closes.

const childEnv = "HB_CLUSTER_CHILD"

// nodeMainIfChild runs a node process when the test binary is re-executed
// as one; it reports whether it did.
func nodeMainIfChild() bool {
	if os.Getenv(childEnv) == "" {
		return false
	}
	os.Exit(childMain())
	return true
}

func childMain() int {
	ttl, _ := time.ParseDuration(os.Getenv("HB_TTL"))
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	say := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = out.WriteString(s + "\n")
		_ = out.Flush()
	}
	log := slog.New(&lineHandler{say: say})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	n, err := New(ctx, Config{Addr: os.Getenv("HB_ADDR"), NodeID: os.Getenv("HB_ID"), LeaseTTL: ttl, Logger: log})
	cancel()
	if err != nil {
		say("error " + err.Error())
		return 2
	}
	snap, _ := n.Subscribe(func(e presence.Event) {
		say(fmt.Sprintf("ev %d %d %s %s", e.At.UnixNano(), e.Kind, e.User, e.Session))
	})
	say("init " + strings.Join(snapKeys(snap), " "))
	say("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 3 && f[0] == "join":
			join(n, f[1], f[2], nil)
		case len(f) == 3 && f[0] == "leave":
			leave(n, f[1], f[2])
		case len(f) == 1 && f[0] == "snap":
			say("snap " + strings.Join(snapKeys(n.Snapshot()), " "))
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.Close(ctx)
	return 0
}

// lineHandler turns the node's "lease lost" warning into a "fenced" line.
type lineHandler struct{ say func(string) }

func (h *lineHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "cluster: lease lost") {
		h.say(fmt.Sprintf("fenced %d", time.Now().UnixNano()))
	}
	return nil
}
func (h *lineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lineHandler) WithGroup(string) slog.Handler      { return h }

// proc is a node process, seen from the test.
type proc struct {
	t      testing.TB
	id     string
	cmd    *exec.Cmd
	in     io.WriteCloser
	m      *model
	snaps  chan []string
	ready  chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	fenced []time.Time
	evAt   []time.Time // each event's time in the child, as m.evs
	truth  map[string]bool
}

func startProc(t testing.TB, addr, id string, ttl time.Duration) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "HB_ADDR="+addr, "HB_ID="+id, "HB_TTL="+ttl.String())
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, id: id, cmd: cmd, in: in, m: newModel(t, id), snaps: make(chan []string, 1),
		ready: make(chan struct{}), done: make(chan struct{}), truth: map[string]bool{}}
	go p.read(outR)
	t.Cleanup(p.kill)
	select {
	case <-p.ready:
	case <-p.done:
		t.Fatalf("node %s exited at start", id)
	case <-time.After(3*ttl + 10*time.Second):
		t.Fatalf("node %s not ready", id)
	}
	return p
}

func (p *proc) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "ready":
			close(p.ready)
		case "init":
			p.m.load(presence.Snapshot{Users: usersOf(f[1:])})
		case "snap":
			p.snaps <- f[1:]
		case "fenced":
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			p.mu.Lock()
			p.fenced = append(p.fenced, time.Unix(0, ns))
			p.mu.Unlock()
		case "ev":
			if len(f) < 4 {
				continue
			}
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			k, _ := strconv.Atoi(f[2])
			e := presence.Event{Kind: presence.EventKind(k), User: f[3]}
			if len(f) > 4 {
				e.Session = f[4]
			}
			p.mu.Lock()
			p.evAt = append(p.evAt, time.Unix(0, ns))
			p.m.apply(e)
			p.mu.Unlock()
		case "error":
			p.t.Errorf("node %s: %s", p.id, strings.Join(f[1:], " "))
		}
	}
}

func usersOf(keys []string) []presence.UserInfo {
	by := map[string][]presence.SessionInfo{}
	for _, k := range keys {
		u, s, _ := strings.Cut(k, "/")
		by[u] = append(by[u], presence.SessionInfo{Session: s})
	}
	var out []presence.UserInfo
	for u, ss := range by {
		out = append(out, presence.UserInfo{User: u, Sessions: ss})
	}
	return out
}

func (p *proc) send(line string) {
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("node %s: %v", p.id, err)
	}
}

func (p *proc) join(user, session string) {
	p.truth[user+"/"+session] = true
	p.send("join " + user + " " + session)
}

func (p *proc) snapshot() []string {
	p.send("snap")
	select {
	case s := <-p.snaps:
		return s
	case <-time.After(5 * time.Second):
		p.t.Fatalf("node %s: no snapshot", p.id)
		return nil
	}
}

func (p *proc) signal(s syscall.Signal) {
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatalf("node %s: %v: %v", p.id, s, err)
	}
}

// kill ends the process (SIGKILL) and waits for it.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	_ = p.in.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("node %s: output not closed after kill", p.id)
	}
	_ = p.cmd.Wait()
}

// events returns the event count, for marks.
func (p *proc) events() int { return p.m.len() }

// truthOf is the union of the live processes' sessions, sorted.
func truthOf(ps ...*proc) []string {
	var out []string
	for _, p := range ps {
		for k := range p.truth {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// converge waits until every observer's events and snapshot equal truth.
func converge(t testing.TB, d time.Duration, truth []string, obs ...*proc) time.Duration {
	t.Helper()
	took := waitFor(t, d, func() bool {
		for _, p := range obs {
			if !slices.Equal(p.m.online(), truth) {
				return false
			}
		}
		return true
	}, func() string {
		s := fmt.Sprintf("truth (%d) %v", len(truth), truth)
		for _, p := range obs {
			s += fmt.Sprintf("\n%s events say (%d) %v", p.id, len(p.m.online()), p.m.online())
		}
		return s
	})
	for _, p := range obs {
		if s := p.snapshot(); !slices.Equal(s, truth) {
			t.Fatalf("%s: snapshot %v, events and truth %v", p.id, s, truth)
		}
		p.m.check()
	}
	return took
}

// leaveTimes returns, for the sessions in keys, when observer p's events
// say each left (child clock), from event index from.
func (p *proc) leaveTimes(from int, keys map[string]bool) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Time
	for i, e := range p.m.evs[from:] {
		if e.Kind == presence.SessionLeft && keys[e.User+"/"+e.Session] {
			out = append(out, p.evAt[from+i])
		}
	}
	return out
}

// joinsOf counts p's SessionJoined events for keys from event index from.
func (p *proc) joinsOf(from int, keys map[string]bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := 0
	for _, e := range p.m.evs[from:] {
		if e.Kind == presence.SessionJoined && keys[e.User+"/"+e.Session] {
			c++
		}
	}
	return c
}

// TestProcessFaults runs three node processes and one redis-server and
// breaks them: SIGKILL a node, SIGSTOP one past its lease, restart Redis
// empty, restart the killed node under its ID. After each, every surviving
// node's events and snapshot equal the truth (the sessions of the live
// processes), and its events account for each change once.
func TestProcessFaults(t *testing.T) {
	r := startRedis(t)
	ttl, renew := testTTL, testRenew
	bound := ttl + renew + 2*time.Second // + round trips and a busy machine
	n1 := startProc(t, r.addr(), "n1", ttl)
	n2 := startProc(t, r.addr(), "n2", ttl)
	n3 := startProc(t, r.addr(), "n3", ttl)
	for i := range 30 {
		n1.join(fmt.Sprint("u", i), "a")
		n2.join(fmt.Sprint("u", i), "b")
		n3.join(fmt.Sprint("u", i+15), "c")
	}
	converge(t, 5*time.Second, truthOf(n1, n2, n3), n1, n2, n3)

	t.Log("SIGKILL n3")
	mark1, mark2 := n1.events(), n2.events()
	killed := time.Now()
	n3.kill()
	took := converge(t, bound, truthOf(n1, n2), n1, n2)
	t.Logf("n3's sessions gone on n1 and n2 %v after SIGKILL (lease %v, renew %v)", took, ttl, renew)
	for _, p := range []*proc{n1, n2} {
		mark := map[*proc]int{n1: mark1, n2: mark2}[p]
		if l := p.leaveTimes(mark, n3.truth); len(l) != len(n3.truth) {
			t.Errorf("%s: %d leaves of n3's %d sessions", p.id, len(l), len(n3.truth))
		} else if last := slices.MaxFunc(l, func(a, b time.Time) int { return a.Compare(b) }); last.Sub(killed) > bound {
			t.Errorf("%s: last leave %v after the kill", p.id, last.Sub(killed))
		}
	}

	t.Log("SIGSTOP n2 past its lease, then SIGCONT")
	mark1 = n1.events()
	n2.signal(syscall.SIGSTOP)
	converge(t, bound, truthOf(n1), n1) // n2's sessions leave on n1
	n2.signal(syscall.SIGCONT)
	converge(t, bound, truthOf(n1, n2), n1, n2)
	if j := n1.joinsOf(mark1, n2.truth); j != len(n2.truth) {
		t.Errorf("n1: %d rejoins of n2's %d sessions, want one each", j, len(n2.truth))
	}
	n2.mu.Lock()
	fenced := len(n2.fenced)
	n2.mu.Unlock()
	if fenced == 0 {
		t.Error("n2 did not count its lease lost after SIGSTOP")
	}

	t.Log("restart redis-server: its data is gone")
	mark1, mark2 = n1.events(), n2.events()
	r.restart()
	restarted := time.Now()
	rc := r.client(t)
	back := waitFor(t, bound, func() bool {
		for _, p := range []*proc{n1, n2} {
			k := nodeKeys(DefaultPrefix, p.id)
			if h, _ := rc.HLen(context.Background(), k.sess).Result(); h != int64(len(p.truth)) || rc.Exists(context.Background(), k.lease).Val() != 1 {
				return false
			}
		}
		return true
	}, func() string { return "sessions not back in Redis" })
	converge(t, bound, truthOf(n1, n2), n1, n2)
	flaps := n1.m.count(presence.SessionLeft, mark1) + n2.m.count(presence.SessionLeft, mark2)
	t.Logf("after the Redis restart: every session back in Redis %v after it accepted connections (renew %v), %d flaps; views equal the truth %v after", back, renew, flaps, time.Since(restarted))
	if flaps != 0 {
		t.Errorf("%d sessions left and rejoined across the Redis restart, want 0", flaps)
	}

	t.Log("n3 restarted under its ID with other sessions: the old ones stay gone")
	mark1 = n1.events()
	n3b := startProc(t, r.addr(), "n3", ttl)
	n3b.join("fresh", "c")
	converge(t, bound, truthOf(n1, n2, n3b), n1, n2, n3b)
	if j := n1.joinsOf(mark1, n3.truth); j != 0 {
		t.Errorf("n1: %d of the killed n3's sessions came back", j)
	}
}

// TestProcessRedisLinkFaults puts a fault proxy between node n1 and Redis:
// latency, a link that stops answering past the lease, a link that resets.
// n1 counts its lease lost before n2 drops its sessions, and re-registers
// them when the link is back: n2 sees one leave and one join per session.
func TestProcessRedisLinkFaults(t *testing.T) {
	r := startRedis(t)
	ttl, renew := testTTL, testRenew
	bound := ttl + renew + 2*time.Second
	px := newProxy(t, r.addr())
	n1 := startProc(t, px.p.Addr(), "n1", ttl)
	n2 := startProc(t, r.addr(), "n2", ttl)
	for i := range 20 {
		n1.join(fmt.Sprint("u", i), "a")
		n2.join(fmt.Sprint("u", i+10), "b")
	}
	converge(t, 5*time.Second, truthOf(n1, n2), n1, n2)

	t.Log("latency 100 ms ± 50 ms on n1's link, with changes flowing")
	mark1, mark2 := n1.events(), n2.events()
	undo := px.set(faultproxy.Latency{Delay: 100 * time.Millisecond, Jitter: 50 * time.Millisecond})
	for i := range 10 {
		n1.join(fmt.Sprint("v", i), "a")
		n2.join(fmt.Sprint("v", i), "b")
	}
	converge(t, bound, truthOf(n1, n2), n1, n2)
	undo()
	if f := n1.m.count(presence.SessionLeft, mark1) + n2.m.count(presence.SessionLeft, mark2); f != 0 {
		t.Errorf("%d leaves under latency, want 0", f)
	}

	t.Log("n1's link stops answering (a blackhole) past the lease")
	mark2 = n2.events()
	undo = px.set(faultproxy.Blackhole{})
	converge(t, bound, truthOf(n2), n2) // n1's sessions leave on n2
	// and n1, cut off, no longer vouches for n2's: no ghosts either side.
	converge(t, 2*bound, truthOf(n1), n1)
	n2.mu.Lock()
	firstLeave := n2.evAt[mark2]
	n2.mu.Unlock()
	n1.mu.Lock()
	fenced := slices.Clone(n1.fenced)
	n1.mu.Unlock()
	if len(fenced) == 0 || !fenced[0].Before(firstLeave) {
		t.Errorf("n1 fenced at %v, n2's first leave of its sessions at %v: n1 must know first", fenced, firstLeave)
	} else {
		t.Logf("n1 counted its lease lost %v before n2's first leave", firstLeave.Sub(fenced[0]))
	}
	undo()
	converge(t, bound, truthOf(n1, n2), n1, n2)
	if j := n2.joinsOf(mark2, n1.truth); j != len(n1.truth) {
		t.Errorf("n2: %d rejoins of n1's %d sessions, want one each", j, len(n1.truth))
	}

	t.Log("n1's link resets every connection for a while")
	mark1, mark2 = n1.events(), n2.events()
	undo = px.set(faultproxy.Reset{})
	n2.join("w", "b")
	converge(t, bound, truthOf(n1, n2), n2)
	// Hold the resets until n1 has missed a renewal (its lease ran down
	// past one period), but not its own deadline.
	rc, lease := r.client(t), nodeKeys(DefaultPrefix, "n1").lease
	waitFor(t, bound, func() bool {
		d, err := rc.PTTL(context.Background(), lease).Result()
		return err == nil && d > 0 && d < ttl-renew-100*time.Millisecond
	}, func() string { return "n1 kept renewing through the resets" })
	undo()
	converge(t, bound, truthOf(n1, n2), n1, n2)
	t.Logf("resets: %d leaves on n1, %d on n2", n1.m.count(presence.SessionLeft, mark1), n2.m.count(presence.SessionLeft, mark2))
}

// proxy is a fault proxy on 127.0.0.1 in front of Redis.
type proxy struct {
	t testing.TB
	p *faultproxy.Proxy
}

func newProxy(t testing.TB, upstream string) *proxy {
	p, err := faultproxy.New(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &proxy{t: t, p: p}
}

// set puts f on both directions; the function returned heals the link.
func (p *proxy) set(f faultproxy.Fault) func() {
	p.t.Helper()
	if err := p.p.Set(f); err != nil {
		p.t.Fatal(err)
	}
	return p.p.Clear
}
