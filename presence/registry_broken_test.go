package presence

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/heartbeat-go/heartbeat/proptest"
)

// Planted broken registries: each must be caught by the invariant named, or
// the model check proves nothing.

// forgetful treats every loss as a close: no resume window, so every
// reconnect flaps.
type forgetful struct{ *Registry }

func (f forgetful) Step(now time.Time, in RegistryInput, out []Event) []Event {
	if in.Kind == ConnLost {
		in.Kind = ConnClosed
	}
	return f.Registry.Step(now, in, out)
}

// clingy keeps lost sessions for ten times the window it was promised.
type clingy struct{ *Registry }

// closeLingers treats a close on purpose as a loss: the session of a user
// who logged out stays online for the resume window.
type closeLingers struct{ *Registry }

func (c closeLingers) Step(now time.Time, in RegistryInput, out []Event) []Event {
	if in.Kind == ConnClosed {
		in.Kind = ConnLost
	}
	return c.Registry.Step(now, in, out)
}

// noUserLeft drops the UserLeft events.
type noUserLeft struct{ *Registry }

func (n noUserLeft) Step(now time.Time, in RegistryInput, out []Event) []Event {
	start := len(out)
	out = n.Registry.Step(now, in, out)
	kept := out[:start]
	for _, e := range out[start:] {
		if e.Kind != UserLeft {
			kept = append(kept, e)
		}
	}
	return kept
}

// lateDeadline reports its deadline a second late.
type lateDeadline struct{ *Registry }

func (l lateDeadline) Deadline() time.Time {
	d := l.Registry.Deadline()
	if d.IsZero() {
		return d
	}
	return d.Add(time.Second)
}

// doubleJoin emits a second SessionJoined when a lingering session resumes.
type doubleJoin struct{ *Registry }

func (d doubleJoin) Step(now time.Time, in RegistryInput, out []Event) []Event {
	var lingering bool
	if s := d.Registry.sessions[sessionKey{in.User, in.Session}]; s != nil && in.Kind == ConnAlive {
		lingering = s.index >= 0
	}
	out = d.Registry.Step(now, in, out)
	if lingering {
		d.Registry.seq++
		out = append(out, Event{Seq: d.Registry.seq, Kind: SessionJoined, At: now, User: in.User, Session: in.Session})
	}
	return out
}

// rejoin reports a resumed session as a leave and a join in one step, as a
// diff-based tracker does on a fast reconnect.
type rejoin struct{ *Registry }

func (r rejoin) Step(now time.Time, in RegistryInput, out []Event) []Event {
	var lingering bool
	if s := r.Registry.sessions[sessionKey{in.User, in.Session}]; s != nil && in.Kind == ConnAlive {
		lingering = s.index >= 0
	}
	out = r.Registry.Step(now, in, out)
	if lingering {
		for _, k := range []EventKind{SessionLeft, SessionJoined} {
			r.Registry.seq++
			out = append(out, Event{Seq: r.Registry.seq, Kind: k, At: now, User: in.User, Session: in.Session, Meta: r.Registry.sessions[sessionKey{in.User, in.Session}].meta})
		}
	}
	return out
}

// gappy skips a sequence number after every leave.
type gappy struct{ *Registry }

func (g gappy) Step(now time.Time, in RegistryInput, out []Event) []Event {
	start := len(out)
	out = g.Registry.Step(now, in, out)
	for _, e := range out[start:] {
		if e.Kind == SessionLeft {
			g.Registry.seq++
		}
	}
	return out
}

func TestModelCatchesBrokenRegistries(t *testing.T) {
	cases := []struct {
		name string
		make func(w time.Duration) registryUnderTest
		want string
	}{
		{"forgetful", func(w time.Duration) registryUnderTest { return forgetful{mustRegistry(w)} }, "R2"},
		{"close lingers", func(w time.Duration) registryUnderTest { return closeLingers{mustRegistry(w)} }, "R1"},
		{"clingy", func(w time.Duration) registryUnderTest { return clingy{mustRegistry(10 * w)} }, "R5"},
		{"no user left", func(w time.Duration) registryUnderTest { return noUserLeft{mustRegistry(w)} }, "R4"},
		{"late deadline", func(w time.Duration) registryUnderTest { return lateDeadline{mustRegistry(w)} }, "R5"},
		{"rejoin", func(w time.Duration) registryUnderTest { return rejoin{mustRegistry(w)} }, "R3"},
		{"gappy", func(w time.Duration) registryUnderTest { return gappy{mustRegistry(w)} }, "R6"},
		{"double join", func(w time.Duration) registryUnderTest { return doubleJoin{mustRegistry(w)} }, "R4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := proptest.Verdict(t.Name(), func(tb testing.TB) {
				rapid.Check(tb, func(rt *rapid.T) {
					w := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(time.Minute)).Draw(rt, "window"))
					if v := checkRegistry(rt, c.make(w), w); v != "" {
						rt.Fatal(v)
					}
				})
			})
			if !r.Failed || r.Invariant != c.want {
				t.Fatalf("want the model check to fail with %s, got failed=%v invariant=%q:\n%s", c.want, r.Failed, r.Invariant, r.Output)
			}
			if i := strings.Index(r.Output, "["+c.want+" "); i >= 0 {
				first, _, _ := strings.Cut(r.Output[i:], "\n")
				t.Logf("caught: %s", first)
			}
		})
	}
}

func mustRegistry(w time.Duration) *Registry {
	r, err := NewRegistry(RegistryConfig{ResumeWindow: min(w, MaxResumeWindow)})
	if err != nil {
		panic(err)
	}
	return r
}
