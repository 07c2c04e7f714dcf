package gorillaws

import (
	"context"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// pingOnAnswer pings 1 ms after the last evidence, but only once the
// previous ping was answered: one ping/pong cycle at a time, as fast as
// the loopback allows.
type pingOnAnswer struct{}

func (pingOnAnswer) NextPing(l policy.Link) time.Time {
	if !l.LastPing.IsZero() && l.LastEvidence.Before(l.LastPing) {
		return l.Now.Add(time.Hour) // wait for the pong: its arrival steps the machine
	}
	return l.LastEvidence.Add(time.Millisecond)
}

// pongSignal passes events on and signals each inbound pong.
type pongSignal struct {
	transport.Events
	pongs atomic.Int64
	wake  chan struct{}
}

func (p *pongSignal) Frame(f transport.Frame) {
	p.Events.Frame(f)
	if f.Kind == transport.Pong {
		p.pongs.Add(1)
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// heartbeatLoop runs the steady heartbeat end to end over loopback: a
// driver on one gorillaws Conn pings, a driver on the other answers
// through its adapter, and the pong comes back through the first adapter
// to its driver. It returns a function that waits for the next pong.
func heartbeatLoop(tb testing.TB, format wire.Format) (next func()) {
	tb.Helper()
	var subs []string
	if format != wire.Control {
		subs = wire.Subprotocols()
	}
	sws, cws := wsPair(tb, subs, nil)
	pinger, err := Wrap(sws, Options{Format: format})
	if err != nil {
		tb.Fatal(err)
	}
	answerer, err := Wrap(cws, Options{Format: format})
	if err != nil {
		tb.Fatal(err)
	}
	sig := &pongSignal{wake: make(chan struct{}, 1)}
	quiet := &policy.Fixed{SuspectAfter: time.Minute, DeadAfter: time.Minute}
	ping, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Config: fsm.Config{Role: fsm.Server, Detector: quiet, Interval: pingOnAnswer{}, MinPingInterval: time.Millisecond},
		Dialer: transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
			sig.Events = ev
			return pinger.Accepted().Dial(ctx, sig)
		}),
	})
	if err != nil {
		tb.Fatal(err)
	}
	answer, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Config: fsm.Config{Role: fsm.Server, Detector: &policy.Fixed{SuspectAfter: time.Minute, DeadAfter: time.Minute},
			Interval: policy.Never{}, PingBurst: -1},
		Dialer: answerer.Accepted(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ping.Close(); _ = answer.Close() })
	next = func() {
		target := sig.pongs.Load() + 1
		for sig.pongs.Load() < target {
			<-sig.wake
		}
	}
	for range 20 { // warm up: buffers, timers, the first steps
		next()
	}
	return next
}

// BenchmarkHeartbeatCycle is one ping/pong cycle end to end through
// fsm.Driver and this adapter on both sides, over loopback: the steady
// cost of an idle connection. Allocations are those of every goroutine
// involved (drivers, read loops, writers).
//
//	go test ./transport/gorillaws -run '^$' -bench HeartbeatCycle -benchmem
func BenchmarkHeartbeatCycle(b *testing.B) {
	for _, f := range []wire.Format{wire.Control, wire.Binary, wire.JSON} {
		b.Run(f.String(), func(b *testing.B) {
			next := heartbeatLoop(b, f)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				next()
			}
		})
	}
}

// rawGorillaLoop is gorilla's own minimum for the same cycle, without the
// heartbeat. With control frames: one side writes a ping with
// WriteControl, the other's default ping handler answers with
// WriteControl, a pong handler signals. With a data format: one side
// writes a small binary message, the other reads it into a buffer of its
// own and writes one back. Both sides keep a reader running, as gorilla
// requires for its handlers.
func rawGorillaLoop(tb testing.TB, format wire.Format) (next func()) {
	tb.Helper()
	sws, cws := wsPair(tb, nil, nil)
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	msg, _ := wire.AppendBinary(nil, &wire.Message{Type: wire.Ping, Seq: 1 << 20, SentAt: 1 << 40})
	read := func(ws *websocket.Conn, answer bool) {
		var buf [wire.MaxMessageSize]byte
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				return
			}
			n, _ := io.ReadFull(r, buf[:])
			if !answer {
				signal()
			} else if ws.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
				return
			}
		}
	}
	sws.SetPongHandler(func(string) error { signal(); return nil })
	go read(sws, false)
	go read(cws, format != wire.Control)
	payload := wire.AppendControl(nil, 1<<20, 0)
	next = func() {
		var err error
		if format == wire.Control {
			err = sws.WriteControl(websocket.PingMessage, payload, time.Now().Add(bound))
		} else {
			err = sws.WriteMessage(websocket.BinaryMessage, msg)
		}
		if err != nil {
			tb.Fatal(err)
		}
		<-wake
	}
	for range 20 {
		next()
	}
	return next
}

// mallocsPerCycle counts the heap allocations of every goroutine over n
// cycles, per cycle (testing.AllocsPerRun rounds down; this does not).
func mallocsPerCycle(n int, next func()) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		next()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n)
}

// TestHeartbeatCycleAddsNoAllocation: a whole cycle through two drivers
// and two adapters allocates no more than gorilla itself does for the same
// exchange without the heartbeat. With control frames that is
// WriteControl's frame buffer and timer on every call (800 B a cycle); with
// binary heartbeats, NextReader's and a client NextWriter's small structs.
// Everything of ours (the drivers, the read loops, the payloads, the
// encoding and decoding) allocates nothing. (JSON heartbeats are decoded
// by encoding/json, which allocates; use the binary form where it counts.)
func TestHeartbeatCycleAddsNoAllocation(t *testing.T) {
	const n = 300
	for _, f := range []wire.Format{wire.Control, wire.Binary} {
		t.Run(f.String(), func(t *testing.T) {
			raw := mallocsPerCycle(n, rawGorillaLoop(t, f))
			ours := mallocsPerCycle(n, heartbeatLoop(t, f))
			t.Logf("allocations per ping/pong cycle: gorilla alone %.2f, through the heartbeat %.2f", raw, ours)
			if ours > raw+0.1 {
				t.Errorf("the heartbeat adds %.2f allocations per cycle to gorilla's %.2f", ours-raw, raw)
			}
		})
	}
}

// BenchmarkGorillaCycle is gorilla's own cycle, without the heartbeat, for
// comparison with BenchmarkHeartbeatCycle.
//
//	go test ./transport/gorillaws -run '^$' -bench 'GorillaCycle|HeartbeatCycle' -benchmem
func BenchmarkGorillaCycle(b *testing.B) {
	for _, f := range []wire.Format{wire.Control, wire.Binary} {
		b.Run(f.String(), func(b *testing.B) {
			next := rawGorillaLoop(b, f)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				next()
			}
		})
	}
}
