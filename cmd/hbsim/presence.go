package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/sim"
)

// Presence models: every detect run measures the resume-window presence
// of presence.Hub (the derived window) beside per-connection presence
// (offline = disconnect), plus one resume row per -windows entry.
const (
	modelResume        = "resume"
	modelPerConnection = "per-connection"
)

// presenceRow is one presence model on one detect run, as -json prints
// it. Leave delays are null when no client crashed.
type presenceRow struct {
	Policy  string `json:"policy"`
	Profile string `json:"profile"`
	// Model is "resume" (sessions outlive a lost connection for a resume
	// window) or "per-connection" (a lost connection is a leave at once).
	Model string `json:"presence_model"`
	// Window is "derived" (presence.Hub's rule), "none" (per-connection)
	// or a fixed window such as "30s"; WindowMs the longest one given.
	Window string `json:"window"`
	// ServerCloses is how the server's clean closes were fed: "leave"
	// (presence.Hub's ConnClosed) or "drain" (ConnLost, with -drain).
	ServerCloses          string   `json:"server_closes"`
	WindowMs              float64  `json:"window_ms"`
	Seed                  uint64   `json:"seed"`
	Users                 int      `json:"users"`
	UserDays              float64  `json:"user_days"`
	FlapsPerUserDay       float64  `json:"flaps_per_user_day"`
	ClosedFlapsPerUserDay float64  `json:"closed_flaps_per_user_day"`
	LeaveP50              *float64 `json:"leave_p50_ms"`
	LeaveP99              *float64 `json:"leave_p99_ms"`
	LeaveSamples          int      `json:"leave_samples"`
}

// parseWindows reads -windows: a comma list of fixed resume windows.
func parseWindows(s string) ([]time.Duration, error) {
	if s == "" {
		return nil, nil
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 || d > presence.MaxResumeWindow {
			return nil, usagef("-windows %q: want a comma list of durations in (0, %v]", s, presence.MaxResumeWindow)
		}
		out = append(out, d)
	}
	return out, nil
}

// presenceModels lists what every detect run measures.
// With drain, the resume models take the server's clean closes for drains.
func presenceModels(windows []time.Duration, drain bool) []sim.Presence {
	ps := []sim.Presence{{Window: sim.DerivedWindow, DrainCloses: drain}, {Window: sim.PerConnection}}
	for _, w := range windows {
		ps = append(ps, sim.Presence{Window: w, DrainCloses: drain})
	}
	return ps
}

func presenceRows(r *sim.Result) []presenceRow {
	rows := make([]presenceRow, 0, len(r.Presence))
	for _, p := range r.Presence {
		row := presenceRow{
			Policy: r.Policy, Profile: r.Profile, Model: modelResume, Seed: r.Seed, ServerCloses: "leave",
			WindowMs: float64(p.Window) / 1e6, Users: p.Users, UserDays: p.UserDays,
			FlapsPerUserDay: p.FlapsPerUserDay(), LeaveSamples: p.LeaveDelay.N,
			LeaveP50: unit(p.LeaveDelay.P50, time.Millisecond, p.LeaveDelay.N),
			LeaveP99: unit(p.LeaveDelay.P99, time.Millisecond, p.LeaveDelay.N),
		}
		if p.DrainCloses {
			row.ServerCloses = "drain"
		}
		if p.UserDays > 0 {
			row.ClosedFlapsPerUserDay = float64(p.FlapsClosed) / p.UserDays
		}
		switch p.Presence.Window {
		case sim.DerivedWindow:
			row.Window = "derived"
		case sim.PerConnection:
			row.Model, row.Window = modelPerConnection, "none"
		default:
			row.Window = p.Presence.Window.String()
		}
		rows = append(rows, row)
	}
	return rows
}

// writePresence prints one line per detect run and resume window, with
// per-connection presence of the same run beside it.
func writePresence(w io.Writer, rows []presenceRow) error {
	if len(rows) == 0 {
		return nil
	}
	type key struct{ policy, profile string }
	perConn := map[key]presenceRow{}
	for _, r := range rows {
		if r.Model == modelPerConnection {
			perConn[key{r.Policy, r.Profile}] = r
		}
	}
	ms := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.1fs", *v/1e3)
	}
	fmt.Fprintf(w, "\nPresence, seed %d: flaps per user-day and the leave delay after a crash, with the\n", rows[0].Seed)
	fmt.Fprintln(w, "resume window (-json: every field) and per connection (offline = disconnect)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "profile\tpolicy\twindow\tflaps/day\tleave p50\tp99\tper-conn flaps/day\tleave p50\t")
	for _, r := range rows {
		if r.Model != modelResume {
			continue
		}
		win := r.Window
		if win == "derived" {
			win = fmt.Sprintf("%gs", r.WindowMs/1e3)
		}
		if r.ServerCloses != "drain" {
			win += " (closes leave)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t", r.Profile, r.Policy, win, r.FlapsPerUserDay, ms(r.LeaveP50), ms(r.LeaveP99))
		if pc, ok := perConn[key{r.Policy, r.Profile}]; ok {
			fmt.Fprintf(tw, "%.2f\t%s\t\n", pc.FlapsPerUserDay, ms(pc.LeaveP50))
		} else {
			fmt.Fprint(tw, "-\t-\t\n")
		}
	}
	return tw.Flush()
}
