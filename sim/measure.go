package sim

import (
	"math"
	"slices"
	"time"
)

// Never is the Quantiles value of a failure that was not detected.
const Never = time.Duration(math.MaxInt64)

// Quantiles summarises a set of durations. A value of Never means the
// quantile falls on failures that were never detected.
type Quantiles struct {
	N             int // samples
	P50, P99, Max time.Duration
}

// quantiles summarises v (negative entries mean never); it sorts v.
func quantiles(v []int64) Quantiles {
	q := Quantiles{N: len(v)}
	if len(v) == 0 {
		return q
	}
	for i, x := range v {
		if x < 0 {
			v[i] = math.MaxInt64
		}
	}
	slices.Sort(v)
	at := func(p float64) time.Duration {
		k := int(math.Ceil(p*float64(len(v)))) - 1
		return time.Duration(v[max(k, 0)])
	}
	q.P50, q.P99, q.Max = at(0.5), at(0.99), time.Duration(v[len(v)-1])
	return q
}

// hist is a histogram of durations with 64 bins per octave (bins 1.6 %
// wide at most), filled in O(1) without a logarithm, plus a count of
// censored samples known only to be longer than any timeout in question.
type hist struct {
	n        []int64
	censored int64
	total    int64
}

const histSub = 64

func (h *hist) init() { h.n = make([]int64, 64*histSub) }

func histBin(ns int64) int {
	if ns < 1 {
		return 0
	}
	b := math.Float64bits(float64(ns))
	exp := int(b>>52) - 1023
	return exp*histSub + int(b>>(52-6))&(histSub-1)
}

// histUpper is the upper edge of bin b.
func histUpper(b int) int64 {
	oct, sub := b/histSub, b%histSub
	return int64(math.Ldexp(1+float64(sub+1)/histSub, oct))
}

func (h *hist) add(ns int64) {
	h.n[histBin(ns)]++
	h.total++
}

func (h *hist) addCensored() {
	h.censored++
	h.total++
}

// threshold returns the smallest bin edge T with at most allowed samples
// longer than T, and whether there were samples at all.
func (h *hist) threshold(allowed int64) (int64, bool) {
	if h.total == h.censored {
		return 0, false
	}
	above := h.censored
	for b := len(h.n) - 1; b >= 0; b-- {
		if above+h.n[b] > allowed {
			return histUpper(b), true
		}
		above += h.n[b]
	}
	return 0, true
}

// failRec is one measured failure.
type failRec struct {
	at, td    int64 // td < 0: undetected
	lastEv    [2]int64
	kind      FaultKind
	survivors uint8
}

// meter accumulates a run's measurements.
type meter struct {
	gaps          [2]hist // healthy silences between evidence, per side class
	falseDeads    [2]int64
	falseSuspects int64
	suspectDur    []int64
	failures      []failRec
	msgs, bytes   int64
	dials, starts int64
	gaveUp        int64
	refused       int64
	resets        int
	ghostsDropped int64
	events, stale int64
	link          LinkStats
}

func (m *meter) init() {
	m.gaps[0].init()
	m.gaps[1].init()
}

// Result is what one run measured.
type Result struct {
	Policy   string
	Profile  string
	Seed     uint64
	Conns    int
	Duration time.Duration // virtual time simulated
	Events   int64         // simulation events processed

	Detection  Detection     // the real failures, and how soon they were found
	False      FalseVerdicts // verdicts on healthy connections
	Cost       Cost          // what the heartbeat sent
	Reconnects Reconnects    // dials, refused and given up

	// Presence has one result per Config.Presence model.
	Presence []PresenceResult
}

// Detection is how a run's real failures were found.
type Detection struct {
	// Failures counts the real failures (crashes, partitions, half-open
	// links) that hit an established connection; Undetected those no
	// surviving side declared dead within Config.DetectHorizon.
	Failures, Undetected int
	// Time is T_D: from the failure to the first surviving side's dead
	// verdict (undetected failures count as Never).
	Time Quantiles
	// ByKind is Time per kind of failure.
	ByKind map[FaultKind]Quantiles
	// BestFixedTimeout is, per side ([0] client, [1] server), the smallest
	// fixed dead timeout that would have made no more false dead verdicts
	// than this policy did on the same healthy silences (0 if that side
	// heard nothing); BestFixed is the detection time such a timeout would
	// have had on the same failures.
	BestFixedTimeout [2]time.Duration
	BestFixed        Quantiles
}

// FalseVerdicts are the verdicts a run reached on healthy connections.
type FalseVerdicts struct {
	// Deads counts dead verdicts (by silence or ping flood) while the
	// connection was healthy, by side: [0] client, [1] server.
	Deads [2]int64
	// Suspects counts suspect episodes begun while the connection was
	// healthy; SuspectDuration is how long those that ended in evidence
	// lasted.
	Suspects        int64
	SuspectDuration Quantiles
}

// Cost is what a run's heartbeats sent.
type Cost struct {
	HeartbeatMsgs  int64 // pings and pongs sent, both sides
	HeartbeatBytes int64 // their WebSocket frame bytes (header, mask, payload)
	Link           LinkStats
}

// Reconnects counts a run's dials.
type Reconnects struct {
	Dials    int64 // connection attempts
	Attempts int64 // Dials less each client's first
	GaveUp   int64 // clients whose backoff gave up
	Refused  int64 // dials the server refused
}

// ConnDays is the connection time simulated, in days.
func (r *Result) ConnDays() float64 { return float64(r.Conns) * r.Duration.Hours() / 24 }

// FalseDeadsPerConnDay is both sides' false dead verdicts per connection-day.
func (r *Result) FalseDeadsPerConnDay() float64 {
	return float64(r.False.Deads[0]+r.False.Deads[1]) / r.ConnDays()
}

// FalseSuspectsPerConnDay is false suspect episodes per connection-day.
func (r *Result) FalseSuspectsPerConnDay() float64 { return float64(r.False.Suspects) / r.ConnDays() }

// MsgsPerConnMin is heartbeat messages per connection-minute.
func (r *Result) MsgsPerConnMin() float64 {
	return float64(r.Cost.HeartbeatMsgs) / (float64(r.Conns) * r.Duration.Minutes())
}

// BytesPerConnMin is heartbeat bytes per connection-minute.
func (r *Result) BytesPerConnMin() float64 {
	return float64(r.Cost.HeartbeatBytes) / (float64(r.Conns) * r.Duration.Minutes())
}

func (s *engine) result() *Result {
	m := &s.meter
	r := &Result{
		Policy: s.cfg.Preset.Name, Profile: s.cfg.Profile.Name, Seed: s.cfg.Seed,
		Conns: s.cfg.Conns, Duration: s.cfg.Duration, Events: m.events,
		Detection:  Detection{Failures: len(m.failures), ByKind: map[FaultKind]Quantiles{}},
		False:      FalseVerdicts{Deads: m.falseDeads, Suspects: m.falseSuspects, SuspectDuration: quantiles(m.suspectDur)},
		Cost:       Cost{HeartbeatMsgs: m.msgs, HeartbeatBytes: m.bytes, Link: m.link},
		Reconnects: Reconnects{Dials: m.dials, Attempts: m.dials - m.starts, GaveUp: m.gaveUp, Refused: m.refused},
	}
	var tstar [2]int64
	var heard [2]bool
	for c := range 2 {
		tstar[c], heard[c] = m.gaps[c].threshold(m.falseDeads[c])
		r.Detection.BestFixedTimeout[c] = time.Duration(tstar[c])
	}
	td := make([]int64, 0, len(m.failures))
	best := make([]int64, 0, len(m.failures))
	byKind := map[FaultKind][]int64{}
	for _, f := range m.failures {
		if f.td < 0 {
			r.Detection.Undetected++
		}
		td = append(td, f.td)
		byKind[f.kind] = append(byKind[f.kind], f.td)
		b := int64(-1)
		for c := range 2 {
			if f.survivors&(1<<c) == 0 || !heard[c] {
				continue
			}
			v := max(f.lastEv[c]+tstar[c]-f.at, 0)
			if b < 0 || v < b {
				b = v
			}
		}
		best = append(best, b)
	}
	if s.pres != nil {
		r.Presence = s.pres.results(s)
	}
	r.Detection.Time = quantiles(td)
	r.Detection.BestFixed = quantiles(best)
	for k, v := range byKind {
		r.Detection.ByKind[k] = quantiles(v)
	}
	return r
}
