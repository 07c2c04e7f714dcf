package sim

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// Defaults used where a StormConfig field is zero.
const (
	DefaultStormClients = 10000
	DefaultAcceptRate   = 1000
	DefaultWarmup       = 2 * time.Minute
	DefaultStormHorizon = 10 * time.Minute
)

// StormConfig configures a reconnect storm: Clients connect to one server,
// which restarts after Warmup; every connection is reset at once and the
// server accepts at most AcceptRate dials per second from then on.
type StormConfig struct {
	Preset     policy.Preset // required
	Clients    int           // zero means DefaultStormClients
	AcceptRate float64       // accepts per second; zero means DefaultAcceptRate
	// Advise makes the server advertise Clients/AcceptRate as its reconnect
	// window in every ping it sends (policies that read the advice use it;
	// a server that never pings advises no one).
	Advise bool
	// Link is the network; the zero Link means the lan profile's.
	Link     Link
	Seed     uint64
	Warmup   time.Duration // zero means DefaultWarmup
	Horizon  time.Duration // how long after the restart to watch; zero means DefaultStormHorizon
	Downtime time.Duration // how long the server refuses every dial after the restart
	Machine  fsm.Config
	Trace    io.Writer
}

// StormResult is what a storm measured. Times count from the restart.
type StormResult struct {
	Policy     string
	Clients    int
	AcceptRate float64
	Advice     time.Duration // the advertised window (0 if none)
	Reset      int           // connections reset by the restart
	Back       int           // clients connected again within the horizon

	// PeakAttemptsPerSec is the most dials the server saw in any 1-second
	// window (sliding, not aligned to the restart: a burst that straddles
	// a second boundary counts whole); AttemptsPerSec has each aligned
	// second's count from the restart on, for plotting.
	PeakAttemptsPerSec int
	AttemptsPerSec     []int
	TotalAttempts      int64 // dials that reached the server after the restart
	Refused            int64 // of which refused

	// P50, P99: when half and 99 % of the clients were back (Never if
	// they were not within the horizon). Floor is Clients/AcceptRate, the
	// least time any policy could take.
	P50, P99, Floor time.Duration
	Events          int64
}

// Storm runs a reconnect storm.
func Storm(cfg StormConfig) (*StormResult, error) {
	if cfg.Clients == 0 {
		cfg.Clients = DefaultStormClients
	}
	if cfg.AcceptRate == 0 {
		cfg.AcceptRate = DefaultAcceptRate
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = DefaultWarmup
	}
	if cfg.Horizon == 0 {
		cfg.Horizon = DefaultStormHorizon
	}
	switch {
	case cfg.Clients < 0:
		return nil, fmt.Errorf("%w: storm of %d clients: want a positive count (0 means %d)", ErrConfig, cfg.Clients, DefaultStormClients)
	case cfg.AcceptRate < 0 || math.IsNaN(cfg.AcceptRate) || math.IsInf(cfg.AcceptRate, 0):
		return nil, fmt.Errorf("%w: accept rate %g: want a positive rate (0 means %d/s)", ErrConfig, cfg.AcceptRate, DefaultAcceptRate)
	case cfg.Warmup < 0 || cfg.Horizon < 0 || cfg.Downtime < 0:
		return nil, fmt.Errorf("%w: warmup %v, horizon %v and downtime %v must not be negative", ErrConfig, cfg.Warmup, cfg.Horizon, cfg.Downtime)
	}
	link := cfg.Link
	if link == (Link{}) {
		link = profiles["lan"].Link
	}
	floor := time.Duration(float64(cfg.Clients) / cfg.AcceptRate * float64(time.Second))
	c := Config{
		Profile:    Profile{Name: "storm", Link: link},
		Preset:     cfg.Preset,
		Conns:      cfg.Clients,
		Duration:   cfg.Warmup + cfg.Horizon,
		Seed:       cfg.Seed,
		Faults:     []Fault{{At: cfg.Warmup, Kind: ServerRestart, Outage: cfg.Downtime}},
		AcceptRate: cfg.AcceptRate,
		Spread:     floor + floor/2, // the first connections arrive below the accept rate
		Machine:    cfg.Machine,
		Trace:      cfg.Trace,
	}
	if cfg.Advise {
		c.Advice = floor
	}
	s, err := newSim(c)
	if err != nil {
		return nil, err
	}
	t0 := int64(cfg.Warmup)
	res := &StormResult{Policy: cfg.Preset.Name, Clients: cfg.Clients, AcceptRate: cfg.AcceptRate, Advice: c.Advice, Floor: floor, P50: Never, P99: Never}
	bins := make([]int, int(cfg.Horizon/time.Second)+1)
	back := make([]bool, cfg.Clients)
	need50, need99 := (cfg.Clients+1)/2, int(math.Ceil(0.99*float64(cfg.Clients)))
	peak := PeakMeter{Window: time.Second}
	s.onSyn = func(now int64) {
		if now < t0 {
			return
		}
		res.TotalAttempts++
		bins[(now-t0)/int64(time.Second)]++
		peak.Add(time.Duration(now - t0))
	}
	s.onAlive = func(i int32, now int64) {
		if now < t0 || back[i] {
			return
		}
		back[i] = true
		res.Back++
		if res.Back == need50 {
			res.P50 = time.Duration(now - t0)
		}
		if res.Back == need99 {
			res.P99 = time.Duration(now - t0)
		}
		if res.Back == cfg.Clients {
			s.stop = true
		}
	}
	refusedBefore := int64(0)
	s.onRestart = func() {
		refusedBefore = s.meter.refused
		res.Reset = s.meter.resets
	}
	if err := s.run(); err != nil {
		return nil, err
	}
	res.Refused = s.meter.refused - refusedBefore
	res.Events = s.meter.events
	res.PeakAttemptsPerSec = peak.Max()
	last := 0
	for i, n := range bins {
		if n > 0 {
			last = i + 1
		}
	}
	res.AttemptsPerSec = bins[:last]
	return res, nil
}

// PeakMeter finds the largest number of events in any window of length
// Window (the window (t−Window, t] slides over every event time t), for
// events added in non-decreasing time order. Its memory is the events of
// one window.
type PeakMeter struct {
	Window time.Duration
	times  []time.Duration // the events in the current window, oldest first
	head   int
	peak   int
}

// Add counts an event at t, no earlier than the previous one's.
func (p *PeakMeter) Add(t time.Duration) {
	for p.head < len(p.times) && p.times[p.head] <= t-p.Window {
		p.head++
	}
	if p.head > 0 && p.head*2 >= len(p.times) {
		p.times = append(p.times[:0], p.times[p.head:]...)
		p.head = 0
	}
	p.times = append(p.times, t)
	p.peak = max(p.peak, len(p.times)-p.head)
}

// Max returns the largest count seen in one window.
func (p *PeakMeter) Max() int { return p.peak }
