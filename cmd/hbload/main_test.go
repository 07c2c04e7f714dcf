package main

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain lets the test binary play the server and client roles hbload
// starts by running its own executable again.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-role=") {
		if err := run(os.Args[1:], os.Stdout); err != nil {
			os.Stderr.WriteString("hbload: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmallRun measures every server with 200 connections and a short
// window and checks that the figures are those of a real measurement.
func TestSmallRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n = 200
	rep := runLoad(t, "-conns=200", "-for=1500ms", "-settle=300ms", "-spread=500ms", "-servers=chat,hub,hub-default,nbio")
	if len(rep.Rows) != 4 {
		t.Fatalf("%d rows, want chat, hub, hub-default and nbio", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if r.Open != n || r.ServerConns != n {
			t.Errorf("%s: client holds %d, server counted %d connections; want %d", r.Server, r.Open, r.ServerConns, n)
		}
		if r.RSSPerConn <= 0 || r.HeapPerConn <= 0 || (r.StackPerConn <= 0 && r.Server != "nbio") { // nbio: no stack per connection
			t.Errorf("%s: RSS %.0f, heap %.0f, stack %.0f B per connection; want positive", r.Server, r.RSSPerConn, r.HeapPerConn, r.StackPerConn)
		}
		// Chat runs two goroutines per connection (its pumps); the hub one,
		// the adapter's reader (the handler returns once it is watched).
		// nbio none: its connections are read by the poller.
		want := 1.0
		switch r.Server {
		case "chat":
			want = 2
		case "nbio":
			want = 0
		}
		if r.GoroutinesPerCon < want-0.1 || r.GoroutinesPerCon > want+0.1 {
			t.Errorf("%s: %.2f goroutines per connection, want %.0f", r.Server, r.GoroutinesPerCon, want)
		}
		if r.Window < 1500*time.Millisecond || r.CPUPercent < 0 || r.CPUPercent > 200 {
			t.Errorf("%s: %.1f %% of a core over %v", r.Server, r.CPUPercent, r.Window)
		}
		if r.Server == "hub-default" && r.Pongs == 0 {
			t.Errorf("hub-default: no pong answered the clients' pings")
		}
		for _, pid := range r.pids {
			if alive(pid) {
				t.Errorf("%s: process %d still running", r.Server, pid)
			}
		}
	}
	var out bytes.Buffer
	rep.writeTable(&out)
	if !strings.Contains(out.String(), "hub-default") {
		t.Errorf("table lacks the hub-default row:\n%s", out.String())
	}
	t.Logf("\n%s", out.String())
}

// runLoad measures as hbload does with args, failing the test with the
// children's output if the run fails.
func runLoad(t *testing.T, args ...string) *report {
	t.Helper()
	o, err := parse(args, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer // the children's stderr is copied by exec's goroutines
	rep, err := measure(o, os.Args[0], &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	httpc.CloseIdleConnections()
	return rep
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

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-conns=0"}, {"-for=0s"}, {"-servers=chat,nginx"}, {"-servers="}, {"extra"},
	} {
		if _, err := parse(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	o, err := parse([]string{"-servers=hub, chat"}, &bytes.Buffer{})
	if err != nil || len(o.servers) != 2 || o.servers[0] != "hub" || o.servers[1] != "chat" {
		t.Errorf("-servers=hub, chat: %v %v", o.servers, err)
	}
}

// TestEchoRun: under a small echo load the servers echo every message and
// the hub convicts nobody. (Goroutines are counted idle, in TestSmallRun:
// here the workers running the echoes are alive when they are counted.)
func TestEchoRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n = 100
	rep := runLoad(t, "-conns=100", "-for=2s", "-settle=300ms", "-spread=500ms", "-echo=0.5", "-servers=hub,nbio")
	for _, r := range rep.Rows {
		if r.Open != n || r.ServerConns != n {
			t.Errorf("%s: client holds %d, server counted %d connections; want %d", r.Server, r.Open, r.ServerConns, n)
		}
		// 50 of 100 connections send one message a second: about 0.5 each.
		if r.EchoesPerSec < 0.3 {
			t.Errorf("%s: %.2f echoes per connection per second, want about 0.5", r.Server, r.EchoesPerSec)
		}
		if r.Verdicts != 0 {
			t.Errorf("%s: %d verdicts under a light load", r.Server, r.Verdicts)
		}
	}
	var out bytes.Buffer
	rep.writeTable(&out)
	if !strings.Contains(out.String(), "echoing 1 KB a second") {
		t.Errorf("the table does not say the load:\n%s", out.String())
	}
}

// TestTLSRun: every server serves its WebSockets over TLS (nbio through
// its own TLS) and the clients stay connected.
func TestTLSRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rep := runLoad(t, "-conns=20", "-for=1s", "-settle=200ms", "-spread=200ms", "-tls", "-servers=hub,nbio")
	for _, r := range rep.Rows {
		if r.Open != 20 || r.ServerConns != 20 || !r.TLS {
			t.Errorf("%s: client holds %d, server counted %d connections over TLS %v; want 20 over TLS", r.Server, r.Open, r.ServerConns, r.TLS)
		}
	}
}
