package policy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// at is t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// TestAdaptiveIntervalRelaxes walks one connection through a suspicion:
// probes every Min while suspect, then the idle gap grows ×2 per ping from
// Min back to Max.
func TestAdaptiveIntervalRelaxes(t *testing.T) {
	iv := &policy.AdaptiveInterval{Min: sec, Max: 5 * sec}
	l := policy.Link{AliveSince: t0, LastEvidence: t0}
	step := func(want time.Duration) {
		t.Helper()
		if got := iv.NextPing(l).Sub(t0); got != want {
			t.Fatalf("next ping at %v, want %v (link %+v)", got, want, l)
		}
	}
	step(5 * sec) // a fresh connection starts at Max
	l.LastPing = at(5 * sec)
	step(10 * sec) // Max after the unanswered ping
	l.Suspect = true
	step(6 * sec) // probe Min after the last ping
	l.LastPing = at(6 * sec)
	step(7 * sec)
	// The probe is answered at 6.05 s: the gap restarts at Min and doubles
	// with every ping: 1, 2, 4, then Max.
	l.Suspect, l.LastEvidence = false, at(6050*ms)
	step(7050 * ms)
	for _, want := range []time.Duration{2 * sec, 4 * sec, 5 * sec, 5 * sec} {
		l.LastPing = iv.NextPing(l)
		l.LastEvidence = l.LastPing.Add(50 * ms)
		step(l.LastEvidence.Sub(t0) + want)
		if g := iv.Gap(); g < sec || g > 5*sec {
			t.Fatalf("gap %v outside [1s, 5s]", g)
		}
	}
	// A new connection starts over at Max.
	l = policy.Link{AliveSince: at(time.Minute), LastEvidence: at(time.Minute)}
	step(time.Minute + 5*sec)
}

func TestAdaptiveIntervalDataPostponesPings(t *testing.T) {
	iv := &policy.AdaptiveInterval{}
	l := policy.Link{AliveSince: t0, LastEvidence: at(4 * sec)}
	if got := iv.NextPing(l).Sub(t0); got != 9*sec {
		t.Fatalf("next ping %v, want 9s (5 s after the last frame)", got)
	}
}

func TestListen(t *testing.T) {
	iv := &policy.Listen{Probe: 2 * sec}
	l := policy.Link{AliveSince: t0, LastEvidence: at(sec)}
	if got := iv.NextPing(l); !got.IsZero() {
		t.Fatalf("listening side pings at %v", got)
	}
	l.Suspect = true
	if got := iv.NextPing(l).Sub(t0); got != 3*sec {
		t.Fatalf("probe at %v, want 3s", got)
	}
	l.LastPing = at(10 * sec)
	if got := iv.NextPing(l).Sub(t0); got != 12*sec {
		t.Fatalf("second probe at %v, want 12s", got)
	}
}

// TestListenAdvise: with Advise, a listening side pings a healthy peer at
// once on each connection and then every Advise after its last ping, so
// that a server's advice (carried only in pings) reaches its clients.
func TestListenAdvise(t *testing.T) {
	iv := &policy.Listen{Probe: 2 * sec, Advise: time.Minute}
	l := policy.Link{AliveSince: at(sec), LastEvidence: at(4 * sec)}
	if got := iv.NextPing(l).Sub(t0); got != sec {
		t.Fatalf("first ping at %v, want 1s (when the connection came up)", got)
	}
	l.LastPing = at(sec)
	if got := iv.NextPing(l).Sub(t0); got != time.Minute+sec {
		t.Fatalf("next ping at %v, want 1m1s", got)
	}
	l.AliveSince = at(2 * time.Minute) // a new connection: ping at once again
	if got := iv.NextPing(l).Sub(t0); got != 2*time.Minute {
		t.Fatalf("first ping of the new connection at %v, want 2m0s", got)
	}
	l.Suspect = true // probing is unchanged: Probe after the last evidence
	if got := iv.NextPing(l).Sub(t0); got != 6*sec {
		t.Fatalf("probe at %v, want 6s", got)
	}
	d := policy.DefaultServerSet().Interval.(*policy.Listen)
	if d.Advise != policy.DefaultAdvisePeriod {
		t.Fatalf("default server interval advises every %v, want %v", d.Advise, policy.DefaultAdvisePeriod)
	}
}

func TestEveryFirst(t *testing.T) {
	e := &policy.Every{Period: 30 * sec, First: 7 * sec}
	l := policy.Link{AliveSince: at(time.Minute), LastEvidence: at(time.Minute)}
	if got := e.NextPing(l).Sub(t0); got != time.Minute+7*sec {
		t.Fatalf("first ping %v, want 1m7s", got)
	}
	l.LastPing = at(time.Minute + 7*sec)
	l.LastEvidence = at(time.Minute + 20*sec) // data does not move Every
	if got := e.NextPing(l).Sub(t0); got != time.Minute+37*sec {
		t.Fatalf("second ping %v, want 1m37s", got)
	}
}

func TestIntervalValidation(t *testing.T) {
	bad := []struct {
		v    policy.Validator
		want string
	}{
		{&policy.Idle{Every: 0}, "ping interval"},
		{&policy.Idle{Every: 50 * ms}, "ping interval"},
		{&policy.Idle{Every: sec, Probe: 2 * sec}, "probe interval"},
		{&policy.Idle{Every: sec, Probe: 10 * ms}, "probe interval"},
		{&policy.Every{Period: -sec}, "ping period"},
		{&policy.Every{Period: sec, First: -sec}, "first ping"},
		{&policy.AdaptiveInterval{Min: 10 * ms}, "min"},
		{&policy.AdaptiveInterval{Min: 5 * sec, Max: sec}, "min"},
		{&policy.AdaptiveInterval{Growth: 0.5}, "growth"},
		{&policy.Listen{Probe: ms}, "probe interval"},
		{&policy.Listen{Advise: ms}, "advise period"},
		{&policy.Listen{Advise: -sec}, "advise period"},
	}
	for _, tc := range bad {
		err := tc.v.Validate()
		if !errors.Is(err, policy.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one about %q", tc.v, err, tc.want)
		}
	}
	// Out-of-range settings are clamped, never followed: no ping faster
	// than MinPingGap.
	iv := &policy.AdaptiveInterval{Min: ms, Max: ms}
	if got := iv.NextPing(policy.Link{AliveSince: t0, LastEvidence: t0, Suspect: true}).Sub(t0); got != policy.MinPingGap {
		t.Fatalf("clamped probe gap %v, want %v", got, policy.MinPingGap)
	}
}
