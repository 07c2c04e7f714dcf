package conformance_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/coderws"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/nbiows"
)

// The policy of every real-time test here: ping after 100 ms of silence
// (every 50 ms while suspect), suspect after 300 ms, dead after 600 ms, and
// redial after 50 ms. Small enough that a test takes a second or two, large
// enough that loopback scheduling noise (and 2 shared cores under -race)
// never looks like a dead peer.
const (
	pingEvery    = 100 * time.Millisecond
	suspectAfter = 300 * time.Millisecond
	deadAfter    = 600 * time.Millisecond
	redial       = 50 * time.Millisecond
	// bound is how long a test waits for what the policy promises.
	bound = 5 * time.Second
)

func policyConfig(role fsm.Role) fsm.Config {
	return fsm.Config{
		Role:            role,
		Detector:        &policy.Fixed{SuspectAfter: suspectAfter, DeadAfter: deadAfter},
		Interval:        &policy.Idle{Every: pingEvery},
		Backoff:         &policy.Constant{Delay: redial},
		ConnectTimeout:  time.Second,
		MinPingInterval: 20 * time.Millisecond,
	}
}

// patience is how long a test waits for n heartbeats or messages the
// policy promises.
func patience(n int64) time.Duration { return time.Duration(n)*pingEvery*4 + bound }

// server is a restartable WebSocket server on 127.0.0.1 whose every
// connection is watched by a server-role driver, gorilla or coder.
type server struct {
	t      *testing.T
	kind   string
	addr   string
	online atomic.Int64
	gone   chan fsm.Change // offline reports
	pump   atomic.Bool     // stream data to each client (256 B every 50 ms)
	// serverDead, if set, replaces the server role's dead timeout, so a
	// test can make sure the verdict it watches is the client's own.
	serverDead time.Duration
	registered atomic.Int64
	regWake    chan struct{}

	nb *nbiows.Server // kind "nbio": reads the connections

	mu      sync.Mutex
	ln      net.Listener
	hs      *http.Server
	aborts  []func()
	drivers []*fsm.Driver
	readers sync.WaitGroup
}

func newServer(t *testing.T, kind string) *server {
	s := &server{t: t, kind: kind, addr: "127.0.0.1:0", gone: make(chan fsm.Change, 64), regWake: make(chan struct{}, 1)}
	if kind == "nbio" {
		nb, err := nbiows.NewServer(nbiows.ServerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		s.nb = nb
		t.Cleanup(func() { _ = nb.Close() }) // after kill
	}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// waitRegistered waits until n connections have been accepted and are
// watched (and so would be cut by kill).
func (s *server) waitRegistered(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(bound)
	for s.registered.Load() < n {
		select {
		case <-s.regWake:
		case <-deadline:
			t.Fatalf("server watches %d connections, want %d", s.registered.Load(), n)
		}
	}
}

func (s *server) url() string { return "ws://" + s.addr + "/ws" }

func (s *server) start() {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen %s: %v", s.addr, err)
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.ln = ln
	s.hs = &http.Server{Handler: http.HandlerFunc(s.handle)}
	hs := s.hs
	s.mu.Unlock()
	go func() { _ = hs.Serve(ln) }()
}

func (s *server) handle(w http.ResponseWriter, r *http.Request) {
	cfg := fsm.DriverConfig{Config: policyConfig(fsm.Server)}
	if s.serverDead > 0 {
		cfg.Detector = &policy.Fixed{SuspectAfter: s.serverDead, DeadAfter: s.serverDead}
	}
	s.mu.Lock()
	live := s.hs // the instance that accepted this connection
	s.mu.Unlock()
	var (
		c interface {
			Watch(context.Context, fsm.DriverConfig, fsm.Presence) (*fsm.Driver, error)
		}
		read, write func(context.Context) error
		abort       func()
	)
	switch s.kind {
	case "gorilla":
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		gc, err := gorillaws.Wrap(ws, gorillaws.Options{})
		if err != nil {
			s.t.Error(err)
			return
		}
		c = gc
		read = func(ctx context.Context) error { _, _, err := gc.Read(ctx); return err }
		write = func(ctx context.Context) error { return gc.Write(ctx, websocket.BinaryMessage, payload[:]) }
		abort = func() { _ = ws.UnderlyingConn().Close() }
	case "coder":
		cc, err := coderws.Accept(w, r, nil, coderws.Options{})
		if err != nil {
			return
		}
		c = cc
		read = func(ctx context.Context) error { _, _, err := cc.Read(ctx); return err }
		write = func(ctx context.Context) error { return cc.Write(ctx, coder.MessageBinary, payload[:]) }
		abort = func() { _ = cc.WebSocket().CloseNow() }
	case "nbio":
		nc, err := s.nb.Upgrade(w, r, nbiows.Options{})
		if err != nil {
			return
		}
		c = nc
		// No reader: messages go to OnData (none here); "reading" ends
		// with the connection.
		read = func(ctx context.Context) error {
			select {
			case <-nc.Done():
				return transport.ErrClosed
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		write = func(ctx context.Context) error { return nc.Write(ctx, nbiows.BinaryMessage, payload[:]) }
		abort = nc.CloseNow
	default:
		s.t.Errorf("unknown kind %q", s.kind)
		return
	}
	d, err := c.Watch(context.Background(), cfg, fsm.Presence{
		Online:  func() { s.online.Add(1) },
		Offline: func(c fsm.Change) { s.gone <- c },
	})
	if err != nil {
		s.t.Error(err)
		return
	}
	s.mu.Lock()
	if s.hs != live || live == nil { // killed while this connection was being set up
		s.mu.Unlock()
		abort()
		_ = d.Close()
		return
	}
	s.drivers = append(s.drivers, d)
	s.aborts = append(s.aborts, abort)
	s.readers.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.readers.Done()
		for read(context.Background()) == nil {
		}
	}()
	if s.pump.Load() {
		s.readers.Go(func() { pumpData(write) })
	}
	s.registered.Add(1)
	select {
	case s.regWake <- struct{}{}:
	default:
	}
}

var payload [256]byte

// pumpData writes a message every 50 ms until a write fails (the
// connection ended), for at most 400 messages.
func pumpData(write func(context.Context) error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range 400 {
		<-tick.C
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		err := write(ctx)
		cancel()
		if err != nil {
			return
		}
	}
}

// kill stops the server as a crash would: the listener goes, and every
// connection is cut without a close frame.
func (s *server) kill() {
	s.mu.Lock()
	hs, aborts, drivers := s.hs, s.aborts, s.drivers
	s.hs, s.aborts, s.drivers = nil, nil, nil
	s.mu.Unlock()
	if hs == nil {
		return
	}
	_ = hs.Close()
	for _, a := range aborts {
		a()
	}
	for _, d := range drivers {
		_ = d.Close()
	}
	s.readers.Wait()
}

// client runs a client-role driver through the given dialer.
func runClient(t *testing.T, d transport.Dialer) (*fsm.Driver, *conformance.Changes) {
	w := conformance.NewChanges()
	drv, err := fsm.Run(context.Background(), fsm.DriverConfig{Config: policyConfig(fsm.Client), Dialer: d, OnChange: w.Add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drv.Close() })
	return drv, w
}

// clientDialer returns a dialer of the given kind for url whose
// application reader drains every message.
func clientDialer(t *testing.T, kind, url string, readers *sync.WaitGroup) transport.Dialer {
	switch kind {
	case "gorilla":
		return &gorillaws.Dialer{URL: url, OnConnect: func(c *gorillaws.Conn) { drain(readers, c.Read) }}
	case "coder":
		return &coderws.Dialer{URL: url, OnConnect: func(c *coderws.Conn) { drain(readers, c.Read) }}
	}
	t.Fatalf("unknown kind %q", kind)
	return nil
}

// drain reads, on a goroutine of readers, until read fails.
func drain[T any](readers *sync.WaitGroup, read func(context.Context) (T, []byte, error)) {
	readers.Go(func() {
		for {
			if _, _, err := read(context.Background()); err != nil {
				return
			}
		}
	})
}
