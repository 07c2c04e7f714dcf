package policy_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// The adaptive detector learns how late heartbeats come: after 200
// heartbeats 5 s apart (17 minutes), answered in 100 ms, it suspects the
// peer 5.3 s after the last evidence (5 s + rto: a 100 ms round trip
// that no longer varies, plus 200 ms for one retransmission) and convicts
// at 6.4 s:
// 14 times the worst lateness it has seen (100 ms) past the heartbeat. It
// starts at 6 s and 7 s; its prior (a second of possible stall, fading
// over about 20 heartbeats) keeps it patient while the link is new.
func ExampleAdaptive() {
	d := &policy.Adaptive{} // a heartbeat every 5 s
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.Start(now)
	s, dead := d.Timeouts()
	fmt.Println("before any sample:", s, dead)
	for i := range 200 {
		now = now.Add(5*time.Second + 100*time.Millisecond) // ping after 5 s idle, pong 100 ms later
		d.Observe(now, 100*time.Millisecond)
		if i == 0 {
			s, dead = d.Timeouts()
			fmt.Println("after 1 heartbeat:", s.Round(time.Millisecond), dead.Round(time.Millisecond))
		}
	}
	s, dead = d.Timeouts()
	fmt.Println("after 200 heartbeats:", s.Round(time.Millisecond), dead.Round(time.Millisecond))
	// Output:
	// before any sample: 6s 7s
	// after 1 heartbeat: 5.5s 10.95s
	// after 200 heartbeats: 5.3s 6.4s
}

// Akka's φ accrual detector with its cluster defaults: a seeded window of
// 750 ms and 1250 ms gaps, 3 s of acceptable pause, dead at φ = 8.
func ExamplePhiAccrual() {
	d := &policy.PhiAccrual{AcceptablePause: 3 * time.Second}
	_, dead := d.Timeouts()
	fmt.Println("dead after", dead.Round(time.Millisecond))
	fmt.Printf("φ after 4.5 s of silence: %.2f\n", d.Phi(4500*time.Millisecond))
	// Output:
	// dead after 5.306s
	// φ after 4.5 s of silence: 1.64
}

// A server that knows it has 10 000 clients and accepts 1 000 a second
// advises a 10 s window; each client's first redial lands somewhere in it.
// Every client seeds its own source differently (here from the runtime's
// random state): with one fixed seed everywhere, every client would pick
// the same moment and the window would spread nothing.
func ExampleAdvised() {
	b := &policy.Advised{Rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	d, err := b.Next(policy.Retry{Attempt: 1, Advice: 10 * time.Second})
	fmt.Println("first redial within the window:", err == nil && d >= 0 && d <= 10*time.Second)
	// Output:
	// first redial within the window: true
}

// Limit adds the common limits to any backoff; the Machine closes with the
// error once a limit is reached.
func ExampleLimit() {
	b := &policy.Limit{Backoff: &policy.Table{Delays: []time.Duration{0, 2 * time.Second, 10 * time.Second}, Repeat: true}, MaxElapsed: 15 * time.Second}
	var elapsed time.Duration
	for attempt := 1; ; attempt++ {
		d, err := b.Next(policy.Retry{Attempt: attempt, Elapsed: elapsed})
		if err != nil {
			fmt.Println(errors.Is(err, policy.ErrGaveUp), err)
			return
		}
		fmt.Println("dial", attempt, "after", d)
		elapsed += d
	}
	// Output:
	// dial 1 after 0s
	// dial 2 after 2s
	// dial 3 after 10s
	// true policy: gave up reconnecting after 3 attempts in 12s: max total time reached
}

// A preset gives both sides of a well-known system; its policies plug into
// the Machine as they are (on a real connection: fsm.DriverConfig's Config,
// see docs/integrating.md). Lookup also resolves the equal-cost names
// hbsim prints, such as "adaptive@socketio".
func ExampleLookup() {
	p, err := policy.Lookup("socketio")
	if err != nil {
		panic(err)
	}
	// The connection's own source, seeded differently on every client: a
	// fixed seed would make every client jitter alike.
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	client := p.Client(r)
	m, err := fsm.NewMachine(fsm.Config{Role: fsm.Client, Detector: client.Detector, Interval: client.Interval, Backoff: client.Backoff})
	if err != nil {
		panic(err)
	}
	s, d := client.Detector.Timeouts()
	fmt.Printf("%s client: %T interval, dead after %v (suspect %v), machine %v\n", p.Name, client.Interval, d, s, m.State())
	// Output:
	// socketio client: policy.Never interval, dead after 45s (suspect 45s), machine connecting
}

// EqualCost builds the adaptive row at a preset's cadence: Socket.IO's
// server still pings every 25 s and its client still only listens, but both
// probe a suspect peer instead of waiting out a 45 s timeout.
func ExampleEqualCost() {
	p, _ := policy.Lookup("socketio")
	eq, err := policy.EqualCost(p)
	if err != nil {
		panic(err)
	}
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) // per connection
	c, s := eq.Client(r), eq.Server(r)
	cs, cd := c.Detector.Timeouts()
	fmt.Printf("%s: client %T suspect %v dead %v; server %T\n", eq.Name, c.Interval, cs, cd, s.Interval)
	// Output:
	// adaptive@socketio: client *policy.Listen suspect 26s dead 27s; server *policy.AdaptiveInterval
}

// A detector states the worst case it promises for a network bound.
func ExampleBounded() {
	var d policy.Bounded = &policy.Fixed{SuspectAfter: 45 * time.Second, DeadAfter: 45 * time.Second}
	b, err := d.DetectionBound(policy.NetworkBound{Heartbeat: 25 * time.Second, MaxRTT: time.Second})
	fmt.Println(b, err)
	_, err = d.DetectionBound(policy.NetworkBound{Heartbeat: 25 * time.Second, MaxRTT: 30 * time.Second})
	fmt.Println(errors.Is(err, policy.ErrNoBound))
	// Output:
	// 46s <nil>
	// true
}
