package sim

import (
	"testing"
	"time"
)

// BenchmarkSimPresence is BenchmarkSimWAN and BenchmarkSimMobile with
// presence measured as hbsim does (the derived window and per-connection
// presence side by side): compare their events/cpu-s.
func BenchmarkSimPresence(b *testing.B) {
	for _, prof := range []string{"wan", "mobile"} {
		b.Run(prof, func(b *testing.B) {
			p, err := ProfileByName(prof)
			if err != nil {
				b.Fatal(err)
			}
			cfg := Config{Profile: p, Preset: benchPreset(b, "default"), Conns: 100, Duration: time.Hour,
				Presence: []Presence{{Window: DerivedWindow}, {Window: PerConnection}}}
			var events int64
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				cfg.Seed = uint64(i + 1)
				r, err := Run(cfg)
				if err != nil {
					b.Fatal(err)
				}
				events += r.Events
			}
			reportRates(b, events, cpuTime()-cpu0)
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
		})
	}
}
