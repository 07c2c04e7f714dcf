package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/heartbeat-go/heartbeat/sim"
)

// detectRow is one policy on one profile, as -json prints it. Durations
// that fall on undetected failures are null.
type detectRow struct {
	Policy                  string   `json:"policy"`
	Profile                 string   `json:"profile"`
	Seed                    uint64   `json:"seed"`
	Conns                   int      `json:"conns"`
	VirtualHours            float64  `json:"virtual_hours"`
	Failures                int      `json:"failures"`
	Undetected              int      `json:"undetected"`
	DetectionP50            *float64 `json:"detection_p50_ms"`
	DetectionP99            *float64 `json:"detection_p99_ms"`
	DetectionMax            *float64 `json:"detection_max_ms"`
	FalseDeadsPerConnDay    float64  `json:"false_deads_per_conn_day"`
	FalseSuspectsPerConnDay float64  `json:"false_suspects_per_conn_day"`
	FalseSuspectP50         *float64 `json:"false_suspect_p50_ms"`
	FalseSuspectP99         *float64 `json:"false_suspect_p99_ms"`
	MsgsPerConnMin          float64  `json:"heartbeat_msgs_per_conn_min"`
	BytesPerConnMin         float64  `json:"heartbeat_bytes_per_conn_min"`
	ReconnectAttempts       int64    `json:"reconnect_attempts"`
	GaveUp                  int64    `json:"gave_up"`
	BestFixedClientMs       float64  `json:"best_fixed_client_timeout_ms"`
	BestFixedServerMs       float64  `json:"best_fixed_server_timeout_ms"`
	BestFixedP50            *float64 `json:"best_fixed_detection_p50_ms"`
	BestFixedP99            *float64 `json:"best_fixed_detection_p99_ms"`
	Events                  int64    `json:"events"`
	WallSeconds             float64  `json:"wall_seconds"`
}

// stormRow is one reconnect storm.
type stormRow struct {
	Policy             string   `json:"policy"`
	Advised            bool     `json:"advised"`
	Clients            int      `json:"clients"`
	AcceptPerSec       float64  `json:"accept_per_sec"`
	Reset              int      `json:"reset"`
	Back               int      `json:"back"`
	PeakAttemptsPerSec int      `json:"peak_attempts_per_sec"`
	TotalAttempts      int64    `json:"total_attempts"`
	Refused            int64    `json:"refused"`
	P50ReconnectS      *float64 `json:"p50_reconnect_s"`
	P99ReconnectS      *float64 `json:"p99_reconnect_s"`
	FloorS             float64  `json:"floor_s"`
	AttemptsPerSec     []int    `json:"attempts_per_sec"`
	Seed               uint64   `json:"seed"`
	Events             int64    `json:"events"`
	WallSeconds        float64  `json:"wall_seconds"`
}

type report struct {
	Detect []detectRow `json:"detect"`
	Storm  []stormRow  `json:"storm"`
	// Presence: one row per presence model of each detect run (presence.go).
	Presence []presenceRow `json:"presence"`
	// Frontier: the detector families' sweeps, with -plot (frontier.go).
	Frontier []frontierRow `json:"frontier,omitempty"`
	wall     time.Duration
	budget   int // B/min, the verdict's cost budget (0: defaultBudget)
}

func unit(d time.Duration, u time.Duration, n int) *float64 {
	if n == 0 || d == sim.Never {
		return nil
	}
	v := math.Round(float64(d)/float64(u)*1000) / 1000
	return &v
}

func collect(jobs []job, out []outcome) (*report, error) {
	rep := &report{Detect: []detectRow{}, Storm: []stormRow{}, Presence: []presenceRow{}}
	for i, o := range out {
		if o.err != nil {
			return nil, o.err
		}
		if r := o.det; r != nil && jobs[i].family != "" {
			rep.Frontier = append(rep.Frontier, frontierRow{Family: jobs[i].family, Profile: r.Profile, Knob: jobs[i].knob,
				DetectionP50: unit(r.Detection.Time.P50, time.Millisecond, r.Detection.Time.N), FalseDeadsPerConnDay: r.FalseDeadsPerConnDay(),
				BytesPerConnMin: r.BytesPerConnMin()})
			continue
		}
		if r := o.det; r != nil {
			rep.Detect = append(rep.Detect, detectRow{
				Policy: r.Policy, Profile: r.Profile, Seed: r.Seed, Conns: r.Conns,
				VirtualHours: r.Duration.Hours(), Failures: r.Detection.Failures, Undetected: r.Detection.Undetected,
				DetectionP50:            unit(r.Detection.Time.P50, time.Millisecond, r.Detection.Time.N),
				DetectionP99:            unit(r.Detection.Time.P99, time.Millisecond, r.Detection.Time.N),
				DetectionMax:            unit(r.Detection.Time.Max, time.Millisecond, r.Detection.Time.N),
				FalseDeadsPerConnDay:    r.FalseDeadsPerConnDay(),
				FalseSuspectsPerConnDay: r.FalseSuspectsPerConnDay(),
				FalseSuspectP50:         unit(r.False.SuspectDuration.P50, time.Millisecond, r.False.SuspectDuration.N),
				FalseSuspectP99:         unit(r.False.SuspectDuration.P99, time.Millisecond, r.False.SuspectDuration.N),
				MsgsPerConnMin:          r.MsgsPerConnMin(),
				BytesPerConnMin:         r.BytesPerConnMin(),
				ReconnectAttempts:       r.Reconnects.Attempts,
				GaveUp:                  r.Reconnects.GaveUp,
				BestFixedClientMs:       float64(r.Detection.BestFixedTimeout[0]) / 1e6,
				BestFixedServerMs:       float64(r.Detection.BestFixedTimeout[1]) / 1e6,
				BestFixedP50:            unit(r.Detection.BestFixed.P50, time.Millisecond, r.Detection.BestFixed.N),
				BestFixedP99:            unit(r.Detection.BestFixed.P99, time.Millisecond, r.Detection.BestFixed.N),
				Events:                  r.Events,
				WallSeconds:             o.wall.Seconds(),
			})
			rep.Presence = append(rep.Presence, presenceRows(r)...)
		}
		if r := o.st; r != nil {
			rep.Storm = append(rep.Storm, stormRow{
				Policy: r.Policy, Advised: r.Advice > 0, Clients: r.Clients, AcceptPerSec: r.AcceptRate,
				Reset: r.Reset, Back: r.Back, PeakAttemptsPerSec: r.PeakAttemptsPerSec,
				TotalAttempts: r.TotalAttempts, Refused: r.Refused,
				P50ReconnectS: unit(r.P50, time.Second, 1), P99ReconnectS: unit(r.P99, time.Second, 1),
				FloorS: r.Floor.Seconds(), AttemptsPerSec: r.AttemptsPerSec,
				Seed: jobs[i].storm.Seed, Events: r.Events, WallSeconds: o.wall.Seconds(),
			})
		}
	}
	return rep, nil
}

func writeJSON(w io.Writer, rep *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func secs(v *float64, scale float64) string {
	if v == nil {
		return "never"
	}
	return fmt.Sprintf("%.1fs", *v*scale)
}

// fmtDur prints a virtual duration the way it was given: 10m, 6h, 1h30m.
func fmtDur(hours float64) string {
	d := time.Duration(math.Round(hours*3600)) * time.Second
	str := d.String()
	str = strings.TrimSuffix(str, "0s")
	if strings.HasSuffix(str, "h0m") {
		str = strings.TrimSuffix(str, "0m")
	}
	if str == "" {
		return "0s"
	}
	return str
}

// profileOrder lists the profiles of rep in the order they were run.
func profileOrder(rep *report) []string {
	var order []string
	for _, r := range rep.Detect {
		if !slices.Contains(order, r.Profile) {
			order = append(order, r.Profile)
		}
	}
	return order
}

// verdict says in a few lines which policy to pick on each profile of the
// run (the fastest without false dead verdicts, within the budget if one
// is), at what cost, and what the faster choices and the default cost in
// false dead verdicts. Every number comes from the rows.
func verdict(rep *report) []string {
	costBudget := rep.budget
	if costBudget <= 0 {
		costBudget = defaultBudget
	}
	var out []string
	for _, prof := range profileOrder(rep) {
		// best: the fastest without false deads within the cost budget
		// (else at any cost); clean: the fastest without false deads;
		// fastest: the fastest of all. Rows that miss failures are out.
		var best, clean, fastest, def *detectRow
		faster := func(a, b *detectRow) bool { return b == nil || *a.DetectionP50 < *b.DetectionP50 }
		for i := range rep.Detect {
			r := &rep.Detect[i]
			if r.Profile != prof {
				continue
			}
			if r.Policy == "default" {
				def = r
			}
			if r.DetectionP50 == nil || r.Undetected > 0 {
				continue
			}
			if faster(r, fastest) {
				fastest = r
			}
			if r.FalseDeadsPerConnDay == 0 && faster(r, clean) {
				clean = r
			}
			if r.FalseDeadsPerConnDay == 0 && r.BytesPerConnMin <= float64(costBudget) && faster(r, best) {
				best = r
			}
		}
		budget := fmt.Sprintf("within %d B/min, ", costBudget)
		if best == nil {
			best, budget = clean, ""
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s: ", prof)
		switch {
		case best != nil:
			fmt.Fprintf(&b, "%s%s detects a dead peer in %s (p50; p99 %s) for %.0f B/min per connection, with no false dead verdict",
				budget, best.Policy, secs(best.DetectionP50, 1e-3), secs(best.DetectionP99, 1e-3), best.BytesPerConnMin)
			if clean != best {
				fmt.Fprintf(&b, "; %s is faster (%s) at %.0f B/min", clean.Policy, secs(clean.DetectionP50, 1e-3), clean.BytesPerConnMin)
			}
			if fastest != clean {
				still := ""
				if clean != best {
					still = " still"
				}
				fmt.Fprintf(&b, "; %s is faster%s (%s) but declares %s", fastest.Policy, still, secs(fastest.DetectionP50, 1e-3), falseDeads(fastest))
			}
		case fastest != nil:
			fmt.Fprintf(&b, "every policy that detects all failures also kills live connections; %s is fastest, %s (p50) for %.0f B/min, and declares %s",
				fastest.Policy, secs(fastest.DetectionP50, 1e-3), fastest.BytesPerConnMin, falseDeads(fastest))
		default:
			b.WriteString("no policy detected every failure within 10 minutes")
		}
		if def != nil && def != best && def != clean && def != fastest {
			fmt.Fprintf(&b, "; default: %s for %.0f B/min, %s", secs(def.DetectionP50, 1e-3), def.BytesPerConnMin, falseDeads(def))
		}
		b.WriteString(".")
		out = append(out, b.String())
	}
	if len(rep.Storm) > 0 {
		var adv, bestUn *stormRow
		for i := range rep.Storm {
			r := &rep.Storm[i]
			if r.Advised {
				adv = r
			} else if r.Back == r.Clients && (bestUn == nil || r.PeakAttemptsPerSec < bestUn.PeakAttemptsPerSec) {
				bestUn = r
			}
		}
		s := rep.Storm[0]
		var b strings.Builder
		fmt.Fprintf(&b, "storm (%d clients, server accepts %g/s, floor %.1fs): ", s.Clients, s.AcceptPerSec, s.FloorS)
		if adv != nil {
			fmt.Fprintf(&b, "%s with the server's advised window peaks at %.2fx the accept rate, p99 back %s", adv.Policy,
				float64(adv.PeakAttemptsPerSec)/adv.AcceptPerSec, secs(adv.P99ReconnectS, 1))
			if bestUn != nil {
				b.WriteString("; ")
			}
		}
		if bestUn != nil {
			fmt.Fprintf(&b, "the gentlest without advice, %s, peaks at %.2fx, p99 back %s", bestUn.Policy,
				float64(bestUn.PeakAttemptsPerSec)/bestUn.AcceptPerSec, secs(bestUn.P99ReconnectS, 1))
		}
		b.WriteString(".")
		out = append(out, b.String())
	}
	return out
}

func falseDeads(r *detectRow) string {
	if r.FalseDeadsPerConnDay == 0 {
		return "no false deads"
	}
	return fmt.Sprintf("%.1f false deads per connection-day", r.FalseDeadsPerConnDay)
}

// defaultBudget is the heartbeat cost the verdict looks within first
// (-budget): about one ping and pong every 5 s, what a chat app can afford
// per connection.
const defaultBudget = 300

// verdictHelp follows the verdict: how to change it and use what it picks,
// so that a chooser need not open the docs for that.
const verdictHelp = `  Change the budget with -budget (B/min per connection, both sides). A false suspect is a
    probe, not a disconnect: the detector pings at once and the connection stays up and online
    unless the probe goes unanswered; only a false dead closes a live connection.
  Use a preset: hbsim -policy NAME runs it alone; in Go, p, err := policy.Lookup("NAME") and
    s := p.Client(rng) (p.Server(rng) on the server), then fsm.Config{Detector: s.Detector,
    Interval: s.Interval, Backoff: s.Backoff}.`

const legendCompact = `Columns: conns = connections simulated; T_D = time from a real failure to the dead verdict
  (p50, p99; never = the quantile falls on failures nobody detected within 10 min);
  undetected = such failures; false dead/day, false suspect/day = verdicts against live connections
  per connection-day; bytes/min = heartbeat bytes per connection-minute, both sides; p50/best =
  T_D p50 over the best fixed timeout in hindsight with the same pings and false deads.`

const legendVerbose = `  Also (-v): max = longest T_D; failures = real failures injected; suspect p50 = median false
  suspicion; msgs/min = heartbeat messages per connection-minute; redials/day = reconnect
  attempts per connection-day; best fixed p50 = T_D p50 of that best fixed timeout.`

const legendStorm = `Storm: all clients lose the server at once; peak = most dial attempts in one second;
  refused = attempts over the accept rate; back = clients reconnected within 10 min;
  p99 = time until 99% are back; floor = clients / accept rate, the fastest possible p99.`

func writeTables(w io.Writer, rep *report, o *options) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	title := func(format string, a ...any) {
		_ = tw.Flush()
		fmt.Fprintf(w, format, a...)
	}
	if v := verdict(rep); len(v) > 0 {
		title("Verdict\n")
		for _, l := range v {
			title("%s\n", wrap(l, "  ", "    ", 100))
		}
		title("\n%s\n\n", verdictHelp)
	}
	if len(rep.Detect) > 0 {
		title("%s\n", legendCompact)
		if o.verbose {
			title("%s\n", legendVerbose)
		}
	}
	if len(rep.Storm) > 0 {
		title("%s\n", legendStorm)
	}
	if !o.verbose && len(rep.Detect) > 0 {
		title("-v prints every column, -json every measure.\n")
	}
	if note := connsNote(rep, o); note != "" {
		title("\n%s\n", note)
	}
	var events int64
	for i, r := range rep.Detect {
		events += r.Events
		if i == 0 || rep.Detect[i-1].Profile != r.Profile {
			title("\n%s: %s of virtual time per connection, seed %d\n", r.Profile, fmtDur(r.VirtualHours), r.Seed)
			if o.verbose {
				fmt.Fprintln(tw, "policy\tconns\tT_D p50\tp99\tmax\tfailures\tundetected\tfalse dead/day\tfalse suspect/day\tsuspect p50\tmsgs/min\tbytes/min\tredials/day\tbest fixed p50\tp50/best\t")
			} else {
				fmt.Fprintln(tw, "policy\tconns\tT_D p50\tp99\tundetected\tfalse dead/day\tfalse suspect/day\tbytes/min\tp50/best\t")
			}
		}
		ratio := "-"
		if r.DetectionP50 != nil && r.BestFixedP50 != nil && *r.BestFixedP50 > 0 {
			ratio = fmt.Sprintf("%.2f", *r.DetectionP50 / *r.BestFixedP50)
		}
		if !o.verbose {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%.2f\t%.1f\t%.0f\t%s\t\n",
				r.Policy, r.Conns, secs(r.DetectionP50, 1e-3), secs(r.DetectionP99, 1e-3),
				r.Undetected, r.FalseDeadsPerConnDay, r.FalseSuspectsPerConnDay, r.BytesPerConnMin, ratio)
			continue
		}
		days := float64(r.Conns) * r.VirtualHours / 24
		sp := "-"
		if r.FalseSuspectP50 != nil {
			sp = fmt.Sprintf("%.0fms", *r.FalseSuspectP50)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%.2f\t%.1f\t%s\t%.2f\t%.0f\t%.1f\t%s\t%s\t\n",
			r.Policy, r.Conns, secs(r.DetectionP50, 1e-3), secs(r.DetectionP99, 1e-3), secs(r.DetectionMax, 1e-3),
			r.Failures, r.Undetected, r.FalseDeadsPerConnDay, r.FalseSuspectsPerConnDay, sp,
			r.MsgsPerConnMin, r.BytesPerConnMin, float64(r.ReconnectAttempts)/days,
			secs(r.BestFixedP50, 1e-3), ratio)
	}
	if len(rep.Storm) > 0 {
		s := rep.Storm[0]
		title("\nstorm: %d clients lose the server at once; it accepts %g/s (floor %.1fs), seed %d\n", s.Clients, s.AcceptPerSec, s.FloorS, s.Seed)
		fmt.Fprintln(tw, "policy\tadvice\tpeak attempts/s\tpeak/accept\tattempts\trefused\tback\tp50\tp99\tp99/floor\t")
		for _, r := range rep.Storm {
			events += r.Events
			adv := "-"
			if r.Advised {
				adv = fmt.Sprintf("%.0fs", r.FloorS)
			}
			ratio := "-"
			if r.P99ReconnectS != nil {
				ratio = fmt.Sprintf("%.2f", *r.P99ReconnectS/r.FloorS)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%d\t%d\t%d\t%s\t%s\t%s\t\n", r.Policy, adv, r.PeakAttemptsPerSec,
				float64(r.PeakAttemptsPerSec)/r.AcceptPerSec, r.TotalAttempts, r.Refused, r.Back,
				secs(r.P50ReconnectS, 1), secs(r.P99ReconnectS, 1), ratio)
		}
		if slices.ContainsFunc(rep.Storm, func(r stormRow) bool { return r.Policy == noJitter }) {
			title("(%s is a baseline, not a preset: default's detector with a backoff of 1 s doubling to 30 s, no jitter.)\n", noJitter)
		}
	}
	title("")
	if err := writePresence(w, rep.Presence); err != nil {
		return err
	}
	title("\n%d runs, %d simulated events in %.1fs of wall time on %d workers\n", len(rep.Detect)+len(rep.Storm), events, rep.wall.Seconds(), o.workers)
	if n := len(rep.Frontier); n > 0 {
		title("(and %d runs of the detector families' frontiers for the plot, in -json's \"frontier\")\n", n)
	}
	return nil
}

// connsNote says which detect runs got fewer connections than maxAutoConns
// because their cost (heartbeats over -duration) would exceed the budget.
func connsNote(rep *report, o *options) string {
	if o.conns != 0 {
		return ""
	}
	byConns := map[int][]string{}
	var counts []int
	for _, r := range rep.Detect {
		if r.Conns >= maxAutoConns {
			continue
		}
		if _, ok := byConns[r.Conns]; !ok {
			counts = append(counts, r.Conns)
		}
		if !slices.Contains(byConns[r.Conns], r.Policy) {
			byConns[r.Conns] = append(byConns[r.Conns], r.Policy)
		}
	}
	if len(counts) == 0 {
		return ""
	}
	slices.Sort(counts)
	var parts []string
	for _, n := range counts {
		parts = append(parts, fmt.Sprintf("%d for %s", n, strings.Join(byConns[n], ", ")))
	}
	return wrap(fmt.Sprintf("Note: runs are sized to about %d simulated events each, so at %s per connection some ran fewer than %d connections: %s. Set -conns to choose.",
		autoBudget, fmtDur(o.duration.Hours()), maxAutoConns, strings.Join(parts, "; ")), "", "  ", 100)
}

// wrap breaks text into lines of at most width columns, the first indented
// by first and the rest by rest.
func wrap(text, first, rest string, width int) string {
	var b strings.Builder
	line := first
	for _, word := range strings.Fields(text) {
		if len(line) > len(rest) && line != first && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > width {
			b.WriteString(line + "\n")
			line = rest
		}
		if line != first && line != rest {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}
