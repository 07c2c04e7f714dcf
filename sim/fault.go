package sim

import (
	"fmt"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
)

// Fault is one scheduled fault.
type Fault struct {
	At     time.Duration // virtual time since the run began
	Slot   int           // the connection it hits, in [0, Conns); ignored by ServerRestart
	Kind   FaultKind
	Outage time.Duration // how long the peer, link or server stays unreachable (Pause: how long)
}

func (f Fault) validate(conns int, horizon time.Duration) error {
	switch {
	case !f.Kind.Valid():
		return fmt.Errorf("sim: unknown fault kind %d", f.Kind)
	case f.At < 0 || f.At > horizon:
		return fmt.Errorf("sim: %v fault at %v is outside the run [0, %v]", f.Kind, f.At, horizon)
	case f.Kind != ServerRestart && (f.Slot < 0 || f.Slot >= conns):
		return fmt.Errorf("sim: %v fault hits connection %d; want one in [0, %d)", f.Kind, f.Slot, conns)
	case f.Outage < 0:
		return fmt.Errorf("sim: %v fault outage %v must not be negative", f.Kind, f.Outage)
	}
	return nil
}

// Mix weighs the kinds of the random failures a profile draws; the
// weights need not sum to one.
type Mix struct {
	CrashClient, CrashServer, Partition, HalfOpen, CleanClose float64
}

func (m Mix) total() float64 {
	return m.CrashClient + m.CrashServer + m.Partition + m.HalfOpen + m.CleanClose
}

// pick maps u in [0, 1) to a kind by weight.
func (m Mix) pick(u float64, coin bool) FaultKind {
	u *= m.total()
	for _, c := range [...]struct {
		w float64
		k FaultKind
	}{{m.CrashClient, CrashClient}, {m.CrashServer, CrashServer}, {m.Partition, Partition}, {m.HalfOpen, HalfOpenUp}, {m.CleanClose, CleanClose}} {
		if u < c.w {
			if c.k == HalfOpenUp && coin {
				return HalfOpenDown
			}
			return c.k
		}
		u -= c.w
	}
	return CleanClose
}

// Weather is a recurring non-failure disturbance: episodes separated by
// exponential gaps of mean Every, each lasting a draw from Length.
// Every = 0 turns it off.
type Weather struct {
	Every  time.Duration
	Length Latency
}

// fault starts a random or scheduled fault.
func (s *engine) fault(e *event) {
	p := &s.cfg.Profile
	var kind FaultKind
	var outage int64
	i := e.slot
	if e.aux == 0 {
		kind = p.Mix.pick(s.r.Float64(), s.r.IntN(2) == 1)
		outage = p.Outage.Sample(s.r)
	} else {
		f := s.cfg.Faults[e.aux-1]
		kind, outage = f.Kind, int64(f.Outage)
	}
	if s.tr != nil {
		s.tracef("%s slot %d fault %v outage %v\n", s.stamp(), i, kind, time.Duration(outage))
	}
	switch kind {
	case ServerRestart:
		s.restart(outage)
		return
	case Pause:
		sl := &s.slots[i]
		sl.pauseFrom, sl.pauseUntil = s.now, s.now+outage
		return
	}
	sl := &s.slots[i]
	cl, sv := &sl.ep[client], &sl.ep[server]
	steady := cl.up && sv.up && cl.gen == sv.gen && !sl.fail.measuring
	if e.aux == 0 {
		if !steady {
			// Not connected right now: try again later, so every measured
			// failure hits a live connection.
			if s.tr != nil {
				s.tracef("%s slot %d %v postponed: the connection is not up\n", s.stamp(), i, kind)
			}
			s.q.push(event{at: s.now + s.expo(p.FailEvery), kind: evFault, slot: i})
			return
		}
		s.q.push(event{at: s.now + outage + s.expo(p.FailEvery), kind: evFault, slot: i})
	}
	if kind == CleanClose {
		if sv.m != nil && sv.up {
			s.step(i, server, sv.gen, fsm.Input{Kind: fsm.CloseRequested})
		}
		return
	}
	if !steady {
		return // a scheduled failure on a connection that is not up: nothing to detect
	}
	s.serial++
	sl.fail = failure{
		kind: kind, gen: cl.gen, at: s.now, until: s.now + outage, serial: s.serial,
		measuring: true, lastEv: [2]int64{cl.lastEv, sv.lastEv}, survivors: 1<<client | 1<<server,
	}
	cl.suspectAt, sv.suspectAt = -1, -1
	if s.pres != nil {
		s.pres.fault(s, i, kind, cl.gen, outage)
	}
	switch kind {
	case CrashClient:
		sl.fail.survivors = 1 << server
		*cl = endpoint{want: never, suspectAt: -1, tgen: cl.tgen + 1}
		s.q.push(event{at: s.now + outage, kind: evStart, slot: i})
	case CrashServer:
		sl.fail.survivors = 1 << client
		*sv = endpoint{want: never, suspectAt: -1, tgen: sv.tgen + 1}
	}
	s.q.push(event{at: s.now + int64(s.cfg.DetectHorizon), kind: evCap, slot: i, aux: s.serial})
}

// detected closes the measurement of a failure at its first detection.
func (s *engine) detected(f *failure) {
	f.measuring = false
	s.meter.failures = append(s.meter.failures, failRec{kind: f.kind, at: f.at, td: s.now - f.at, lastEv: f.lastEv, survivors: f.survivors})
}

// cap ends a failure nobody detected within the horizon: it counts as
// undetected, and the sides still stuck on the dead connection are reset
// (the user reloads the page; the server's kernel keepalive reaps the
// socket).
func (s *engine) cap(e *event) {
	sl := &s.slots[e.slot]
	f := &sl.fail
	if f.serial != e.aux || !f.measuring {
		return
	}
	f.measuring = false
	s.meter.failures = append(s.meter.failures, failRec{kind: f.kind, at: f.at, td: -1, lastEv: f.lastEv, survivors: f.survivors})
	if s.pres != nil {
		s.pres.end(s, e.slot, f.gen, false) // reaped: lost
	}
	for _, idx := range [...]side{server, ghost} {
		if ep := &sl.ep[idx]; ep.m != nil && ep.gen == f.gen {
			*ep = endpoint{want: never, suspectAt: -1, tgen: ep.tgen + 1}
		}
	}
	if cl := &sl.ep[client]; cl.m != nil && cl.gen == f.gen {
		s.step(e.slot, client, cl.gen, fsm.Input{Kind: fsm.CloseRequested})
		s.q.push(event{at: s.now, kind: evStart, slot: e.slot})
	}
}

// restart crashes the server process and brings it back after outage: the
// kernel resets every connection at once, and dials are refused while it
// is down.
func (s *engine) restart(outage int64) {
	s.serverDownUntil = s.now + outage
	for i := range s.slots {
		sl := &s.slots[i]
		cl := &sl.ep[client]
		for _, idx := range [...]side{server, ghost} {
			ep := &sl.ep[idx]
			if ep.m == nil {
				continue
			}
			if cl.m != nil && cl.gen == ep.gen {
				d := &s.cfg.Profile.Link.Down
				s.q.push(event{at: s.now + d.Latency.Sample(s.r), kind: evReset, slot: int32(i), side: client, gen: ep.gen})
				s.meter.resets++
			}
			*ep = endpoint{want: never, suspectAt: -1, tgen: ep.tgen + 1}
		}
	}
	if s.pres != nil {
		s.pres.restart(s)
	}
	if s.onRestart != nil {
		s.onRestart()
	}
}
