package fsm

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	lfsm "github.com/looplab/fsm"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// maxMachineSize is the per-connection budget of a Machine value, policies
// excluded.
const maxMachineSize = 256

func TestMachineSize(t *testing.T) {
	size := unsafe.Sizeof(Machine{})
	t.Logf("Machine is %d bytes", size)
	if size > maxMachineSize {
		t.Fatalf("Machine is %d bytes, budget %d", size, maxMachineSize)
	}
}

// steadyRig is a client alive on a connection whose peer answers.
func steadyRig(tb testing.TB) (*Machine, time.Time, []Action) {
	m, err := NewMachine(testConfig())
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]Action, 0, 8)
	out = m.Step(t0, Input{Kind: Start}, out[:0])
	out = m.Step(t0, Input{Kind: Connected}, out[:0])
	return m, t0, out
}

func TestSteadyPathDoesNotAllocate(t *testing.T) {
	m, now, out := steadyRig(t)
	pong := Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Pong}}
	ping := Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Ping, Payload: make([]byte, 8)}}
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		out = m.Step(now, pong, out[:0])
		out = m.Step(now, ping, out[:0])
		now = m.Deadline()
		out = m.Step(now, Input{Kind: DeadlineReached}, out[:0])
		now = now.Add(time.Millisecond)
		pong.Frame.Seq = m.seq
		out = m.Step(now, pong, out[:0])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per steady round", allocs)
	}
}

// BenchmarkSteadyFrameReceived: an inbound frame on a live connection.
func BenchmarkSteadyFrameReceived(b *testing.B) {
	m, now, out := steadyRig(b)
	in := Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Data}}
	b.ReportAllocs()
	b.ReportMetric(float64(unsafe.Sizeof(Machine{})), "machine-bytes")
	for b.Loop() {
		now = now.Add(time.Millisecond)
		out = m.Step(now, in, out[:0])
	}
}

// BenchmarkSteadyDeadlineAlive: the ping deadline fires on an idle live
// connection and the pong comes back.
func BenchmarkSteadyDeadlineAlive(b *testing.B) {
	m, _, out := steadyRig(b)
	pong := Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Pong}}
	b.ReportAllocs()
	for b.Loop() {
		now := m.Deadline()
		out = m.Step(now, Input{Kind: DeadlineReached}, out[:0])
		pong.Frame.Seq = m.seq
		now = now.Add(time.Millisecond)
		out = m.Step(now, pong, out[:0])
	}
	if m.State() != Alive {
		b.Fatalf("left alive: %v", m.State())
	}
}

// The two benchmarks below compare one transition through the compiled table
// with the same transition through a looplab FSM, the cost the table avoids.
func BenchmarkTransitionTable(b *testing.B) {
	b.ReportAllocs()
	s := Alive
	for b.Loop() {
		s, _ = Next(s, EvSuspect)
		s, _ = Next(s, EvEvidence)
	}
	if s != Alive {
		b.Fatal(s)
	}
}

func BenchmarkTransitionLooplab(b *testing.B) {
	f := lfsm.NewFSM(Alive.String(), declaration(), nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = f.Event(ctx, EvSuspect.String())
		_ = f.Event(ctx, EvEvidence.String())
	}
	if f.Current() != Alive.String() {
		b.Fatal(f.Current())
	}
}

func BenchmarkNewLooplabFSM(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = lfsm.NewFSM(Connecting.String(), declaration(), nil)
	}
}

// directConn hands every frame straight to the peer's events: a transport
// that costs nothing, so that what is measured is the driver alone.
type directConn struct {
	peer *directConn
	ev   transport.Events
}

func (c *directConn) Send(_ context.Context, f transport.Frame) error {
	c.peer.ev.Frame(f)
	return nil
}
func (c *directConn) Close(error) error { return nil }

// answeredPing pings 1 ms after the last evidence once the previous ping
// was answered: one cycle at a time, as fast as the drivers go.
type answeredPing struct{}

func (answeredPing) NextPing(l policy.Link) time.Time {
	if !l.LastPing.IsZero() && l.LastEvidence.Before(l.LastPing) {
		return l.Now.Add(time.Hour)
	}
	return l.LastEvidence.Add(time.Millisecond)
}

// pongWaiter passes events on and counts inbound pongs.
type pongWaiter struct {
	transport.Events
	pongs atomic.Int64
	wake  chan struct{}
}

func (p *pongWaiter) Frame(f transport.Frame) {
	p.Events.Frame(f)
	if f.Kind == transport.Pong {
		p.pongs.Add(1)
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func (p *pongWaiter) next() {
	target := p.pongs.Load() + 1
	for p.pongs.Load() < target {
		<-p.wake
	}
}

// driverPair runs a pinging and an answering driver on the real clock,
// joined by directConns, and returns the pinger's pong waiter.
func driverPair(tb testing.TB) *pongWaiter {
	a, b := &directConn{}, &directConn{}
	a.peer, b.peer = b, a
	w := &pongWaiter{wake: make(chan struct{}, 1)}
	quiet := func() *policy.Fixed { return &policy.Fixed{SuspectAfter: time.Minute, DeadAfter: time.Minute} }
	bound := make(chan struct{}) // the answerer is bound before the pinger sends to it
	answerer, err := Run(context.Background(), DriverConfig{
		Config: Config{Role: Server, Detector: quiet(), Interval: policy.Never{}, PingBurst: -1},
		Dialer: transport.Accepted(func(ev transport.Events) (transport.Conn, error) { b.ev = ev; close(bound); return b, nil }),
	})
	if err != nil {
		tb.Fatal(err)
	}
	<-bound
	pinger, err := Run(context.Background(), DriverConfig{
		Config: Config{Role: Server, Detector: quiet(), Interval: answeredPing{}, MinPingInterval: time.Millisecond},
		Dialer: transport.Accepted(func(ev transport.Events) (transport.Conn, error) { w.Events = ev; a.ev = w; return a, nil }),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pinger.Close(); _ = answerer.Close() })
	for range 20 { // warm up
		w.next()
	}
	return w
}

// TestDriverSteadyCycleDoesNotAllocate: a whole ping/pong cycle between two
// drivers (timer, step, write context, send, event queue, step) allocates
// nothing on either side.
func TestDriverSteadyCycleDoesNotAllocate(t *testing.T) {
	w := driverPair(t)
	if allocs := testing.AllocsPerRun(200, w.next); allocs != 0 {
		t.Fatalf("%v allocations per ping/pong cycle through two drivers", allocs)
	}
}

// BenchmarkDriverCycle: one ping/pong cycle between two drivers on the
// real clock, over a transport that costs nothing.
//
//	go test ./fsm -run '^$' -bench DriverCycle -benchmem
func BenchmarkDriverCycle(b *testing.B) {
	w := driverPair(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.next()
	}
}
