package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim"
)

// A frontier sweeps one knob of a detector family at the default's
// cadence (the client pings after 5 s of idle line, the server listens),
// so -plot can draw detection against false deads for each family: the
// trade-off a user chooses on, beside the presets' points.
type frontier struct {
	family string
	knobs  []float64
	unit   string
	// build returns the preset for one knob value and the run's fleet (nil
	// for none).
	build func(base policy.Preset, k float64) (policy.Preset, *policy.Fleet)
}

func frontiers() []frontier {
	withDetector := func(base policy.Preset, name string, det func() policy.Detector) policy.Preset {
		p := base
		p.Name = name
		p.Client = func(r *rand.Rand) policy.Set { s := base.Client(r); s.Detector = det(); return s }
		p.Server = func(r *rand.Rand) policy.Set { s := base.Server(r); s.Detector = det(); return s }
		return p
	}
	return []frontier{
		{"adaptive + fleet (Rate per conn-day)", []float64{3, 1, 0.3, 0.1, 0.03, 0.01, 0.003}, "",
			func(base policy.Preset, k float64) (policy.Preset, *policy.Fleet) {
				return withDetector(base, fmt.Sprintf("fleet rate %g", k), func() policy.Detector { return &policy.Adaptive{} }), &policy.Fleet{Rate: k}
			}},
		{"adaptive, no fleet (Headroom)", []float64{2, 4, 8, 14, 20, 28}, "",
			func(base policy.Preset, k float64) (policy.Preset, *policy.Fleet) {
				return withDetector(base, fmt.Sprintf("headroom %g", k), func() policy.Detector { return &policy.Adaptive{Tuning: policy.AdaptiveTuning{Headroom: k}} }), nil
			}},
		{"fixed (dead after, s)", []float64{7, 8, 10, 12, 15, 18, 22, 27}, "s",
			func(base policy.Preset, k float64) (policy.Preset, *policy.Fleet) {
				d := time.Duration(k * float64(time.Second))
				return withDetector(base, fmt.Sprintf("fixed %gs", k), func() policy.Detector {
					return &policy.Fixed{SuspectAfter: 6 * time.Second, DeadAfter: d}
				}), nil
			}},
		{"phi (threshold)", []float64{1, 3, 8, 16, 30, 60}, "",
			func(base policy.Preset, k float64) (policy.Preset, *policy.Fleet) {
				return withDetector(base, fmt.Sprintf("phi %g", k), func() policy.Detector {
					return &policy.PhiAccrual{Threshold: k, SuspectThreshold: min(1, k), Window: 100, MinStdDev: 250 * time.Millisecond,
						AcceptablePause: 500 * time.Millisecond, FirstInterval: 5 * time.Second, MinSample: 5 * time.Second, MaxSample: 10 * time.Second}
				}), nil
			}},
	}
}

// frontierJobs returns the sweep runs of every family on prof.
func frontierJobs(o *options, prof sim.Profile) ([]job, error) {
	base, err := policy.Lookup("default")
	if err != nil {
		return nil, err
	}
	var jobs []job
	for _, f := range frontiers() {
		for _, k := range f.knobs {
			p, fl := f.build(base, k)
			conns := o.conns
			if conns == 0 {
				conns = autoConns(p, o.duration)
			}
			jobs = append(jobs, job{family: f.family, knob: k, detect: &sim.Config{Profile: prof, Preset: p, Conns: conns,
				Duration: o.duration, Seed: o.seed, Fleet: fl}})
		}
	}
	return jobs, nil
}

// frontierRow is one point of a family's frontier (-json: "frontier").
type frontierRow struct {
	Family               string   `json:"family"`
	Profile              string   `json:"profile"`
	Knob                 float64  `json:"knob"`
	DetectionP50         *float64 `json:"detection_p50_ms"`
	FalseDeadsPerConnDay float64  `json:"false_deads_per_conn_day"`
	BytesPerConnMin      float64  `json:"heartbeat_bytes_per_conn_min"`
}
