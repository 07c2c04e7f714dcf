package proptest

import (
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim/network"
)

// runWorld plays sc for a client with fixed 15 s / 25 s timeouts, a ping
// every 5 s and redials a second apart.
func runWorld(t *testing.T, sc scenario) *world {
	t.Helper()
	cfg := fsm.Config{
		Detector: &policy.Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second},
		Interval: &policy.Idle{Every: 5 * time.Second, Probe: 2 * time.Second},
		Backoff:  &policy.Constant{Delay: time.Second},
	}
	obs := newObserver(Select{}, cfg.Detector)
	w, err := newWorld(func(f string, a ...any) { t.Fatalf(f, a...) }, cfg, sc, nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	w.set.inflight = time.Second
	w.run()
	return w
}

func calm() phase {
	d := network.Dir{Latency: edge(5*time.Millisecond, 20*time.Millisecond)}
	return phase{in: d, out: d}
}

// A restarted server resets the connection at once and refuses dials for
// its downtime; the client is back on the first dial after it.
func TestWorldServerRestart(t *testing.T) {
	w := runWorld(t, scenario{
		phases: []phase{calm()}, seed: 1, end: time.Minute,
		fail: network.ServerRestart, failAt: 30 * time.Second, failFor: 5 * time.Second,
	})
	if w.m.State() != fsm.Alive || w.connID != 2 {
		t.Fatalf("at the end: %v on connection %d, want alive on the second", w.m.State(), w.connID)
	}
	if at := w.conn.at; at < 35*time.Second || at > 37*time.Second {
		t.Fatalf("reconnected at %v, want within the first redials after the 5 s downtime (35 s)", at)
	}
	if w.dialID < 6 {
		t.Fatalf("%d dials, want the first and about five refused while the server was down", w.dialID)
	}
	if !strings.Contains(strings.Join(w.trace, "\n"), "peer closed") {
		t.Fatalf("the reset did not reach the machine as the peer's close:\n%s", strings.Join(w.trace, "\n"))
	}
}

// A half-open link that loses our frames leaves us hearing nothing from a
// peer that only answers: our detector convicts, and the next connection
// is spared, as in the simulator.
func TestWorldHalfOpenOut(t *testing.T) {
	w := runWorld(t, scenario{
		phases: []phase{calm()}, seed: 2, end: 2 * time.Minute,
		fail: network.HalfOpenUp, failAt: 30 * time.Second,
	})
	if w.m.State() != fsm.Alive || w.connID != 2 {
		t.Fatalf("at the end: %v on connection %d, want alive on the second (half-open spares new connections)", w.m.State(), w.connID)
	}
}

// A stall blacks out both directions: a stream delivers what was sent in
// it late, nothing is lost, and a stall longer than the dead timeout is a
// verdict.
func TestWorldStall(t *testing.T) {
	p := calm()
	p.stallFrom, p.stallUntil = 20*time.Second, 60*time.Second
	w := runWorld(t, scenario{phases: []phase{p}, seed: 3, end: 90 * time.Second})
	if w.stats.Retransmits == 0 {
		t.Fatal("frames sent in the stall were not retransmitted")
	}
	if w.connID < 2 {
		t.Fatalf("a 40 s stall against a 25 s dead timeout gave no verdict (still on connection %d, %v)", w.connID, w.m.State())
	}
}
