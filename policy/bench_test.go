package policy_test

import (
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// benchDetector runs the detector's steady path: one piece of evidence
// (alternating a heartbeat gap with an rtt and a short data gap) and the
// timeouts the Machine computes its deadline from.
func benchDetector(b *testing.B, d policy.Detector) {
	now := t0
	d.Start(now)
	var sink time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		gap, rtt := 5*sec+time.Duration(i%7)*10*ms, 40*ms
		if i%2 == 1 {
			gap, rtt = 200*ms, 0
		}
		now = now.Add(gap)
		d.Observe(now, rtt)
		s, dd := d.Timeouts()
		sink += s + dd
	}
	if sink == 0 {
		b.Fatal("no timeouts")
	}
}

func BenchmarkSteadyFixed(b *testing.B) {
	benchDetector(b, &policy.Fixed{SuspectAfter: 6 * sec, DeadAfter: 10 * sec})
}

func BenchmarkSteadyAdaptive(b *testing.B) { benchDetector(b, &policy.Adaptive{}) }

func BenchmarkSteadyPhiAccrual(b *testing.B) {
	benchDetector(b, &policy.PhiAccrual{Window: 100, FirstInterval: 5 * sec, AcceptablePause: sec})
}

func BenchmarkSteadyAdaptiveInterval(b *testing.B) {
	iv := &policy.AdaptiveInterval{}
	l := policy.Link{AliveSince: t0, LastEvidence: t0}
	b.ReportAllocs()
	for i := range b.N {
		l.Suspect = i%16 == 0
		l.LastPing = iv.NextPing(l)
		l.LastEvidence = l.LastPing.Add(40 * ms)
	}
}

func benchBackoff(b *testing.B, bo policy.Backoff) {
	var sink time.Duration
	b.ReportAllocs()
	for i := range b.N {
		d, err := bo.Next(policy.Retry{Attempt: i%12 + 1, Elapsed: time.Duration(i%12) * sec, Advice: 10 * sec})
		if err != nil {
			b.Fatal(err)
		}
		sink += d
	}
	if sink < 0 {
		b.Fatal(sink)
	}
}

func BenchmarkSteadyBackoffConstant(b *testing.B) { benchBackoff(b, &policy.Constant{Delay: sec}) }

func BenchmarkSteadyBackoffExponential(b *testing.B) {
	benchBackoff(b, &policy.Exponential{Multiplier: 2, Jitter: 0.5, Rand: seeded(1)})
}

func BenchmarkSteadyBackoffFullJitter(b *testing.B) {
	benchBackoff(b, &policy.FullJitter{Rand: seeded(1)})
}

func BenchmarkSteadyBackoffEqualJitter(b *testing.B) {
	benchBackoff(b, &policy.EqualJitter{Rand: seeded(1)})
}

func BenchmarkSteadyBackoffDecorrelated(b *testing.B) {
	benchBackoff(b, &policy.Decorrelated{Rand: seeded(1)})
}

func BenchmarkSteadyBackoffGRPC(b *testing.B) { benchBackoff(b, &policy.GRPC{Rand: seeded(1)}) }

func BenchmarkSteadyBackoffTable(b *testing.B) {
	benchBackoff(b, &policy.Table{Delays: []time.Duration{10 * ms, sec, 5 * sec}, Repeat: true})
}

func BenchmarkSteadyBackoffAdvised(b *testing.B) { benchBackoff(b, &policy.Advised{Rand: seeded(1)}) }

func BenchmarkSteadyBackoffLimit(b *testing.B) {
	benchBackoff(b, &policy.Limit{Backoff: &policy.FullJitter{Rand: seeded(1)}, MaxAttempts: 100, MaxElapsed: time.Hour})
}
