package js_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// The conformance traces: scenarios of a client against a scripted server,
// run through the Go Machine with the default client policies, which
// heartbeat.js copies. unit/traces.json holds each scenario with the
// actions the Machine took (dials, pings, pongs, state changes, with their
// times); unit/traces.test.js replays the scenarios through the JS client
// on a fake clock and must take the same actions at the same times. So a
// change to when one machine pings, suspects or convicts that the other
// lacks fails one of the two tests. After a deliberate change to the Go
// Machine, rewrite the file with
//
//	go test ./transport/wire/js -run TestTracesFromMachine -update
var update = flag.Bool("update", false, "rewrite unit/traces.json from the Go Machine")

const tracesFile = "unit/traces.json"

// traceFile is unit/traces.json.
type traceFile struct {
	Comment string  `json:"comment"`
	Traces  []trace `json:"traces"`
}

// trace is one scenario and the actions the Machine took. Times are
// milliseconds after the client's start.
type trace struct {
	Name string `json:"name"`
	// Answers says which of the client's pings the server answers: a ping
	// sent in [From, To) gets its pong After ms later; others none.
	Answers []answer `json:"answers"`
	// Events are what else the server and the page do.
	Events []traceEvent `json:"events"`
	// End is when the scenario stops, unless the client reaches
	// reconnecting first (where the backoff's random draw would follow).
	End    float64       `json:"end"`
	Expect []traceAction `json:"expect"`
}

type answer struct {
	From, To, After float64
}

// traceEvent: "open" (the server accepts the socket), "ping" (the server
// pings with Seq and, if set, timeout advice TA ms), "data" (an
// application message), "close" (the socket closes abnormally, 1006),
// "freeze" (the page stands still until Until: nothing runs, then
// everything overdue runs at Until in order).
type traceEvent struct {
	At    float64 `json:"at"`
	In    string  `json:"in"`
	Seq   uint64  `json:"seq,omitempty"`
	TA    float64 `json:"ta,omitempty"`
	Until float64 `json:"until,omitempty"`
}

// traceAction: "dial", "ping" and "pong" (with Seq), "change" (From, To,
// Reason).
type traceAction struct {
	At     float64 `json:"at"`
	Do     string  `json:"do"`
	Seq    uint64  `json:"seq,omitempty"`
	From   string  `json:"from,omitempty"`
	To     string  `json:"to,omitempty"`
	Reason string  `json:"reason,omitempty"`
}

// scenarios are the traces without their actions.
func scenarios() []trace {
	healthy := []answer{{0, math.MaxInt32, 37}}
	return []trace{
		{Name: "healthy link", Answers: healthy, Events: []traceEvent{{At: 10, In: "open"}}, End: 120_000},
		{Name: "server silent from 30 s", Answers: []answer{{0, 30_000, 37}}, Events: []traceEvent{{At: 10, In: "open"}}, End: 120_000},
		{Name: "slow pongs while suspect", Answers: []answer{{0, 20_000, 37}, {20_000, 40_000, 1_400}}, Events: []traceEvent{{At: 10, In: "open"}}, End: 120_000},
		{Name: "jittery pongs", Answers: []answer{{0, 15_000, 37}, {15_000, 30_000, 900}, {30_000, 45_000, 120}, {45_000, 60_000, 2_600}}, Events: []traceEvent{{At: 10, In: "open"}}, End: 90_000},
		{Name: "server pings with fleet advice", Answers: []answer{{0, 30_000, 41}}, Events: append([]traceEvent{{At: 25, In: "open"}},
			every(3_000, 27_000, 4_000, func(i int, at float64) traceEvent {
				return traceEvent{At: at, In: "ping", Seq: uint64(i + 1), TA: 20_000}
			})...), End: 120_000},
		{Name: "data is evidence", Answers: nil, Events: append([]traceEvent{{At: 10, In: "open"}},
			every(700, 30_000, 1_300, func(_ int, at float64) traceEvent { return traceEvent{At: at, In: "data"} })...), End: 120_000},
		{Name: "page frozen, server fine", Answers: healthy, Events: []traceEvent{{At: 10, In: "open"}, {At: 20_003, In: "freeze", Until: 45_000}}, End: 90_000},
		// What the detector learns after a stall: it restarts its
		// measurement rather than take the pause as the server's lateness.
		{Name: "page frozen, server silent later", Answers: []answer{{0, 60_000, 37}}, Events: []traceEvent{{At: 10, In: "open"}, {At: 20_003, In: "freeze", Until: 45_000}}, End: 120_000},
		{Name: "page frozen, server gone", Answers: []answer{{0, 15_000, 37}}, Events: []traceEvent{{At: 10, In: "open"}, {At: 16_003, In: "freeze", Until: 40_000}}, End: 90_000},
		{Name: "socket closes", Answers: healthy, Events: []traceEvent{{At: 10, In: "open"}, {At: 33_333, In: "close"}}, End: 60_000},
		{Name: "server never accepts", Events: nil, End: 60_000},
	}
}

// every returns f's events at from, from+step, … up to to.
func every(from, to, step float64, f func(int, float64) traceEvent) []traceEvent {
	var out []traceEvent
	for i, at := 0, from; at < to; i, at = i+1, at+step {
		out = append(out, f(i, at))
	}
	return out
}

// input is an input due at a time, in the order it was queued.
type input struct {
	at  float64
	seq int
	ev  traceEvent
}

// runMachine plays sc against a client Machine with the default policies
// and returns the actions it took.
func runMachine(t *testing.T, sc trace) []traceAction {
	set := policy.DefaultSet(rand.New(rand.NewPCG(1, 2)))
	m, err := fsm.NewMachine(fsm.Config{Role: fsm.Client, Detector: set.Detector, Interval: set.Interval, Backoff: set.Backoff})
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1_700_000_000, 0)
	clock := func(ms float64) time.Time { return epoch.Add(time.Duration(math.Round(ms * 1e6))) }
	msOf := func(tm time.Time) float64 { return float64(tm.Sub(epoch)) / 1e6 }

	var queue []input
	n := 0
	push := func(at float64, ev traceEvent) {
		n++
		queue = append(queue, input{at, n, ev})
	}
	for _, ev := range sc.Events {
		push(ev.At, ev)
	}
	// The JS replay runs what falls due inside a freeze before the next
	// scripted event: scenarios keep events out of freezes, so the two
	// orders never differ.
	for _, f := range sc.Events {
		for _, ev := range sc.Events {
			if f.In == "freeze" && ev.In != "freeze" && ev.At >= f.At && ev.At < f.Until {
				t.Fatalf("%s: event %+v falls inside the freeze %v–%v", sc.Name, ev, f.At, f.Until)
			}
		}
	}
	var frozenFrom, frozenUntil float64 = -1, -1
	// effective is when something due at at runs: a frozen page runs it at
	// the end of the freeze.
	effective := func(at float64) float64 {
		if at >= frozenFrom && at < frozenUntil {
			return frozenUntil
		}
		return at
	}
	var got []traceAction
	done := false
	record := func(now float64, acts []fsm.Action) {
		at := math.Round(now*1000) / 1000 // µs: the JS side compares within 1 ms
		for _, a := range acts {
			switch a.Kind {
			case fsm.Dial:
				got = append(got, traceAction{At: at, Do: "dial"})
			case fsm.SendPing:
				got = append(got, traceAction{At: at, Do: "ping", Seq: a.Seq})
				for _, an := range sc.Answers {
					if now >= an.From && now < an.To {
						push(now+an.After, traceEvent{In: "pong", Seq: a.Seq})
					}
				}
			case fsm.SendPong:
				got = append(got, traceAction{At: at, Do: "pong", Seq: a.Seq})
			case fsm.StateChanged:
				got = append(got, traceAction{At: at, Do: "change", From: a.From.String(), To: a.To.String(), Reason: a.Reason.String()})
				if a.To == fsm.Reconnecting || a.To == fsm.Closed {
					done = true
				}
			}
		}
	}
	step := func(now float64, in fsm.Input) {
		record(now, m.Step(clock(now), in, nil))
	}
	step(0, fsm.Input{Kind: fsm.Start})
	for !done {
		// The next input by due time, then queue order; the Machine's
		// deadline runs after inputs due at the same time.
		slices.SortStableFunc(queue, func(a, b input) int {
			if c := cmp.Compare(a.at, b.at); c != 0 {
				return c
			}
			return a.seq - b.seq
		})
		dl := math.Inf(1)
		if d := m.Deadline(); !d.IsZero() {
			dl = msOf(d)
		}
		if len(queue) == 0 && dl > sc.End || len(queue) > 0 && min(queue[0].at, dl) > sc.End {
			break
		}
		// A pong's timer in the replay is older than the client's, so a
		// pong runs before a deadline it ties with, as here; a scripted
		// event runs after, so it must not tie.
		if len(queue) > 0 && queue[0].ev.In != "pong" && math.Abs(queue[0].at-dl) < 0.001 {
			t.Fatalf("%s: event %+v at %v ties with the Machine's deadline: move it", sc.Name, queue[0].ev, queue[0].at)
		}
		if len(queue) == 0 || dl < queue[0].at {
			step(effective(dl), fsm.Input{Kind: fsm.DeadlineReached})
			continue
		}
		in := queue[0]
		queue = queue[1:]
		now := effective(in.at)
		switch in.ev.In {
		case "open":
			step(now, fsm.Input{Kind: fsm.Connected})
		case "ping":
			step(now, fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Ping, Seq: in.ev.Seq, TimeoutAdvice: time.Duration(in.ev.TA) * time.Millisecond}})
		case "pong":
			step(now, fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Pong, Seq: in.ev.Seq}})
		case "data":
			step(now, fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Data}})
		case "close":
			step(now, fsm.Input{Kind: fsm.PeerClosed, Err: errors.New("closed 1006")})
		case "freeze":
			frozenFrom, frozenUntil = in.at, in.ev.Until
		default:
			t.Fatalf("%s: unknown event %q", sc.Name, in.ev.In)
		}
	}
	return got
}

// TestTracesFromMachine checks that unit/traces.json holds what the Go
// Machine does in each scenario (-update rewrites it), and that the
// scenarios exercise what they are named for.
func TestTracesFromMachine(t *testing.T) {
	f := traceFile{Comment: "Written by TestTracesFromMachine (transport/wire/js/traces_test.go) from the Go Machine with the default client policies; replayed by unit/traces.test.js through the JS client. Times in ms after start."}
	seen := map[string]bool{}
	for _, sc := range scenarios() {
		sc.Expect = runMachine(t, sc)
		for _, a := range sc.Expect {
			seen[a.Do+" "+a.To+" "+a.Reason] = true
		}
		f.Traces = append(f.Traces, sc)
	}
	// The scenarios must reach every verdict the JS client shares with
	// the Machine; a scenario that stopped exercising one proves less.
	for _, want := range []string{"change alive connected", "change suspect silence", "change suspect local stall", "change alive evidence",
		"change dead unanswered", "change dead peer closed", "change reconnecting retry", "change reconnecting connect timeout", "ping  ", "pong  "} {
		if !seen[want] {
			t.Errorf("no scenario shows %q", want)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", " ")
	if err := enc.Encode(f); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, tracesFile, buf.Bytes(), "it is not what the Go Machine does now; if the change is meant, rewrite it with -update and make heartbeat.js follow (node --test transport/wire/js/unit/)")
}

// checkGolden compares got with the file at path, or with -update writes
// it there; why says what a difference means and how to mend it.
func checkGolden(t *testing.T, path string, got []byte, why string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(old, got) {
		t.Errorf("%s: %s", path, why)
	}
}
