package presence

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// registryUnderTest is what the model check drives: the Registry, or a
// planted broken one.
type registryUnderTest interface {
	Step(now time.Time, in RegistryInput, out []Event) []Event
	Deadline() time.Time
	Snapshot() Snapshot
}

// model is the plain reference: per session, the live connections and, once
// the last was lost, the moment its resume window ends.
type model struct {
	window   time.Duration
	conns    map[string]sessionKey // live connections
	live     map[sessionKey]int
	lingerTo map[sessionKey]time.Time
}

func newModel(window time.Duration) *model {
	return &model{window: window, conns: map[string]sessionKey{}, live: map[sessionKey]int{}, lingerTo: map[sessionKey]time.Time{}}
}

// online returns the sessions online at now.
func (m *model) online(now time.Time) map[sessionKey]bool {
	on := map[sessionKey]bool{}
	for k, n := range m.live {
		if n > 0 {
			on[k] = true
		}
	}
	for k, t := range m.lingerTo {
		if now.Before(t) {
			on[k] = true
		}
	}
	return on
}

// expire drops the lingering sessions whose window ended by now.
func (m *model) expire(now time.Time) {
	for k, t := range m.lingerTo {
		if !now.Before(t) {
			delete(m.lingerTo, k)
		}
	}
}

func (m *model) apply(now time.Time, in RegistryInput) {
	switch in.Kind {
	case ConnAlive:
		if _, ok := m.conns[in.Conn]; ok {
			return
		}
		k := sessionKey{in.User, in.Session}
		m.conns[in.Conn] = k
		m.live[k]++
		delete(m.lingerTo, k)
	case EndAll:
		clear(m.conns)
		clear(m.live)
		clear(m.lingerTo)
	case ConnLost, ConnClosed:
		k, ok := m.conns[in.Conn]
		if !ok {
			return
		}
		delete(m.conns, in.Conn)
		if m.live[k]--; m.live[k] > 0 {
			return
		}
		delete(m.live, k)
		if in.Kind == ConnLost {
			w := m.window
			if in.Window > 0 {
				w = in.Window
			}
			m.lingerTo[k] = now.Add(w)
		}
	}
}

// The invariants, as docs/invariants.md names them.
const (
	invNoGhost   = "[R1 no ghost]"
	invNotLost   = "[R2 not lost]"
	invNoFlap    = "[R3 no flap]"
	invOrder     = "[R4 ordered once]"
	invDeadline  = "[R5 on time]"
	invSnapshots = "[R6 snapshot plus stream]"
)

// checkRegistry drives reg (made with resume window w) through random
// interleavings of connections of a few users and checks R1–R6 against the
// model after every step. It returns the first violation, or "".
func checkRegistry(t *rapid.T, reg registryUnderTest, w time.Duration) string {
	m := newModel(w)
	now := time.Unix(1_700_000_000, 0)
	var out []Event
	var history []RegistryInput
	nextConn := 0
	lastSeq := uint64(0)
	userOn := map[string]bool{}     // from the events
	sessOn := map[sessionKey]bool{} // from the events
	replay := reg.Snapshot()        // R6: kept current from the events alone
	steps := rapid.IntRange(1, 120).Draw(t, "steps")
	for range steps {
		var in RegistryInput
		switch op := rapid.IntRange(0, 10).Draw(t, "op"); {
		case op <= 2: // a new connection of some user's session
			in = RegistryInput{Kind: ConnAlive, Conn: fmt.Sprint("c", nextConn),
				User:    rapid.SampledFrom([]string{"ann", "bob", "cy"}).Draw(t, "user"),
				Session: rapid.SampledFrom([]string{"s1", "s2"}).Draw(t, "session")}
			if rapid.Bool().Draw(t, "meta") {
				in.Meta = Meta{"v": rapid.SampledFrom([]string{"1", "2"}).Draw(t, "v")}
			}
			nextConn++
		case op <= 5 && len(m.conns) > 0: // a live connection ends
			ids := slices.Sorted(maps.Keys(m.conns))
			in = RegistryInput{Kind: ConnLost, Conn: rapid.SampledFrom(ids).Draw(t, "conn")}
			if rapid.IntRange(0, 3).Draw(t, "closed") == 0 {
				in.Kind = ConnClosed
			} else if rapid.Bool().Draw(t, "own window") {
				in.Window = time.Duration(rapid.Int64Range(0, int64(2*w)).Draw(t, "loss window"))
			}
		case op == 6 && len(history) > 0: // a duplicate of an earlier report
			in = rapid.SampledFrom(history).Draw(t, "dup")
		case op == 7: // a server restart: every connection lost at once
			for _, id := range slices.Sorted(maps.Keys(m.conns)) {
				in := RegistryInput{Kind: ConnLost, Conn: id}
				m.apply(now, in)
				out = reg.Step(now, in, out)
			}
			in = RegistryInput{Kind: DeadlineReached}
		case op == 8 && rapid.IntRange(0, 3).Draw(t, "end all") == 0: // the owner ends
			in = RegistryInput{Kind: EndAll}
		default: // time passes: up to twice the window, or to the deadline
			if d := reg.Deadline(); !d.IsZero() && rapid.Bool().Draw(t, "to deadline") {
				if d.Before(now) {
					return fmt.Sprintf("%s: deadline %v is before now %v", invDeadline, d, now)
				}
				now = d
			} else {
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(2*w)).Draw(t, "advance")))
			}
			in = RegistryInput{Kind: DeadlineReached}
		}
		history = append(history, in)

		before := m.online(now)
		m.expire(now)
		mid := m.online(now)
		m.apply(now, in)
		after := m.online(now)
		out = reg.Step(now, in, out)

		// R4: events per session and per user alternate join/leave, a user
		// joins before their first session and leaves after their last,
		// and each Seq is the previous one plus one.
		for _, e := range out {
			if e.Seq != lastSeq+1 {
				return fmt.Sprintf("%s: event %v after seq %d", invSnapshots, e, lastSeq)
			}
			lastSeq = e.Seq
			k := sessionKey{e.User, e.Session}
			switch e.Kind {
			case UserJoined:
				if userOn[e.User] {
					return fmt.Sprintf("%s: %v while the user is online", invOrder, e)
				}
				userOn[e.User] = true
			case UserLeft:
				if !userOn[e.User] {
					return fmt.Sprintf("%s: %v while the user is offline", invOrder, e)
				}
				for s := range sessOn {
					if s.user == e.User {
						return fmt.Sprintf("%s: %v while session %s is online", invOrder, e, s.session)
					}
				}
				delete(userOn, e.User)
			case SessionJoined:
				if sessOn[k] || !userOn[e.User] {
					return fmt.Sprintf("%s: %v (session online %v, user online %v)", invOrder, e, sessOn[k], userOn[e.User])
				}
				sessOn[k] = true
			case SessionLeft:
				if !sessOn[k] {
					return fmt.Sprintf("%s: %v while the session is offline", invOrder, e)
				}
				delete(sessOn, k)
			case SessionUpdated:
				if !sessOn[k] {
					return fmt.Sprintf("%s: %v while the session is offline", invOrder, e)
				}
			}
			applyEvent(&replay, e)
		}
		for u := range userOn {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(sessOn)), func(k sessionKey) bool { return k.user == u }) {
				return fmt.Sprintf("%s: user %s online with no session online", invOrder, u)
			}
		}

		// R1, R2, R3: the sessions online by the events are exactly the
		// model's; a session that stayed online in the model had no event.
		for k := range sessOn {
			if !after[k] {
				return fmt.Sprintf("%s: %v online at %v: no live connection and its resume window is over", invNoGhost, k, now)
			}
		}
		for k := range after {
			if !sessOn[k] {
				return fmt.Sprintf("%s: %v offline at %v while the model holds it", invNotLost, k, now)
			}
		}
		for _, e := range out {
			k := sessionKey{e.User, e.Session}
			if (e.Kind == SessionJoined || e.Kind == SessionLeft) && before[k] && mid[k] && after[k] {
				return fmt.Sprintf("%s: %v for a session online throughout", invNoFlap, e)
			}
		}

		// R6: the snapshot equals the first snapshot plus the events.
		snap := reg.Snapshot()
		if snap.Seq != lastSeq {
			return fmt.Sprintf("%s: snapshot seq %d, last event %d", invSnapshots, snap.Seq, lastSeq)
		}
		if got, want := describe(replay), describe(snap); got != want {
			return fmt.Sprintf("%s: events replayed give %s, snapshot %s", invSnapshots, got, want)
		}
		// R5: a lingering session's leave is stamped with the end of its
		// window, never later, and the deadline is never past the earliest
		// expiry the model knows.
		for _, e := range out {
			if e.At.After(now) {
				return fmt.Sprintf("%s: event %v stamped %v after now %v", invDeadline, e, e.At, now)
			}
		}
		var soonest time.Time
		for _, t := range m.lingerTo {
			if soonest.IsZero() || t.Before(soonest) {
				soonest = t
			}
		}
		if d := reg.Deadline(); !soonest.IsZero() && (d.IsZero() || d.After(soonest)) {
			return fmt.Sprintf("%s: deadline %v but a session expires at %v", invDeadline, d, soonest)
		}

		out = out[:0]
	}
	return ""
}

// applyEvent updates a snapshot with one event, as a consumer would.
func applyEvent(s *Snapshot, e Event) {
	s.Seq = e.Seq
	ui := slices.IndexFunc(s.Users, func(u UserInfo) bool { return u.User == e.User })
	switch e.Kind {
	case UserJoined:
		s.Users = append(s.Users, UserInfo{User: e.User})
	case UserLeft:
		s.Users = slices.Delete(s.Users, ui, ui+1)
	case SessionJoined:
		s.Users[ui].Sessions = append(s.Users[ui].Sessions, SessionInfo{Session: e.Session, Meta: e.Meta})
	case SessionUpdated, SessionLeft:
		ss := s.Users[ui].Sessions
		si := slices.IndexFunc(ss, func(x SessionInfo) bool { return x.Session == e.Session })
		if e.Kind == SessionLeft {
			s.Users[ui].Sessions = slices.Delete(ss, si, si+1)
		} else {
			ss[si].Meta = e.Meta
		}
	}
}

// describe renders who is online with their metadata, in order, ignoring
// connection counts (events do not carry them).
func describe(s Snapshot) string {
	var b []string
	for _, u := range s.Users {
		for _, x := range u.Sessions {
			b = append(b, fmt.Sprintf("%s/%s%v", u.User, x.Session, map[string]string(x.Meta)))
		}
		if len(u.Sessions) == 0 {
			b = append(b, u.User+"/(none)")
		}
	}
	slices.Sort(b)
	return fmt.Sprint(b)
}

func TestRegistryMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(time.Minute)).Draw(t, "window"))
		reg, err := NewRegistry(RegistryConfig{ResumeWindow: w})
		if err != nil {
			t.Fatal(err)
		}
		if v := checkRegistry(t, reg, w); v != "" {
			t.Fatal(v)
		}
	})
}

// docs/invariants.md names each invariant the model check reports, by the
// same ID and name.
func TestInvariantsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/invariants.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Presence registry")
	if !ok {
		t.Fatal("docs/invariants.md has no presence registry section")
	}
	for _, inv := range []string{invNoGhost, invNotLost, invNoFlap, invOrder, invDeadline, invSnapshots} {
		id, name, _ := strings.Cut(strings.Trim(inv, "[]"), " ")
		if !strings.Contains(section, "| "+id+" | "+name+" |") {
			t.Errorf("docs/invariants.md lacks the row of %s %s", id, name)
		}
	}
}
