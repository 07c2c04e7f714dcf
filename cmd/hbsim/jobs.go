package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim"
)

// wellKnown are the presets of other systems; each gets an equal-cost
// adaptive@P row, printed beneath it.
var wellKnown = []string{"gorilla", "socketio", "signalr", "phoenix", "ws", "centrifuge", "grpc", "akka"}

// equalCost builds the adaptive@P preset (a variable so the lookup can be
// tested without the policy package's own).
var equalCost = policy.EqualCost

const adaptivePrefix = "adaptive@"

// noJitter is the storm's no-jitter exponential baseline: the default
// policy's detector with a backoff of 1 s doubling to 30 s, every client
// on the same schedule.
const noJitter = "exp-nojitter"

// lookup resolves a policy name, including adaptive@P.
func lookup(name string) (policy.Preset, error) {
	if base, ok := strings.CutPrefix(name, adaptivePrefix); ok {
		if equalCost == nil {
			return policy.Preset{}, usagef("-policy %q: this build's policy package has no equal-cost presets", name)
		}
		p, err := policy.Lookup(base)
		if err != nil {
			return policy.Preset{}, usagef("-policy %q: %v", name, err)
		}
		return equalCost(p)
	}
	p, err := policy.Lookup(name)
	if err != nil {
		return policy.Preset{}, usagef("-policy: %v", err)
	}
	return p, nil
}

// allPolicies lists every policy of the standard comparison in table order:
// default, each well-known preset followed by its adaptive@ row, the rest.
func allPolicies() []string {
	names := policy.Names()
	var out []string
	add := func(n string) {
		if slices.Contains(names, n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	add("default")
	for _, n := range wellKnown {
		add(n)
		if equalCost != nil && slices.Contains(names, n) {
			out = append(out, adaptivePrefix+n)
		}
	}
	for _, n := range names {
		add(n)
	}
	return out
}

func policyList(s string) ([]string, error) {
	if s == "all" {
		all := allPolicies()
		if len(all) == 0 {
			return nil, usagef("-policy all: no policy presets are registered")
		}
		return all, nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, usagef("-policy %q: empty name in the list", s)
		}
		if _, err := lookup(n); err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func profileList(s string, custom bool) ([]string, error) {
	if custom {
		if s != "all" {
			return nil, usagef("-profile %q with a custom link: the -link/-latency/-jitter/-loss/-burst flags replace the profile; drop one", s)
		}
		return []string{"custom"}, nil
	}
	if s == "all" {
		return sim.ProfileNames(), nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if _, err := sim.ProfileByName(n); err != nil {
			return nil, usagef("-profile: %v", err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// customProfile is the profile a custom link makes: the flags' link with
// the wan profile's failures and no weather.
func customProfile(o *options) (sim.Profile, error) {
	p, _ := sim.ProfileByName("wan")
	d := sim.Dir{Latency: sim.Latency{Dist: sim.Constant, Mean: o.latency}, Loss: sim.Loss{Rate: o.loss, Burst: o.burst}}
	if o.jitter > 0 {
		d.Latency = sim.Latency{Dist: sim.Normal, Mean: o.latency, Jitter: o.jitter}
	}
	if o.link == "datagram" {
		d.Delivery = sim.Datagram
	}
	p.Name, p.Link, p.Stalls, p.Pauses = "custom", sim.Symmetric(d), sim.Weather{}, sim.Weather{}
	if err := p.Validate(); err != nil {
		return p, usagef("custom link: %v", err)
	}
	return p, nil
}

// job is one simulation to run.
type job struct {
	detect *sim.Config
	storm  *sim.StormConfig
	trace  io.Writer
	family string  // a frontier sweep's family (-plot); "" for a table row
	knob   float64 // its knob's value
}

type outcome struct {
	det  *sim.Result
	st   *sim.StormResult
	err  error
	wall time.Duration
}

func plan(o *options) ([]job, error) {
	var jobs []job
	if o.scenario == "detect" || o.scenario == "all" {
		for _, pn := range o.profiles {
			var prof sim.Profile
			var err error
			if pn == "custom" {
				prof, err = customProfile(o)
			} else {
				prof, err = sim.ProfileByName(pn)
			}
			if err != nil {
				return nil, err
			}
			for _, name := range o.policies {
				p, err := lookup(name)
				if err != nil {
					return nil, err
				}
				conns := o.conns
				if conns == 0 {
					conns = autoConns(p, o.duration)
				}
				cfg := &sim.Config{Profile: prof, Preset: p, Conns: conns, Duration: o.duration, Seed: o.seed,
					Presence: presenceModels(o.windows, o.drain), Hostile: o.hostile}
				if o.fleet {
					cfg.Fleet = &policy.Fleet{}
					if o.advice > 0 {
						cfg.Fleet = &policy.Fleet{Min: o.advice, Max: o.advice, MinTime: time.Nanosecond}
					}
				}
				jobs = append(jobs, job{detect: cfg})
			}
			if o.plot != "" && o.trace == "" {
				fj, err := frontierJobs(o, prof)
				if err != nil {
					return nil, err
				}
				jobs = append(jobs, fj...)
			}
		}
	}
	if o.scenario == "storm" || o.scenario == "all" {
		storm := func(p policy.Preset, advise bool) {
			jobs = append(jobs, job{storm: &sim.StormConfig{Preset: p, Clients: o.clients, AcceptRate: o.accept, Advise: advise, Seed: o.seed}})
		}
		for _, name := range o.policies {
			if strings.HasPrefix(name, adaptivePrefix) {
				continue // same backoff as its base preset
			}
			if o.allPolicies && (name == "akka" || name != "default" && !slices.Contains(wellKnown, name)) {
				// This library's other presets share default's backoff; akka's
				// 1 s heartbeats on 10,000 connections cost more events than
				// the rest of the standard run (-scenario storm -policy akka).
				continue
			}
			p, err := lookup(name)
			if err != nil {
				return nil, err
			}
			if name == "default" {
				storm(p, true)
			}
			storm(p, false)
		}
		if p, err := policy.Lookup("default"); err == nil && o.allPolicies {
			// The no-jitter baseline belongs to the standard comparison only.
			storm(withBackoff(p, noJitter, func(*rand.Rand) policy.Backoff { return &expBackoff{base: time.Second, max: 30 * time.Second} }), false)
		}
	}
	if len(jobs) == 0 {
		return nil, usagef("nothing to run: the selection is empty")
	}
	return jobs, nil
}

// autoConns sizes a detect run by its cost: about four events per
// heartbeat on an idle connection.
func autoConns(p policy.Preset, d time.Duration) int {
	hb := p.Pings.Heartbeat()
	if hb <= 0 {
		return maxAutoConns
	}
	perConn := 4 * float64(d) / float64(hb)
	return max(minAutoConns, min(maxAutoConns, int(autoBudget/perConn)))
}

// withBackoff returns p with its client backoff replaced.
func withBackoff(p policy.Preset, name string, b func(*rand.Rand) policy.Backoff) policy.Preset {
	c := p.Client
	p.Name = name
	p.Client = func(r *rand.Rand) policy.Set {
		s := c(r)
		s.Backoff = b(r)
		return s
	}
	return p
}

// expBackoff is exponential backoff without jitter: base·2^(n−1), capped.
type expBackoff struct{ base, max time.Duration }

func (e *expBackoff) Next(r policy.Retry) (time.Duration, error) {
	d := e.base
	for i := 1; i < r.Attempt && d < e.max; i++ {
		d *= 2
	}
	return min(d, e.max), nil
}

// execute runs the jobs on workers goroutines; each simulation is
// single-threaded and deterministic, so the order of completion does not
// change any result.
func execute(jobs []job, workers int, prog *progress) []outcome {
	out := make([]outcome, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := &jobs[i]
				t0 := time.Now()
				if j.detect != nil {
					c := *j.detect
					c.Trace = j.trace
					out[i].det, out[i].err = sim.Run(c)
				} else {
					c := *j.storm
					c.Trace = j.trace
					out[i].st, out[i].err = sim.Storm(c)
				}
				out[i].wall = time.Since(t0)
				prog.done()
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	prog.finish()
	return out
}

func list(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "policy\tsource")
	for _, n := range allPolicies() {
		p, err := lookup(n)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\n", n, p.Source)
	}
	fmt.Fprintln(tw, "\nprofile\t")
	for _, n := range sim.ProfileNames() {
		fmt.Fprintf(tw, "%s\t\n", n)
	}
	return tw.Flush()
}

// traceWarnMB is the estimated -trace size, in MB, from which hbsim warns
// (a variable so that a test can warn on a small run).
var traceWarnMB = 10.0

// traceEstimateMB estimates the size of a job's -trace output: about five
// events per heartbeat per connection (storm: about 130 events per client
// over its ten minutes), each a line of about 42 bytes.
func traceEstimateMB(j job) float64 {
	const lineBytes = 42
	var events float64
	switch {
	case j.detect != nil:
		hb := j.detect.Preset.Pings.Heartbeat()
		if hb <= 0 {
			hb = 30 * time.Second
		}
		events = 5 * float64(j.detect.Conns) * float64(j.detect.Duration) / float64(hb)
	case j.storm != nil:
		events = 130 * float64(j.storm.Clients)
	}
	return events * lineBytes / 1e6
}
