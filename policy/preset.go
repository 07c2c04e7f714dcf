package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Set is one side's policies for one connection.
type Set struct {
	Detector Detector
	Interval Interval
	Backoff  Backoff // nil on the server side
}

// Preset is a named configuration of both sides of a connection, usually
// reproducing a well-known system's defaults.
type Preset struct {
	Name   string
	Source string // where the numbers come from
	// Client and Server return fresh per-connection policies for each side.
	// r is the connection's own seeded random source (jitter, spread first
	// pings); a policy must draw randomness only from it.
	Client func(r *rand.Rand) Set
	Server func(r *rand.Rand) Set
	// Pings says who pings and how often on an idle line; EqualCost and
	// the simulator's cost comparisons read it.
	Pings Cadence
}

// Cadence says how often each side of a preset pings when the line is idle.
// Zero means that side never pings on its own (it may still probe a suspect
// peer).
type Cadence struct {
	Client time.Duration
	Server time.Duration
}

// Heartbeat returns the shorter positive interval of the two, the longest a
// live connection stays quiet before someone pings (the Heartbeat of a
// NetworkBound for either side), or 0 if neither side pings.
func (c Cadence) Heartbeat() time.Duration {
	switch {
	case c.Client <= 0:
		return max(c.Server, 0)
	case c.Server <= 0:
		return c.Client
	}
	return min(c.Client, c.Server)
}

// EqualCost returns the preset "adaptive@"+p.Name: this library's Adaptive
// detector at p's heartbeat cadence and direction, so that it spends about
// the heartbeat bytes p spends. A side that pings in p pings when idle at
// the same interval (AdaptiveInterval with Max at p's interval); a side that
// only listens in p, or whose peer pings more often, listens (Listen).
// Either side expects a heartbeat every p.Pings.Heartbeat() and probes a suspect
// peer min(1 s, heartbeat/2) after the last ping, the gap doubling with
// each unanswered probe (ProbeGrowth 2: on a stream, probes behind an
// unanswered one are wasted, and they would cost more than p spends on a
// link that stalls). The client keeps p's backoff, so only detection
// differs. The result is not registered: build it on demand.
func EqualCost(p Preset) (Preset, error) {
	c := p.Pings
	hb := c.Heartbeat()
	switch {
	case p.Client == nil || p.Server == nil:
		return Preset{}, invalid("equal cost", "preset %q needs both constructors", p.Name)
	case c.Client < 0 || c.Server < 0 || hb == 0:
		return Preset{}, invalid("equal cost", "preset %q has no heartbeat cadence (client %v, server %v): set Pings", p.Name, c.Client, c.Server)
	case hb < 2*MinPingGap:
		return Preset{}, invalid("equal cost", "preset %q pings every %v: too fast to probe faster (need at least %v)", p.Name, hb, 2*MinPingGap)
	}
	probe := max(min(DefaultProbe, hb/2), MinPingGap)
	side := func(own time.Duration) (Detector, Interval) {
		d := &Adaptive{Interval: hb, Probe: probe}
		if own > 0 && own <= hb {
			return d, &AdaptiveInterval{Min: probe, Max: own, ProbeGrowth: DefaultProbeGrowth}
		}
		// This side never pings in p, or the peer pings more often, so
		// its own idle pings would never go out (gRPC's server).
		return d, &Listen{Probe: probe, ProbeGrowth: DefaultProbeGrowth}
	}
	return Preset{
		Name: "adaptive@" + p.Name,
		Source: fmt.Sprintf("this library's Adaptive detector at %s's cadence (client pings every %v, server every %v; 0 = never), probing %v after the last ping while suspect, then at doubling gaps; %s's reconnect backoff",
			p.Name, c.Client, c.Server, probe, p.Name),
		Pings: c,
		Client: func(r *rand.Rand) Set {
			d, i := side(c.Client)
			return Set{Detector: d, Interval: i, Backoff: p.Client(r).Backoff}
		},
		Server: func(*rand.Rand) Set {
			d, i := side(c.Server)
			return Set{Detector: d, Interval: i}
		},
	}, nil
}

var presets = map[string]Preset{}

// Register adds p to the presets addressable by name. It panics on a
// duplicate name or a missing constructor: presets are registered at init.
func Register(p Preset) {
	if p.Name == "" || p.Client == nil || p.Server == nil {
		panic(fmt.Sprintf("policy: preset %q needs a name and both constructors", p.Name))
	}
	if strings.HasPrefix(p.Name, EqualCostPrefix) {
		panic(fmt.Sprintf("policy: preset %q: names starting %q are Lookup's equal-cost presets", p.Name, EqualCostPrefix))
	}
	if _, dup := presets[p.Name]; dup {
		panic(fmt.Sprintf("policy: preset %q registered twice", p.Name))
	}
	presets[p.Name] = p
}

// EqualCostPrefix starts the name of an equal-cost preset: Lookup resolves
// EqualCostPrefix+P to EqualCost of the registered preset P.
const EqualCostPrefix = "adaptive@"

// Lookup returns the preset named name: a registered preset (see Names), or
// "adaptive@P" for EqualCost of the registered preset P. The presets'
// constructors take the connection's random source: give every connection
// its own, seeded differently on every client (see DefaultSet), or every
// client jitters alike.
func Lookup(name string) (Preset, error) {
	if base, ok := strings.CutPrefix(name, EqualCostPrefix); ok {
		p, ok := presets[base]
		if !ok {
			return Preset{}, fmt.Errorf("%w: %q: no registered preset %q (known: %v)", ErrUnknownPreset, name, base, Names())
		}
		eq, err := EqualCost(p)
		if err != nil {
			return Preset{}, fmt.Errorf("policy: preset %q: %w", name, err)
		}
		return eq, nil
	}
	p, ok := presets[name]
	if !ok {
		return Preset{}, fmt.Errorf("%w: %q (known: %v, and %sP for each)", ErrUnknownPreset, name, Names(), EqualCostPrefix)
	}
	return p, nil
}

// ErrUnknownPreset is wrapped by Lookup's error for a name it cannot resolve.
var ErrUnknownPreset = errors.New("policy: unknown preset")

// Names returns the registered preset names, sorted; Lookup also resolves
// EqualCostPrefix followed by any of them.
func Names() []string {
	out := make([]string, 0, len(presets))
	for n := range presets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
