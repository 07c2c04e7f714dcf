package fsm_test

import (
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// floodRun feeds a connected server Machine a ping every gap for span and
// returns when it was convicted of a flood, or -1.
func floodRun(t *testing.T, minPing, gap, span time.Duration) time.Duration {
	t.Helper()
	m, err := fsm.NewMachine(fsm.Config{
		Role:            fsm.Server,
		Detector:        &policy.Fixed{SuspectAfter: time.Hour, DeadAfter: time.Hour},
		Interval:        policy.Never{},
		MinPingInterval: minPing,
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var acts []fsm.Action
	acts = m.Step(start, fsm.Input{Kind: fsm.Start}, acts[:0])
	acts = m.Step(start, fsm.Input{Kind: fsm.Connected}, acts[:0])
	for at := gap; at <= span; at += gap {
		acts = m.Step(start.Add(at), fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Ping, Seq: uint64(at / gap)}}, acts[:0])
		for _, a := range acts {
			if a.Kind == fsm.StateChanged && a.Reason == fsm.ReasonPingFlood {
				return at
			}
		}
	}
	return -1
}

// Raising MinPingInterval spaces our own pings; it must not make a peer
// that pings every second a flooder (it did: convicted at 63 s with
// MinPingInterval 5 s, after its burst of 50 ran out).
func TestFloodMeterIgnoresOwnSpacing(t *testing.T) {
	if at := floodRun(t, 5*time.Second, time.Second, 10*time.Minute); at >= 0 {
		t.Fatalf("an honest peer pinging every 1 s was convicted of a flood at %v with MinPingInterval 5s", at)
	}
	// A real flood is still one, whatever our own spacing.
	if at := floodRun(t, 5*time.Second, 10*time.Millisecond, time.Minute); at < 0 {
		t.Fatal("a peer pinging every 10 ms was never convicted")
	}
	if at := floodRun(t, 10*time.Millisecond, 5*time.Millisecond, time.Minute); at < 0 {
		t.Fatal("with MinPingInterval 10 ms, a peer pinging every 5 ms was never convicted")
	}
}
