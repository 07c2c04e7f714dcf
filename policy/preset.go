package policy

import (
	"fmt"
	"math/rand/v2"
	"sort"
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
}

var presets = map[string]Preset{}

// Register adds p to the presets addressable by name. It panics on a
// duplicate name or a missing constructor: presets are registered at init.
func Register(p Preset) {
	if p.Name == "" || p.Client == nil || p.Server == nil {
		panic(fmt.Sprintf("policy: preset %q needs a name and both constructors", p.Name))
	}
	if _, dup := presets[p.Name]; dup {
		panic(fmt.Sprintf("policy: preset %q registered twice", p.Name))
	}
	presets[p.Name] = p
}

// Lookup returns the preset named name.
func Lookup(name string) (Preset, error) {
	p, ok := presets[name]
	if !ok {
		return Preset{}, fmt.Errorf("policy: unknown preset %q (known: %v)", name, Names())
	}
	return p, nil
}

// Names returns the registered preset names, sorted.
func Names() []string {
	out := make([]string, 0, len(presets))
	for n := range presets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func init() {
	Register(Preset{
		Name:   "default",
		Source: "this library's defaults (policy.Default)",
		Client: func(*rand.Rand) Set { d, i, b := Default(); return Set{d, i, b} },
		Server: func(*rand.Rand) Set { d, i, _ := Default(); return Set{d, i, nil} },
	})
	Register(Preset{
		Name:   "fixed",
		Source: "ping every 10 s when idle, suspect after 15 s and dead after 25 s of silence, redial after 1 s",
		Client: func(*rand.Rand) Set {
			return Set{&Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second}, &Idle{Every: 10 * time.Second}, &Constant{Delay: time.Second}}
		},
		Server: func(*rand.Rand) Set {
			return Set{&Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second}, &Idle{Every: 10 * time.Second}, nil}
		},
	})
}
