package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

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
	wall     time.Duration
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
		if r := o.det; r != nil {
			rep.Detect = append(rep.Detect, detectRow{
				Policy: r.Policy, Profile: r.Profile, Seed: r.Seed, Conns: r.Conns,
				VirtualHours: r.Duration.Hours(), Failures: r.Failures, Undetected: r.Undetected,
				DetectionP50:            unit(r.Detection.P50, time.Millisecond, r.Detection.N),
				DetectionP99:            unit(r.Detection.P99, time.Millisecond, r.Detection.N),
				DetectionMax:            unit(r.Detection.Max, time.Millisecond, r.Detection.N),
				FalseDeadsPerConnDay:    r.FalseDeadsPerConnDay(),
				FalseSuspectsPerConnDay: r.FalseSuspectsPerConnDay(),
				FalseSuspectP50:         unit(r.SuspectDuration.P50, time.Millisecond, r.SuspectDuration.N),
				FalseSuspectP99:         unit(r.SuspectDuration.P99, time.Millisecond, r.SuspectDuration.N),
				MsgsPerConnMin:          r.MsgsPerConnMin(),
				BytesPerConnMin:         r.BytesPerConnMin(),
				ReconnectAttempts:       r.ReconnectAttempts,
				GaveUp:                  r.GaveUp,
				BestFixedClientMs:       float64(r.BestFixedTimeout[0]) / 1e6,
				BestFixedServerMs:       float64(r.BestFixedTimeout[1]) / 1e6,
				BestFixedP50:            unit(r.BestFixedDetection.P50, time.Millisecond, r.BestFixedDetection.N),
				BestFixedP99:            unit(r.BestFixedDetection.P99, time.Millisecond, r.BestFixedDetection.N),
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

func writeTables(w io.Writer, rep *report, o *options) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	title := func(format string, a ...any) {
		_ = tw.Flush()
		fmt.Fprintf(w, format, a...)
	}
	var events int64
	for i, r := range rep.Detect {
		events += r.Events
		if i == 0 || rep.Detect[i-1].Profile != r.Profile {
			if i > 0 {
				title("\n")
			}
			title("%s: %gh of virtual time per connection, seed %d\n", r.Profile, r.VirtualHours, r.Seed)
			fmt.Fprintln(tw, "policy\tconns\tT_D p50\tp99\tmax\tfailures\tundetected\tfalse dead/day\tfalse suspect/day\tsuspect p50\tmsgs/min\tbytes/min\tredials/day\tbest fixed p50\tp50/best\t")
		}
		ratio := "-"
		if r.DetectionP50 != nil && r.BestFixedP50 != nil && *r.BestFixedP50 > 0 {
			ratio = fmt.Sprintf("%.2f", *r.DetectionP50 / *r.BestFixedP50)
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
		if len(rep.Detect) > 0 {
			title("\n")
		}
		s := rep.Storm[0]
		title("storm: %d clients lose the server at once; it accepts %g/s (floor %.1fs), seed %d\n", s.Clients, s.AcceptPerSec, s.FloorS, s.Seed)
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
	}
	title("")
	if err := writePresence(w, rep.Presence); err != nil {
		return err
	}
	title("\n%d runs, %d simulated events in %.1fs of wall time on %d workers\n", len(rep.Detect)+len(rep.Storm), events, rep.wall.Seconds(), o.workers)
	return nil
}
