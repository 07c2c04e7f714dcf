package fsm

import (
	"context"
	"testing"
	"time"
	"unsafe"

	lfsm "github.com/looplab/fsm"

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
	f := lfsm.NewFSM(Alive.String(), Declaration(), nil)
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
		_ = lfsm.NewFSM(Connecting.String(), Declaration(), nil)
	}
}
