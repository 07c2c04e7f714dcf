package fsm

import (
	"slices"
	"testing"
)

func TestPresenceReportsOnceEachWay(t *testing.T) {
	var got []string
	var seen int
	p := Presence{
		Online:  func() { got = append(got, "online") },
		Offline: func(c Change) { got = append(got, "offline: "+c.Reason.String()) },
	}
	on := p.OnChange(func(Change) { seen++ })
	for _, c := range []Change{
		{From: Connecting, To: Alive, Reason: ReasonConnected},
		{From: Alive, To: Suspect, Reason: ReasonSilence},
		{From: Suspect, To: Alive, Reason: ReasonEvidence},
		{From: Alive, To: Suspect, Reason: ReasonSilence},
		{From: Suspect, To: Dead, Reason: ReasonUnanswered},
		{From: Dead, To: Closed, Reason: ReasonUserClose},
	} {
		on(c)
	}
	want := []string{"online", "offline: unanswered"}
	if !slices.Equal(got, want) || seen != 6 {
		t.Fatalf("got %v (next saw %d), want %v", got, seen, want)
	}
}

func TestPresenceNeverOnlineNeverOffline(t *testing.T) {
	offline := false
	on := Presence{Offline: func(Change) { offline = true }}.OnChange(nil)
	on(Change{From: Connecting, To: Dead, Reason: ReasonDialFailed})
	if offline {
		t.Fatal("a peer never online was reported offline")
	}
}
