package sim

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/heartbeat-go/heartbeat/sim/network"
)

func drawLatency(t *rapid.T, label string) Latency {
	kind := Dist(rapid.IntRange(int(Constant), int(Exponential)).Draw(t, label+" dist"))
	l := Latency{
		Dist:   kind,
		Mean:   time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(300*time.Millisecond)).Draw(t, label+" mean")),
		Jitter: time.Duration(rapid.Int64Range(0, int64(100*time.Millisecond)).Draw(t, label+" jitter")),
	}
	switch kind {
	case LogNormal:
		l.Shape = rapid.Float64Range(0.05, 1.5).Draw(t, label+" sigma")
	case Pareto:
		l.Shape = rapid.Float64Range(1.1, 4).Draw(t, label+" alpha")
	}
	if rapid.Bool().Draw(t, label+" capped") {
		l.Max = l.Mean * 10
	}
	return l
}

func drawDir(t *rapid.T, label string, delivery Delivery) Dir {
	d := Dir{Delivery: delivery, Latency: drawLatency(t, label)}
	d.Loss.Rate = rapid.Float64Range(0, 0.3).Draw(t, label+" loss")
	d.Loss.Burst = rapid.Float64Range(0, 8).Draw(t, label+" burst")
	if delivery == Datagram {
		d.Duplicate = rapid.Float64Range(0, 0.2).Draw(t, label+" dup")
		d.Reorder = rapid.Float64Range(0, 0.3).Draw(t, label+" reorder")
		d.ReorderDelay = 200 * time.Millisecond
	}
	return d
}

// drawConfig draws a small run with random links, weather, failures and
// scheduled faults.
func drawConfig(t *rapid.T, delivery Delivery) Config {
	p := Profile{
		Name: "drawn",
		Link: Link{Up: drawDir(t, "up", delivery), Down: drawDir(t, "down", delivery)},
		Stalls: Weather{
			Every:  time.Duration(rapid.Int64Range(0, int64(10*time.Minute)).Draw(t, "stall every")),
			Length: Latency{Dist: Exponential, Mean: 2 * time.Second, Max: 20 * time.Second},
		},
		Pauses: Weather{
			Every:  time.Duration(rapid.Int64Range(0, int64(20*time.Minute)).Draw(t, "pause every")),
			Length: Latency{Dist: Uniform, Mean: 20 * time.Second, Jitter: 15 * time.Second},
		},
		FailEvery: time.Duration(rapid.Int64Range(int64(time.Minute), int64(time.Hour)).Draw(t, "fail every")),
		Mix:       Mix{CrashClient: 1, CrashServer: 1, Partition: 2, HalfOpen: 1, CleanClose: 1},
		Outage:    Latency{Dist: Uniform, Mean: time.Minute, Jitter: 50 * time.Second},
	}
	cfg := Config{
		Profile:  p,
		Preset:   fixedPreset(5*time.Second, 8*time.Second, 12*time.Second),
		Conns:    rapid.IntRange(1, 6).Draw(t, "conns"),
		Duration: time.Duration(rapid.Int64Range(int64(5*time.Minute), int64(time.Hour)).Draw(t, "duration")),
		Seed:     rapid.Uint64().Draw(t, "seed"),
	}
	if rapid.Bool().Draw(t, "server pings") {
		cfg.Preset = serverPings(10*time.Second, 25*time.Second)
	}
	for i := range rapid.IntRange(0, 4).Draw(t, "faults") {
		cfg.Faults = append(cfg.Faults, Fault{
			At:     time.Duration(rapid.Int64Range(0, int64(cfg.Duration)).Draw(t, fmt.Sprintf("fault %d at", i))),
			Slot:   rapid.IntRange(0, cfg.Conns-1).Draw(t, fmt.Sprintf("fault %d slot", i)),
			Kind:   FaultKind(rapid.IntRange(int(CrashClient), int(Pause)).Draw(t, fmt.Sprintf("fault %d kind", i))),
			Outage: time.Duration(rapid.Int64Range(0, int64(3*time.Minute)).Draw(t, fmt.Sprintf("fault %d outage", i))),
		})
	}
	return cfg
}

// TestConservation: every packet handed to a link is delivered, dropped or
// still in flight — and what is in flight is exactly what sits in the
// queue when the run stops.
func TestConservation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawConfig(t, Delivery(rapid.IntRange(0, 1).Draw(t, "delivery")))
		s, err := newSim(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.run(); err != nil {
			t.Fatal(err)
		}
		l := s.meter.link
		if l.Sent+l.Duplicated != l.Delivered+l.Dropped+l.InFlight {
			t.Fatalf("sent %d + duplicated %d != delivered %d + dropped %d + in flight %d", l.Sent, l.Duplicated, l.Delivered, l.Dropped, l.InFlight)
		}
		var queued int64
		s.q.each(func(e *event) {
			switch e.kind {
			case evFrame, evFin, evSyn, evAccept, evRefuse:
				queued++
			}
		})
		if queued != l.InFlight {
			t.Fatalf("%d packets in flight by the counters, %d in the queue", l.InFlight, queued)
		}
		if l.Sent == 0 {
			t.Fatal("nothing was sent")
		}
	})
}

// TestStreamInOrder: on stream links each connection's frames arrive in
// the order they were sent, in each direction (ping sequence numbers, and
// the pongs echoing them, only grow).
func TestStreamInOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawConfig(t, Stream)
		s, err := newSim(cfg)
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			slot int32
			gen  uint32
			to   side
			fk   uint8
		}
		last := map[key]uint32{}
		s.onDeliver = func(e *event) {
			if e.kind != evFrame {
				return
			}
			k := key{e.slot, e.gen, e.side, e.fk}
			if prev, ok := last[k]; ok && e.aux <= prev {
				t.Fatalf("slot %d connection %d: %v %d delivered to the %v after %d", e.slot, e.gen, e.fk, e.aux, e.side, prev)
			}
			last[k] = e.aux
		}
		if err := s.run(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNothingAcrossPartition: once a connection is partitioned, none of
// its packets is delivered, in either direction, during the outage or
// after it (its middlebox state is gone); half-open links lose their one
// direction for good.
func TestNothingAcrossPartition(t *testing.T) {
	failures := 0
	defer func() {
		if failures == 0 && !t.Failed() {
			t.Error("no run had a failure: the property was never exercised")
		}
	}()
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawConfig(t, Delivery(rapid.IntRange(0, 1).Draw(t, "delivery")))
		s, err := newSim(cfg)
		if err != nil {
			t.Fatal(err)
		}
		type cut struct {
			at    int64
			kinds FaultKind
		}
		cuts := map[[2]uint32]cut{} // (slot, gen) → its failure
		s.onDeliver = func(e *event) {
			f := &s.slots[e.slot].fail
			if k := [2]uint32{uint32(e.slot), f.gen}; f.kind.Failure() && f.gen != 0 && cuts[k].kinds == 0 {
				cuts[k] = cut{f.at, f.kind}
				failures++
			}
			c, ok := cuts[[2]uint32{uint32(e.slot), e.gen}]
			if !ok || s.now < c.at {
				return
			}
			blocked := c.kinds == Partition ||
				(c.kinds == HalfOpenUp && e.side == server) ||
				(c.kinds == HalfOpenDown && e.side == client) ||
				(c.kinds == CrashClient && e.side == client) ||
				(c.kinds == CrashServer && e.side == server)
			if blocked {
				t.Fatalf("slot %d connection %d: %v delivered to the %v at %v, after its %v at %v",
					e.slot, e.gen, e.kind, e.side, time.Duration(s.now), c.kinds, time.Duration(c.at))
			}
		}
		if err := s.run(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTransmitStream checks the stream model on its own: arrivals keep the
// send order, never come before the least possible latency, and never
// inside the blackout.
func TestTransmitStream(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := drawDir(t, "dir", Stream)
		r := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 1))
		bFrom := rapid.Int64Range(0, int64(time.Minute)).Draw(t, "blackout from")
		bUntil := bFrom + rapid.Int64Range(1, int64(20*time.Second)).Draw(t, "blackout length")
		var st network.State
		var stats LinkStats
		now, prev := int64(0), int64(0)
		for i := range 200 {
			now += rapid.Int64Range(0, int64(2*time.Second)).Draw(t, fmt.Sprintf("gap %d", i))
			at, dup, ok := d.Transmit(r, &st, now, bFrom, bUntil, false, &stats)
			if !ok {
				continue // given up after MaxRetransmits
			}
			if dup != 0 {
				t.Fatal("a stream duplicated a packet")
			}
			if at < prev {
				t.Fatalf("packet sent at %v arrives at %v, before the previous one (%v)", now, at, prev)
			}
			if at < now {
				t.Fatalf("packet sent at %v arrives at %v, in the past", now, at)
			}
			prev = at
		}
	})
}
