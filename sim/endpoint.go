package sim

import (
	"encoding/binary"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// frameOf rebuilds the inbound frame an event carries. A ping's payload
// is its 8-byte sequence number, as the WebSocket adapters send it.
func frameOf(e *event, s *engine) transport.Frame {
	f := transport.Frame{Kind: transport.FrameKind(e.fk), Seq: uint64(e.aux)}
	if f.Kind == transport.Ping {
		binary.BigEndian.PutUint64(s.payload[:], uint64(e.aux))
		f.Payload = s.payload[:8]
	}
	if e.flag&flagWindow != 0 {
		f.ReconnectWindow = s.cfg.Advice
	}
	if e.flag&flagTimeout != 0 {
		f.TimeoutAdvice = time.Duration(s.slots[e.slot].advice)
		f.Payload = s.payload[:10]
	}
	return f
}

// Bits of event.flag: what a server's ping carries.
const (
	flagWindow  = 1 << iota // the reconnect window (Config.Advice)
	flagTimeout             // the fleet's timeout advice (slot.advice)
)

// step feeds one input to endpoint idx of slot i, carries out the actions
// and re-arms its timer. gen is the connection the input concerns.
func (s *engine) step(i int32, idx side, gen uint32, in fsm.Input) {
	ep := &s.slots[i].ep[idx]
	acts := ep.m.Step(epoch.Add(time.Duration(s.now)), in, s.acts[:0])
	bind, drop := false, false
	for k := range acts {
		a := &acts[k]
		switch a.Kind {
		case fsm.SendPing, fsm.SendPong:
			s.send(i, idx, a)
		case fsm.Dial:
			if idx == client {
				s.dial(i)
			} else {
				bind = true
			}
		case fsm.CloseTransport:
			if ep.gen != 0 {
				s.control(i, idx.class(), evFin, ep.gen)
				ep.gen = 0
			}
		case fsm.StateChanged:
			drop = s.changed(i, idx, gen, a) || drop
		}
	}
	s.acts = acts[:0]
	if drop {
		ep.m, ep.gen, ep.up, ep.want = nil, 0, false, never
		ep.tgen++
		return
	}
	if bind {
		s.step(i, idx, gen, fsm.Input{Kind: fsm.Connected})
		return
	}
	s.arm(i, idx)
}

// send puts a heartbeat on the wire.
func (s *engine) send(i int32, idx side, a *fsm.Action) {
	sl := &s.slots[i]
	ep := &sl.ep[idx]
	if ep.gen == 0 {
		return
	}
	e := event{kind: evFrame, slot: i, gen: ep.gen, fk: uint8(transport.Ping), aux: uint32(a.Seq)}
	if a.Kind == fsm.SendPong {
		e.fk, e.aux = uint8(transport.Pong), 0
		if len(a.Payload) >= 8 {
			e.aux = uint32(binary.BigEndian.Uint64(a.Payload))
		}
	}
	d, st := &s.cfg.Profile.Link.Up, &sl.up
	// The advice travels only where the WebSocket adapters put it: in the
	// server's pings (wire.AppendControl's 4 more bytes). A pong echoes its
	// ping's payload (RFC 6455 §5.5.3), so the server's pongs carry none and
	// the client's pongs echo the advised ping's 12 bytes.
	advised := s.cfg.Advice > 0
	if idx == client {
		e.side = server
		s.meter.bytes += upFrameBytes
		if advised && a.Kind == fsm.SendPong {
			s.meter.bytes += adviceBytes
		}
		if a.Kind == fsm.SendPong && len(a.Payload) == 10 {
			s.meter.bytes += timeoutBytes // the echo of the fleet's advice
		}
	} else {
		e.side = client
		d, st = &s.cfg.Profile.Link.Down, &sl.down
		s.meter.bytes += downFrameBytes
		if advised && a.Kind == fsm.SendPing {
			e.flag |= flagWindow
			s.meter.bytes += adviceBytes
		}
		if a.Kind == fsm.SendPing && s.fleetOn && (sl.advisedGen != ep.gen || s.now-sl.advisedAt >= int64(policy.DefaultFleetAdvicePeriod)) {
			if adv := s.cfg.Fleet.Advice(""); adv > 0 {
				e.flag |= flagTimeout
				sl.advisedGen, sl.advisedAt, sl.advice = ep.gen, s.now, int64(adv)
				s.meter.bytes += timeoutBytes
				if ep.adv != nil {
					ep.adv.Advise(adv) // the server's own detector follows the fleet too
				}
			}
		}
	}
	s.meter.msgs++
	if s.onSend != nil && !s.onSend(idx, &e) {
		return // a test scripted its loss
	}
	bf, bu := s.stall(sl)
	s.meter.link.Sent++
	at, dup, ok := d.Transmit(s.r, st, s.now, bf, bu, false, &s.meter.link)
	if !ok {
		s.meter.link.Dropped++
		return
	}
	e.at = at
	s.meter.link.InFlight++
	s.q.push(e)
	if dup > 0 {
		e.at = dup
		s.meter.link.Duplicated++
		s.meter.link.InFlight++
		s.q.push(e)
	}
}

// dial opens a new connection for the client of slot i.
func (s *engine) dial(i int32) {
	sl := &s.slots[i]
	s.meter.dials++
	sl.gen++
	sl.ep[client].gen = sl.gen
	s.control(i, client, evSyn, sl.gen)
}

// changed records a state change of endpoint idx and reports whether the
// endpoint's machine is finished (a server's dead connection).
func (s *engine) changed(i int32, idx side, gen uint32, a *fsm.Action) (finished bool) {
	sl := &s.slots[i]
	ep := &sl.ep[idx]
	if s.tr != nil {
		s.traceChange(i, idx, a)
	}
	if s.pres != nil {
		s.pres.changed(s, i, idx, gen, a)
	}
	ep.up = a.To == fsm.Alive || a.To == fsm.Suspect
	f := &sl.fail
	healthy := !(f.kind.Failure() && f.gen == gen && s.now >= f.at)
	switch a.To {
	case fsm.Alive:
		if a.From == fsm.Connecting {
			ep.lastEv = s.now
			if idx == client && s.onAlive != nil {
				s.onAlive(i, s.now)
			}
		} else if ep.suspectAt >= 0 {
			s.meter.suspectDur = append(s.meter.suspectDur, s.now-ep.suspectAt)
		}
		ep.suspectAt = -1
	case fsm.Suspect:
		if healthy {
			s.meter.falseSuspects++
			ep.suspectAt = s.now
		}
	case fsm.Dead:
		ep.suspectAt = -1
		if healthy {
			if a.Reason == fsm.ReasonUnanswered || a.Reason == fsm.ReasonPingFlood {
				s.meter.falseDeads[idx.class()]++
				s.meter.gaps[idx.class()].addCensored()
			}
		} else if f.measuring && f.survivors&(1<<idx.class()) != 0 {
			s.detected(f)
		}
		return idx != client
	case fsm.Closed:
		ep.suspectAt = -1
		if idx == client {
			if a.Reason == fsm.ReasonGaveUp {
				s.meter.gaveUp++
				s.q.push(event{at: s.now + int64(ReloadAfter), kind: evStart, slot: i})
			}
		}
		return true
	}
	return false
}

// arm makes sure a timer event will wake endpoint idx by its deadline. At
// most one live timer event per endpoint sits in the queue: a deadline that
// moves later is handled when the earlier event fires.
func (s *engine) arm(i int32, idx side) {
	dl := s.slots[i].ep[idx].m.Deadline()
	if dl.IsZero() {
		ep := &s.slots[i].ep[idx]
		ep.want, ep.late = never, false
		return
	}
	s.armAt(i, idx, sinceEpoch(dl))
}

// armAt is arm for a machine whose deadline is d.
func (s *engine) armAt(i int32, idx side, d int64) {
	sl := &s.slots[i]
	ep := &sl.ep[idx]
	ep.late = false
	if idx == client {
		// A paused client's wake-ups come late: the stall guard's case.
		if from, until := s.pause(sl); d >= from && d < until {
			d = until
			ep.late = true
		}
	}
	ep.want = d
	if ep.armed != 0 && ep.armed <= d {
		return
	}
	ep.tgen++
	ep.armed = d
	s.q.push(event{at: d, kind: evTimer, slot: i, side: idx, gen: ep.tgen})
}

// sinceEpoch is t.Sub(epoch) in nanoseconds for a t of the run (t.Sub
// checks for overflow by adding the difference back, which costs more).
func sinceEpoch(t time.Time) int64 {
	return (t.Unix()-epochUnix)*int64(time.Second) + int64(t.Nanosecond())
}

func (s *engine) timer(e *event) {
	sl := &s.slots[e.slot]
	ep := &sl.ep[e.side]
	if ep.m == nil || e.gen != ep.tgen {
		s.meter.stale++
		return
	}
	ep.armed = 0
	s.meter.events++
	s.trace(e)
	if ep.want > s.now {
		// The deadline moved later since this timer was set; the machine
		// has not stepped since, so want is still its deadline unless a
		// pause delayed it.
		switch {
		case ep.late:
			s.arm(e.slot, e.side)
		case ep.want != never:
			s.armAt(e.slot, e.side, ep.want)
		}
		return
	}
	if e.side == client {
		if from, until := s.pause(sl); s.now >= from && s.now < until {
			ep.want = until
			ep.late = true
			ep.tgen++
			ep.armed = until
			s.q.push(event{at: until, kind: evTimer, slot: e.slot, side: client, gen: ep.tgen})
			return
		}
	}
	s.step(e.slot, e.side, ep.gen, fsm.Input{Kind: fsm.DeadlineReached})
}
