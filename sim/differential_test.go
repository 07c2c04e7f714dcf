package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/mem"
)

// The differential scenario: one client with the default policies (its
// backoff made deterministic: half the advised window) against the default
// server, which advertises diffWindow; the server's pong to the client's
// third ping is lost; the server restarts at diffRestart and refuses dials
// for a second; the run ends at diffEnd.
const (
	diffLatency = 10 * time.Millisecond
	diffWindow  = 4 * time.Second
	diffLostSeq = 3
	diffRestart = 40 * time.Second
	diffOutage  = time.Second
	diffEnd     = 50 * time.Second
)

// wireFrame is one heartbeat put on the wire, with the fields that carry
// meaning: who sent it, on which connection (1, 2, …), its kind, Seq and
// advice, and whether the scenario dropped it.
type wireFrame struct {
	from   string
	conn   int
	kind   transport.FrameKind
	seq    uint64
	window time.Duration
	lost   bool
}

func (f wireFrame) String() string {
	s := fmt.Sprintf("%s conn %d %v seq %d", f.from, f.conn, f.kind, f.seq)
	if f.window > 0 {
		s += fmt.Sprintf(" window %v", f.window)
	}
	if f.lost {
		s += " (lost)"
	}
	return s
}

// lose says whether the scenario drops f: the server's pong to the first
// connection's ping diffLostSeq.
func (f wireFrame) lose() bool {
	return f.from == "server" && f.conn == 1 && f.kind == transport.Pong && f.seq == diffLostSeq
}

func diffPreset() policy.Preset {
	return policy.Preset{
		Name: "differential",
		Client: func(r *rand.Rand) policy.Set {
			s := policy.DefaultSet(r)
			s.Backoff = backoffFunc(func(r policy.Retry) (time.Duration, error) {
				if r.Advice > 0 {
					return r.Advice / 2, nil
				}
				return time.Second, nil
			})
			return s
		},
		Server: func(*rand.Rand) policy.Set { return policy.DefaultServerSet() },
		Pings:  policy.Cadence{Client: policy.DefaultAdaptiveInterval},
	}
}

type backoffFunc func(policy.Retry) (time.Duration, error)

func (f backoffFunc) Next(r policy.Retry) (time.Duration, error) { return f(r) }

// TestDifferential runs the same scripted scenario through the simulator
// and through fsm.Run over transport/mem (in a synctest bubble, so on fake
// time) and requires the same heartbeats, with the same fields, in the same
// order. It guards against the simulator modelling a frame the adapters do
// not send, as it once attached the server's advice to its pongs.
func TestDifferential(t *testing.T) {
	simulated := runDiffSim(t)
	real := runDiffMem(t)
	if len(simulated) < 10 {
		t.Fatalf("only %d frames in the simulator: the scenario did not run", len(simulated))
	}
	var adviceAfterLoss, lost bool
	for _, f := range real {
		lost = lost || f.lost
		adviceAfterLoss = adviceAfterLoss || (f.conn == 2 && f.window == diffWindow)
	}
	if !lost || !adviceAfterLoss {
		t.Fatalf("the scenario lost no pong or never advised the second connection:\n%s", join(real))
	}
	for i := range max(len(simulated), len(real)) {
		var s, r string
		if i < len(simulated) {
			s = simulated[i].String()
		}
		if i < len(real) {
			r = real[i].String()
		}
		if s != r {
			t.Fatalf("frame %d: simulator %q, fsm.Run over mem %q\nsimulator:\n%s\nfsm.Run over mem:\n%s", i, s, r, join(simulated), join(real))
		}
	}
}

func join(fs []wireFrame) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %v\n", f)
	}
	return b.String()
}

func runDiffSim(t *testing.T) []wireFrame {
	t.Helper()
	s, err := newSim(Config{
		Profile:  Profile{Name: "differential", Link: Symmetric(Dir{Latency: Latency{Dist: Constant, Mean: diffLatency}})},
		Preset:   diffPreset(),
		Conns:    1,
		Duration: diffEnd,
		Seed:     1,
		Faults:   []Fault{{At: diffRestart, Kind: ServerRestart, Outage: diffOutage}},
		Advice:   diffWindow,
		Spread:   1, // dial at once
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []wireFrame
	s.onSend = func(from side, e *event) bool {
		f := wireFrame{from: "client", conn: int(e.gen), kind: transport.FrameKind(e.fk), seq: uint64(e.aux)}
		if from != client {
			f.from = "server"
		}
		if e.flag != 0 {
			f.window = s.cfg.Advice
		}
		f.lost = f.lose()
		out = append(out, f)
		return !f.lost
	}
	if err := s.run(); err != nil {
		t.Fatal(err)
	}
	return out
}

// tap records the heartbeats a connection end sends, dropping the one the
// scenario loses.
type tap struct {
	transport.Conn
	from string
	conn int
	log  *wireLog
}

type wireLog struct {
	mu     sync.Mutex
	frames []wireFrame
}

func (t *tap) Send(ctx context.Context, f transport.Frame) error {
	w := wireFrame{from: t.from, conn: t.conn, kind: f.Kind, seq: f.Seq, window: f.ReconnectWindow}
	w.lost = w.lose()
	var err error
	if !w.lost {
		err = t.Conn.Send(ctx, f)
	}
	if err == nil { // a frame that could not be sent never reached the wire
		t.log.mu.Lock()
		t.log.frames = append(t.log.frames, w)
		t.log.mu.Unlock()
	}
	return err
}

func runDiffMem(t *testing.T) []wireFrame {
	t.Helper()
	var log wireLog
	synctest.Test(t, func(t *testing.T) {
		clk := clock.New() // the bubble's fake time
		var (
			mu      sync.Mutex
			conns   int
			drivers []*fsm.Driver
		)
		l := mem.Listen(clk, func(c *mem.Conn) {
			c.SetDelay(diffLatency)
			set := policy.DefaultServerSet()
			mu.Lock()
			n := conns
			mu.Unlock()
			d, err := fsm.Run(context.Background(), fsm.DriverConfig{
				Config: fsm.Config{Role: fsm.Server, Detector: set.Detector, Interval: set.Interval},
				Dialer: transport.Accepted(func(ev transport.Events) (transport.Conn, error) {
					c.Bind(ev)
					return &tap{Conn: c, from: "server", conn: n, log: &log}, nil
				}),
				Clock:  clk,
				Advice: func() time.Duration { return diffWindow },
			})
			if err != nil {
				t.Errorf("server driver: %v", err)
				_ = c.Close(err)
				return
			}
			mu.Lock()
			drivers = append(drivers, d)
			mu.Unlock()
		})
		dialer := transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
			mu.Lock()
			conns++
			n := conns
			mu.Unlock()
			c, err := l.Dial(ctx, ev)
			if err != nil {
				return nil, err
			}
			c.(*mem.Conn).SetDelay(diffLatency)
			return &tap{Conn: c, from: "client", conn: n, log: &log}, nil
		})
		cs := diffPreset().Client(nil)
		d, err := fsm.Run(context.Background(), fsm.DriverConfig{
			Config: fsm.Config{Detector: cs.Detector, Interval: cs.Interval, Backoff: cs.Backoff},
			Dialer: dialer,
			Clock:  clk,
		})
		if err != nil {
			t.Fatal(err)
		}
		start := clk.Now()
		until := func(at time.Duration) {
			tm := clk.Timer(start.Add(at).Sub(clk.Now()))
			<-tm.C
			synctest.Wait()
		}
		until(diffRestart)
		l.Crash(errors.New("differential: server restart"))
		until(diffRestart + diffOutage)
		l.SetDown(false)
		until(diffEnd)
		_ = d.Close()
		l.Crash(errors.New("differential: test over"))
		mu.Lock()
		ds := drivers
		mu.Unlock()
		for _, d := range ds {
			_ = d.Close()
		}
	})
	return log.frames
}
