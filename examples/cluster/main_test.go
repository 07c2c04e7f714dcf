package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The test's settings and the bounds the docs promise for them.
const (
	lease  = time.Second            // -lease: cluster.Config.LeaseTTL
	renew  = lease / 3              // Config.Renew's default, LeaseTTL/3
	resume = 2 * time.Second        // -resume: HubConfig.ResumeWindow
	rtt    = 500 * time.Millisecond // "d", one Redis round trip, generous for a busy machine
	// docs/cluster.md: a change on another node arrives "in a few round
	// trips; within R + a few round trips if the notice is lost".
	propagate = renew + 3*rtt
	// docs/cluster.md: a crashed node's sessions leave everywhere "within
	// T + R + d of the crash".
	crashBound = lease + renew + rtt
)

// TestCluster runs three node processes of this program on one
// redis-server, connects client processes to different nodes and checks
// what a user of the cluster sees through each node's /online and /events.
func TestCluster(t *testing.T) {
	redis := startRedis(t)
	bin := build(t)
	a := startNode(t, bin, redis, "a")
	b := startNode(t, bin, redis, "b")
	c := startNode(t, bin, redis, "c")

	t.Log("0. a second live node under B's ID is refused within T + 2R")
	dup := start(t, "node b (duplicate)", bin, "-id", "b", "-listen", "127.0.0.1:0", "-redis", redis, "-lease", lease.String())
	dup.wait(t, lease+2*renew+2*rtt)
	if out := dup.output(); dup.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(out, "node ID in use") {
		t.Errorf("a duplicate of node b: exit %d, want an error saying the node ID is in use:\n%s", dup.cmd.ProcessState.ExitCode(), out)
	}

	// B's own user, connected throughout: must never flap anywhere.
	startClient(t, bin, b, "dave", "phone")
	waitOnline(t, []*proc{a, b, c}, "dave", true, propagate)

	t.Log("1. a user connected on A is online on B and C")
	ann := startClient(t, bin, a, "ann", "tab-1")
	waitOnline(t, []*proc{b, c}, "ann", true, propagate)

	t.Log("2a. a clean close: offline everywhere promptly")
	ann.signal(syscall.SIGTERM)
	ann.wait(t, 5*time.Second)
	waitOnline(t, []*proc{a, b, c}, "ann", false, propagate)

	t.Log("2b. a lost connection: offline after the resume window, not before")
	bob := startClient(t, bin, a, "bob", "laptop")
	waitOnline(t, []*proc{a, b, c}, "bob", true, propagate)
	lost := time.Now()
	bob.signal(syscall.SIGKILL) // the kernel closes its socket: no close frame
	// The session waits out the resume window on A, then its leave travels.
	stillOnlineUntil(t, []*proc{a, b, c}, "bob", lost.Add(resume))
	waitOnline(t, []*proc{a, b, c}, "bob", false, time.Until(lost.Add(resume+propagate)))
	t.Logf("bob offline everywhere %v after his client died (resume window %v)", time.Since(lost).Round(time.Millisecond), resume)

	t.Log("2c. a lost connection resumed on another node: no leave")
	henry := startClient(t, bin, a, "henry", "tab-1")
	waitSessions(t, []*proc{a, b, c}, "henry", map[string]int{"tab-1": 1}, propagate)
	lost = time.Now()
	henry.signal(syscall.SIGKILL)
	startClient(t, bin, b, "henry", "tab-1") // the load balancer picks B
	// A keeps the session for its resume window, B holds it meanwhile.
	waitSessions(t, []*proc{a, b, c}, "henry", map[string]int{"tab-1": 2}, propagate)
	waitSessions(t, []*proc{a, b, c}, "henry", map[string]int{"tab-1": 1}, time.Until(lost.Add(resume+propagate)))
	if since := time.Since(lost); since < resume {
		t.Errorf("A let henry's session go %v after the loss, before its resume window %v", since, resume)
	}

	t.Log("3. SIGKILL node A: its users leave B and C within T + R + d")
	startClient(t, bin, a, "carol", "tab-1")
	startClient(t, bin, a, "grace", "tab-1")
	startClient(t, bin, b, "grace", "tab-2") // a second tab, on B
	waitOnline(t, []*proc{b, c}, "carol", true, propagate)
	waitSessions(t, []*proc{a, b, c}, "grace", map[string]int{"tab-1": 1, "tab-2": 1}, propagate)
	crash := time.Now()
	a.signal(syscall.SIGKILL)
	waitOnline(t, []*proc{b, c}, "carol", false, crashBound)
	t.Logf("carol offline on B and C %v after A was killed (bound T + R + d = %v)", time.Since(crash).Round(time.Millisecond), crashBound)
	waitSessions(t, []*proc{b, c}, "grace", map[string]int{"tab-2": 1}, time.Until(crash.Add(crashBound)))

	t.Log("3b. A restarted under its ID: its old sessions stay gone")
	a = startNode(t, bin, redis, "a")
	for _, u := range []string{"carol", "ann", "bob"} {
		if isOnline(t, a, u) || isOnline(t, b, u) {
			t.Errorf("%s, a user of A before its crash, is online again", u)
		}
	}
	waitSessions(t, []*proc{a}, "grace", map[string]int{"tab-2": 1}, propagate)

	t.Log("4. SIGTERM node C: its users leave at once; it shuts down clean")
	startClient(t, bin, c, "erin", "tab-1")
	waitOnline(t, []*proc{b, c}, "erin", true, propagate)
	term := time.Now()
	c.signal(syscall.SIGTERM)
	waitOnline(t, []*proc{b}, "erin", false, propagate)
	t.Logf("erin offline on B %v after C's SIGTERM", time.Since(term).Round(time.Millisecond))
	c.wait(t, 15*time.Second)
	c.exitedClean(t)
	// docs/presence.md: Shutdown "waits for every leave to be delivered";
	// with HubConfig.Cluster set, OnEvent is the cluster's.
	if out := c.output(); !strings.Contains(out, "user left erin (closed)\nshut down:") {
		t.Errorf("node c's OnEvent did not get erin's leave before its Shutdown returned:\n%s", out)
	}

	// dave was online on B throughout, henry from his reconnect on, grace
	// with her tab on B; now B shuts down with them connected.
	for _, u := range []string{"dave", "henry", "grace"} {
		noLeave(t, []*proc{b}, u)
		if !isOnline(t, b, u) {
			t.Errorf("%s is not online on B", u)
		}
	}
	if testing.Verbose() {
		resp, err := httpClient.Get("http://" + b.addr + "/events")
		if err == nil {
			ev, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("B's events:\n%s", ev)
		}
	}
	b.signal(syscall.SIGTERM)
	b.wait(t, 15*time.Second)
	b.exitedClean(t)
}

// proc is a process of this program: a node or a client.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{}
	addr string // a node's HTTP address
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (p *proc) output() string { return p.out.String() }

func (p *proc) signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// wait fails the test if the process has not exited within d.
func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v; output:\n%s", p.name, d, p.output())
	}
}

// exitedClean checks a node's graceful shutdown: exit status 0 and no
// goroutine or socket left open (the program's -check-leaks).
func (p *proc) exitedClean(t *testing.T) {
	t.Helper()
	out := p.output()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, "shut down: <nil>") || !strings.Contains(out, "leaks: none") {
		t.Errorf("%s: exit %d, want a clean shutdown with no leaks; output:\n%s", p.name, code, out)
	}
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(args[0], args[1:]...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not exit after SIGKILL", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	return p
}

// startNode runs a node on a free loopback port and waits until it serves.
func startNode(t *testing.T, bin, redis, id string) *proc {
	t.Helper()
	p := start(t, "node "+id, bin, "-id", id, "-listen", "127.0.0.1:0", "-redis", redis,
		"-lease", lease.String(), "-resume", resume.String(), "-check-leaks")
	poll(t, 10*time.Second, func() (bool, string) {
		_, rest, ok := strings.Cut(p.output(), "listening on http://")
		if ok {
			p.addr, _, ok = strings.Cut(rest, "/")
		}
		return ok, p.name + " is not listening; output:\n" + p.output()
	})
	return p
}

// startClient connects user's session to node with this program's client.
func startClient(t *testing.T, bin string, node *proc, user, session string) *proc {
	t.Helper()
	u := "ws://" + node.addr + "/ws?" + url.Values{"user": {user}, "session": {session}}.Encode()
	return start(t, "client "+user, bin, "-dial", u)
}

// isOnline asks node's /online whether user is online.
func isOnline(t *testing.T, node *proc, user string) bool {
	t.Helper()
	ok, err := onlineAt(node, user)
	if err != nil {
		t.Fatalf("%s /online: %v", node.name, err)
	}
	return ok
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func onlineAt(node *proc, user string) (bool, error) {
	o, err := getOnline(node)
	return len(o.Users[user]) > 0, err
}

// sessions returns user's sessions on node's /online, each with how many
// nodes hold it.
func sessions(t *testing.T, node *proc, user string) map[string]int {
	t.Helper()
	o, err := getOnline(node)
	if err != nil {
		t.Fatalf("%s /online: %v", node.name, err)
	}
	return o.Users[user]
}

func getOnline(node *proc) (online, error) {
	var o online
	resp, err := httpClient.Get("http://" + node.addr + "/online")
	if err != nil {
		return o, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&o)
	return o, err
}

// waitSessions polls every node's /online until user's sessions (and the
// nodes holding each) equal want on all of them, failing after d.
func waitSessions(t *testing.T, nodes []*proc, user string, want map[string]int, d time.Duration) {
	t.Helper()
	poll(t, d, func() (bool, string) {
		for _, n := range nodes {
			if got := sessions(t, n, user); !maps.Equal(got, want) {
				return false, fmt.Sprintf("%s's sessions on %s: %v, want %v", user, n.name, got, want)
			}
		}
		return true, ""
	})
}

// noLeave fails if any node delivered a leave of user.
func noLeave(t *testing.T, nodes []*proc, user string) {
	t.Helper()
	for _, n := range nodes {
		resp, err := httpClient.Get("http://" + n.addr + "/events")
		if err != nil {
			t.Fatalf("%s /events: %v", n.name, err)
		}
		ev, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s /events: %v", n.name, err)
		}
		if strings.Contains(string(ev), "user left "+user+" ") {
			t.Errorf("%s flapped on %s:\n%s", user, n.name, ev)
		}
	}
}

// waitOnline polls every node's /online until user's presence is want on
// all of them, failing after d.
func waitOnline(t *testing.T, nodes []*proc, user string, want bool, d time.Duration) {
	t.Helper()
	poll(t, d, func() (bool, string) {
		var wrong []string
		for _, n := range nodes {
			if isOnline(t, n, user) != want {
				wrong = append(wrong, n.name)
			}
		}
		return len(wrong) == 0, fmt.Sprintf("%s online=%v on %s", user, !want, strings.Join(wrong, ", "))
	})
}

// stillOnlineUntil polls every node's /online until until, failing at once
// if user is offline on any of them before.
func stillOnlineUntil(t *testing.T, nodes []*proc, user string, until time.Time) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(until) {
		for _, n := range nodes {
			// The answer was given before the reply arrived: early only if
			// the reply arrived before until.
			if !isOnline(t, n, user) {
				if at := time.Now(); at.Before(until) {
					t.Fatalf("%s offline on %s at least %v before the time the docs allow", user, n.name, until.Sub(at).Round(time.Millisecond))
				}
			}
		}
		<-tick.C
	}
}

// poll calls cond until it holds, failing with its message after d.
func poll(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, msg)
		}
		<-tick.C
	}
}

// build compiles this program into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cluster")
	// Bounded by the test binary's -timeout, not by a wall-clock guess: on
	// a busy machine from a cold cache the build takes minutes.
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startRedis runs redis-server on a free loopback port, without
// persistence; it skips without redis-server, unless CI=true.
func startRedis(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is missing (apt-get install redis-server): %v", err)
		}
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	start(t, "redis-server", path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	poll(t, 10*time.Second, func() (bool, string) {
		ok, err := redisPing(addr)
		return ok, fmt.Sprintf("redis-server on %s does not answer PING: %v", addr, err)
	})
	return addr
}

func redisPing(addr string) (bool, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return false, err
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil {
		return false, err
	}
	if string(buf) != "+PONG\r\n" {
		return false, errors.New("answer " + string(buf))
	}
	return true, nil
}
