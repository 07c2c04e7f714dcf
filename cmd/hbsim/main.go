// Command hbsim compares heartbeat policies on simulated networks.
//
// With no flags it runs the standard comparison: every registered policy
// preset (and, for each well-known system's preset P, the equal-cost row
// adaptive@P) on the lan, wan, mobile and flaky profiles, then the
// reconnect storm, and prints a verdict in words, a legend and the tables
// (-v for every column, -json for every measure). A -profile without
// -scenario runs detection only. See docs/simulator.md for the model
// and docs/results.md for the numbers.
//
//	go run ./cmd/hbsim                          # the standard comparison
//	go run ./cmd/hbsim -profile wan -policy default,socketio -duration 24h
//	go run ./cmd/hbsim -v                       # every column of the detect tables
//	go run ./cmd/hbsim -scenario storm -json
//	go run ./cmd/hbsim -link stream -latency 80ms -jitter 20ms -loss 0.02 -burst 4
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim"
)

// usageError is a bad flag or value: one line on stderr, exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// helpRequested carries the usage text asked for with -h.
type helpRequested string

func (h helpRequested) Error() string { return string(h) }

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	var help helpRequested
	switch {
	case err == nil:
	case errors.As(err, &help):
		fmt.Fprint(os.Stdout, string(help))
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "hbsim:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "hbsim:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	budget      int // B/min: the verdict's cost budget
	profiles    []string
	policies    []string
	allPolicies bool // -policy all: the standard comparison
	scenario    string
	conns       int
	duration    time.Duration
	seed        uint64
	json        bool
	verbose     bool
	plot        string
	trace       string
	workers     int
	clients     int
	accept      float64
	custom      bool
	link        string
	latency     time.Duration
	jitter      time.Duration
	loss        float64
	burst       float64
	windows     []time.Duration // fixed resume windows measured beside the derived one
	drain       bool            // presence: the server's clean closes are drains
	fleet       bool            // one fleet estimator per detect run (policy.Fleet)
	advice      time.Duration   // pin the fleet's advice (0: learned)
	hostile     sim.Hostile     // connections that feed the fleet a hostile peer's silences
}

// Sized so that the no-flag run stays well under a minute on two shared
// cores (docs/results.md gives the measured wall time). Without -conns a
// detect run gets up to maxAutoConns connections, fewer for presets that
// ping so often that the run would cost more than autoBudget events.
const (
	maxAutoConns    = 40
	minAutoConns    = 8
	autoBudget      = 600_000
	defaultDuration = 6 * time.Hour
)

func parse(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("hbsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	profile := fs.String("profile", "all", "network profiles: comma list of lan, wan, mobile, flaky, or all")
	pol := fs.String("policy", "all", "policy presets: comma list (see -list), or all")
	fs.StringVar(&o.scenario, "scenario", "all", "detect, storm or all")
	fs.IntVar(&o.budget, "budget", defaultBudget, "verdict: heartbeat bytes per connection-minute (both sides) to pick the fastest policy within first")
	fs.IntVar(&o.conns, "conns", 0, "connections per detect run (default: up to 40, fewer for presets that ping more than every 5 s)")
	fs.DurationVar(&o.duration, "duration", defaultDuration, "virtual time per detect run")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed")
	fs.BoolVar(&o.json, "json", false, "print one JSON object (every measure) instead of tables")
	fs.BoolVar(&o.verbose, "v", false, "print every column of the detect tables")
	fs.StringVar(&o.plot, "plot", "", "write a plot to this .svg file")
	fs.StringVar(&o.trace, "trace", "", "write the event trace of the (single) run to this file")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "runs simulated in parallel")
	fs.IntVar(&o.clients, "clients", 10000, "storm: clients")
	fs.Float64Var(&o.accept, "accept", 1000, "storm: connections the server accepts per second")
	fs.StringVar(&o.link, "link", "stream", "custom link delivery: stream or datagram")
	fs.DurationVar(&o.latency, "latency", 40*time.Millisecond, "custom link: one-way latency")
	fs.DurationVar(&o.jitter, "jitter", 0, "custom link: latency standard deviation (normal)")
	fs.Float64Var(&o.loss, "loss", 0, "custom link: packet loss rate in [0, 1)")
	fs.Float64Var(&o.burst, "burst", 0, "custom link: mean loss burst length (≤ 1: independent)")
	windows := fs.String("windows", "", "presence: also measure these fixed resume windows (comma list, e.g. 10s,30s)")
	fs.BoolVar(&o.drain, "drain", true, "presence: take the server's clean closes for drains (presence.Watched.Drain: the client is expected back, the session may resume); -drain=false makes each a leave (Watched.Close)")
	fs.BoolVar(&o.fleet, "fleet", true, "detect: the server learns live silences across its connections (policy.Fleet) and advises its detectors and clients; -fleet=false turns it off")
	fs.DurationVar(&o.advice, "advice", 0, "detect: pin the fleet's advice to this dead timeout from the server's first observed silence on (a fleet that knows the answer; 0: learned)")
	hostile := fs.String("hostile", "", "detect: a share of the connections feeds the fleet what a hostile peer would, as KIND:SHARE with KIND instant (answers at once and often) or edge (answers just before the timeout) and SHARE up to 0.5, e.g. edge:0.1")
	list := fs.Bool("list", false, "list policies and profiles and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			b.WriteString("usage: hbsim [flags]\n\nWith no flags, compares every policy preset on every network profile and runs the reconnect storm.\n\n")
			fs.SetOutput(&b)
			fs.PrintDefaults()
			return nil, helpRequested(b.String())
		}
		return nil, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (all options are flags)", fs.Arg(0))
	}
	var setScenario, setProfile bool
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "link", "latency", "jitter", "loss", "burst":
			o.custom = true
		case "scenario":
			setScenario = true
		case "profile":
			setProfile = true
		}
	})
	if (setProfile || o.custom) && !setScenario {
		// The storm has no network profile: a profile asks for detection.
		o.scenario = "detect"
	}
	if *list {
		o.scenario = "list"
	}
	switch o.scenario {
	case "detect", "storm", "all", "list":
	default:
		return nil, usagef("-scenario %q: want detect, storm or all", o.scenario)
	}
	switch {
	case o.conns < 0 || o.conns > 1_000_000:
		return nil, usagef("-conns %d: want 1 to 1000000 (0: sized by cost)", o.conns)
	case o.duration < time.Minute || o.duration > 365*24*time.Hour:
		return nil, usagef("-duration %v: want 1m to 8760h of virtual time", o.duration)
	case o.workers < 1:
		return nil, usagef("-workers %d: want at least 1", o.workers)
	case o.clients < 1 || o.clients > 1_000_000:
		return nil, usagef("-clients %d: want 1 to 1000000", o.clients)
	case !(o.accept > 0) || o.accept > 1e9:
		return nil, usagef("-accept %g: want a positive rate", o.accept)
	case o.link != "stream" && o.link != "datagram":
		return nil, usagef("-link %q: want stream or datagram", o.link)
	case o.latency < 0 || o.latency > time.Minute:
		return nil, usagef("-latency %v: want 0 to 1m", o.latency)
	case o.jitter < 0 || o.jitter > time.Minute:
		return nil, usagef("-jitter %v: want 0 to 1m", o.jitter)
	case !(o.loss >= 0 && o.loss < 1):
		return nil, usagef("-loss %g: want a rate in [0, 1)", o.loss)
	case !(o.burst >= 0) || o.burst > 1e6:
		return nil, usagef("-burst %g: want a mean burst length ≥ 0 (≤ 1 means independent loss)", o.burst)
	case o.advice != 0 && (o.advice < policy.MinAdvice || o.advice > policy.MaxAdvice || !o.fleet):
		return nil, usagef("-advice %v: want %v to %v, with the fleet on", o.advice, policy.MinAdvice, policy.MaxAdvice)
	case o.budget < 1 || o.budget > 1<<20:
		return nil, usagef("-budget %d: want 1 to %d B/min", o.budget, 1<<20)
	case o.plot != "" && !strings.HasSuffix(o.plot, ".svg"):
		return nil, usagef("-plot %q: want a file name ending in .svg (a browser shows it; rsvg-convert makes a PNG of it)", o.plot)
	}
	var err error
	if o.hostile, err = parseHostile(*hostile, o.fleet); err != nil {
		return nil, err
	}
	if o.windows, err = parseWindows(*windows); err != nil {
		return nil, err
	}
	if o.profiles, err = profileList(*profile, o.custom); err != nil {
		return nil, err
	}
	if o.policies, err = policyList(*pol); err != nil {
		return nil, err
	}
	o.allPolicies = *pol == "all"
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	if o.scenario == "list" {
		return list(stdout)
	}
	jobs, err := plan(o)
	if err != nil {
		return err
	}
	if o.trace != "" && len(jobs) != 1 {
		return usagef("-trace needs exactly one run, this selection makes %d: pick one -policy, one -profile and -scenario detect or storm", len(jobs))
	}
	var tr *os.File
	if o.trace != "" {
		if mb := traceEstimateMB(jobs[0]); mb >= traceWarnMB {
			fmt.Fprintf(stderr, "hbsim: warning: -trace writes one line per simulated event: about %.0f MB for this run; shorten -duration or set -conns to cut it\n", mb)
		}
		if tr, err = os.Create(o.trace); err != nil {
			return err
		}
		jobs[0].trace = tr
	}
	start := time.Now()
	out := execute(jobs, o.workers, newProgress(stderr, len(jobs)))
	if tr != nil {
		if cerr := tr.Close(); err == nil && cerr != nil {
			return cerr
		}
	}
	rep, err := collect(jobs, out)
	if err != nil {
		return err
	}
	rep.wall = time.Since(start)
	rep.budget = o.budget
	if o.plot != "" {
		if err := writePlot(o.plot, rep); err != nil {
			return err
		}
	}
	if o.json {
		return writeJSON(stdout, rep)
	}
	return writeTables(stdout, rep, o)
}

// parseHostile reads -hostile's KIND:SHARE.
func parseHostile(v string, fleet bool) (sim.Hostile, error) {
	if v == "" {
		return sim.Hostile{}, nil
	}
	kind, share, ok := strings.Cut(v, ":")
	h := sim.Hostile{}
	switch kind {
	case "instant":
		h.Kind = sim.HostileInstant
	case "edge":
		h.Kind = sim.HostileEdge
	default:
		ok = false
	}
	f, err := strconv.ParseFloat(share, 64)
	if !ok || err != nil || !(f >= 0 && f <= 0.5) {
		return h, usagef("-hostile %q: want instant:SHARE or edge:SHARE with SHARE in [0, 0.5]", v)
	}
	if !fleet {
		return h, usagef("-hostile %q: needs the fleet on", v)
	}
	h.Share = f
	return h, nil
}
