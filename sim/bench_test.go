package sim

import (
	"runtime"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

func benchPreset(b *testing.B, name string) policy.Preset {
	p, err := policy.Lookup(name)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// benchDetect runs one detect simulation per iteration and reports
// simulated events per second of wall time (events/s) and of the CPU time
// the process used meanwhile (events/cpu-s: on a shared machine it moves
// less with the other jobs' load; the collector's work counts in it).
func benchDetect(b *testing.B, profile, preset string, conns int, d time.Duration) {
	prof, err := ProfileByName(profile)
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Profile: prof, Preset: benchPreset(b, preset), Conns: conns, Duration: d, Seed: 1}
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
}

// reportRates reports events per second of wall time and of CPU time.
func reportRates(b *testing.B, events int64, cpu time.Duration) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
	}
}

func BenchmarkSimLAN(b *testing.B)    { benchDetect(b, "lan", "default", 100, time.Hour) }
func BenchmarkSimWAN(b *testing.B)    { benchDetect(b, "wan", "default", 100, time.Hour) }
func BenchmarkSimMobile(b *testing.B) { benchDetect(b, "mobile", "default", 100, time.Hour) }

// BenchmarkSimConns shows the cost is linear in connections: events/s
// stays flat as the count grows.
func BenchmarkSimConns(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(itoa(n), func(b *testing.B) { benchDetect(b, "wan", "socketio", n, 10*time.Minute) })
	}
}

// BenchmarkSimMemory reports the live heap per simulated connection once
// every connection is up.
func BenchmarkSimMemory(b *testing.B) {
	prof, _ := ProfileByName("wan")
	const conns = 10000
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, err := newSim(Config{Profile: prof, Preset: benchPreset(b, "default"), Conns: conns, Duration: 30 * time.Second, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.run(); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/conns, "bytes/conn")
		runtime.KeepAlive(s)
	}
}

// BenchmarkSimStorm is one 10,000-client reconnect storm with advice.
func BenchmarkSimStorm(b *testing.B) {
	p := benchPreset(b, "default")
	var events int64
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		r, err := Storm(StormConfig{Preset: p, Advise: true, Seed: uint64(i + 1)})
		if err != nil {
			b.Fatal(err)
		}
		events += r.Events
	}
	reportRates(b, events, cpuTime()-cpu0)
}

func itoa(n int) string {
	switch n {
	case 100:
		return "100"
	case 1000:
		return "1000"
	}
	return "10000"
}
