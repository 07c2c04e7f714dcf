package sim

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// Presence asks a run to measure server-side presence as well: the run
// feeds a presence registry what the server's Machines report, exactly as
// presence.Hub feeds it — a connection's first Alive is a ConnAlive, its
// Dead or Closed a ConnLost, or a ConnClosed when the close was on
// purpose (the server closed it, or the client closed it cleanly). Each
// client is one user with one session; its redials resume that session,
// and a client that restarts (after a crash, a reload, giving up) opens a
// new one. The registry does not act on the run, so several can watch the
// same run side by side. docs/simulator.md describes what counts as a
// flap and as a real departure.
type Presence struct {
	// Window is how long a session outlives its last lost connection:
	// DerivedWindow (zero) derives it at every loss as presence.Hub does
	// (the advised reconnect window plus presence.DefaultDialAllowance, at
	// least presence.MinResumeWindow); PerConnection means none — every
	// end of a connection is a leave at once, the per-connection presence
	// of fsm.Presence or Socket.IO; any other value is a fixed window.
	Window time.Duration
	// DrainCloses feeds the server's own closes (the CleanClose fault) as
	// ConnLost, as a drain the client is expected back from, instead of
	// the hub's ConnClosed (a kick: a leave at once). It measures what
	// such a mapping would change.
	DrainCloses bool
	// NewRegistry, if set, builds the registry to feed (a test plants a
	// broken one); nil means presence.NewRegistry.
	NewRegistry func() (PresenceRegistry, error)
}

// Values of Presence.Window.
const (
	DerivedWindow time.Duration = 0
	PerConnection time.Duration = -1
)

// PresenceRegistry is what a run feeds: presence.Registry satisfies it.
// The run steps it only when a connection changes, not at its deadline: a
// registry's events carry the time they fell due, so the lateness changes
// nothing that is measured. The run ends with a DeadlineReached at its end.
type PresenceRegistry interface {
	Step(now time.Time, in presence.RegistryInput, out []presence.Event) []presence.Event
}

// PresenceResult is what one Presence measured.
type PresenceResult struct {
	Presence
	// Window is the longest resume window a lost connection was given
	// (a derived window grows with the connections the server holds); 0
	// for PerConnection.
	Window time.Duration
	Users  int
	// UserDays is the users' time simulated, in days.
	UserDays float64
	// Joins and Leaves count UserJoined and UserLeft events.
	Joins, Leaves int64
	// Flaps counts leaves of a user who had not really left since their
	// previous join, followed by a join; FlapsClosed those of them that
	// were leaves at once (a close on purpose, which no window bridges).
	Flaps, FlapsClosed int64
	// LeaveDelay is from a client's crash to the leave of the session it
	// held. Crashes whose leave was still due when the run (or the
	// server's registry, at a restart) ended are LeavesPending.
	LeaveDelay    Quantiles
	LeavesPending int
}

// FlapsPerUserDay is Flaps per user-day.
func (r *PresenceResult) FlapsPerUserDay() float64 {
	if r.UserDays == 0 {
		return 0
	}
	return float64(r.Flaps) / r.UserDays
}

// presUser is one user as one presence model sees it.
type presUser struct {
	firstAbs int64 // first real absence since the user's latest join; never if none
	crashAt  int64 // a crashed session's leave is awaited since then; -1 if none
	flap     uint8 // the latest leave was not a departure: presence.LeaveReason+1 until the next join
}

// presModel is one registry and what it measured.
type presModel struct {
	cfg    Presence
	reg    PresenceRegistry
	users  []presUser
	delays []int64
	res    PresenceResult
}

// presSlot is the ground truth of one slot's user, shared by the models.
type presSlot struct {
	user        string
	life        uint32    // the client's restarts: its session
	crashLife   uint32    // the session a crash left behind
	absentUntil int64     // the user is really away until then
	online      [2]uint32 // server-side connections the registries know
	cleanFin    uint32    // the client closed this connection on purpose (code 1000)
}

// presenceRun is the presence measure of a run.
type presenceRun struct {
	models []*presModel
	slots  []presSlot
	live   int     // connections the server holds (presence.Hub's count)
	rate   float64 // accepts per second, for the derived advice
	evs    []presence.Event
}

func validatePresence(ps []Presence) error {
	for _, p := range ps {
		if p.Window < PerConnection || p.Window > presence.MaxResumeWindow {
			return fmt.Errorf("presence window %v: want DerivedWindow (0), PerConnection (-1ns) or a window up to %v", p.Window, presence.MaxResumeWindow)
		}
	}
	return nil
}

func newPresenceRun(cfg *Config) (*presenceRun, error) {
	if len(cfg.Presence) == 0 {
		return nil, nil
	}
	p := &presenceRun{slots: make([]presSlot, cfg.Conns), rate: cfg.AcceptRate}
	if p.rate <= 0 {
		p.rate = presence.DefaultAcceptRate
	}
	for i := range p.slots {
		p.slots[i].user = strconv.Itoa(i)
	}
	for _, c := range cfg.Presence {
		m := &presModel{cfg: c, users: make([]presUser, cfg.Conns)}
		for i := range m.users {
			m.users[i] = presUser{firstAbs: never, crashAt: -1}
		}
		if err := m.newRegistry(); err != nil {
			return nil, err
		}
		p.models = append(p.models, m)
	}
	return p, nil
}

func (m *presModel) newRegistry() error {
	if m.cfg.NewRegistry != nil {
		r, err := m.cfg.NewRegistry()
		if err != nil {
			return fmt.Errorf("%w: presence registry: %w", ErrConfig, err)
		}
		m.reg = r
		return nil
	}
	r, err := presence.NewRegistry(presence.RegistryConfig{})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	m.reg = r
	return nil
}

func connID(i int32, gen uint32) string {
	return strconv.FormatUint(uint64(i)<<32|uint64(gen), 36)
}

// feed steps every model with in at now and accounts for the events.
func (p *presenceRun) feed(s *engine, in presence.RegistryInput) {
	p.feedDrain(s, in, false)
}

// feedDrain is feed; drain says a ConnClosed is the server's own close.
func (p *presenceRun) feedDrain(s *engine, in presence.RegistryInput, drain bool) {
	now := epoch.Add(time.Duration(s.now))
	var window time.Duration
	if in.Kind == presence.ConnLost || drain {
		// The hub's rule (presence.Hub.resumeWindow), with the connections
		// this server holds after the loss.
		adv := time.Duration(float64(p.live) / p.rate * float64(time.Second))
		adv = min(adv.Round(time.Millisecond), wire.MaxWindow)
		window = min(max(adv+presence.DefaultDialAllowance, presence.MinResumeWindow), presence.MaxResumeWindow)
	}
	for _, m := range p.models {
		in := in
		if in.Kind == presence.ConnClosed && drain && m.cfg.DrainCloses {
			in.Kind = presence.ConnLost
		}
		switch w := m.cfg.Window; {
		case in.Kind != presence.ConnLost:
		case w == PerConnection:
			in.Kind = presence.ConnClosed
		case w != DerivedWindow:
			in.Window = w
		default:
			in.Window = window
		}
		if in.Kind == presence.ConnLost {
			m.res.Window = max(m.res.Window, in.Window)
		}
		p.evs = m.reg.Step(now, in, p.evs[:0])
		p.account(m)
	}
}

// account classifies a model's new events against the ground truth.
func (p *presenceRun) account(m *presModel) {
	for k := range p.evs {
		e := &p.evs[k]
		i, err := strconv.Atoi(e.User)
		if err != nil || i < 0 || i >= len(p.slots) {
			continue // not a user of this run: a planted registry's invention
		}
		u, sl := &m.users[i], &p.slots[i]
		at := sinceEpoch(e.At)
		switch e.Kind {
		case presence.UserJoined:
			m.res.Joins++
			if u.flap != 0 {
				m.res.Flaps++
				if presence.LeaveReason(u.flap-1) == presence.LeaveClosed {
					m.res.FlapsClosed++
				}
			}
			u.flap = 0
			u.firstAbs = never
			if sl.absentUntil > at {
				u.firstAbs = at
			}
		case presence.UserLeft:
			m.res.Leaves++
			if u.firstAbs > at {
				u.flap = uint8(e.Reason) + 1
			}
		case presence.SessionLeft:
			if u.crashAt >= 0 && e.Session == strconv.FormatUint(uint64(sl.crashLife), 10) {
				m.delays = append(m.delays, at-u.crashAt)
				u.crashAt = -1
			}
		}
	}
}

// flush steps every model to now, so leaves that fell due are accounted
// before the ground truth changes.
func (p *presenceRun) flush(s *engine) {
	p.feed(s, presence.RegistryInput{Kind: presence.DeadlineReached})
}

// absent records that the user of slot i is really away from now until
// until.
func (p *presenceRun) absent(s *engine, i int32, until int64) {
	p.flush(s)
	sl := &p.slots[i]
	sl.absentUntil = max(sl.absentUntil, until)
	for _, m := range p.models {
		if u := &m.users[i]; u.firstAbs == never {
			u.firstAbs = s.now
		}
	}
}

// changed sees a state change of endpoint idx of slot i on connection gen.
func (p *presenceRun) changed(s *engine, i int32, idx side, gen uint32, a *fsm.Action) {
	sl := &p.slots[i]
	if idx == client {
		if a.To != fsm.Closed {
			return
		}
		// The client is gone until the user reloads it: a departure, and
		// its next start is a new session. A close the user asked for
		// reaches the server as a clean close (code 1000).
		if a.Reason == fsm.ReasonUserClose && errors.Is(a.Err, fsm.ErrClosed) {
			sl.cleanFin = gen
		}
		until := s.now
		if a.Reason == fsm.ReasonGaveUp {
			until += int64(ReloadAfter)
		}
		p.absent(s, i, until)
		sl.life++
		return
	}
	switch {
	case a.To == fsm.Alive && a.From == fsm.Connecting:
		k := 0
		switch {
		case sl.online[0] == 0:
		case sl.online[1] == 0:
			k = 1
		default:
			// The server holds two connections of the slot already: the run
			// drops the older (its ghost) unreported; the hub would see it
			// die later.
			if sl.online[1] < sl.online[0] {
				k = 1
			}
			p.end(s, i, sl.online[k], false)
		}
		sl.online[k] = gen
		p.live++
		p.feed(s, presence.RegistryInput{Kind: presence.ConnAlive, Conn: connID(i, gen), User: sl.user, Session: strconv.FormatUint(uint64(sl.life), 10)})
	case a.To == fsm.Dead || a.To == fsm.Closed:
		server := errors.Is(a.Err, fsm.ErrClosed)
		client := a.Reason == fsm.ReasonPeerClosed && sl.cleanFin == gen && gen != 0
		p.endDrain(s, i, gen, server || client, server)
	}
}

// end reports the end of server-side connection gen of slot i, if the
// registries know it.
func (p *presenceRun) end(s *engine, i int32, gen uint32, purpose bool) {
	p.endDrain(s, i, gen, purpose, false)
}

// endDrain is end; drain says the server closed it on purpose.
func (p *presenceRun) endDrain(s *engine, i int32, gen uint32, purpose, drain bool) {
	sl := &p.slots[i]
	k := 0
	switch {
	case gen == 0:
		return
	case sl.online[0] == gen:
	case sl.online[1] == gen:
		k = 1
	default:
		return
	}
	sl.online[k] = 0
	p.live--
	in := presence.RegistryInput{Kind: presence.ConnLost, Conn: connID(i, gen)}
	if purpose {
		in.Kind = presence.ConnClosed
	}
	p.feedDrain(s, in, drain)
}

// fault sees a real failure begin on slot i's connection gen, before the
// run acts on it.
func (p *presenceRun) fault(s *engine, i int32, kind FaultKind, gen uint32, outage int64) {
	sl := &p.slots[i]
	switch kind {
	case CrashClient:
		// The user really left; the client restarts after the outage with
		// a new session.
		p.absent(s, i, s.now+outage)
		sl.crashLife = sl.life
		sl.life++
		for _, m := range p.models {
			m.users[i].crashAt = s.now
		}
	case CrashServer:
		// The user cannot reach the server for the outage. The server side
		// of the connection vanishes: the registry is told it was lost
		// (in a cluster, the node's registry would vanish with it).
		p.absent(s, i, s.now+outage)
		p.end(s, i, gen, false)
	case Partition:
		p.absent(s, i, s.now+outage)
	}
}

// restart: the server process restarts, and its registry with it. Leaves
// still due in the old one never come.
func (p *presenceRun) restart(s *engine) {
	p.flush(s)
	for _, m := range p.models {
		for i := range m.users {
			if m.users[i].crashAt >= 0 {
				m.res.LeavesPending++
			}
			m.users[i] = presUser{firstAbs: never, crashAt: -1}
		}
		if err := m.newRegistry(); err != nil && s.err == nil {
			s.err = err
		}
	}
	for i := range p.slots {
		p.slots[i].online = [2]uint32{}
	}
	p.live = 0
}

// results ends the measure at the run's end.
func (p *presenceRun) results(s *engine) []PresenceResult {
	s.now = max(s.now, s.horizon)
	p.flush(s)
	out := make([]PresenceResult, 0, len(p.models))
	for _, m := range p.models {
		r := m.res
		r.Presence = m.cfg
		r.Users = len(p.slots)
		r.UserDays = float64(len(p.slots)) * s.cfg.Duration.Hours() / 24
		for i := range m.users {
			if m.users[i].crashAt >= 0 {
				r.LeavesPending++
			}
		}
		r.LeaveDelay = quantiles(m.delays)
		out = append(out, r)
	}
	return out
}
