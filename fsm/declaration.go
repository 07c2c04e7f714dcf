package fsm

import (
	"fmt"

	lfsm "github.com/looplab/fsm"
)

//go:generate go run ./internal/gendiagram -out ../docs/state-machine.md

// Event names a transition of the declaration.
type Event uint8

const (
	EvConnected  Event = iota // connecting → alive
	EvDialFailed              // connecting → reconnecting (client)
	EvSuspect                 // alive → suspect
	EvEvidence                // suspect → alive
	EvConvict                 // suspect → dead
	EvLost                    // connecting, alive, suspect → dead
	EvRetry                   // dead → reconnecting (client)
	EvDial                    // reconnecting → connecting
	EvGiveUp                  // connecting, alive, suspect, dead → closed (the backoff gave up)
	EvClose                   // any state but closed → closed
	EvLeft                    // alive, suspect → closed (server: the peer closed cleanly)
	EvRedial                  // alive, suspect → reconnecting (client: the peer closed cleanly)

	numEvents = iota
)

var eventNames = [numEvents]string{
	"connected", "dial_failed", "suspect", "evidence", "convict", "lost",
	"retry", "dial", "give_up", "close", "left", "redial",
}

func (e Event) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return "event(?)"
}

// Transition is one legal transition: Event takes a connection from any
// of From to To.
type Transition struct {
	Event Event
	From  []State
	To    State
}

// Transitions returns every legal transition, in the order declared: the
// table the Machine is compiled from and docs/state-machine.md draws. A
// checker that wants a reference machine builds one from it (proptest
// builds a looplab/fsm FSM).
func Transitions() []Transition {
	decl := declaration()
	out := make([]Transition, 0, len(decl))
	for _, ev := range decl {
		t := Transition{Event: mustEvent(ev.Name), To: mustState(ev.Dst)}
		for _, src := range ev.Src {
			t.From = append(t.From, mustState(src))
		}
		out = append(out, t)
	}
	return out
}

// declaration is the single source of the legal transitions, in
// looplab/fsm's form: the Machine's table, Transitions and the diagram
// are derived from it.
func declaration() lfsm.Events {
	s := func(states ...State) []string {
		out := make([]string, len(states))
		for i, st := range states {
			out[i] = st.String()
		}
		return out
	}
	return lfsm.Events{
		{Name: EvConnected.String(), Src: s(Connecting), Dst: Alive.String()},
		{Name: EvDialFailed.String(), Src: s(Connecting), Dst: Reconnecting.String()},
		{Name: EvSuspect.String(), Src: s(Alive), Dst: Suspect.String()},
		{Name: EvEvidence.String(), Src: s(Suspect), Dst: Alive.String()},
		{Name: EvConvict.String(), Src: s(Suspect), Dst: Dead.String()},
		{Name: EvLost.String(), Src: s(Connecting, Alive, Suspect), Dst: Dead.String()},
		{Name: EvRetry.String(), Src: s(Dead), Dst: Reconnecting.String()},
		{Name: EvDial.String(), Src: s(Reconnecting), Dst: Connecting.String()},
		{Name: EvGiveUp.String(), Src: s(Connecting, Alive, Suspect, Dead), Dst: Closed.String()},
		{Name: EvClose.String(), Src: s(Connecting, Alive, Suspect, Dead, Reconnecting), Dst: Closed.String()},
		{Name: EvLeft.String(), Src: s(Alive, Suspect), Dst: Closed.String()},
		{Name: EvRedial.String(), Src: s(Alive, Suspect), Dst: Reconnecting.String()},
	}
}

// noState marks an illegal (state, event) pair in the table.
const noState State = 0xff

// table is the declaration compiled at init: table[src][event] is the
// destination, or noState. The Machine consults it on every transition so it
// never pays for a looplab FSM.
var table = compile(declaration())

func compile(events lfsm.Events) (t [numStates][numEvents]State) {
	for i := range t {
		for j := range t[i] {
			t[i][j] = noState
		}
	}
	for _, ev := range events {
		e := mustEvent(ev.Name)
		dst := mustState(ev.Dst)
		for _, src := range ev.Src {
			t[mustState(src)][e] = dst
		}
	}
	return t
}

// Next returns the state that event e leads to from s, and false if the
// declaration has no such transition.
func Next(s State, e Event) (State, bool) {
	if int(s) >= numStates || int(e) >= numEvents {
		return noState, false
	}
	d := table[s][e]
	return d, d != noState
}

// ParseState returns the State named name.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return noState, fmt.Errorf("heartbeat: unknown state %q", name)
}

// ParseEvent returns the Event named name.
func ParseEvent(name string) (Event, error) {
	for i, n := range eventNames {
		if n == name {
			return Event(i), nil
		}
	}
	return 0, fmt.Errorf("heartbeat: unknown event %q", name)
}

func mustState(name string) State {
	s, err := ParseState(name)
	if err != nil {
		panic(err)
	}
	return s
}

func mustEvent(name string) Event {
	e, err := ParseEvent(name)
	if err != nil {
		panic(err)
	}
	return e
}

// Diagram returns the declaration as a Mermaid state diagram, drawn by
// looplab/fsm's visualiser from a machine in the initial state.
func Diagram() string {
	f := lfsm.NewFSM(Connecting.String(), declaration(), nil)
	out, err := lfsm.VisualizeForMermaidWithGraphType(f, lfsm.StateDiagram)
	if err != nil {
		panic(err) // StateDiagram is a known type
	}
	return out
}
