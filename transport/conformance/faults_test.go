package conformance_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/faultproxy"
)

// proxy is a fault proxy on 127.0.0.1 in front of a server.
type proxy struct {
	t *testing.T
	p *faultproxy.Proxy
}

func newProxy(t *testing.T, upstream string) *proxy {
	p, err := faultproxy.New(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &proxy{t: t, p: p}
}

func (p *proxy) url() string { return "ws://" + p.p.Addr() + "/ws" }

// set puts f on both directions; it returns a function that heals the link.
func (p *proxy) set(f faultproxy.Fault) func() {
	p.t.Helper()
	if err := p.p.Set(f); err != nil {
		p.t.Fatal(err)
	}
	return p.p.Clear
}

// faultRig is a server behind a proxy and a client through it.
type faultRig struct {
	srv     *server
	px      *proxy
	w       *conformance.Changes
	d       *conformance.Counter
	drv     *fsm.Driver
	readers sync.WaitGroup
}

func newFaultRig(t *testing.T, serverKind, clientKind string, pump bool) *faultRig {
	r := &faultRig{srv: newServer(t, serverKind)}
	r.srv.pump.Store(pump)
	// The server is slow to judge, so that every verdict the tests see
	// is the client's own detector, not a close the server sent.
	r.srv.serverDead = 10 * time.Second
	r.px = newProxy(t, r.srv.addr)
	r.d = conformance.NewCounter(clientDialer(t, clientKind, r.px.url(), &r.readers))
	r.drv, r.w = runClient(t, r.d)
	t.Cleanup(func() {
		_ = r.drv.Close()
		r.readers.Wait()
	})
	r.w.WaitFor(t, 0, "alive", conformance.To(fsm.Alive))
	return r
}

// gorilla server + coder client, the reverse, and the nbio server with
// either client.
var faultPairings = append(pairings[:2:2], pairings[4:]...)

// TestLatencyAndJitter: 60 ms ± 30 ms each way. The worst round trip
// (180 ms) plus the 100 ms idle gap before a ping stays under the 300 ms
// suspect timeout, so there must be no false verdict.
func TestLatencyAndJitter(t *testing.T) {
	for _, p := range faultPairings {
		t.Run(p.server+"-server/"+p.client+"-client", func(t *testing.T) {
			r := newFaultRig(t, p.server, p.client, false)
			mark := r.w.Len()
			r.px.set(faultproxy.Latency{Delay: 60 * time.Millisecond, Jitter: 30 * time.Millisecond})
			r.d.WaitHeartbeats(t, 8, patience(8))
			if bad := r.w.Verdicts(mark); len(bad) > 0 {
				t.Errorf("false verdicts under latency below the bound: %v", bad)
			}
		})
	}
}

// TestHalfOpen: a blackhole swallows all data and never
// closes: a half-open link. The socket stays open, yet the client must
// reach dead by the detector's bound, and reconnect once the link heals.
func TestHalfOpen(t *testing.T) {
	for _, p := range faultPairings {
		t.Run(p.server+"-server/"+p.client+"-client", func(t *testing.T) {
			r := newFaultRig(t, p.server, p.client, false)
			mark := r.w.Len()
			heal := r.px.set(faultproxy.Blackhole{})
			cut := time.Now()
			i, c := r.w.WaitFor(t, mark, "dead", conformance.To(fsm.Dead))
			if c.Reason != fsm.ReasonUnanswered {
				t.Errorf("dead for %v, want %v (the socket never closed)", c.Reason, fsm.ReasonUnanswered)
			}
			// The last evidence came at most one ping interval before the cut.
			if took := c.At.Sub(cut); took > deadAfter+pingEvery {
				t.Errorf("dead %v after the link went half-open, bound %v", took, deadAfter+pingEvery)
			}
			heal()
			r.w.WaitFor(t, i, "alive again", conformance.To(fsm.Alive))
		})
	}
}

// TestResetPeer: a TCP reset makes the client dead at once (peer closed,
// not the detector's timeout), and it reconnects once resets stop.
func TestResetPeer(t *testing.T) {
	for _, p := range faultPairings {
		t.Run(p.server+"-server/"+p.client+"-client", func(t *testing.T) {
			r := newFaultRig(t, p.server, p.client, false)
			mark := r.w.Len()
			stop := r.px.set(faultproxy.Reset{})
			start := time.Now()
			i, c := r.w.WaitFor(t, mark, "dead", conformance.To(fsm.Dead))
			if c.Reason != fsm.ReasonPeerClosed && c.Reason != fsm.ReasonSendFailed {
				t.Errorf("dead for %v, want peer closed or send failed", c.Reason)
			}
			// Set resets the open connection at once: dead well before
			// the suspect timeout.
			if took := c.At.Sub(start); took >= suspectAfter {
				t.Errorf("dead %v after the reset, want before the suspect timeout %v", took, suspectAfter)
			}
			stop()
			r.w.WaitFor(t, i, "alive again", conformance.To(fsm.Alive))
		})
	}
}

// TestSlowLinks: a narrow link (bandwidth, 8 KB/s) and one that cuts every
// write into small, delayed pieces (slicer) still carry the heartbeat while
// the server streams data at about 5 KB/s: no false verdict while data
// moves.
func TestSlowLinks(t *testing.T) {
	faults := []struct {
		name  string
		fault faultproxy.Fault
	}{
		{"bandwidth", faultproxy.Bandwidth{BytesPerSecond: 8_000}},
		{"slicer", faultproxy.Slicer{Size: 4, Variation: 2, Delay: time.Millisecond}},
	}
	for _, p := range faultPairings {
		for _, tx := range faults {
			t.Run(p.server+"-server/"+p.client+"-client/"+tx.name, func(t *testing.T) {
				r := newFaultRig(t, p.server, p.client, true)
				mark := r.w.Len()
				r.px.set(tx.fault)
				// 24 messages at one per 50 ms: twice the dead timeout. The
				// client does not ping meanwhile: the data is its evidence.
				r.d.WaitData(t, 24, patience(24))
				// A verdict is false when frames kept arriving: the silence
				// before it, measured at the client, is shorter than the
				// timeout that gave it. On a busy machine the slicer's
				// millisecond pauses stretch and the link itself can go
				// quiet for longer; a verdict after such a silence is the
				// detector doing its job.
				var bad, earned []string
				all := r.w.List()
				for _, c := range r.w.Verdicts(mark) {
					last, ok := r.d.LastFrameBefore(c.At)
					// The silence began at the last frame, or, when none came
					// since, when the connection became alive.
					for _, a := range all {
						if a.To == fsm.Alive && !a.At.After(c.At) && a.At.After(last) {
							last, ok = a.At, true
						}
					}
					silence := c.At.Sub(last)
					timeout := suspectAfter
					if c.To == fsm.Dead {
						timeout = deadAfter
					}
					verdict := fmt.Sprintf("%v after %v of silence", c, silence.Round(time.Millisecond))
					justified := c.Reason == fsm.ReasonSilence || c.Reason == fsm.ReasonLocalStall || (c.To == fsm.Dead && c.Reason == fsm.ReasonUnanswered)
					if ok && justified && silence >= timeout {
						earned = append(earned, verdict)
					} else {
						bad = append(bad, verdict)
					}
				}
				if len(earned) > 0 {
					t.Logf("verdicts the link earned (no frame for a timeout): %v", earned)
				}
				if len(bad) > 0 {
					t.Errorf("false verdicts on a slow link (frames kept arriving): %v", bad)
				}
			})
		}
	}
}
