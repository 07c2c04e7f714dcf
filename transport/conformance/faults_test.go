package conformance_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
)

// proxy is a toxiproxy, run in-process on 127.0.0.1, in front of a server.
type proxy struct {
	t *testing.T
	p *toxiproxy.Proxy
}

func newProxy(t *testing.T, upstream string) *proxy {
	zerolog.SetGlobalLevel(zerolog.Disabled) // toxics log through zerolog's global logger
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(api, "ws", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &proxy{t: t, p: p}
}

func (p *proxy) url() string { return "ws://" + p.p.Listen + "/ws" }

// add adds a toxic on both streams; it returns a function that removes it.
func (p *proxy) add(kind string, attrs string) func() {
	p.t.Helper()
	var names []string
	for _, stream := range []string{"upstream", "downstream"} {
		name := kind + "_" + stream
		js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":{%s}}`, name, kind, stream, attrs)
		if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			p.t.Fatalf("add toxic %s: %v", js, err)
		}
		names = append(names, name)
	}
	return func() {
		for _, n := range names {
			_ = p.p.Toxics.RemoveToxic(p.t.Context(), n)
		}
	}
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
			r.px.add("latency", `"latency":60,"jitter":30`)
			r.d.WaitHeartbeats(t, 8, patience(8))
			if bad := r.w.Verdicts(mark); len(bad) > 0 {
				t.Errorf("false verdicts under latency below the bound: %v", bad)
			}
		})
	}
}

// TestHalfOpen: the timeout toxic (timeout 0) swallows all data and never
// closes: a half-open link. The socket stays open, yet the client must
// reach dead by the detector's bound, and reconnect once the link heals.
func TestHalfOpen(t *testing.T) {
	for _, p := range faultPairings {
		t.Run(p.server+"-server/"+p.client+"-client", func(t *testing.T) {
			r := newFaultRig(t, p.server, p.client, false)
			mark := r.w.Len()
			heal := r.px.add("timeout", `"timeout":0`)
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
			stop := r.px.add("reset_peer", `"timeout":0`)
			start := time.Now()
			i, c := r.w.WaitFor(t, mark, "dead", conformance.To(fsm.Dead))
			if c.Reason != fsm.ReasonPeerClosed && c.Reason != fsm.ReasonSendFailed {
				t.Errorf("dead for %v, want peer closed or send failed", c.Reason)
			}
			// The reset fires on the next bytes, which the next idle ping
			// sends: well before the suspect timeout.
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
	toxics := []struct{ kind, attrs string }{
		{"bandwidth", `"rate":8`}, // 8 KB/s
		{"slicer", `"average_size":4,"size_variation":2,"delay":1000`},
	}
	for _, p := range faultPairings {
		for _, tx := range toxics {
			t.Run(p.server+"-server/"+p.client+"-client/"+tx.kind, func(t *testing.T) {
				r := newFaultRig(t, p.server, p.client, true)
				mark := r.w.Len()
				r.px.add(tx.kind, tx.attrs)
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
