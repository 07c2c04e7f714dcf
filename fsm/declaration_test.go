package fsm

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	lfsm "github.com/looplab/fsm"
)

// TestTableAgreesWithLooplab checks the compiled table against a looplab FSM
// built from the same declaration, on every (state, event) pair.
func TestTableAgreesWithLooplab(t *testing.T) {
	for s := range State(numStates) {
		for e := range Event(numEvents) {
			f := lfsm.NewFSM(s.String(), declaration(), nil)
			err := f.Event(context.Background(), e.String())
			dst, ok := Next(s, e)
			switch {
			case err == nil:
				if !ok || f.Current() != dst.String() {
					t.Errorf("(%v, %v): looplab goes to %s, table says %v (legal %v)", s, e, f.Current(), dst, ok)
				}
			case errors.As(err, new(lfsm.InvalidEventError)):
				if ok {
					t.Errorf("(%v, %v): looplab refuses, table goes to %v", s, e, dst)
				}
			default:
				// A self-transition would be NoTransitionError; the declaration has none.
				t.Errorf("(%v, %v): unexpected looplab error %v", s, e, err)
			}
		}
	}
}

func TestDeclarationNamesRealStatesAndEvents(t *testing.T) {
	seen := map[Event]bool{}
	for _, ev := range declaration() {
		e, err := ParseEvent(ev.Name)
		if err != nil {
			t.Fatal(err)
		}
		if seen[e] {
			t.Errorf("event %v declared twice", e)
		}
		seen[e] = true
		for _, src := range append(slices.Clone(ev.Src), ev.Dst) {
			if _, err := ParseState(src); err != nil {
				t.Error(err)
			}
		}
	}
	if len(seen) != numEvents {
		t.Errorf("declaration has %d events, the Event enum %d", len(seen), numEvents)
	}
	if _, err := ParseState("zombie"); err == nil {
		t.Error("ParseState accepted an unknown name")
	}
	if _, ok := Next(State(200), EvClose); ok {
		t.Error("Next accepted an out-of-range state")
	}
}

func TestClosedIsAbsorbing(t *testing.T) {
	for e := range Event(numEvents) {
		if dst, ok := Next(Closed, e); ok {
			t.Errorf("closed has an outgoing edge %v → %v", e, dst)
		}
	}
}

// TestDiagramIsCurrent fails when docs/state-machine.md was not regenerated
// after the declaration changed.
func TestDiagramIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../docs/state-machine.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != DiagramDoc() {
		t.Fatal("docs/state-machine.md is stale: run `go generate ./fsm`")
	}
	for _, ev := range declaration() {
		for _, src := range ev.Src {
			edge := src + " --> " + ev.Dst + ": " + ev.Name
			if !strings.Contains(string(got), edge) {
				t.Errorf("diagram lacks edge %q", edge)
			}
		}
	}
}

func TestEnumStrings(t *testing.T) {
	for s := range State(numStates) {
		if strings.Contains(s.String(), "?") {
			t.Errorf("state %d has no name", s)
		}
	}
	for r := range Reason(numReasons) {
		if strings.Contains(r.String(), "?") {
			t.Errorf("reason %d has no name", r)
		}
	}
	for k := Start; k <= CloseRequested; k++ {
		if strings.Contains(k.String(), "?") {
			t.Errorf("input kind %d has no name", k)
		}
	}
	for k := SendPing; k <= StateChanged; k++ {
		if strings.Contains(k.String(), "?") {
			t.Errorf("action kind %d has no name", k)
		}
	}
	if State(99).String() != "state(?)" || Reason(99).String() != "reason(?)" || Event(99).String() != "event(?)" || Role(9).String() != "role(?)" {
		t.Error("out-of-range enums must say so")
	}
}

// Transitions is the table Next consults: every listed pair leads where
// Next says, and Next knows no pair it does not list.
func TestTransitionsAreTheTable(t *testing.T) {
	listed := 0
	for _, tr := range Transitions() {
		for _, from := range tr.From {
			listed++
			if to, ok := Next(from, tr.Event); !ok || to != tr.To {
				t.Errorf("%v from %v: Transitions says %v, Next says %v (%v)", tr.Event, from, tr.To, to, ok)
			}
		}
	}
	legal := 0
	for s := range State(numStates) {
		for e := range Event(numEvents) {
			if _, ok := Next(s, e); ok {
				legal++
			}
		}
	}
	if listed != legal {
		t.Errorf("Transitions lists %d pairs, the table holds %d", listed, legal)
	}
}
